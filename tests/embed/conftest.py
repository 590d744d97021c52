"""Fixtures of the embedding tests. torch is imported inside them, so the
test that checks the core package imports without torch runs without it.
Training runs on one thread (``tests/conftest.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from secmark.examples.digits import DigitsData


@pytest.fixture(scope="session")
def digits_data() -> DigitsData:
    pytest.importorskip("sklearn")
    from secmark.examples.digits import load_data

    return load_data()
