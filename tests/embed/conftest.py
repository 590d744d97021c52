"""Fixtures of the embedding tests. torch is imported inside them, so the
test that checks the core package imports without torch runs without it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from secmark.examples.digits import DigitsData


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Train on one thread: two intra-op threads beside any other process on
    a small machine make this tiny CNN tens of times slower."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits_data() -> DigitsData:
    pytest.importorskip("sklearn")
    from secmark.examples.digits import load_data

    return load_data()
