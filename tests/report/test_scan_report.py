"""The scan report page: every id, error text and platform fact from the
results or the platform's folder is text on the page, never markup; and a
real headless browser (Debian's chromium, driven by Playwright) shows the
plan, the hits, a heat-map cell per pair and the histogram, asking the
network for nothing. The browser test is skipped where no chromium is
installed."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from secmark.report import scan as scan_report
from secmark.report.scan import DepositFacts, PlatformFacts, render_scan_report
from tests.chromium import launched_browser, require_chromium

if TYPE_CHECKING:
    from playwright.sync_api import Dialog

    from secmark.scan import PairResult, ScanPlan

pytest.importorskip("sqlalchemy")

HOSTILE_MODEL = "<script>alert('model')</script>"
HOSTILE_DEPOSIT = '"><img src=x onerror="alert(2)">'
HOSTILE_ERROR = "refused: <iframe src='http://example.invalid/'></iframe>"
HOSTILE_PLATFORM = "<b onmouseover=alert(3)>Hub</b>"
MODELS = (HOSTILE_MODEL, "clean-1", "clean-2")
DEPOSITS = (HOSTILE_DEPOSIT, "d" * 64)
TRIALS = 48
THRESHOLD = 32


def _results() -> tuple[ScanPlan, list[PairResult]]:
    """3 models x 2 deposits: the hostile model hits the hostile deposit,
    ``clean-2`` failed on every deposit, the rest were counted near chance."""
    from secmark.scan import PairResult, ScanPlan
    from secmark.stats import log2_binomial_tail

    plan = ScanPlan(Fraction(1, 2**64), len(MODELS), len(DEPOSITS))
    results = []
    for model in MODELS:
        for number, deposit in enumerate(DEPOSITS):
            if model == "clean-2":
                counted: tuple[int | None, int | None, float | None] = (None, None, None)
                error: str | None = HOSTILE_ERROR
            else:
                matches = 48 if (model, deposit) == (HOSTILE_MODEL, HOSTILE_DEPOSIT) else 5 + number
                counted = (matches, 0, log2_binomial_tail(TRIALS, matches, Fraction(1, 10)))
                error = None
            results.append(
                PairResult(
                    model,
                    deposit,
                    plan,
                    TRIALS,
                    THRESHOLD,
                    *counted,
                    hit=counted[0] is not None and counted[0] >= THRESHOLD,
                    error=error,
                )
            )
    return plan, results


def _page() -> str:
    plan, results = _results()
    platform = PlatformFacts(
        HOSTILE_PLATFORM, "e" * 64, {HOSTILE_DEPOSIT: DepositFacts("c" * 64, "0" * 64)}
    )
    return render_scan_report("nightly <1>", plan, results, platform=platform)


def test_hostile_ids_and_errors_are_escaped() -> None:
    page = _page()
    for hostile in (HOSTILE_MODEL, HOSTILE_DEPOSIT, HOSTILE_ERROR, HOSTILE_PLATFORM):
        assert hostile not in page
    assert "&lt;script&gt;alert(&#x27;model&#x27;)&lt;/script&gt;" in page
    assert "<script" not in page and "<img" not in page and "<iframe" not in page
    assert 'onerror="' not in page and "<b " not in page
    assert "Content-Security-Policy" in page


def test_a_heat_map_too_large_to_draw_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan_report, "MAX_HEATMAP_CELLS", 5)
    page = _page()
    assert 'class="cell ' not in page and "more cells than this page draws (5)" in page
    assert '<svg class="histogram"' in page


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_chromium()


@pytest.fixture
def page_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "scan.html"
    path.write_text(_page(), encoding="utf-8")
    yield path


def test_a_browser_shows_the_plan_hits_heat_map_and_histogram(
    chromium: str, page_file: Path, tmp_path: Path
) -> None:
    with launched_browser(chromium) as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        requests: list[str] = []
        dialogs: list[str] = []

        def refuse(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("request", lambda request: requests.append(request.url))
        page.on("dialog", refuse)
        page.goto(page_file.as_uri())
        page.wait_for_load_state("load")
        try:
            assert requests == [page_file.as_uri()] and dialogs == []
            assert page.locator("script, img, iframe").count() == 0
            assert page.locator("#headline").inner_text() == "1 hit(s) among 4 counted pair(s)"

            cells = page.locator("table.heatmap td.cell")
            assert cells.count() == len(MODELS) * len(DEPOSITS)
            hit = page.locator("table.heatmap td.hit")
            assert hit.count() == 1 and hit.get_attribute("data-model") == HOSTILE_MODEL
            assert hit.get_attribute("data-deposit") == HOSTILE_DEPOSIT
            assert page.locator("table.heatmap td.error").count() == len(DEPOSITS)
            colours = {
                cells.nth(i).evaluate("cell => getComputedStyle(cell).backgroundColor")
                for i in range(cells.count())
            }
            assert len(colours) >= 3  # hit, errors and counted pairs differ

            rows = page.locator("table.hits tbody tr")
            assert rows.count() == 1 and HOSTILE_MODEL in rows.first.inner_text()
            assert page.locator("table.errors tbody tr").count() == len(DEPOSITS)
            body = page.locator("body").inner_text()
            for hostile in (HOSTILE_MODEL, HOSTILE_ERROR, HOSTILE_PLATFORM):
                assert hostile in body

            histogram = page.locator("svg.histogram")
            assert histogram.is_visible()
            bars = page.locator("svg.histogram rect.bar")
            total = sum(
                int(bars.nth(i).get_attribute("data-count") or 0) for i in range(bars.count())
            )
            assert total == 4
            page.screenshot(path=str(tmp_path / "scan.png"), full_page=True)
        finally:
            page.close()
    assert (tmp_path / "scan.png").stat().st_size > 10_000
