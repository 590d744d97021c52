"""Worked examples on data shipped with their dependencies (nothing is downloaded).

- :mod:`secmark.examples.digits`: scikit-learn's bundled 8x8 handwritten
  digits, a small CNN, and a trigger set embedded into it. Needs the
  ``torch`` extra and scikit-learn; importing this package does not.
- :mod:`secmark.examples.demo`: the whole dispute ``secmark demo`` runs.
- :mod:`secmark.examples.serving`: MLServer settings that serve a PyTorch
  model as a suspect to query (``secmark serve-example``), with the runtime
  :mod:`secmark.examples.mlserver_runtime`, the only module that imports
  MLServer (an optional dependency: ``pip install mlserver==1.7.1``).
"""

from __future__ import annotations

__all__: list[str] = []
