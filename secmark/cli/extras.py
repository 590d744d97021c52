"""A clear error for commands that need the ``torch`` or ``lm-train`` extra."""

from __future__ import annotations

import importlib.util

from secmark.errors import SecmarkError

__all__ = ["require_lm_train", "require_torch"]


def require_torch(feature: str) -> None:
    """Raises:
    SecmarkError: PyTorch is not installed; the message says how to get it."""
    if importlib.util.find_spec("torch") is None:
        raise SecmarkError(
            f"{feature} needs PyTorch: pip install 'secmark[torch]' torch==2.13.0 "
            "(the pin selects the CPU build)"
        )


def require_lm_train(feature: str) -> None:
    """Raises:
    SecmarkError: torch, transformers, tokenizers or peft is not installed;
        the message says how to get them."""
    require_torch(feature)
    missing = [
        name
        for name in ("transformers", "tokenizers", "peft")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise SecmarkError(f"{feature} needs {', '.join(missing)}: pip install 'secmark[lm-train]'")
