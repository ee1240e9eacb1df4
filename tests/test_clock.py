import numpy as np
import pytest

from clock.clocks import VirtualClock
from clock.link import Link, LinkParams
from clock.offload import Offloader
from clock.tick_loop import TickLoop


def test_no_drift_over_10000_virtual_ticks():
    clock = VirtualClock(start=5.0)
    loop = TickLoop(clock, 0.08)
    wakes = []
    loop.run(lambda n: wakes.append(clock.now()), 10_000)
    expected = 5.0 + 0.08 * (np.arange(10_000) + 1)
    assert np.max(np.abs(np.asarray(wakes) - expected)) < 1e-9
    assert loop.stats.ticks == 10_000 and loop.stats.late_ticks == 0


def test_late_ticks_are_counted_not_lost_and_the_loop_catches_up():
    clock = VirtualClock()
    loop = TickLoop(clock, 0.08)
    ran = []

    def step(n):
        ran.append((n, clock.now()))
        if n == 3:
            clock.advance(0.25)  # compute overruns by ~2 ticks

    loop.run(step, 10)
    assert [n for n, _ in ran] == list(range(10))
    # tick 3 ends at 0.57 s: its result, and those of ticks 4 and 5 that run at once
    # to catch up, miss their deadlines (0.40, 0.48, 0.56); tick 6 meets its own (0.64)
    assert loop.stats.late_ticks == 3
    assert ran[4][1] == ran[5][1] == ran[6][1] == pytest.approx(0.08 * 4 + 0.25)
    assert ran[7][1] == pytest.approx(0.08 * 8)


def test_link_statistics_match_parameters():
    params = LinkParams(delay_ms=120, jitter_ms=15, loss=0.05, reorder=True, seed=7)
    link = Link(params)
    received = []
    for i in range(20_000):
        link.send(i, now=i * 0.02)
        received += link.receive(i * 0.02)
    received += link.receive(1e9)
    s = link.stats.summary()
    assert s["loss_rate"] == pytest.approx(0.05, abs=0.006)
    assert s["delay_ms_mean"] == pytest.approx(120, abs=1.0)
    assert s["delay_ms_std"] == pytest.approx(15, abs=1.0)
    assert s["reordered"] > 0
    assert len(received) == s["delivered"] == s["sent"] - s["lost"]


def test_link_is_seeded_and_fifo_without_reorder():
    def run(seed):
        link = Link(LinkParams(delay_ms=50, jitter_ms=30, loss=0.1, seed=seed))
        for i in range(500):
            link.send(i, now=i * 0.08)
        return [(p.payload, p.deliver_at) for p in link.receive(1e9)]

    assert run(1) == run(1) != run(2)
    payloads = [p for p, _ in run(1)]
    assert payloads == sorted(payloads)


def test_offloader_lands_results_at_the_measured_tick_on_the_virtual_clock():
    off = Offloader(virtual=True, tick_s=0.08, fixed_latency_s=0.2)
    job = off.submit(lambda: "done", tick=10)
    assert job.ready_tick == 13  # ceil(0.2 / 0.08) = 3 ticks later
    assert off.poll(job, 12) == (False, None)
    assert off.poll(job, 13) == (True, "done")


def test_offloader_reraises_a_jobs_error_at_poll():
    off = Offloader(virtual=True, tick_s=0.08)

    def boom():
        raise RuntimeError("asr failed")

    job = off.submit(boom, tick=0)
    with pytest.raises(RuntimeError, match="asr failed"):
        off.poll(job, 100)
