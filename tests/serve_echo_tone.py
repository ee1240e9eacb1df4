"""`python -m tests.serve_echo_tone [--port P] [--max-sessions N]`: the real server, serving EchoToneAgent.

Tests that need the server in a process of its own (memory, signals) run
this; it is `duplex serve` with the tests' small agent in place of a model."""

import argparse

from duplex.server.app import ServerConfig
from duplex.server.command import serve_agent
from tests.server_agents import EchoToneAgent

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-sessions", type=int, default=64)
    args = parser.parse_args()
    serve_agent(EchoToneAgent(), ServerConfig(port=args.port, max_sessions=args.max_sessions))
