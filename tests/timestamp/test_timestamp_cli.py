"""``secmark tsa init`` and ``secmark tsa serve``, through the module's own register()."""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from secmark.cli import tsa
from secmark.errors import KeyMaterialError
from secmark.timestamp import TimestampAuthority, TrustStore, request_timestamp, verify_timestamp
from tests.timestamp.conftest import MESSAGE

REPOSITORY = Path(__file__).resolve().parents[2]


def _run(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="secmark")
    tsa.register(parser.add_subparsers(required=True))
    args = parser.parse_args(arguments)
    status: int = args.handler(args)
    return status


def test_init_with_passphrase_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("a tsa passphrase\n")
    directory = tmp_path / "tsa"
    assert _run(["tsa", "init", str(directory), "--passphrase-file", str(secret), "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["encrypted"] is True
    assert created["root_certificate"] == str(directory / "root.pem")
    TimestampAuthority.open(directory, passphrase=b"a tsa passphrase")


def test_init_passphrase_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(tsa.PASSPHRASE_ENV, "from the environment")
    assert _run(["tsa", "init", str(tmp_path / "tsa")]) == 0
    assert "root SHA-256:" in capsys.readouterr().out
    TimestampAuthority.open(tmp_path / "tsa", passphrase=b"from the environment")


def test_init_without_passphrase_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tsa.PASSPHRASE_ENV, raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # not a terminal: no prompt
    with pytest.raises(KeyMaterialError, match="no TSA key passphrase"):
        _run(["tsa", "init", str(tmp_path / "tsa")])


def test_init_options_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        _run(["tsa", "init", str(tmp_path), "--unencrypted", "--passphrase-file", "x"])


def test_serve_answers_until_stopped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "tsa"
    assert _run(["tsa", "init", str(directory), "--unencrypted"]) == 0
    capsys.readouterr()
    script = (
        "import argparse, sys\n"
        "from secmark.cli import tsa\n"
        "parser = argparse.ArgumentParser()\n"
        "tsa.register(parser.add_subparsers(required=True))\n"
        "args = parser.parse_args(sys.argv[1:])\n"
        "sys.exit(args.handler(args))\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", script, "tsa", "serve", str(directory), "--port", "0", "--json"],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    try:
        assert server.stdout is not None
        announced = ""
        while not announced.rstrip().endswith("}"):
            line = server.stdout.readline().decode()
            assert line, server.stderr.read().decode() if server.stderr else ""
            announced += line
        url = json.loads(announced)["url"]
        token = request_timestamp(url, MESSAGE)
        root = TrustStore.from_pem_files([directory / "root.pem"])
        assert verify_timestamp(token, MESSAGE, root).serial_number == 1
    finally:
        # SIGTERM, as a supervisor stops it: a shell that starts a background
        # job ignores SIGINT for it, and the job's children inherit that.
        server.send_signal(signal.SIGTERM)
        status = server.wait(timeout=10)
    assert status == 0
