"""demos/ws_client.py against a real server (in a thread, with EchoToneAgent): the recording is
stereo in the dialogue convention, the user's channel is the file, and the agent's channel holds
the agent's answer (here, the echo, one tick late on the server's tick grid) shortly after the
user's words, as the user heard it."""

from __future__ import annotations

import importlib.util

import numpy as np
import soundfile as sf

from audio.wav import write_wav
from tests.server_agents import EchoToneAgent
from tests.server_support import ROOT, ServerThread, tone


def load_demo():
    spec = importlib.util.spec_from_file_location("ws_client", ROOT / "demos" / "ws_client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ws_client_records_the_conversation(tmp_path):
    user = np.concatenate([np.zeros(4000, np.float32), tone(700.0, 0.4, 16000), np.zeros(4000, np.float32)])
    write_wav(tmp_path / "in.wav", user, 16000)
    with ServerThread(EchoToneAgent()) as server:
        code = load_demo().main([str(tmp_path / "in.wav"), "-o", str(tmp_path / "out.wav"), "--url", server.url, "--tail", "0.6"])
    assert code == 0
    recording, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    assert rate == 16000 and recording.shape == (len(user) + int(0.6 * 16000), 2)
    assert np.allclose(recording[: len(user), 1], user, atol=1e-4)
    loud = np.flatnonzero(np.abs(recording[:, 0]) > 0.1)
    delay_s = (loud[0] - 4000) / 16000
    assert 0.0 < delay_s <= 0.4, f"the echo came back after {delay_s:.3f} s"
    assert abs((loud[-1] - loud[0]) / 16000 - 0.4) < 0.03


def test_ws_client_says_clearly_when_there_is_no_server(tmp_path, capsys):
    write_wav(tmp_path / "in.wav", np.zeros(1600, np.float32), 16000)
    code = load_demo().main([str(tmp_path / "in.wav"), "-o", str(tmp_path / "out.wav"), "--url", "ws://127.0.0.1:9/v1/duplex"])
    assert code == 1
    assert "cannot reach" in capsys.readouterr().err
    assert not (tmp_path / "out.wav").exists()
