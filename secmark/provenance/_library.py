"""A clear error for what needs the ``provenance`` extra."""

from __future__ import annotations

import importlib.util

from secmark.errors import SecmarkError

__all__ = ["require_provenance_extra"]


def require_provenance_extra(module: str, feature: str) -> None:
    """Raises:
    SecmarkError: ``module`` (model_signing or in_toto_attestation) is not
        installed; the message says how to get it."""
    if importlib.util.find_spec(module) is None:
        raise SecmarkError(f"{feature} needs {module}: pip install 'secmark[provenance]'")
