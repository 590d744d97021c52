"""Marked answers at a serving API: evidence that survives model extraction.

A serving policy (:mod:`secmark.messages.serving_policy`) fixes, before an
API serves, which answers are marked: the log operator's VRF output on the
canonical input selects a fraction r of inputs and, for each selected input,
a wrong answer drawn uniformly (:mod:`secmark.serving.marking`). A model
distilled from the API's answers learns the marked answers; a model made
without them matches each with a probability bounded by the policy's p0,
whatever it is. ``specs/serving.md`` is the normative description.

The query log's store (:mod:`secmark.serving.log`, SQLAlchemy) and the
gateway (:mod:`secmark.serving.gateway`, Starlette) need the ``serving``
extra and are imported from their modules.
"""

from secmark.serving.entry import Leaf, LogEntry, client_account, leaf_of, parse_leaf
from secmark.serving.extract import (
    ClientExtract,
    VerifiedExtract,
    verify_consistency,
    verify_extract,
)
from secmark.serving.marking import (
    Decision,
    Marker,
    Marking,
    canonical_input,
    decide,
    marked_answer,
    marked_scores,
    marking_alpha,
    verify_marking,
)
from secmark.serving.wrapper import BatchMarker, MarkedClassifier

__all__ = [
    "BatchMarker",
    "ClientExtract",
    "Decision",
    "Leaf",
    "LogEntry",
    "MarkedClassifier",
    "Marker",
    "Marking",
    "VerifiedExtract",
    "canonical_input",
    "client_account",
    "decide",
    "leaf_of",
    "marked_answer",
    "marked_scores",
    "marking_alpha",
    "parse_leaf",
    "verify_consistency",
    "verify_extract",
    "verify_marking",
]
