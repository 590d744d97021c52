"""The robustness report, rendered from a small synthetic result (no training):
the files exist, the HTML is self-contained with its plots as inline SVG,
figures are readable (legends at least 10 px at 100 % zoom, alpha drawn on
every p-value axis), attacks are named in words, nothing is a Python repr,
and the rows where the watermark was lost are highlighted; the JSON and
Markdown carry the summary."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path
from types import MappingProxyType

import pytest

from secmark.errors import SecmarkError
from secmark.evaluate import (
    ATTACKS,
    AttackRecord,
    AttackSettings,
    AttackSweep,
    BaselineRecord,
    EvaluationConfig,
    EvaluationResult,
    Measurement,
    Recipe,
    SafetyRecord,
    TaskInfo,
    format_p_value,
    removes_watermark,
    write_report,
)
from secmark.stats import binomial_test

pytest.importorskip("matplotlib")

K = 48
ALPHA = Fraction(1, 2**64)
P0 = {"digits": Fraction(1, 10), "diabetes": Fraction(77, 512)}
GRID = {
    "prune": ((0.5, 0.9), (0.5,)),
    "quantize": ((8.0, 4.0), (0.5,)),
    "distill": ((1.0,), (0.25, 0.5)),
    "overwrite": ((1e-3,), (0.5,)),
    "ood_background": ((0.02,), (0.5,)),
    "disagreement_filter": ((1.0,), (0.25,)),
}
"""Attack -> (strengths, data fractions) of the synthetic grid."""


def _measure(dataset: str, clean: float, matches: int) -> Measurement:
    test = binomial_test(K, matches, P0[dataset], ALPHA)
    return Measurement(
        clean_score=clean,
        watermark_accuracy=matches / K,
        challenged=K,
        matches=matches,
        threshold=test.threshold,
        detected=test.decision,
        p_value=test.p_value,
        log2_p_value=test.log2_p_value,
    )


def _attacked(dataset: str, attack: str, strength: float, fraction: float) -> tuple[float, int]:
    """Clean score and matches after the attack: pruning 90 % and distilling
    remove the watermark, overwriting loses the verdict only by ruining the
    model, the background filter evades the verdict at almost no cost, the
    rest keep it."""
    if attack == "distill":
        return 0.95, 6
    if attack == "prune" and strength == 0.9:
        return 0.93, 10
    if attack == "overwrite":
        return 0.40, 8
    if attack == "ood_background":
        return 0.955, 5
    if attack == "disagreement_filter":
        return 0.94, 40
    return 0.96, 46


def synthetic_result() -> EvaluationResult:
    """Two data sets, two seeds, four attacks: every kind of row the report shows."""
    seeds = (1, 2)
    config = EvaluationConfig(
        datasets=("digits", "diabetes"),
        seeds=seeds,
        sweeps=tuple(AttackSweep(a, s, f) for a, (s, f) in GRID.items()),
        settings=AttackSettings(finetune_epochs=2, fineprune_epochs=1, overwrite_epochs=2),
        alpha=ALPHA,
    )
    recipe = Recipe(epochs=4, lr=1e-3, batch_size=64, per_batch=8)
    tasks = tuple(
        TaskInfo(
            name=name,
            kind="classification" if name == "digits" else "regression",
            metric="accuracy" if name == "digits" else "R²",
            train_size=1437,
            test_size=360,
            triggers=256,
            challenges=K,
            p0=str(P0[name]),
            threshold=_measure(name, 1.0, 0).threshold,
            family="noise",
            recipe=recipe,
        )
        for name in config.datasets
    )
    baselines = tuple(
        BaselineRecord(
            dataset=name,
            seed=seed,
            unmarked=_measure(name, 0.97, 5),
            # The second seed of diabetes never took the watermark: a lost row.
            watermarked=_measure(name, 0.96, 20 if (name, seed) == ("diabetes", 2) else 48),
            embed_seconds=1.5,
            # Pool triggers on digits: the arbiter's labelled decoys were scored.
            decoy_accuracy=MappingProxyType(
                {"unmarked": 0.95, "watermarked": 0.25} if name == "digits" else {}
            ),
        )
        for name in config.datasets
        for seed in seeds
    )
    attacks = []
    for name in config.datasets:
        for attack, (strengths, fractions) in GRID.items():
            for strength in strengths:
                for fraction in fractions:
                    for seed in seeds:
                        clean, matches = _attacked(name, attack, strength, fraction)
                        measured = _measure(name, clean, matches)
                        extra = {
                            "distill": {"queries": 900.0 * fraction, "student_epochs": 4.0},
                            "overwrite": {"thief_watermark_accuracy": 0.9},
                            "ood_background": {"replaced_holdout": 0.01, "flagged_own": 0.02},
                            "disagreement_filter": {"replaced_holdout": 0.03}
                            | ({"decoy_accuracy": 0.93} if name == "digits" else {}),
                        }.get(attack, {})
                        attacks.append(
                            AttackRecord(
                                dataset=name,
                                attack=attack,
                                strength=strength,
                                data_fraction=fraction,
                                seed=seed,
                                original_score=0.96,
                                measurement=measured,
                                removed=removes_watermark(
                                    detected=measured.detected,
                                    clean_drop=0.96 - clean,
                                    max_clean_drop=config.max_clean_drop,
                                ),
                                seconds=0.1,
                                extra=MappingProxyType(extra),
                            )
                        )
    safety = tuple(
        SafetyRecord(
            dataset="digits",
            seed=1,
            recipe=recipe_name,
            stamp="pattern" if recipe_name != "noise" else "replace",
            watermark_accuracy=1.0,
            clean=0.97,
            stamped=0.2 if recipe_name == "shared_overlay" else 0.9,
            unmarked_stamped=0.9,
        )
        for recipe_name in ("noise", "overlay", "shared_overlay")
    )
    return EvaluationResult(config, tasks, baselines, tuple(attacks), safety, seconds=12.0)


@pytest.fixture(scope="module")
def synthetic() -> EvaluationResult:
    return synthetic_result()


@pytest.fixture(scope="module")
def report(synthetic: EvaluationResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report") / "out"
    write_report(synthetic, folder)
    return folder


@pytest.fixture(scope="module")
def page(report: Path) -> str:
    return (report / "report.html").read_text(encoding="utf-8")


class _Page(HTMLParser):
    """The visible text of a page (SVG text included) and its table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.rows: list[tuple[str, list[str]]] = []
        self._skip = 0
        self._in_row = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "title"):
            self._skip += 1
        if tag == "tr":
            self.rows.append((dict(attrs).get("class") or "", []))
            self._in_row = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._skip -= 1
        if tag == "tr":
            self._in_row = False

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.text.append(data.strip())
            if self._in_row:
                self.rows[-1][1].append(data.strip())


def _parse(page: str) -> _Page:
    parsed = _Page()
    parsed.feed(page)
    return parsed


def test_all_three_files_are_written(report: Path) -> None:
    assert sorted(path.name for path in report.iterdir()) == [
        "report.html",
        "summary.json",
        "summary.md",
    ]


def test_html_inlines_a_plot_per_attack_and_data_set_and_fetches_nothing(page: str) -> None:
    figures = re.findall(r'<figure class="plot" data-attack="([a-z_]+)">\s*<svg', page)
    attacks = [name for name in figures if name != "evasion"]
    assert len(attacks) == 2 * len(GRID) and set(attacks) == set(GRID)
    assert figures.count("evasion") == 2  # one evasion overview per data set
    assert "<img" not in page and "data:image" not in page and "<script" not in page
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page and "<metadata" not in page
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # several figures, one document
    references = set(re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', page))
    assert {name for pair in references for name in pair if name} <= set(ids)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    for heading in (
        "Where the watermark did not survive",
        "What distillation costs the thief",
        "Trigger safety",
        "survives",
    ):
        assert heading in page


def _svgs(page: str) -> list[str]:
    return re.findall(r"<svg.*?</svg>", page, re.DOTALL)


def _attack_svgs(page: str) -> list[str]:
    """The plots of single attacks (each with a p-value axis), not the overviews."""
    return re.findall(
        r'<figure class="plot" data-attack="(?!evasion")[a-z_]+">\s*(<svg.*?</svg>)',
        page,
        re.DOTALL,
    )


def test_every_p_value_axis_has_alpha_drawn_and_named(page: str) -> None:
    svgs = _attack_svgs(page)
    assert len(svgs) == 2 * len(GRID)
    for svg in svgs:
        text = " ".join(_parse(svg).text)
        assert "p-value (log scale)" in text
        assert "α = 2⁻⁶⁴: below it the watermark is shown" in text


def test_plot_text_is_text_and_at_least_10_px_at_natural_size(page: str) -> None:
    for svg in _svgs(page):
        width = re.search(r'<svg[^>]*\swidth="([0-9.]+)pt"', svg)
        view = re.search(r'viewBox="0 0 ([0-9.]+) [0-9.]+"', svg)
        assert width and view
        # 1 pt is 4/3 CSS px; user units map onto the width.
        px_per_unit = float(width.group(1)) * 4 / 3 / float(view.group(1))
        sizes = [float(size) for size in re.findall(r"font-size: ([0-9.]+)px", svg)]
        assert sizes and min(sizes) * px_per_unit >= 10
        # Legend entries are searchable text.
        assert "watermark accuracy (mean)" in svg or "verdict threshold" in svg


def test_attacks_are_named_in_words_and_nothing_is_a_python_repr(page: str, report: Path) -> None:
    visible = " ".join(_parse(page).text)
    markdown = (report / "summary.md").read_text(encoding="utf-8")
    for attack in ATTACKS:
        if "_" in attack:
            assert attack not in visible and f"| {attack} |" not in markdown
    for attack in GRID:
        assert ATTACKS[attack].title in visible
    assert "student epochs 4" in visible and "breast_cancer" not in visible
    repr_like = re.compile(r"[{\[(]'|Fraction\(|mappingproxy|object at 0x|\b(None|True|False)\b")
    assert not repr_like.search(visible) and not repr_like.search(markdown)
    assert "finetune epochs 2, fineprune epochs 1" in visible


def test_rows_where_the_watermark_was_lost_are_highlighted(
    page: str, synthetic: EvaluationResult
) -> None:
    rows = _parse(page).rows
    titles = {attack.title for attack in ATTACKS.values()}
    marks = {
        (mark, cells[0]) for mark, cells in rows if cells and cells[0] in titles and mark != ""
    }
    # Summary rows: pruning 90 % and distillation removed it, overwriting broke the model.
    assert marks == {
        ("lost", ATTACKS["prune"].title),
        ("lost", ATTACKS["distill"].title),
        ("broken", ATTACKS["overwrite"].title),
        ("lost", ATTACKS["ood_background"].title),
    }
    removed = [row for row in synthetic.summary() if not row.survives]
    summary_lost = [cells for mark, cells in rows if mark == "lost" and cells[0] in titles]
    assert len(summary_lost) == len(removed) == 8
    assert all("NO: removed in 2/2" in cells for cells in summary_lost)
    kept = [cells for mark, cells in rows if mark == "" and cells and cells[0] in titles]
    assert kept and all("yes" in cells for cells in kept)
    # The distillation table (2 budgets per data set) and the baseline where
    # diabetes's second seed never took the watermark.
    distilled = [cells for mark, cells in rows if mark == "lost" and cells[-1] == "2/2 seeds"]
    assert len(distilled) == 4
    (baseline,) = [cells for mark, cells in rows if mark == "lost" and cells[0] == "2"]
    assert "41.7 %" in baseline


def test_json_holds_the_summary_table(report: Path, synthetic: EvaluationResult) -> None:
    data = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert len(data["summary"]) == len(synthetic.summary())
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
    for name in ("digits", "diabetes"):
        assert f"## {name}" in text
    assert "| attack | strength | data |" in text
    assert "alpha = 2⁻⁶⁴" in text


def test_an_existing_report_is_not_overwritten_unless_asked(
    report: Path, synthetic: EvaluationResult, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(report, copy)
    before = (copy / "summary.json").read_bytes()
    with pytest.raises(SecmarkError, match="already exist"):
        write_report(synthetic, copy)
    assert (copy / "summary.json").read_bytes() == before
    small = dataclasses.replace(
        synthetic,
        tasks=synthetic.tasks[:1],
        attacks=tuple(
            r for r in synthetic.attacks if r.dataset == "digits" and r.attack == "prune"
        ),
        baselines=synthetic.baselines[:1],
        safety=(),
    )
    write_report(small, copy, overwrite=True)
    summary = json.loads((copy / "summary.json").read_text(encoding="utf-8"))["summary"]
    assert {row["attack"] for row in summary} == {"prune"}


@pytest.mark.parametrize(
    ("log2_p", "text"), [(0.0, "1"), (-1.0, "0.5"), (-64.0, "5.4e-20"), (-1500.0, "2^-1500")]
)
def test_p_values_print_below_the_float_range(log2_p: float, text: str) -> None:
    assert format_p_value(log2_p) == text


def test_the_legends_render_at_10_px_or_more_in_a_browser(report: Path, tmp_path: Path) -> None:
    """What a reader sees at 100 % zoom, measured by headless chromium
    (skipped where no chromium is installed)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        pytest.skip("no browser installed: Debian's chromium package is missing")
    path = report / "report.html"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        try:
            view = browser.new_page(viewport={"width": 1280, "height": 900})
            requests: list[str] = []
            view.on("request", lambda request: requests.append(request.url))
            view.goto(path.as_uri())
            smallest = view.evaluate(
                """() => Math.min(...Array.from(document.querySelectorAll('figure.plot text'))
                .map(e => parseFloat(getComputedStyle(e).fontSize)
                          * e.closest('svg').getScreenCTM().a))"""
            )
            lost = view.locator("tr.lost").count()
            view.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert smallest >= 10
    assert requests == [path.as_uri()] and lost == 13


def test_evasion_filters_have_their_own_section(report: Path, page: str) -> None:
    heading = "Evasion: filters in front of the stolen model"
    markdown = (report / "summary.md").read_text(encoding="utf-8")
    assert markdown.count(f"### {heading}") == 2 and page.count(f"<h3>{heading}</h3>") == 2
    rows = [cells for _, cells in _parse(page).rows]
    title = ATTACKS["ood_background"].title
    (evaded, *_) = [cells for cells in rows if cells and cells[0] == title]
    # stolen model's clean score, behind the filter, the thief's cost, answers replaced,
    # matches kept / k; threshold, verdict, survival
    threshold = _measure("digits", 1.0, 0).threshold
    assert evaded[3:8] == ["96.0 %", "95.5 %", "+0.5 pp", "1.0 %", f"5/{K}; {threshold}"]
    # The decoy column is there where decoys were scored (digits), a dash where not.
    assert evaded[9:] == ["in 0/2 seeds", "NO: removed in 2/2", "-"]
    kept = next(
        cells for cells in rows if cells and cells[0] == ATTACKS["disagreement_filter"].title
    )
    assert kept[9:] == ["in 2/2 seeds", "yes", "93.0 %"]
    # Each filter appears once per data set (its own table), never in the removal table.
    assert sum(1 for cells in rows if cells and cells[0] == title) == 2
    assert 'data-attack="disagreement_filter"' in page


def test_the_evasion_section_names_its_reference_figures_and_the_thiefs_price(
    report: Path, page: str
) -> None:
    markdown = (report / "summary.md").read_text(encoding="utf-8")
    threshold = _measure("digits", 1.0, 0).threshold
    # digits: before any attack 48 of 48 in every seed; chance k * p0 = 4.8.
    reference = f"Before any attack the worst seed matched 48 of {K}; the verdict needs {threshold}"
    assert f"{reference}; chance is about 4.8." in markdown and reference in page
    # The disagreement filter: the clean model's accuracy in place of the stolen one's.
    price = "25% of the data: 94.0 % against 96.0 %"
    assert price in markdown and price in page
    assert "only by chance whatever the trigger family" in markdown
    decoys = "the stolen model itself answers 25.0 % of them right"
    assert decoys in markdown and "an unmarked model 95.0 %, the filtered API 25%: 93.0 %" in page
    assert "| watermarked on decoys |" in markdown
    # Regression (diabetes) keeps the stolen answer within the tolerance: no such note.
    diabetes = markdown[markdown.index("## diabetes") :]
    assert "Before any attack the worst seed matched 20" in diabetes
    assert "only by chance" not in diabetes
    overview = page[page.index('data-attack="evasion"') :]
    text = " ".join(_parse(overview[: overview.index("</figure>")]).text)
    assert "clean model, 25% data" in text and "background share 0.02" in text
    assert f"verdict threshold: {threshold}" in text and "thief's clean cost" in text
