"""The sound card: microphone and speaker through sounddevice (PortAudio).

This is the one place the project meets a sound card, so that everything
else runs (and is tested) on machines without one: `sounddevice` is imported
only when a device is actually used, and tests replace the module that
`_sounddevice()` returns. Missing hardware or libraries become a
`DeviceError` with one line that says what to do.

Streams are mono float32 with a callback (PortAudio's real-time thread): the
callback must only copy samples, never compute or wait.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Callback = Callable[..., None]


class DeviceError(Exception):
    """No usable sound device; the message is one line meant for the user."""


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError:  # the Python package is there, the PortAudio library is not
        raise DeviceError("the PortAudio library is missing (Debian: apt-get install libportaudio2)") from None
    except ImportError:
        raise DeviceError("the sounddevice package is missing (pip install sounddevice)") from None
    return sounddevice


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    sample_rate: int
    latency_s: float


def list_devices() -> str:
    """PortAudio's table of devices, as `python -m sounddevice` prints it."""
    return str(_sounddevice().query_devices())


def find_device(device: int | str | None, kind: str) -> Device:
    """The input or output device to use (None: the system default), or a DeviceError saying why not."""
    sd = _sounddevice()
    what = "microphone (input)" if kind == "input" else "speaker (output)"
    try:
        info = sd.query_devices(device, kind)
    except (ValueError, sd.PortAudioError):
        if device is None:
            raise DeviceError(f"no {what} device found; plug one in, or pick one from --list-devices") from None
        raise DeviceError(f"no {what} device {device!r}; see --list-devices") from None
    return Device(
        index=int(info["index"]),
        name=str(info["name"]),
        sample_rate=int(info["default_samplerate"]),
        latency_s=float(info[f"default_low_{kind}_latency"]),
    )


def open_duplex(rate: int, block: int, callback: Callback, microphone: Device, speaker: Device) -> Any:
    """A started full-duplex stream; callback(indata, outdata, frames, time, status) runs every block."""
    sd = _sounddevice()
    try:
        stream = sd.Stream(
            samplerate=rate,
            blocksize=block,
            device=(microphone.index, speaker.index),
            channels=1,
            dtype="float32",
            latency="low",
            callback=callback,
        )
        stream.start()
    except sd.PortAudioError as exc:
        raise DeviceError(f"cannot open the sound devices at {rate} Hz: {exc}") from None
    return stream


def open_input(rate: int, block: int, callback: Callback, microphone: Device) -> Any:
    """A started capture stream; callback(indata, frames, time, status) runs every block."""
    sd = _sounddevice()
    try:
        stream = sd.InputStream(
            samplerate=rate, blocksize=block, device=microphone.index, channels=1, dtype="float32", callback=callback
        )
        stream.start()
    except sd.PortAudioError as exc:
        raise DeviceError(f"cannot open the microphone at {rate} Hz: {exc}") from None
    return stream
