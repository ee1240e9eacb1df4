import numpy as np
import pytest

from duplex.baseline import CascadedBaseline
from duplex.partner_stream import PartnerStream
from duplex.scripted_user import ScriptedUser, ScriptLine
from duplex.simulate import NetworkConfig, simulate
from tests.agents import TickCounter

T = 1280


def levels(audio):
    """The per-tick level of a TickCounter's speech (its tick index / 1000)."""
    return np.round(audio.reshape(-1, T)[:, 0] * 1000).astype(int)


def test_one_tick_of_delay_is_free_and_more_is_heard_late():
    for latency, lag in ((0, 0), (80, 0), (100, 1), (240, 2)):
        rec = simulate(TickCounter(), TickCounter(), 1, 2.0, NetworkConfig(delay_ms=latency, compensate=False))[0]
        said, heard = levels(rec.a.said), levels(rec.b.heard)
        assert np.array_equal(heard[1 + lag :], said[1 : len(said) - lag]), latency


def test_lost_frames_are_silence_and_counted():
    rec = simulate(TickCounter(), TickCounter(), 1, 8.0, NetworkConfig(loss=0.2, compensate=False))[0]
    heard = levels(rec.b.heard)
    silent = int(np.sum(heard[1:] == 0))
    assert rec.b.link_in["lost"] == silent > 0
    assert rec.b.link_in["loss_rate"] == pytest.approx(0.2, abs=0.08)


def test_compensation_stands_in_predictions_and_replaces_them_with_real_slices():
    rec = simulate(TickCounter(), TickCounter(), 1, 4.0, NetworkConfig(delay_ms=200, compensate=True))[0]
    said_a = rec.a.said.reshape(-1, T)
    stream = rec.b.stream
    assert stream["predicted"] > 40 and stream["replaced"] == stream["predicted"] - 3  # tick 0 (A says nothing for it) and the last two, in flight
    revisions = rec.b.state.revisions
    assert revisions and all(np.array_equal(audio, said_a[tick]) for tick, audio in revisions)
    # the record of what B heard shows the real slices at their true time
    assert np.array_equal(levels(rec.b.heard)[1:-2], levels(rec.a.said)[1:-2])


def test_simulation_is_deterministic():
    net = NetworkConfig(delay_ms=120, jitter_ms=30, loss=0.05, reorder=True)
    r1 = simulate(TickCounter(), TickCounter(), 2, 3.0, net, seed=5)
    r2 = simulate(TickCounter(), TickCounter(), 2, 3.0, net, seed=5)
    for x, y in zip(r1, r2):
        assert np.array_equal(x.b.heard, y.b.heard) and np.array_equal(x.a.heard, y.a.heard)


def test_partner_stream_playout_underruns():
    s = PartnerStream(T, compensate=False)
    assert not s.slice_for(0).any() and s.stats.underruns == 1


@pytest.mark.slow
def test_scripted_user_against_the_baseline_completes_a_dialogue():
    script = [
        ScriptLine("hello, can you hear me"),
        ScriptLine("hello how are you today", pause_after_word=2, pause_s=0.3),
        ScriptLine("count from one to ten", barge_in_after_s=1.0),
        ScriptLine("thanks, goodbye"),
    ]
    user = ScriptedUser([script])
    agent = CascadedBaseline(virtual_clock=True, fixed_latency_s=0.5)
    rec = simulate(user, agent, 1, 24.0, NetworkConfig(delay_ms=160, compensate=False))[0]
    answers = rec.a.state.answers
    assert [a.line for a in answers] == [0, 1, 2, 3]
    assert all(a.start_tick is not None for a in answers)
    assert answers[2].barged_in
    stops = [e for e in rec.b.events if e["type"] == "agent.speech.stopped" and e["interrupted"]]
    assert stops, "the baseline yields to the scripted user's barge-in"
    # a mid-question pause shorter than its 500 ms end-of-turn timeout does not split the question
    heard = [e["text"].lower() for e in rec.b.events if e["type"] == "user.transcript"]
    assert any("how are you" in h for h in heard)


@pytest.mark.slow
def test_domain_dialogues_are_scored_and_byte_identical_with_a_fixed_compute_latency():
    from duplex.scripted_user import domain_scripts
    from duplex.simulate_cli import score_answers

    def run():
        user = ScriptedUser(domain_scripts(1, seed=3, lines=2))
        agent = CascadedBaseline(virtual_clock=True, fixed_latency_s=0.6)
        return simulate(user, agent, 1, 16.0, NetworkConfig(delay_ms=120, jitter_ms=20, loss=0.02), seed=3)[0]

    a, b = run(), run()
    assert np.array_equal(a.a.stereo(), b.a.stereo()) and np.array_equal(a.b.stereo(), b.b.stereo())
    scores = score_answers(a)
    assert scores and all(set(s) == {"line", "answered", "correct", "transcript"} for s in scores)
    assert any(s["answered"] for s in scores)


@pytest.mark.slow
def test_wall_mode_runs_through_real_websocket_sessions_with_the_link_applied(tmp_path):
    """Two TickCounter sessions on a real server, relayed across a 200 ms link on the wall clock."""
    import asyncio

    from duplex.wall_simulate import simulate_wall
    from tests.server_support import ServerThread

    with ServerThread(TickCounter()) as server:
        rec = asyncio.run(simulate_wall(server.url, {}, 3.0, NetworkConfig(delay_ms=200, compensate=False)))
    said, heard = levels(rec.a.said), levels(rec.b.heard)
    n = int(np.count_nonzero(said))
    assert n >= 30, "side A's session spoke every tick"
    # B was sent A's frames in order, each about 200 ms after A said it
    got = heard[heard > 0]
    assert len(got) >= n - 5 and np.array_equal(got, said[: len(got)])
    assert rec.b.link_in["delay_ms_mean"] == pytest.approx(200, abs=1)


def test_two_learned_sides_share_the_threads_and_others_keep_them():
    import torch

    from duplex.simulate_cli import share_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        share_threads(["user", "baseline"])
        share_threads(["user", "checkpoints/model"])
        assert torch.get_num_threads() == 2
        share_threads(["checkpoints/a", "checkpoints/b"])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
