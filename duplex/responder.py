"""Responders: the "brain" of the cascaded baseline, text in, text out.

Any object with `respond(text) -> str | None` works; None means nothing to
say. `EchoResponder` is the simplest honest one.
"""

from __future__ import annotations

from typing import Protocol


class Responder(Protocol):
    def respond(self, text: str) -> str | None: ...


class EchoResponder:
    """Repeats what it heard: "you said ..."."""

    def respond(self, text: str) -> str | None:
        text = text.strip()
        return f"you said {text}" if text else None
