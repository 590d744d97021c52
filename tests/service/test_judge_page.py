"""The judge's page of a real decided case, served by the running service and
read in a real headless browser (Debian's chromium, driven by Playwright).

A whole dispute goes through HTTP (claim, challenge, reveal, query job
against the suspect server, decide; the steps that may need a party's
signature are signed), then the browser loads ``GET /cases/{id}/page``. The
test asserts on what a judge reads there (the outcome, the parties' key
ids, the timeline of trusted times, every check's result, the figures) and
against the bundle the service serves, verified independently; it saves a
full-page screenshot. Skipped only where no chromium is installed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import httpx
import pytest

from secmark.crypto import IdentityKeys
from secmark.encoding import parse_time
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.owner import answer_challenge
from secmark.report.words import RESULT_WORDS
from secmark.service.auth import sign_request
from tests.chromium import launched_browser, require_chromium
from tests.protocol.conftest import CHALLENGE_SIZE
from tests.protocol.test_bundle_checks import NAMES
from tests.service.conftest import Dispute, json_suspects, running, wait_for_job

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Dialog, Page

CHROMIUM = require_chromium()

_FACTS = """(list) => Object.fromEntries(Array.from(list.querySelectorAll('dt'))
    .map(dt => [dt.innerText.trim(), dt.nextElementSibling.innerText.trim()]))"""
"""A ``dl.facts`` as {term: description}, as rendered."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_browser(CHROMIUM) as launched:
        yield launched


@pytest.fixture
def decided_case(dispute: Dispute) -> Iterator[tuple[httpx.Client, str]]:
    """The running service and the id of a case it decided, through HTTP only."""
    world, mark = dispute.world, dispute.mark
    with running(dispute.arbiter(), json_suspects(world.folder)) as client:
        filed = client.post("/claims", content=dispute.claim)
        assert filed.status_code == 201, filed.text
        case_id: str = filed.json()["case"]
        challenge = _post(client, f"/cases/{case_id}/challenge", world.owner)
        reveal = answer_challenge(mark.keys, mark.signed, challenge.content, world.arbiter_identity)
        _post(client, f"/cases/{case_id}/reveal", world.owner, reveal)
        job = _post(client, f"/cases/{case_id}/query", world.arbiter_keys).json()
        assert wait_for_job(client, job["job"])["state"] == "done"
        _post(client, f"/cases/{case_id}/decide", world.arbiter_keys)
        yield client, case_id


def _post(client: httpx.Client, path: str, keys: IdentityKeys, body: bytes = b"") -> httpx.Response:
    """``POST path`` signed by ``keys`` (a party of the case), as a service
    that asks for a party's signature on its steps accepts it."""
    headers = {"Authorization": sign_request(keys, "POST", path, body)}
    response = client.post(path, content=body, headers=headers)
    assert response.status_code in (200, 202), f"{path}: {response.text}"
    return response


def _open(browser: Browser, url: str) -> tuple[Page, list[str], list[str]]:
    """The page at ``url`` at 100 % zoom, with every request it made and
    every dialog it tried to open."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    dialogs: list[str] = []

    def refuse(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("request", lambda request: requests.append(request.url))
    page.on("dialog", refuse)
    response = page.goto(url)
    assert response is not None and response.status == 200
    page.wait_for_load_state("load")
    return page, requests, dialogs


def test_a_judge_reads_the_decided_case_on_the_services_page(
    browser: Browser,
    dispute: Dispute,
    decided_case: tuple[httpx.Client, str],
    tmp_path: Path,
    record_property: Any,
) -> None:
    client, case_id = decided_case
    world = dispute.world
    url = f"{client.base_url}/cases/{case_id}/page"
    bundle = client.get(f"/cases/{case_id}/bundle")
    assert bundle.status_code == 200
    # The judge's own check of what the service serves: the page must say the same.
    report = verify_bundle(bundle.content, world.trust, arbiter_key_id=world.arbiter_keys.key_id)
    assert report.outcome == "upheld"

    page, requests, dialogs = _open(browser, url)
    try:
        # Nothing but the page itself was fetched, nothing ran.
        assert requests == [url] and dialogs == []
        assert page.locator("script, img, iframe").count() == 0

        # The outcome, verified against the arbiter's (the judge's) TSA roots.
        assert page.title() == "Verdict exhibit: UPHELD: verified against the judge's TSA roots"
        assert page.locator("section.status.verified").count() == 1
        assert page.locator("#outcome").inner_text().startswith("UPHELD")
        status = page.locator("section.status").inner_text()
        assert "the suspect carries the owner's watermark" in status
        assert case_id in page.locator("h1 + p").inner_text()  # the claim's id is the case's

        # The parties, by the key ids that count.
        parties = page.locator("h2:text-is('Parties') + table tbody tr")
        assert parties.count() == 2
        owner, arbiter = parties.nth(0), parties.nth(1)
        assert owner.locator("td").nth(0).inner_text() == "owner (claimant)"
        assert owner.locator("td").nth(1).inner_text() == world.owner.key_id
        assert arbiter.locator("td").nth(0).inner_text() == "arbiter"
        assert arbiter.locator("td").nth(1).inner_text() == world.arbiter_keys.key_id
        assert "pinned by the judge" in arbiter.inner_text()

        # The timeline: the timestamped events as trusted times (the judge's
        # roots), in order, beside the arbiter's own clock.
        items = page.locator("ol.timeline li")
        whens = [
            parse_time(text, what="a time") for text in items.locator(".when").all_inner_texts()
        ]
        assert whens == sorted(whens) and len(whens) == items.count()
        trusted = page.locator("ol.timeline li.trusted")
        assert trusted.count() == len(report.times) >= 2  # commitment and release at least
        assert page.locator("ol.timeline li.self").count() == 0
        trusted_texts = trusted.all_inner_texts()
        for time in report.times:
            assert any(_mentions(text, time.time, time.document_id) for text in trusted_texts)
        assert all("trusted: the judge's TSA root" in text for text in trusted_texts)
        clock = page.locator("ol.timeline li.clock").all_inner_texts()
        assert any("the arbiter signed the verdict" in text for text in clock)
        # The case's steps at the service, from its audit log, in order.
        steps = [text for text in clock if "at the arbiter's service" in text]
        for step in ("claim filed", "challenged", "revealed", "queried", "decided: upheld"):
            assert sum(step in text for text in steps) == 1, (step, steps)

        # Every check, with the result the judge's own verification gives.
        rows = page.locator("table.checks tbody tr")
        assert [rows.nth(i).get_attribute("data-check") for i in range(rows.count())] == list(NAMES)
        shown = {
            rows.nth(i).get_attribute("data-check"): rows.nth(i).locator("td.result").inner_text()
            for i in range(rows.count())
        }
        assert shown == {check.name: RESULT_WORDS[check.result] for check in report.checks}
        assert shown["arbiter-pin"] == "passed" and "FAILED" not in shown.values()
        assert page.locator("tr.failed").count() == 0

        # The figures: matches against the threshold, and the plot's observed count.
        facts = page.locator("h2:text-is('Matches against chance') ~ dl.facts").first
        figures = facts.evaluate(_FACTS)
        assert figures["matches"] == str(CHALLENGE_SIZE)
        assert figures["trials"] == str(CHALLENGE_SIZE)
        assert report.figures is not None
        threshold = report.figures.threshold
        assert figures["threshold"] == f"{threshold} matches" and threshold < CHALLENGE_SIZE
        assert figures["decision"] == "the null hypothesis is rejected: the watermark is shown"
        observed = page.locator("#observed")
        assert observed.is_visible()
        assert f"observed: {CHALLENGE_SIZE} of {CHALLENGE_SIZE}" in (observed.text_content() or "")

        screenshot = tmp_path / "judge-page.png"
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.close()
    assert screenshot.stat().st_size > 10_000
    record_property("screenshot", str(screenshot))
    print(f"judge's page screenshot: {screenshot}")


def test_the_page_links_the_bundle_to_download(
    browser: Browser, dispute: Dispute, decided_case: tuple[httpx.Client, str]
) -> None:
    client, case_id = decided_case
    world = dispute.world
    url = f"{client.base_url}/cases/{case_id}/page"
    page, _, _ = _open(browser, url)
    try:
        links = page.locator("a[href]")
        hrefs = [links.nth(i).get_attribute("href") or "" for i in range(links.count())]
    finally:
        page.close()
    to_bundle = [href for href in hrefs if re.search(r"/bundle(?:$|[?#])", href)]
    assert to_bundle, f"no link to the bundle on the page (links: {hrefs})"
    downloaded = client.get(urljoin(url, to_bundle[0]))
    assert downloaded.status_code == 200
    report = verify_bundle(
        downloaded.content, world.trust, arbiter_key_id=world.arbiter_keys.key_id
    )
    assert report.outcome == "upheld" and report.case is not None
    assert report.case.claim_id == case_id


def _mentions(text: str, when: datetime, document_id: str) -> bool:
    """Whether a timeline entry's text names ``when`` and the document it dates."""
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return text.startswith(stamp) and document_id[:16] in text
