"""A clear error for commands that need the ``torch`` extra."""

from __future__ import annotations

import importlib.util

from secmark.errors import SecmarkError

__all__ = ["require_torch"]


def require_torch(feature: str) -> None:
    """Raises:
    SecmarkError: PyTorch is not installed; the message says how to get it."""
    if importlib.util.find_spec("torch") is None:
        raise SecmarkError(
            f"{feature} needs PyTorch: pip install 'secmark[torch]' torch==2.13.0 "
            "(the pin selects the CPU build)"
        )
