"""Choosing an agent by name: what `--model` means on every command.

"baseline" is the cascaded half-duplex baseline (duplex/baseline.py) ending turns
after 500 ms of silence, "baseline-smart-turn" the same with Smart Turn v3.2; learned
models are selected by the path of their checkpoint folder
(models/agent_checkpoint.py describes its layout).
"""

from __future__ import annotations

import os

from duplex.agent import Agent

AGENT_CHOICES = ("baseline", "baseline-smart-turn")
DEFAULT_MODEL = "baseline"


class UnknownModelError(Exception):
    """--model names nothing we can load."""


def load_agent(model: str, virtual_clock: bool, fixed_latency_s: float | None = None) -> Agent:
    """The agent for a --model value, set up for the given clock."""
    if model in AGENT_CHOICES:
        from duplex.baseline import CascadedBaseline

        end_of_turn = "smart_turn" if model == "baseline-smart-turn" else "silence"
        return CascadedBaseline(virtual_clock=virtual_clock, end_of_turn=end_of_turn, fixed_latency_s=fixed_latency_s)
    if os.path.isdir(model):  # a checkpoint of another kind fails here with a clear CheckpointError
        from duplex.lm_agent import SpeechLMAgent

        return SpeechLMAgent.from_checkpoint(model)
    raise UnknownModelError(
        f"unknown model {model!r}: choose one of {', '.join(AGENT_CHOICES)} or a learned agent's checkpoint folder"
    )
