"""The command line as a whole: --quiet and --verbose, one line for a bug,
a quiet exit when the reader of the output goes away, and every environment
variable the code reads documented in --help."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from secmark.cli import keys as keys_command
from secmark.cli.main import EXIT_CLOSED_PIPE, EXIT_INTERNAL_ERROR, build_parser, main
from secmark.cli.output import Output, Verbosity, emit, show_progress
from secmark.crypto import write_key_file
from secmark.messages import create_identity
from tests.conftest import fixed_keys

REPOSITORY = Path(__file__).resolve().parents[2]
FAMILY = '{"name":"noise","shape":[1,8,8],"dtype":"float32","low":0,"high":1}'


@pytest.fixture
def identity_file(tmp_path: Path) -> Path:
    path = tmp_path / "owner.identity.json"
    path.write_bytes(create_identity(fixed_keys("owner"), "Owner").to_json())
    return path


# -- --quiet and --verbose --------------------------------------------------------


def test_quiet_prints_nothing_but_keeps_the_status(
    identity_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--quiet", "identity", "show", str(identity_file)]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["-q", "identity", "show", str(tmp_path / "missing.json")]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("secmark: error: ")


def test_quiet_still_prints_the_json_that_was_asked_for(
    identity_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--quiet", "identity", "show", str(identity_file), "--json"]) == 0
    assert '"self_signature": "valid"' in capsys.readouterr().out


def test_verbose_names_the_error_and_its_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    malformed = tmp_path / "identity.json"
    malformed.write_bytes(b"[]")
    assert main(["identity", "show", str(malformed)]) == 3
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["--verbose", "identity", "show", str(malformed)]) == 3
    error = capsys.readouterr().err.splitlines()
    assert error[0].startswith("secmark: error: ")
    assert error[1:] == ["secmark: (EncodingError, exit status 3)"]


def test_global_options_go_before_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["-q", "-v", "plan", "--classes", "10"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["identity", "show", "x", "--verbose"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --verbose" in capsys.readouterr().err


def test_verbosity_reaches_emit_and_progress_through_the_arguments_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def parsed(**values: object) -> argparse.Namespace:
        return argparse.Namespace(json=False, **values)

    emit(parsed(verbosity=Verbosity.VERBOSE), ["line"], {}, details=["detail"])
    emit(parsed(), ["line"], {}, details=["detail"])
    emit(parsed(verbosity=Verbosity.QUIET), ["line"], {}, details=["detail"])
    assert capsys.readouterr().out == "line\ndetail\nline\n"
    # A command's own --quiet silences its progress bar; the global one does too.
    assert show_progress(parsed())
    assert not show_progress(parsed(quiet=True))
    assert not show_progress(parsed(verbosity=Verbosity.QUIET))
    assert Output.from_args(parsed()) == Output()


# -- a bug is one line, its traceback only with --verbose ------------------------


def test_a_bug_is_reported_in_one_line_and_its_traceback_with_verbose(
    identity_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(data: bytes) -> None:
        raise RuntimeError("an invariant does not hold")

    monkeypatch.setattr(keys_command, "open_identity", broken)
    assert main(["identity", "show", str(identity_file)]) == EXIT_INTERNAL_ERROR
    error = capsys.readouterr().err
    assert error.startswith("secmark: internal error: RuntimeError: an invariant does not hold")
    assert "Traceback" not in error and "--verbose" in error
    assert main(["--verbose", "identity", "show", str(identity_file)]) == EXIT_INTERNAL_ERROR
    assert "Traceback (most recent call last)" in capsys.readouterr().err


# -- a closed pipe ---------------------------------------------------------------


def _run_into_closed_pipe(*argv: str, cwd: Path = REPOSITORY) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m secmark ARGV`` with standard output a pipe whose reading
    end is already closed, so that its first write fails as after ``| head``."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "secmark", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=cwd,
            check=False,
            timeout=60,
        )
    finally:
        os.close(write_end)


def test_help_into_a_closed_pipe_exits_quietly() -> None:
    done = _run_into_closed_pipe("--help")
    # argparse itself ignores a failed write of the help (status 0); a failure
    # at the final flush is ours to report (141). Either way: not a word.
    assert done.returncode in (0, EXIT_CLOSED_PIPE)
    assert done.stderr == b""


def test_a_summary_into_a_closed_pipe_exits_quietly(identity_file: Path) -> None:
    done = _run_into_closed_pipe("identity", "show", str(identity_file))
    assert done.returncode == EXIT_CLOSED_PIPE
    assert done.stderr == b""


def test_a_document_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    key = tmp_path / "owner.key"
    write_key_file(key, fixed_keys("owner"), None, unencrypted=True)
    done = _run_into_closed_pipe(
        "commit", "--key", str(key), "--family", FAMILY, "--classes", "10", "--size", "16",
        "--out", "-",
    )  # fmt: skip
    assert done.returncode == EXIT_CLOSED_PIPE
    assert b"Traceback" not in done.stderr and b"Exception ignored" not in done.stderr


def test_head_of_a_pipeline_leaves_no_traceback() -> None:
    """As a user types it; whether the write meets the closed pipe depends on
    timing, so either status is right, but never a traceback."""
    done = subprocess.run(
        [
            "bash",
            "-c",
            f'"{sys.executable}" -m secmark --help | head -1; exit "${{PIPESTATUS[0]}}"',
        ],
        capture_output=True,
        cwd=REPOSITORY,
        check=False,
        timeout=60,
    )
    assert done.returncode in (0, EXIT_CLOSED_PIPE)
    assert done.stdout.startswith(b"usage: secmark")
    assert done.stderr == b""


# -- the environment -------------------------------------------------------------

_READS = (
    # os.environ.get("X"), os.environ["X"], a copy of the environment read the same way
    re.compile(r"""environ(?:ment)?(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]*)["']"""),
    re.compile(r"""getenv\(\s*["']([A-Z][A-Z0-9_]*)["']"""),
    # a constant naming a variable, read elsewhere: PASSPHRASE_ENV = "SECMARK_PASSPHRASE"
    re.compile(r"""^\s*\w*_ENV\b[^=\n]*=\s*["']([A-Z][A-Z0-9_]*)["']""", re.MULTILINE),
)


def variables_read_by_the_source() -> set[str]:
    found: set[str] = set()
    for path in (REPOSITORY / "secmark").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern in _READS:
            found.update(pattern.findall(text))
    return found


def test_every_environment_variable_the_code_reads_is_in_help() -> None:
    variables = variables_read_by_the_source()
    # The search itself works: it finds the variables known to be read.
    assert {"SECMARK_PASSPHRASE", "SECMARK_TSA_PASSPHRASE", "CUBLAS_WORKSPACE_CONFIG"} <= variables
    text = build_parser().format_help()
    assert "environment variables:" in text
    missing = sorted(name for name in variables if name not in text)
    assert not missing, f"read by secmark but not documented in secmark --help: {missing}"
