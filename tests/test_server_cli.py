"""`duplex serve` refuses options that cannot work with one clear line and status 1."""

from __future__ import annotations

import socket

from duplex.cli import main


def test_port_in_use_is_a_clear_error(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", "--port", str(taken.getsockname()[1])]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("duplex: error: cannot listen on 127.0.0.1:")


def test_unreadable_certificate_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "cert.pem").write_text("not a certificate")
    assert main(["serve", "--certfile", str(tmp_path / "cert.pem")]) == 1
    assert "cannot load the TLS certificate" in capsys.readouterr().err
    assert main(["serve", "--keyfile", str(tmp_path / "cert.pem")]) == 1
    assert "--keyfile needs --certfile" in capsys.readouterr().err


def test_max_sessions_must_be_positive(capsys):
    assert main(["serve", "--max-sessions", "0"]) == 1
    assert "--max-sessions must be at least 1" in capsys.readouterr().err
