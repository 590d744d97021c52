"""The verdict exhibit as HTML text: self-contained (nothing to fetch, no
script), every check present, document text escaped, and a refused bundle
never shown as a pass."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from secmark.protocol.bundle import examine_bundle
from secmark.report import render_exhibit
from secmark.timestamp import TrustStore
from tests.protocol.test_bundle_checks import NAMES
from tests.report.conftest import HOSTILE_LABEL, HOSTILE_NAME, Exhibits

_FETCHING = {"src", "href", "srcset", "action", "data", "poster", "background", "xlink:href"}


class _Tags(HTMLParser):
    """The tag names and attribute names of a page, as a browser parses it."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.add(tag)
        self.attributes.update(name for name, _ in attrs)


@pytest.fixture(scope="module")
def pages(exhibits: Exhibits) -> dict[str, str]:
    trust = TrustStore.from_pem_files([exhibits.roots])
    return {
        "self-asserted": render_exhibit(examine_bundle(exhibits.bundle.read_bytes())),
        "verified": render_exhibit(
            examine_bundle(
                exhibits.bundle.read_bytes(), trust, arbiter_key_id=exhibits.arbiter_key_id
            )
        ),
        "failed": render_exhibit(examine_bundle(exhibits.tampered.read_bytes(), trust)),
    }


@pytest.mark.parametrize("name", ["self-asserted", "verified", "failed"])
def test_the_page_loads_nothing_and_runs_nothing(pages: dict[str, str], name: str) -> None:
    page = pages[name]
    tags = _Tags()
    tags.feed(page)
    assert "script" not in tags.names and "iframe" not in tags.names
    assert tags.names >= {"html", "head", "title", "style", "body", "table"}
    assert not {a for a in tags.attributes if a.startswith("on") or a in _FETCHING}
    assert "url(" not in page and "@import" not in page
    # The only address in the page is the SVG namespace, which is never fetched.
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in page
    # Every check is a row, in order.
    assert re.findall(r'data-check="([a-z-]+)"', page) == list(NAMES)


def test_document_text_is_escaped(pages: dict[str, str]) -> None:
    for page in pages.values():
        assert HOSTILE_NAME not in page and HOSTILE_LABEL not in page
        assert "&lt;script&gt;alert(&#x27;arbiter&#x27;)&lt;/script&gt; &amp; Sons" in page
    assert "&lt;img src=&quot;x&quot; onerror=&quot;alert(2)&quot;&gt;" in pages["verified"]


def test_the_status_says_whose_roots_and_never_passes_a_refused_bundle(
    pages: dict[str, str],
) -> None:
    assert "UPHELD: verified against the judge" in pages["verified"]
    assert "NOT verified against the judge" in pages["self-asserted"]
    assert 'class="status self-asserted"' in pages["self-asserted"]
    failed = pages["failed"]
    assert 'class="status failed"' in failed and "REFUSED: this bundle proves nothing" in failed
    assert "UPHELD" not in failed and "upheld" not in failed and "<svg" not in failed
    assert 'class="failed" data-check="verdict-figures"' in failed


def test_the_plot_marks_the_observed_count_alpha_and_the_threshold(
    pages: dict[str, str],
) -> None:
    page = pages["verified"]
    (svg,) = re.findall(r"<svg.*?</svg>", page, re.DOTALL)
    assert 'id="observed"' in svg and "observed: 48 of 48" in svg
    assert 'class="alpha"' in svg and "α (alpha) = 2" in svg and 'class="threshold"' in svg
    assert len(re.findall(r'<rect class="pmf"', svg)) == 49
    assert 'class="rejection-region"' in svg and 'class="tail"' in svg
    assert all(float(size) >= 11 for size in re.findall(r'font-size="([0-9.]+)"', svg))
    assert "What alpha means" in page
