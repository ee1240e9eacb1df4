"""The names, codes and limits of PROTOCOL.md section 1, and the parsing of client text frames.

Everything a client may send as text is turned here into one of three typed
requests, or refused with a `ProtocolError` that carries the error code the
client is told. Nothing in this module touches a socket, so every rule can be
read (and tested) in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PATH = "/v1/duplex"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
ACCEPTED_RATES = (8000, 16000, 24000, 48000)

MAX_FRAME_BYTES = 1 << 20
"""A larger frame closes the session with 1009 (websockets enforces it: `max_size`)."""
MAX_ERRORS = 20
"""The error event that reaches this count closes the session with 1008."""
MAX_INPUT_AHEAD_S = 2.0
"""Input further ahead of the tick clock than this is dropped as `input_overflow`."""

# Our own limits (docs/protocol.md), so that no request can grow memory without bound.
MAX_SAY_CHARS = 4000
MAX_SAY_ID_CHARS = 200
MAX_PENDING_SAYS = 8
"""agent.say requests not yet answered by agent.say.done; more are refused as input_overflow."""
MAX_OUTBOX_S = 10.0
"""Output a client may leave unread before it is closed (1008): it is not keeping up."""
STATS_INTERVAL_S = 1.0


class Close:
    """WebSocket close codes the server uses."""

    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY = 1008
    TOO_BIG = 1009
    INTERNAL = 1011
    TRY_AGAIN = 1013


class ErrorCode:
    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"
    INVALID_AUDIO = "invalid_audio"
    INPUT_OVERFLOW = "input_overflow"
    RATE_LOCKED = "rate_locked"
    UNSUPPORTED = "unsupported"
    INTERNAL = "internal"


class ProtocolError(Exception):
    """A client message the server refuses; `code` is one of `ErrorCode`."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SessionUpdate:
    input_sample_rate: int | None = None
    output_sample_rate: int | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Say:
    text: str
    id: str | None = None


@dataclass(frozen=True)
class CloseSession:
    pass


Request = SessionUpdate | Say | CloseSession


def parse_request(text: str) -> Request:
    """One client text frame as a typed request; raises ProtocolError with the code to send."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise ProtocolError(ErrorCode.INVALID_JSON, "text frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.INVALID_JSON, "text frame is JSON but not an object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.INVALID_EVENT, "event has no string field 'type'")
    if kind == "session.update":
        return SessionUpdate(
            input_sample_rate=_rate(obj, "input_sample_rate"),
            output_sample_rate=_rate(obj, "output_sample_rate"),
            seed=_optional_int(obj, "seed", 0, 2**32 - 1),
        )
    if kind == "agent.say":
        return Say(
            text=_string(obj, "text", MAX_SAY_CHARS, required=True),
            id=_string(obj, "id", MAX_SAY_ID_CHARS, required=False),
        )
    if kind == "session.close":
        return CloseSession()
    raise ProtocolError(ErrorCode.INVALID_EVENT, f"unknown event type {_shorten(kind)!r}")


def _optional_int(obj: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if type(value) is not int:  # bool is an int subclass; JSON true is not a number
        raise ProtocolError(ErrorCode.INVALID_EVENT, f"{name} must be an integer")
    if not low <= value <= high:
        raise ProtocolError(ErrorCode.INVALID_EVENT, f"{name} must be between {low} and {high}")
    return value


def _rate(obj: dict[str, Any], name: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if type(value) is not int or value not in ACCEPTED_RATES:
        accepted = ", ".join(str(r) for r in ACCEPTED_RATES)
        raise ProtocolError(ErrorCode.INVALID_EVENT, f"{name} must be one of {accepted}")
    return value


def _string(obj: dict[str, Any], name: str, max_chars: int, required: bool) -> str | None:
    value = obj.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ProtocolError(ErrorCode.INVALID_EVENT, f"{name} must be a string")
    if len(value) > max_chars:
        raise ProtocolError(ErrorCode.INVALID_EVENT, f"{name} is longer than {max_chars} characters")
    if required and not value.strip():
        raise ProtocolError(ErrorCode.INVALID_EVENT, f"{name} must not be empty")
    return value


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
