"""A server in a child process, for tests and benchmarks that must watch it from outside.

`ServerProcess` starts `duplex serve --port 0` (or any command that announces
itself the same way), reads the URL from its "voice API on URL" line, collects
its JSON log lines from stderr, reports its memory and thread count (Linux
/proc), and on exit stops it with SIGTERM, as an operator would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any


class ServerProcess:
    def __init__(self, args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None):
        self.args = args
        self.env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", **(env or {})}
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.stderr_lines: list[str] = []

    @classmethod
    def duplex_serve(cls, *extra: str, env: dict[str, str] | None = None) -> ServerProcess:
        """`duplex serve` on a free port of 127.0.0.1, with extra options."""
        return cls([sys.executable, "-m", "duplex.cli", "serve", "--port", "0", *extra], env)

    def __enter__(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            self.args, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        threading.Thread(target=self._read_stderr, daemon=True).start()
        for line in self.proc.stdout:
            found = re.search(r"voice API on (\S+)", line)
            if found:
                self.url = found.group(1)
                break
        if not self.url:
            self.proc.wait(10)
            raise RuntimeError("the server did not start:\n" + "".join(self.stderr_lines[-20:]))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def page_url(self) -> str:
        return self.url.replace("ws", "http", 1).replace("/v1/duplex", "/")

    def log_events(self) -> list[dict[str, Any]]:
        """The structured log lines so far."""
        events = []
        for line in list(self.stderr_lines):
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
        return events

    def rss_mb(self) -> float:
        return rss_mb(self.proc.pid)

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process (this one by default), in MB, from Linux's /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
