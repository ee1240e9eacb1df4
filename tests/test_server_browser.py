"""The browser page end to end: headless Chromium, a fake microphone playing a WAV, the real baseline.

Chromium opens the page that `duplex serve` serves, the test presses
"Start talking", and the fake microphone says a sentence. The server must
hear it (user.speech.started reaches the page) and the page must receive and
play the agent's frames, including its spoken answer. A screenshot of the
page is saved to docs/img/browser_page.png for the README.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from audio.tts import Voice
from audio.wav import write_wav
from duplex.server.process import ServerProcess
from tests.cdp import Chromium, find_chromium
from tests.conftest import place, trimmed_speech
from tests.server_support import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (apt-get install chromium)"),
]

SCREENSHOT = ROOT / "docs" / "img" / "browser_page.png"


def test_browser_page_talks_to_the_agent(tmp_path: Path):
    microphone = tmp_path / "microphone.wav"
    # Chromium loops the file: one sentence, then enough silence for the agent's whole answer.
    write_wav(microphone, place(12.0, (0.5, trimmed_speech("hello there, how are you today", Voice("en-us", "f2")))), 16000)
    with ServerProcess.duplex_serve() as server:
        with Chromium(find_chromium(), tmp_path / "profile", microphone) as browser:
            browser.navigate(server.page_url())
            browser.evaluate("document.getElementById('start').click()", user_gesture=True)
            heard = browser.wait_for("window.duplexStatus().eventCounts['user.speech.started'] >= 1", 30)
            if browser.wait_for("window.duplexStatus().eventCounts['agent.speech.started'] >= 1", 45):
                time.sleep(0.8)  # mid-answer: the agent's level meter is up
                browser.screenshot(SCREENSHOT)
            answered = browser.wait_for("window.duplexStatus().eventCounts['agent.speech.stopped'] >= 1", 30)
            status = browser.evaluate("window.duplexStatus()")
    assert heard, f"the server never reported user speech: {status}"
    assert answered, f"the agent never finished an answer: {status}"
    assert not status["errors"], status["errors"]
    assert status["session"]["model"] == "baseline"
    assert status["framesReceived"] >= 40
    assert status["playedMs"] >= 2000, "the page played the agent's frames"
    assert status["agentPeakDb"] > -30, "what the page played held the agent's speech"
    assert status["userPeakDb"] > -30, "the page captured the fake microphone"
    assert [line["who"] for line in status["transcript"]][:2] == ["you", "agent"]
    assert "hello" in status["transcript"][0]["text"].lower()
    assert status["rttMs"] is not None and status["rttMs"] > 0
    assert SCREENSHOT.stat().st_size > 10_000
