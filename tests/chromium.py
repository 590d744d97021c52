"""Headless Chromium for the page tests: Debian's ``chromium`` driven by
Playwright's Python package (its own browser download cannot work here)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
"""Without the background-networking flags Chromium keeps trying hosts this
machine's closed network refuses."""


def require_chromium() -> str:
    """The browser's path; skips the calling test module when Playwright or
    Debian's chromium is missing."""
    pytest.importorskip(
        "playwright.sync_api", reason="Playwright's Python package is not installed"
    )
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        pytest.skip(
            "no browser installed: Debian's chromium package (/usr/bin/chromium) is missing; "
            "Playwright's own browser download is not used",
            allow_module_level=True,
        )
    return chromium


@contextmanager
def launched_browser(chromium: str) -> Iterator[Browser]:
    """Headless Chromium at ``chromium``, closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
