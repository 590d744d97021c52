"""``-`` for standard input and output: a document piped through the commands
arrives byte for byte, the summary stays off standard output, and standard
input is read at most once, never from a terminal and never past its bound."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from secmark.cli.main import main
from secmark.crypto import write_key_file
from secmark.messages import create_identity
from secmark.messages.commitment import open_commitment
from secmark.messages.identity import MAX_IDENTITY_SIZE
from secmark.timestamp import TimestampAuthority
from secmark.timestamp.evidence import TimestampEvidence, collect_evidence
from tests.conftest import fixed_keys

FAMILY = '{"name":"noise","shape":[1,8,8],"dtype":"float32","low":0,"high":1}'


def feed(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    """Standard input holding ``data`` (a pipe: no descriptor, no terminal)."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


class _Unreadable(io.RawIOBase):
    """A standard input that fails the test if anything reads it."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        raise AssertionError("standard input was read")


class _Endless(io.RawIOBase):
    """A standard input that never ends, counting what was taken from it."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        size = len(buffer)
        buffer[:size] = b"{" * size
        self.served += size
        return size


class _Terminal(io.BytesIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def identity_file(tmp_path: Path) -> Path:
    path = tmp_path / "owner.identity.json"
    path.write_bytes(create_identity(fixed_keys("owner"), "Owner").to_json())
    return path


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "owner.key"
    write_key_file(path, fixed_keys("owner"), None, unencrypted=True)
    return path


def commit_to_stdout(key_file: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> bytes:
    status = main(
        ["commit", "--key", str(key_file), "--family", FAMILY]
        + ["--classes", "10", "--size", "16", "--out", "-"]
    )
    captured = capsysbinary.readouterr()
    assert status == 0, captured.err
    assert b"commitment id:" in captured.err, "the summary goes to standard error"
    return captured.out


# -- documents through the pipe ---------------------------------------------------


def test_identity_show_reads_standard_input_as_it_reads_a_file(
    identity_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["identity", "show", str(identity_file), "--json"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    feed(monkeypatch, identity_file.read_bytes())
    assert main(["identity", "show", "-", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == from_file


def test_a_document_written_to_standard_output_is_the_document_alone(
    key_file: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    piped = commit_to_stdout(key_file, capsysbinary)
    assert piped == open_commitment(piped).to_json(), "nothing but the document's bytes"


def test_json_summary_goes_to_standard_error_when_the_document_takes_standard_output(
    key_file: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    status = main(
        ["commit", "--key", str(key_file), "--family", FAMILY]
        + ["--classes", "10", "--size", "16", "--out", "-", "--json"]
    )
    captured = capsysbinary.readouterr()
    assert status == 0
    open_commitment(captured.out)
    assert json.loads(captured.err)["commitment_id"]


def test_a_failure_reported_in_json_keeps_off_the_document_stream(
    key_file: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    status = main(
        ["commit", "--key", str(key_file), "--family", "{}"]
        + ["--classes", "10", "--size", "16", "--out", "-", "--json"]
    )
    captured = capsysbinary.readouterr()
    assert status == 3 and captured.out == b""
    assert json.loads(captured.err.split(b"\n", 1)[1])["error"] == "EncodingError"


def test_a_filter_reads_standard_input_and_writes_standard_output(
    key_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    """commit --out - | timestamp - --import TOKEN --out - | commitment show C --evidence -"""
    commitment = commit_to_stdout(key_file, capsysbinary)
    signed = open_commitment(commitment)
    authority = TimestampAuthority.initialize(
        tmp_path / "tsa", passphrase=None, allow_unencrypted=True
    )
    token = tmp_path / "token.tsr"
    token.write_bytes(collect_evidence(signed.digest, [authority.respond]).tokens[0].token)

    feed(monkeypatch, commitment)
    assert main(["timestamp", "-", "--import", str(token), "--out", "-"]) == 0
    captured = capsysbinary.readouterr()
    evidence = TimestampEvidence.from_json(captured.out)
    assert evidence.subject == signed.digest
    assert b"NOT verified against trusted roots" in captured.err

    (tmp_path / "commitment.json").write_bytes(commitment)
    feed(monkeypatch, captured.out)
    status = main(
        ["commitment", "show", str(tmp_path / "commitment.json"), "--evidence", "-"]
        + ["--trust", str(tmp_path / "tsa" / "root.pem")]
    )
    shown = capsysbinary.readouterr()
    assert status == 0, shown.err
    assert b"trusted time:" in shown.out and b"NONE" not in shown.out


def test_a_token_can_be_imported_from_standard_input(
    key_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    commitment = tmp_path / "commitment.json"
    commitment.write_bytes(commit_to_stdout(key_file, capsysbinary))
    signed = open_commitment(commitment.read_bytes())
    authority = TimestampAuthority.initialize(
        tmp_path / "tsa", passphrase=None, allow_unencrypted=True
    )
    feed(monkeypatch, collect_evidence(signed.digest, [authority.respond]).tokens[0].token)
    out = tmp_path / "evidence.json"
    assert main(["timestamp", str(commitment), "--import", "-", "--out", str(out), "--json"]) == 0
    assert json.loads(capsysbinary.readouterr().out)["tokens"] == 1
    assert TimestampEvidence.from_json(out.read_bytes()).tokens[0].source == (
        "imported from standard input"
    )


def test_a_file_called_dash_is_named_dot_slash_dash(
    identity_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_bytes(identity_file.read_bytes())
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(_Unreadable())))
    assert main(["identity", "show", "./-"]) == 0
    assert "self-signature: valid" in capsys.readouterr().out


def test_writing_to_standard_output_ignores_a_file_called_dash(
    key_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_bytes(b"left alone")
    open_commitment(commit_to_stdout(key_file, capsysbinary))
    assert (tmp_path / "-").read_bytes() == b"left alone"


# -- what is refused --------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["timestamp", "-", "--import", "-", "--out", "e.json"],
        ["timestamp", "c.json", "--import", "-", "--import", "-", "--out", "e.json"],
        ["claim", "--key", "k", "--commitment", "-", "--evidence", "-", "--out", "x"]
        + ["--suspect", "sha256:" + "0" * 64, "--arbiter", "a.json"],
    ],
    ids=["document-and-token", "two-tokens", "commitment-and-evidence"],
)
def test_standard_input_named_twice_is_refused_before_anything_is_read(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(_Unreadable())))
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "only one argument can be '-' (standard input)" in error
    assert error.count("\n") == 1


def test_standard_input_is_not_read_from_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(_Terminal(b"{}")))
    assert main(["verify-bundle", "-"]) == 2
    assert "is a terminal; pipe the bundle in" in capsys.readouterr().err


def test_an_endless_standard_input_is_refused_at_the_bound(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    endless = _Endless()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(endless)))
    assert main(["identity", "show", "-"]) == 3
    assert f"over the limit of {MAX_IDENTITY_SIZE} bytes" in capsys.readouterr().err
    assert MAX_IDENTITY_SIZE < endless.served <= MAX_IDENTITY_SIZE + 2 * io.DEFAULT_BUFFER_SIZE


def test_a_redirected_file_over_the_bound_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    large = tmp_path / "large"
    with large.open("wb") as handle:
        handle.truncate(MAX_IDENTITY_SIZE + 1)
    with large.open("rb") as handle:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(handle))
        assert main(["identity", "show", "-"]) == 3
        assert handle.tell() == 0
    assert f"is {MAX_IDENTITY_SIZE + 1} bytes, over the limit" in capsys.readouterr().err


def test_dash_is_a_file_name_where_standard_input_is_not_offered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key file is never read from standard input (a passphrase prompt
    may need the terminal, and a key has no business in a pipe)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(_Unreadable())))
    status = main(
        ["commit", "--key", "-", "--family", FAMILY, "--classes", "10"]
        + ["--size", "16", "--out", "c.json"]
    )
    assert status != 0
    assert "-: No such file" in capsys.readouterr().err


def test_export_refuses_standard_output(
    key_file: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    commitment = tmp_path / "commitment.json"
    commitment.write_bytes(commit_to_stdout(key_file, capsysbinary))
    status = main(["timestamp", str(commitment), "--export", "evidence.json", "--out", "-"])
    assert status == 2
    assert b"give --out a directory, not -" in capsysbinary.readouterr().err


def test_help_says_where_dash_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["claim", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--commitment", "--evidence", "--release", "--out"):
        assert f"{option} " in text
    assert text.count("('-' for standard input)") >= 3
    assert "('-' for standard output)" in text
