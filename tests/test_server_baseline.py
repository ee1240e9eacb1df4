"""`duplex serve` with the real cascaded baseline, in a process of its own, over real sockets.

One conversation through the whole stack (VAD, Whisper, responder, espeak-ng
on the wall clock), agent.say, then SIGTERM: the open session is closed with
1001, the process exits cleanly, and the log holds one JSON line per session
start and end with its statistics.
"""

from __future__ import annotations

import asyncio
import signal

import numpy as np
import pytest

from duplex.server.process import ServerProcess
from tests.server_support import Recorder, stream_realtime

pytestmark = pytest.mark.slow


def test_baseline_conversation_say_and_sigterm(speech):
    with ServerProcess.duplex_serve("--max-sessions", "2") as server:

        async def go() -> Recorder:
            rec = await Recorder.open(server.url)
            assert await rec.receive_until(lambda r: r.of_type("session.created"))
            assert rec.events[0]["model"] == "baseline"
            lead, silence = np.zeros(8000, np.float32), np.zeros(16000, np.float32)
            await stream_realtime(rec, np.concatenate([lead, speech["short"], silence]), 16000)
            # keep the line open (silence) until the agent has answered and finished
            quiet = np.zeros(int(16000 * 0.4), np.float32)
            for _ in range(25):
                if rec.of_type("agent.speech.stopped"):
                    break
                await stream_realtime(rec, quiet, 16000)
            await rec.send_json({"type": "agent.say", "text": "goodbye for now", "id": "bye"})
            for _ in range(25):
                if rec.of_type("agent.say.done"):
                    break
                await stream_realtime(rec, quiet, 16000)
            await rec.send_json({"type": "session.close"})
            assert await rec.until_closed() == 1000
            return rec

        rec = asyncio.run(go())
        kinds = [e["type"] for e in rec.events]
        for kind in ("user.speech.started", "user.speech.stopped", "user.transcript", "agent.transcript.delta",
                     "agent.speech.started", "agent.speech.stopped", "session.stats"):  # fmt: skip
            assert kind in kinds, kind
        assert "hello" in rec.of_type("user.transcript")[0]["text"].lower()
        assert rec.of_type("agent.say.done")[0] == {
            "type": "agent.say.done", "id": "bye", "interrupted": False, "spoken_text": "goodbye for now",
        }  # fmt: skip
        assert {len(f) for f in rec.frames} == {2560}
        assert np.max(np.abs(rec.agent_audio())) > 0.1, "the agent spoke"

        async def shutdown() -> int | None:
            open_one = await Recorder.open(server.url)
            assert await open_one.receive_until(lambda r: r.of_type("session.created"))
            server.proc.send_signal(signal.SIGTERM)
            return await open_one.until_closed(timeout=15)

        assert asyncio.run(shutdown()) == 1001
        assert server.proc.wait(20) == 0

    log = server.log_events()
    assert [e["event"] for e in log].count("session.start") == 2
    ends = [e for e in log if e["event"] == "session.end"]
    assert sorted(e["close_code"] for e in ends) == [1000, 1001]
    assert all({"ticks", "late_ticks", "input_underruns", "compute_ms_p50", "compute_ms_p99"} <= set(e["stats"]) for e in ends)
    assert log[-1]["event"] == "server.stop"
