"""The protocol layer: querying suspects, the dispute, bundles."""

from __future__ import annotations

from secmark.protocol.querying import (
    BlackBoxResult,
    QueryRecord,
    answer_matches,
    input_digest,
    query_suspect,
    score_answers,
)

__all__ = [
    "BlackBoxResult",
    "QueryRecord",
    "answer_matches",
    "input_digest",
    "query_suspect",
    "score_answers",
]
