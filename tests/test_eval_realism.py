"""SyncLLM's turn-taking realism: durations measured from the audio, correlated across replayed dialogues."""

from collections.abc import Sequence

import numpy as np
import pytest

from duplex.agent import Agent, AgentState
from tests.conftest import place, trimmed_speech
from training.dataset import DataError, read_dialogue
from training.eval_realism import dialogue_paths, mean_durations, pearson, realism
from training.generate import generate
from training.render import RenderConfig


class Replay(Agent):
    """Says the recorded agent channel of the session's dialogue (its seed picks it): the ideal agent."""

    name = "replay"

    def __init__(self, recordings: list[np.ndarray]):
        self.recordings = recordings

    def new_state(self, seed: int = 0) -> AgentState:
        return AgentState(seed=seed)

    def step(self, states: Sequence[AgentState], listen: np.ndarray) -> np.ndarray:
        out = np.zeros_like(listen)
        n = self.tick_samples
        for i, s in enumerate(states):
            s.tick += 1
            part = self.recordings[s.seed][s.tick * n : (s.tick + 1) * n]  # said during the next tick
            out[i, : len(part)] = part
        return out


class Late(Replay):
    """The same words half a second late: durations of speech keep, gaps and pauses move."""

    def __init__(self, recordings: list[np.ndarray]):
        super().__init__([np.concatenate([np.zeros(8000, np.float32), r]) for r in recordings])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("realism")
    generate(root, hours=100 / 3600, config=RenderConfig(seed=3, dialogue_s=20.0, split_fractions=(0.0, 0.0, 1.0)),
             workers=1, progress=False)
    return root


def test_durations_of_a_conversation_with_known_timing():
    one = trimmed_speech("seven plus five")
    two = trimmed_speech("is twelve")
    d1, d2 = len(one) / 16000, len(two) / 16000
    user = place(6.0, (0.5, one))
    agent = place(6.0, (0.5 + d1 + 0.4, two), (0.5 + d1 + 0.4 + d2 + 1.0, two))  # a gap, then an agent pause
    m = mean_durations(agent, user)
    assert m["gap"] == pytest.approx(0.4, abs=0.1)
    assert m["pause"] == pytest.approx(1.0, abs=0.1)
    assert m["ipu"] == pytest.approx((d1 + 2 * d2) / 3, abs=0.1)


def test_pearson_needs_three_pairs_that_vary():
    assert pearson([(1.0, 2.0), (2.0, 4.0), (3.0, 6.5), (None, 1.0)]) == pytest.approx(0.998, abs=0.002)
    assert pearson([(1.0, 2.0), (2.0, 4.0)]) is None
    assert pearson([(1.0, 2.0), (1.0, 4.0), (1.0, 5.0)]) is None


def test_the_ideal_agent_correlates_fully_and_a_late_one_less(dataset):
    paths = dialogue_paths(dataset, "test", 10)
    assert len(paths) >= 4
    recordings = [read_dialogue(p.with_suffix(".json"))[0][:, 0] for p in paths]
    ideal, _ = realism(Replay(recordings), paths)
    assert ideal["realism_dialogues"] == len(paths)
    assert ideal["realism_ipu_r"] == pytest.approx(1.0, abs=0.01)
    assert ideal["realism_gap_r"] == pytest.approx(1.0, abs=0.01)
    late, _ = realism(Late(recordings), paths)
    assert late["realism_gap_r"] is None or late["realism_gap_r"] < 0.95


def test_a_missing_split_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="duplex data generate"):
        dialogue_paths(tmp_path, "test", 3)

