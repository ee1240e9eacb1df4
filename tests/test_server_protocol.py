"""Conformance of the WebSocket server with PROTOCOL.md section 1, over real sockets on 127.0.0.1.

The server runs in a thread of this process with `EchoToneAgent` (a small
real agent: it echoes what it hears, and speaks agent.say text as a tone), so
that every row of the contract can be checked quickly and exactly. Clients
here speak raw WebSocket frames. tests/test_server_baseline.py repeats the
main path with the real cascaded baseline in a server process.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from websockets.exceptions import InvalidStatus

from duplex.server.protocol import ACCEPTED_RATES, MAX_FRAME_BYTES, MAX_PENDING_SAYS
from tests.server_agents import SAY_TICKS_PER_WORD, SAY_TONE_HZ, EchoToneAgent
from tests.server_support import (
    Recorder,
    ServerThread,
    dominant_frequency,
    pcm,
    stream_realtime,
    tone,
)

TICK_MS = 80
STATS_FIELDS = {"ticks": int, "late_ticks": int, "input_underruns": int, "compute_ms_p50": float, "compute_ms_p99": float}


@pytest.fixture(scope="module")
def server():
    with ServerThread(EchoToneAgent(), max_sessions=64) as running:
        yield running


def run(coro):
    return asyncio.run(coro)


async def opened(url: str, **kwargs) -> Recorder:
    """A connection that has received session.created."""
    rec = await Recorder.open(url, **kwargs)
    assert await rec.receive_until(lambda r: r.of_type("session.created"))
    return rec


async def closed_normally(rec: Recorder) -> dict:
    """session.close -> session.closed + 1000; returns the stats."""
    await rec.send_json({"type": "session.close"})
    assert await rec.until_closed() == 1000
    (closed,) = rec.of_type("session.closed")
    return closed["stats"]


def check_stats(stats: dict) -> None:
    for name, kind in STATS_FIELDS.items():
        assert isinstance(stats[name], kind) or (kind is float and isinstance(stats[name], int)), name


# -- session life -------------------------------------------------------------


def test_session_created_fields_and_no_audio_before_the_first_byte(server):
    async def go():
        rec = await opened(server.url)
        created = rec.events[0]
        assert created["type"] == "session.created"
        assert isinstance(created["session_id"], str) and created["session_id"]
        assert created["tick_ms"] == TICK_MS
        assert created["input_sample_rate"] == 16000 and created["output_sample_rate"] == 16000
        assert created["model"] == "echo-tone"
        await rec.receive_for(0.4)
        assert rec.frames == []  # the tick clock starts at the first audio byte
        await rec.ws.close()

    run(go())


def test_every_rate_pair_gives_exact_frames_and_carries_the_audio(server):
    """8/16/24/48 kHz both ways: session.updated, one frame of exactly tick_ms per tick, and
    a tone sent at the input rate comes back (echoed) at its pitch at the output rate."""

    async def one(in_rate: int, out_rate: int):
        rec = await opened(server.url)
        await rec.send_json({"type": "session.update", "input_sample_rate": in_rate, "output_sample_rate": out_rate})
        assert await rec.receive_until(lambda r: r.of_type("session.updated"))
        updated = rec.of_type("session.updated")[0]
        assert {k: updated[k] for k in ("input_sample_rate", "output_sample_rate", "tick_ms", "model")} == {
            "input_sample_rate": in_rate,
            "output_sample_rate": out_rate,
            "tick_ms": TICK_MS,
            "model": "echo-tone",
        }
        assert updated["session_id"] == rec.events[0]["session_id"]
        began = time.monotonic()
        await stream_realtime(rec, tone(500.0, 1.6, in_rate), in_rate)
        elapsed = time.monotonic() - began
        stats = await closed_normally(rec)
        frame_bytes = TICK_MS * out_rate // 1000 * 2
        assert {len(f) for f in rec.frames} == {frame_bytes}
        assert len(rec.frames) == stats["ticks"]
        assert abs(len(rec.frames) - elapsed * 1000 / TICK_MS) <= 3
        echoed = rec.agent_audio()[3 * frame_bytes // 2 : 15 * frame_bytes // 2]
        assert abs(dominant_frequency(echoed, out_rate) - 500.0) < 15.0

    async def go():
        await asyncio.gather(*(one(i, o) for i in ACCEPTED_RATES for o in ACCEPTED_RATES))

    run(go())


def test_frames_keep_coming_without_input_and_underruns_are_counted(server):
    async def go():
        rec = await opened(server.url)
        await rec.ws.send(pcm(np.zeros(8000, np.float32)))  # 0.5 s: 6 whole ticks, then nothing
        await rec.receive_for(2.0)
        stats = await closed_normally(rec)
        assert stats["ticks"] >= 20
        assert len(rec.frames) == stats["ticks"]
        assert stats["input_underruns"] == stats["ticks"] - 6
        assert rec.of_type("session.stats"), "session.stats at least every 5 s"
        check_stats(rec.of_type("session.stats")[-1])
        check_stats(stats)

    run(go())


def test_input_overflow_drops_the_excess_and_the_session_goes_on(server):
    async def go():
        rec = await opened(server.url)
        await rec.ws.send(pcm(np.zeros(16000 + 8000, np.float32)))  # 1.5 s ahead: fine
        await rec.receive_for(0.3)
        assert not rec.of_type("error")
        await rec.ws.send(pcm(np.zeros(3 * 16000, np.float32)))  # now well over 2 s ahead
        assert await rec.receive_until(lambda r: r.of_type("error"))
        (error,) = rec.of_type("error")
        assert error["code"] == "input_overflow" and isinstance(error["message"], str)
        before = len(rec.frames)
        await rec.receive_for(0.5)
        assert len(rec.frames) > before and rec.close_code is None
        stats = await closed_normally(rec)
        assert stats["input_underruns"] == 0  # what was kept still feeds the clock

    run(go())


def test_session_close_answers_session_closed_then_1000(server):
    async def go():
        rec = await opened(server.url)
        await rec.ws.send(pcm(np.zeros(1280, np.float32)))
        await rec.receive_for(0.3)
        stats = await closed_normally(rec)
        check_stats(stats)
        assert rec.events[-1]["type"] == "session.closed"

    run(go())


# -- errors -------------------------------------------------------------------

BAD_TEXT = [
    ("not json", "invalid_json"),
    ("{", "invalid_json"),
    ("[1, 2]", "invalid_json"),
    ('"session.close"', "invalid_json"),
    ("[" * 100_000, "invalid_json"),
    ("{}", "invalid_event"),
    ('{"type": 7}', "invalid_event"),
    ('{"type": "no.such.event"}', "invalid_event"),
    ('{"type": "session.update", "input_sample_rate": 44100}', "invalid_event"),
    ('{"type": "session.update", "output_sample_rate": "16000"}', "invalid_event"),
    ('{"type": "session.update", "input_sample_rate": 16000.0}', "invalid_event"),
    ('{"type": "session.update", "output_sample_rate": true}', "invalid_event"),
    ('{"type": "agent.say"}', "invalid_event"),
    ('{"type": "agent.say", "text": 5}', "invalid_event"),
    ('{"type": "agent.say", "text": "hi", "id": 5}', "invalid_event"),
    ('{"type": "session.update", "input_sample_rate": 48000}', "rate_locked"),
    ('{"type": "session.update", "output_sample_rate": 8000}', "rate_locked"),
]


def test_every_error_code_then_the_twentieth_error_closes_with_1008(server):
    async def go():
        rec = await opened(server.url)
        await rec.ws.send(pcm(np.zeros(1280, np.float32)))  # audio started: rates are locked now
        for text, _ in BAD_TEXT:
            await rec.ws.send(text)
        await rec.ws.send(b"\x00\x01\x02")  # odd byte count
        await rec.send_json({"type": "session.update", "input_sample_rate": 16000})  # no change: fine
        assert await rec.receive_until(lambda r: r.of_type("session.updated"))
        codes = [e["code"] for e in rec.of_type("error")]
        assert codes == [code for _, code in BAD_TEXT] + ["invalid_audio"]
        assert len(rec.of_type("session.updated")) == 1
        assert all(isinstance(e["message"], str) and e["message"] for e in rec.of_type("error"))
        await rec.receive_for(0.3)
        assert rec.close_code is None and rec.frames, "the session goes on after 18 errors"
        await rec.ws.send("still not json")  # 19
        await rec.receive_for(0.2)
        assert rec.close_code is None
        await rec.ws.send(b"\x00")  # 20
        assert await rec.until_closed() == 1008
        assert len(rec.of_type("error")) == 20

    run(go())


def test_frame_over_one_mebibyte_closes_with_1009_and_one_mebibyte_is_accepted(server):
    async def go():
        fits = await opened(server.url)
        await fits.ws.send(b"\x00" * MAX_FRAME_BYTES)
        assert await fits.receive_until(lambda r: r.of_type("error"))
        assert fits.of_type("error")[0]["code"] == "input_overflow"  # 32 s of audio at once
        await fits.receive_for(0.3)
        assert fits.close_code is None
        await fits.ws.close()

        for message in (b"\x00" * (MAX_FRAME_BYTES + 2), "x" * (MAX_FRAME_BYTES + 1)):
            rec = await opened(server.url)
            await rec.ws.send(message)
            assert await rec.until_closed() == 1009

    run(go())


def test_a_fault_in_one_session_closes_it_with_1011_and_others_go_on(server):
    async def go():
        calm = await opened(server.url)
        doomed = await opened(server.url)
        await calm.ws.send(pcm(np.zeros(16000, np.float32)))
        await doomed.ws.send(pcm(np.full(1280, 1.0, np.float32)))  # EchoToneAgent raises on full scale
        assert await doomed.until_closed() == 1011
        assert [e["code"] for e in doomed.of_type("error")] == ["internal"]
        before = len(calm.frames)
        await calm.receive_for(0.6)
        assert len(calm.frames) >= before + 5 and calm.close_code is None
        await closed_normally(calm)

    run(go())


# -- events -------------------------------------------------------------------


def test_agent_say_speaks_then_answers_agent_say_done(server):
    async def go():
        rec = await opened(server.url)
        text = "nice to meet you"
        await rec.send_json({"type": "agent.say", "text": text, "id": "greeting"})  # before audio: held
        await stream_realtime(rec, np.zeros(int(16000 * 2.0), np.float32), 16000)
        (done,) = rec.of_type("agent.say.done")
        assert done == {"type": "agent.say.done", "id": "greeting", "interrupted": False, "spoken_text": text}
        assert rec.of_type("agent.transcript.delta")[0]["text"] == text
        started, stopped = rec.of_type("agent.speech.started")[0], rec.of_type("agent.speech.stopped")[0]
        assert stopped["interrupted"] is False
        assert stopped["tick"] - started["tick"] == SAY_TICKS_PER_WORD * len(text.split())
        for event in rec.events:
            if "tick" in event:
                assert event["t_ms"] == event["tick"] * TICK_MS
        spoken = rec.agent_audio()[(started["tick"] + 1) * 1280 : stopped["tick"] * 1280]
        assert abs(dominant_frequency(spoken, 16000) - SAY_TONE_HZ) < 15
        await closed_normally(rec)

    run(go())


def test_agent_say_stops_when_the_user_barges_in(server):
    async def go():
        rec = await opened(server.url)
        await rec.send_json({"type": "agent.say", "text": "one two three four five six seven eight"})
        quiet, loud = np.zeros(int(16000 * 0.5), np.float32), tone(300.0, 0.5, 16000)
        await stream_realtime(rec, np.concatenate([quiet, loud, quiet]), 16000)
        (done,) = rec.of_type("agent.say.done")
        assert done["id"] == "say-1" and done["interrupted"] is True
        assert done["spoken_text"] and "one two three four five six seven eight".startswith(done["spoken_text"])
        assert done["spoken_text"] != "one two three four five six seven eight"
        assert rec.of_type("agent.speech.stopped")[0]["interrupted"] is True
        await closed_normally(rec)

    run(go())


def test_too_many_pending_says_are_refused(server):
    async def go():
        rec = await opened(server.url)
        for i in range(MAX_PENDING_SAYS + 1):
            await rec.send_json({"type": "agent.say", "text": "a long sentence to say", "id": f"s{i}"})
        assert await rec.receive_until(lambda r: r.of_type("error"))
        assert [e["code"] for e in rec.of_type("error")] == ["input_overflow"]
        await rec.ws.close()

    run(go())


def test_agent_say_on_a_model_without_text_is_unsupported():
    with ServerThread(EchoToneAgent(can_say=False)) as server:

        async def go():
            rec = await opened(server.url)
            await rec.send_json({"type": "agent.say", "text": "hello"})
            assert await rec.receive_until(lambda r: r.of_type("error"))
            assert rec.of_type("error")[0]["code"] == "unsupported"
            await rec.ws.send(pcm(np.zeros(1280, np.float32)))
            assert await rec.receive_until(lambda r: r.frames)
            await closed_normally(rec)

        run(go())


def test_user_speech_events_come_from_the_voice_activity_detector(server, speech):
    async def go():
        rec = await opened(server.url)
        lead = np.zeros(int(16000 * 0.4), np.float32)
        await stream_realtime(rec, np.concatenate([lead, speech["short"], np.zeros(int(16000 * 0.6), np.float32)]), 16000)
        started, stopped = rec.of_type("user.speech.started"), rec.of_type("user.speech.stopped")
        assert len(started) == 1 and len(stopped) == 1
        assert 300 <= started[0]["t_ms"] <= 800
        end_ms = (len(lead) + len(speech["short"])) / 16
        assert end_ms <= stopped[0]["t_ms"] <= end_ms + 600
        await closed_normally(rec)

    run(go())


# -- limits and access ----------------------------------------------------------


def test_capacity_refuses_with_1013():
    with ServerThread(EchoToneAgent(), max_sessions=2) as server:

        async def go():
            first, second = await opened(server.url), await opened(server.url)
            third = await Recorder.open(server.url)
            assert await third.until_closed() == 1013 and third.close_reason
            assert not third.events
            await first.ws.close()
            await asyncio.sleep(0.2)
            fourth = await opened(server.url)
            await fourth.ws.close()
            await second.ws.close()

        run(go())


def test_token_is_required_by_header_or_query_and_guards_the_page_too():
    with ServerThread(EchoToneAgent(), token="s3cret") as server:
        page = server.url.replace("ws://", "http://").replace("/v1/duplex", "/")

        async def refused(url: str, **kwargs) -> int:
            with pytest.raises(InvalidStatus) as caught:
                await Recorder.open(url, **kwargs)
            return caught.value.response.status_code

        async def go():
            assert await refused(server.url) == 401
            assert await refused(server.url + "?token=wrong") == 401
            assert await refused(server.url, additional_headers={"Authorization": "Bearer wrong"}) == 401
            for rec in (
                await opened(server.url + "?token=s3cret"),
                await opened(server.url, additional_headers={"Authorization": "Bearer s3cret"}),
            ):
                await rec.ws.close()

        run(go())
        for url in (page, page + "app.js"):
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(url, timeout=10)
            assert caught.value.code == 401
        with urllib.request.urlopen(page + "?token=s3cret", timeout=10) as response:
            assert response.status == 200 and b"duplex" in response.read()


def test_the_page_is_served_at_the_root(server):
    base = server.url.replace("ws://", "http://").replace("/v1/duplex", "")
    with urllib.request.urlopen(base + "/", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/html")
        assert b"app.js" in response.read()
    for name in ("app.js", "worklet.js"):
        with urllib.request.urlopen(f"{base}/{name}", timeout=10) as response:
            assert "javascript" in response.headers["Content-Type"]
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(base + "/nothing-here", timeout=10)
    assert caught.value.code == 404


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    with ServerThread(EchoToneAgent(), certfile=str(cert), keyfile=str(key)) as server:
        assert server.url.startswith("wss://")

        async def go():
            rec = await opened(server.url, ssl=ssl.create_default_context(cafile=str(cert)))
            await rec.ws.send(pcm(np.zeros(1280, np.float32)))
            assert await rec.receive_until(lambda r: r.frames)
            await closed_normally(rec)

        run(go())
