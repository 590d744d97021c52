"""``secmark arbiter``: the level ``init`` records, and ``--case`` by id or prefix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secmark.cli.main import main
from secmark.errors import EncodingError, ProtocolError
from secmark.timestamp import TimestampAuthority


@pytest.fixture
def parties(tmp_path: Path) -> list[str]:
    """The ``init`` arguments of an arbiter with an unencrypted key."""
    assert main(["keygen", "arbiter", "--out-dir", str(tmp_path / "keys"), "--unencrypted"]) == 0
    TimestampAuthority.initialize(tmp_path / "tsa", passphrase=None, allow_unencrypted=True)
    return [
        "--key",
        str(tmp_path / "keys/arbiter.key"),
        "--identity",
        str(tmp_path / "keys/arbiter.identity.json"),
        "--trust",
        str(tmp_path / "tsa/root.pem"),
    ]


def _alpha(folder: Path) -> str | None:
    value: str | None = json.loads((folder / "arbiter.json").read_text()).get("alpha")
    return value


@pytest.mark.parametrize(
    ("level", "alpha"),
    [
        ([], f"1/{2**64}"),
        (["--alpha-log2", "-40"], f"1/{2**40}"),
        (["--alpha", "1e-20"], f"1/{10**20}"),
        (["--alpha", "2^-30"], f"1/{2**30}"),
    ],
)
def test_init_records_the_level(
    tmp_path: Path, parties: list[str], level: list[str], alpha: str
) -> None:
    folder = tmp_path / "arb"
    assert main(["arbiter", "init", str(folder), *parties, *level]) == 0
    assert _alpha(folder) == alpha


@pytest.mark.parametrize(
    "level",
    [
        ["--alpha-log2", "-10"],  # weaker than 2^-20: no verdict would be evidence
        ["--alpha-log2", "-2000"],
        ["--alpha", "1e-99999999"],
        ["--alpha", "1/0"],
        ["--alpha", "nan"],
        ["--alpha=-0.5"],
    ],
)
def test_init_refuses_a_level_it_cannot_use(
    tmp_path: Path, parties: list[str], level: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "arb"
    assert main(["arbiter", "init", str(folder), *parties, *level]) == EncodingError.exit_code
    assert capsys.readouterr().err.count("\n") == 1
    assert not (folder / "arbiter.json").exists()


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("abc", EncodingError.exit_code, "prefix of 4 to 64 hex digits"),
        ("../../etc", EncodingError.exit_code, "prefix of 4 to 64 hex digits"),
        ("abcd", ProtocolError.exit_code, "no case id starts with abcd"),
    ],
)
def test_an_unusable_case_is_one_line_and_its_exit_code(
    tmp_path: Path,
    parties: list[str],
    case: str,
    code: int,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "arb"
    assert main(["arbiter", "init", str(folder), *parties]) == 0
    capsys.readouterr()
    assert main(["arbiter", "status", str(folder), "--case", case]) == code
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
