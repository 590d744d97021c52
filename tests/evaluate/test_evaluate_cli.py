"""``secmark evaluate`` through its own parser (main.py wires it separately)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from secmark.cli import evaluate
from secmark.errors import EncodingError

pytest.importorskip("matplotlib")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="secmark")
    evaluate.register(parser.add_subparsers())
    return parser.parse_args(argv)


def test_quick_run_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(
        [
            "evaluate",
            "--quick",
            "--datasets",
            "breast_cancer",
            "--out",
            str(tmp_path / "r"),
            "--no-progress",
            "--json",
        ]
    )
    assert args.handler(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert Path(data["report"]).is_file() and Path(data["summary_json"]).is_file()
    assert data["settings"] == 16
    for failing in data["not_surviving"]:
        assert failing["dataset"] == "breast_cancer"


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    args = parse(["evaluate", "--datasets", "digits,mnist", "--out", str(tmp_path)])
    with pytest.raises(EncodingError, match="mnist"):
        args.handler(args)
    args = parse(["evaluate", "--seeds", "0", "--out", str(tmp_path)])
    with pytest.raises(EncodingError, match="seeds"):
        args.handler(args)
    args = parse(["evaluate", "--family", "shifted", "--out", str(tmp_path)])
    with pytest.raises(EncodingError, match="unknown trigger family 'shifted'"):
        args.handler(args)
    assert not (tmp_path / "report.html").exists()
