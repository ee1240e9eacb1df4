"""`duplex chat` with the sound card replaced at its boundary, the one place a stand-in is used.

`FakeSoundDevice` takes the place of the `sounddevice` module: a microphone
that plays a known signal and a speaker that records, both driven block by
block in real time by a thread, as PortAudio would. The agent is the tests'
EchoToneAgent, which repeats what it hears, so the speaker must play the
microphone's three tone bursts back: all of them, in order, each after the
same short delay, and for as long as they were.
"""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest

import audio.devices
from duplex.chat import chat
from duplex.cli import main
from tests.server_agents import EchoToneAgent
from tests.server_support import ServerThread, tone

RATE = 48000
BURSTS = [(0.3, 600.0), (0.9, 1200.0), (1.5, 2000.0)]  # (start s, Hz), 0.3 s each
BURST_S = 0.3
SECONDS = 2.6


class FakeStream:
    def __init__(self, samplerate, blocksize, callback, microphone, **_):
        self.rate, self.block, self.callback = samplerate, blocksize, callback
        self.microphone = microphone
        self.played: list[np.ndarray] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()

    def close(self):
        pass

    def _run(self):
        began = time.monotonic()
        i = 0
        while not self._stop.is_set():
            delay = began + (i + 1) * self.block / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            indata = np.zeros((self.block, 1), np.float32)
            chunk = self.microphone[i * self.block : (i + 1) * self.block]
            indata[: len(chunk), 0] = chunk
            outdata = np.zeros((self.block, 1), np.float32)
            self.callback(indata, outdata, self.block, None, 0)
            self.played.append(outdata[:, 0].copy())
            i += 1


class FakeSoundDevice:
    """The parts of the sounddevice module that audio/devices.py uses."""

    class PortAudioError(Exception):
        pass

    def __init__(self, microphone: np.ndarray, has_input: bool = True, has_output: bool = True):
        self.microphone = microphone
        self.has = {"input": has_input, "output": has_output}
        self.streams: list[FakeStream] = []

    def query_devices(self, device=None, kind=None):
        if kind is None:
            return "0 fake microphone, 1 fake speaker"
        if not self.has[kind]:
            raise self.PortAudioError("Error querying device -1")
        return {
            "index": 0 if kind == "input" else 1,
            "name": f"fake {kind}",
            "default_samplerate": float(RATE),
            f"default_low_{kind}_latency": 0.01,
        }

    def Stream(self, **kwargs):
        stream = FakeStream(microphone=self.microphone, **kwargs)
        self.streams.append(stream)
        return stream


def microphone_signal() -> np.ndarray:
    signal = np.zeros(int(SECONDS * RATE) + RATE, np.float32)
    for start, freq in BURSTS:
        i = int(start * RATE)
        signal[i : i + int(BURST_S * RATE)] = tone(freq, BURST_S, RATE)
    return signal


def burst_spans(played: np.ndarray) -> list[tuple[float, float, float]]:
    """(start s, end s, Hz) of each run of 10 ms blocks with the same loud pitch."""
    block = RATE // 100
    spans: list[list[float]] = []
    for b in range(len(played) // block):
        x = played[b * block : (b + 1) * block]
        if np.sqrt(np.mean(x**2)) < 0.05:
            continue
        freq = np.argmax(np.abs(np.fft.rfft(x * np.hanning(block)))) * RATE / block
        if spans and abs(spans[-1][2] - freq) < 150 and b / 100 - spans[-1][1] < 0.015:
            spans[-1][1] = (b + 1) / 100
        else:
            spans.append([b / 100, (b + 1) / 100, freq])
    return [tuple(s) for s in spans if s[1] - s[0] >= 0.1]


def check_echo(fake: FakeSoundDevice) -> None:
    (stream,) = fake.streams
    spans = burst_spans(np.concatenate(stream.played))
    assert len(spans) == len(BURSTS), spans
    delays = []
    for (start, end, freq), (sent_at, sent_freq) in zip(spans, BURSTS):
        assert abs(freq - sent_freq) < 150, "in order, at their pitch"
        assert abs((end - start) - BURST_S) <= 0.03, "as long as they were"
        delays.append(start - sent_at)
    assert 0.08 <= min(delays) and max(delays) <= 0.5, f"mic to speaker delays {delays}"
    assert max(delays) - min(delays) <= 0.05, f"the delay stays put: {delays}"


@pytest.fixture
def fake(monkeypatch):
    device = FakeSoundDevice(microphone_signal())
    monkeypatch.setattr(audio.devices, "_sounddevice", lambda: device)
    return device


def test_chat_in_process_plays_the_agent_back_in_order_and_on_time(fake):
    out = io.StringIO()
    summary = chat(agent=EchoToneAgent(), seconds=SECONDS, out=out)
    check_echo(fake)
    assert "headphones" in out.getvalue()
    assert "late" in out.getvalue() and "lag" in out.getvalue()
    assert summary.frames >= 25 and summary.stats["ticks"] >= 25


def test_chat_through_a_server(fake):
    with ServerThread(EchoToneAgent()) as server:
        summary = chat(server=server.url, seconds=SECONDS, out=io.StringIO())
    check_echo(fake)
    assert summary.stats["ticks"] >= 25


@pytest.mark.parametrize("missing, message", [("input", "no microphone (input) device"), ("output", "no speaker (output) device")])
def test_chat_without_a_sound_device_is_a_clear_error(monkeypatch, capsys, missing, message):
    device = FakeSoundDevice(microphone_signal(), has_input=missing != "input", has_output=missing != "output")
    monkeypatch.setattr(audio.devices, "_sounddevice", lambda: device)
    assert main(["chat"]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not device.streams


def test_chat_without_sounddevice_installed_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "sounddevice", None)
    assert main(["chat", "--list-devices"]) == 1
    assert "sounddevice package is missing" in capsys.readouterr().err
