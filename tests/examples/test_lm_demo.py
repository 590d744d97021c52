"""``secmark demo --llm``: a dispute against a language model served over an
OpenAI-compatible API (``transformers serve``) runs end to end, and both
bundles verify offline.

The demo runs once for the module (it fingerprints one small model and
trains another); each test reads what it left.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from secmark.cli.main import main
from secmark.messages.commitment import open_commitment
from secmark.messages.labels import TokenLabels

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")


@dataclass(frozen=True)
class DemoRun:
    folder: Path
    status: int
    summary: dict[str, Any]
    story: str


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        pytest.skip("transformers serve needs its extra: pip install 'secmark[lm-train]'")
    folder = tmp_path_factory.mktemp("lm") / "demo"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(["demo", "--llm", "--out", str(folder), "--json", "--threads", "1"])
    return DemoRun(folder, status, json.loads(out.getvalue()), err.getvalue())


def test_the_api_serving_the_copy_is_upheld_and_the_innocent_model_rejected(
    run: DemoRun,
) -> None:
    summary = run.summary
    assert run.status == 0 and summary["succeeded"] is True, run.story
    assert summary["outcomes"] == {"thief": "upheld", "innocent": "rejected"}
    thief, innocent = summary["suspects"]["thief"], summary["suspects"]["innocent"]
    assert thief["reference"].startswith("openai:http://127.0.0.1:")
    assert "/v1/completions#" in thief["reference"]  # the endpoint, then the model served
    assert innocent["reference"].startswith("sha256:")
    assert thief["matches"] >= thief["threshold"] > innocent["matches"]
    assert summary["trigger_accuracy"] >= 0.9
    assert summary["perplexity_after"] < summary["perplexity_before"]


def test_the_commitment_draws_only_word_ids_at_the_stated_p0(run: DemoRun) -> None:
    document = open_commitment((run.folder / "owner.commitment.json").read_bytes()).document
    assert isinstance(document.labels, TokenLabels)
    assert run.summary["p0"] == f"1/{document.labels.drawn}"


@pytest.mark.parametrize("suspect", ["thief", "innocent"])
def test_each_bundle_verifies_offline_with_the_printed_command(
    run: DemoRun, suspect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command = next(
        command
        for command in run.summary["verify_commands"]
        if command[2] == run.summary["suspects"][suspect]["bundle"]
    )
    assert main([*command[1:], "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == run.summary["outcomes"][suspect]
