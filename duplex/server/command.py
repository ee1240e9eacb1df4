"""`duplex serve`: run the WebSocket voice API and the browser page until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import sys

from duplex.agent import Agent
from duplex.agents import DEFAULT_MODEL, load_agent
from duplex.server.app import ServerConfig, VoiceServer, run_until_signal
from duplex.server.protocol import DEFAULT_HOST, DEFAULT_PORT


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the real-time WebSocket voice API and its browser page",
        description="Serve the agent over the WebSocket voice API (ws://HOST:PORT/v1/duplex, docs/protocol.md) "
        "and the browser page at http://HOST:PORT/. Logs one JSON line per session start and end on stderr. "
        "SIGINT/SIGTERM close every session with 1001 and exit.",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this computer only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument(
        "--token",
        default=os.environ.get("DUPLEX_TOKEN") or None,
        help="require this token (Authorization: Bearer or ?token=); default: $DUPLEX_TOKEN, else none",
    )
    p.add_argument("--max-sessions", type=int, default=16, help="sessions served at once (default 16)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"agent to run (default {DEFAULT_MODEL})")
    p.add_argument("--certfile", help="TLS certificate chain (PEM): serve wss:// and https://")
    p.add_argument("--keyfile", help="TLS private key (PEM), if not inside --certfile")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    config = ServerConfig(args.host, args.port, args.token, args.max_sessions, args.certfile, args.keyfile)
    config.ssl_context()  # refuse bad TLS options before loading the model
    agent = load_agent(args.model, virtual_clock=False)
    try:
        serve_agent(agent, config)
    finally:
        agent.close()
    return 0


def serve_agent(agent: Agent, config: ServerConfig) -> None:
    """Serve one agent until SIGINT/SIGTERM, logging JSON lines to stderr and announcing the URLs on stdout."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    server_log = logging.getLogger("duplex.server")
    server_log.addHandler(handler)
    server_log.setLevel(logging.INFO)
    if not _is_loopback(config.host) and config.token is None:
        print(
            f"duplex serve: warning: listening on {config.host} without --token: anyone who can reach it may talk to the agent",
            file=sys.stderr,
        )
    try:
        asyncio.run(run_until_signal(VoiceServer(agent, config), _announce))
    finally:
        server_log.removeHandler(handler)  # serving is over; do not hold on to this stderr


def _announce(server: VoiceServer) -> None:
    print(f"duplex serve: voice API on {server.url()}", flush=True)
    print(f"duplex serve: open {server.page_url()} in a browser (use headphones: there is no echo canceller)", flush=True)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
