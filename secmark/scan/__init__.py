"""Platform scan ("content ID for models"): every hosted model against every deposit.

An MLaaS platform holds owners' deposited trigger subsets and checks each
model it hosts against each of them; a hit opens an ordinary dispute, never
a verdict by itself. This package is the scan's engine, fed with deposits
already opened (the sealed deposit documents are built elsewhere):

- :class:`ScanProbe` (:mod:`secmark.scan.probes`): one opened deposit, its
  inputs and labels checked against its commitment's family and label space;
- :func:`scan_model` (:mod:`secmark.scan.engine`): one :class:`HostedModel`
  against a :class:`ProbeSet`, black-box probes batched per input shape,
  white-box probes by projection of the weights, counted exactly as the
  arbiter counts, tested at the Bonferroni level of the :class:`ScanPlan`;
- :class:`ScanResults` (:mod:`secmark.scan.results`): the results table,
  one transaction per model, so a stopped scan resumes where it stopped;
- :func:`run_scan` (:mod:`secmark.scan.runner`): the whole scan, in process
  or on Ray (``pip install 'secmark[scan]'``).

Needs SQLAlchemy for the results table; torch only for models given as an
architecture and weights, Ray only for the Ray engine.
"""

from __future__ import annotations

from secmark.scan.engine import (
    DEFAULT_SCAN_BATCH,
    HostedModel,
    PairResult,
    ProbeSet,
    ScanPlan,
    scan_model,
)
from secmark.scan.probes import MAX_ID_LENGTH, ScanProbe
from secmark.scan.results import ScanResults
from secmark.scan.runner import ENGINES, ScanSummary, run_scan

__all__ = [
    "DEFAULT_SCAN_BATCH",
    "ENGINES",
    "MAX_ID_LENGTH",
    "HostedModel",
    "PairResult",
    "ProbeSet",
    "ScanPlan",
    "ScanProbe",
    "ScanResults",
    "ScanSummary",
    "run_scan",
    "scan_model",
]
