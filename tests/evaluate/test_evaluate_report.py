"""The report files: they exist, the HTML is self-contained with its plots
inline, the JSON and Markdown carry the summary."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from secmark.errors import SecmarkError
from secmark.evaluate import ATTACKS, EvaluationResult, format_p_value, write_report

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def report(tiny_result: EvaluationResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report") / "out"
    write_report(tiny_result, folder)
    return folder


def test_all_three_files_are_written(report: Path) -> None:
    assert sorted(path.name for path in report.iterdir()) == [
        "report.html",
        "summary.json",
        "summary.md",
    ]


def test_html_embeds_a_plot_per_attack_and_data_set_and_fetches_nothing(report: Path) -> None:
    page = (report / "report.html").read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3 * len(ATTACKS)
    assert all(len(image) > 1000 for image in images)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    for heading in (
        "Where the watermark did not survive",
        "What distillation costs the thief",
        "Trigger safety",
        "survives",
    ):
        assert heading in page


def test_json_holds_the_summary_table(report: Path, tiny_result: EvaluationResult) -> None:
    data = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert len(data["summary"]) == len(tiny_result.summary())
    row = data["summary"][0]
    for key in (
        "dataset",
        "attack",
        "strength",
        "clean_mean",
        "worst_watermark_accuracy",
        "worst_p_value",
        "worst_log2_p_value",
        "survives",
    ):
        assert key in row
    assert data["alpha"] == "1/18446744073709551616"
    assert {s["recipe"] for s in data["safety"]} == {"noise", "overlay", "shared_overlay"}


def test_markdown_has_a_table_per_data_set(report: Path) -> None:
    text = (report / "summary.md").read_text(encoding="utf-8")
    for name in ("digits", "breast_cancer", "diabetes"):
        assert f"## {name}" in text
    assert "| attack | strength | data |" in text


def test_an_existing_report_is_not_overwritten_unless_asked(
    report: Path, tiny_result: EvaluationResult
) -> None:
    before = (report / "summary.json").read_bytes()
    with pytest.raises(SecmarkError, match="already exist"):
        write_report(tiny_result, report)
    assert (report / "summary.json").read_bytes() == before
    # One data set and one attack keep the re-rendering short.
    small = dataclasses.replace(
        tiny_result,
        tasks=tiny_result.tasks[:1],
        attacks=tuple(
            r for r in tiny_result.attacks if r.dataset == "digits" and r.attack == "prune"
        ),
        baselines=tiny_result.baselines[:1],
        safety=(),
    )
    write_report(small, report, overwrite=True)
    assert (
        json.loads((report / "summary.json").read_text(encoding="utf-8"))["summary"][0]["attack"]
        == "prune"
    )


@pytest.mark.parametrize(
    ("log2_p", "text"), [(0.0, "1"), (-1.0, "0.5"), (-64.0, "5.4e-20"), (-1500.0, "2^-1500")]
)
def test_p_values_print_below_the_float_range(log2_p: float, text: str) -> None:
    assert format_p_value(log2_p) == text
