"""The engine's fault isolation: a session whose agent step raises is dropped; the others go on."""

import logging

import numpy as np

from duplex.engine import Engine
from tests.agents import TickCounter

FAULTY_SEED = 13


class FaultyForOneSeed(TickCounter):
    """TickCounter that raises whenever a session opened with FAULTY_SEED is in the batch."""

    def step(self, states, listen):
        if any(s.seed == FAULTY_SEED for s in states):
            raise RuntimeError("this session's model blew up")
        return super().step(states, listen)


def test_a_faulty_session_is_dropped_logged_and_the_others_go_on(caplog):
    engine = Engine(FaultyForOneSeed())
    good, bad = engine.open_session(seed=1), engine.open_session(seed=FAULTY_SEED)
    with caplog.at_level(logging.WARNING, logger="duplex.engine"):
        for _ in range(3):
            for s in (good, bad):
                s.push_input(np.zeros(1280, np.float32))
            out = engine.step()
    assert isinstance(bad.failed, RuntimeError) and bad.id not in engine.sessions
    assert set(out) == {good.id} and np.allclose(out[good.id], 3 / 1000)
    assert "batched agent step failed (RuntimeError" in caplog.text
