"""Worked examples on data shipped with their dependencies (nothing is downloaded).

- :mod:`secmark.examples.digits`: scikit-learn's bundled 8x8 handwritten
  digits, a small CNN, and a trigger set embedded into it. Needs the
  ``torch`` extra and scikit-learn; importing this package does not.
"""

from __future__ import annotations

__all__: list[str] = []
