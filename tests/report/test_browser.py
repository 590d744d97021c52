"""The verdict exhibit rendered by a real headless browser (Debian's chromium,
driven by Playwright): what a judge sees is the outcome, every check, the
plot with the observed count, and hostile names as plain text; the page asks
the network for nothing. Skipped only where no chromium is installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from secmark.cli.main import main
from tests.chromium import launched_browser, require_chromium
from tests.protocol.test_bundle_checks import NAMES
from tests.report.conftest import HOSTILE_NAME, Exhibits

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Dialog, Page

CHROMIUM = require_chromium()

_SMALLEST_TEXT = """() => Math.min(...Array.from(document.querySelectorAll('svg text, svg tspan'))
    .map(e => parseFloat(getComputedStyle(e).fontSize) * e.closest('svg').getScreenCTM().a))"""
"""The smallest rendered font size in the plot, in CSS pixels at this zoom."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_browser(CHROMIUM) as launched:
        yield launched


def _open(browser: Browser, path: Path) -> tuple[Page, list[str], list[str]]:
    """The page at ``path`` at 100 % zoom, with every request it made and
    every dialog it tried to open."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    dialogs: list[str] = []

    def refuse(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("request", lambda request: requests.append(request.url))
    page.on("dialog", refuse)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, requests, dialogs


def test_a_judge_sees_the_outcome_every_check_and_the_plot(
    browser: Browser, exhibits: Exhibits, tmp_path: Path
) -> None:
    out = tmp_path / "verdict.html"
    assert main(["report", str(exhibits.bundle), "--out", str(out)]) == 10
    page, requests, dialogs = _open(browser, out)
    try:
        assert requests == [out.as_uri()] and dialogs == []
        assert page.title().startswith("Verdict exhibit: UPHELD, but NOT verified")
        assert page.locator("#outcome").inner_text().startswith("UPHELD")
        assert "SELF-ASSERTED" in page.locator(".warning").first.inner_text()

        rows = page.locator("table.checks tbody tr")
        assert rows.count() == len(NAMES)
        assert [rows.nth(i).get_attribute("data-check") for i in range(len(NAMES))] == list(NAMES)
        results = [rows.nth(i).locator("td.result").inner_text() for i in range(len(NAMES))]
        assert set(results) == {"passed", "not checked"}

        plot = page.locator("svg.null-plot")
        assert plot.count() == 1 and plot.is_visible()
        observed = page.locator("#observed")
        assert observed.is_visible() and "observed: 48 of 48" in (observed.text_content() or "")
        box, frame = observed.bounding_box(), plot.bounding_box()
        assert box is not None and frame is not None
        assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"]
        assert page.evaluate(_SMALLEST_TEXT) >= 10

        # The hostile name is text on the page, and nothing ran.
        assert HOSTILE_NAME in page.locator("body").inner_text()
        assert page.locator("script, img, iframe").count() == 0
        page.screenshot(path=str(tmp_path / "verdict.png"), full_page=True)
    finally:
        page.close()
    assert (tmp_path / "verdict.png").stat().st_size > 10_000


def test_a_refused_bundle_shows_its_failing_check_and_no_outcome(
    browser: Browser, exhibits: Exhibits, tmp_path: Path
) -> None:
    out = tmp_path / "refused.html"
    assert main(["report", str(exhibits.tampered), "--out", str(out)]) == 5
    page, requests, dialogs = _open(browser, out)
    try:
        assert requests == [out.as_uri()] and dialogs == []
        assert page.title().startswith("Verdict exhibit: REFUSED")
        banner = page.locator("section.status")
        assert "REFUSED" in banner.inner_text() and "UPHELD" not in banner.inner_text()
        failed = page.locator('tr[data-check="verdict-figures"]')
        assert failed.locator("td.result").inner_text() == "FAILED"
        assert page.locator("tr.failed").count() == 1
        assert page.locator("svg").count() == 0
        page.screenshot(path=str(tmp_path / "refused.png"), full_page=True)
    finally:
        page.close()
