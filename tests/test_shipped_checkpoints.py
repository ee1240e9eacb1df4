"""The weights committed under checkpoints/ load as what they claim to be, with their model cards."""

from pathlib import Path

import pytest

from models.agent_checkpoint import load_agent_models
from models.codec import load_codec
from models.listen_encoder import load_listen_encoder

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


@pytest.mark.parametrize("name,load", [("codec", load_codec), ("listen", load_listen_encoder),
                                       ("listen-ctc", load_listen_encoder), ("lsm", load_agent_models)])
def test_a_shipped_checkpoint_loads_and_has_a_model_card(name, load):
    folder = CHECKPOINTS / name
    assert load(folder) is not None  # the agent's parts.json digests must match checkpoints/codec and listen
    card = (folder / "README.md").read_text()
    assert "## Status" in card and "## Metrics" in card and "Reproduce" in card
