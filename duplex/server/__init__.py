"""The WebSocket voice API server (PROTOCOL.md section 1) and the browser page it serves."""

from duplex.server.app import (
    ServerConfig,
    ServerConfigError,
    VoiceServer,
    run_until_signal,
)

__all__ = ["ServerConfig", "ServerConfigError", "VoiceServer", "run_until_signal"]
