"""The fuzz tests' marker: ``fuzz_long`` selects the long run (see __init__)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fuzz_long: the long fuzz run; runs only with SECMARK_FUZZ_INPUTS set "
        "(inputs per target), e.g. SECMARK_FUZZ_INPUTS=100000 pytest tests/fuzz -m fuzz_long",
    )
