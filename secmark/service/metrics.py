"""Prometheus text exposition (format 0.0.4) of the service's figures.

Cases by stage and jobs by state are read when scraped (the arbiter's
cases are the truth, not a counter kept beside them); requests and errors
by status are counted since the service started.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from typing import Final

__all__ = ["CONTENT_TYPE", "RequestCounter", "render_metrics"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


class RequestCounter:
    """Requests answered, by status (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[int] = Counter()

    def add(self, status: int) -> None:
        with self._lock:
            self._counts[status] += 1

    def snapshot(self) -> dict[int, int]:
        with self._lock:
            return dict(self._counts)


def _family(name: str, kind: str, text: str, label: str, values: Mapping[str, int]) -> list[str]:
    lines = [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
    lines += [f'{name}{{{label}="{key}"}} {value}' for key, value in sorted(values.items())]
    return lines


def render_metrics(
    cases: Mapping[str, int], jobs: Mapping[str, int], requests: Mapping[int, int]
) -> str:
    """The exposition of cases by stage, jobs by state, requests and errors by status."""
    lines = _family("secmark_cases", "gauge", "The arbiter's cases, by stage.", "stage", cases)
    lines += _family("secmark_query_jobs", "gauge", "Query jobs, by state.", "state", jobs)
    by_status = {str(status): count for status, count in requests.items()}
    lines += _family(
        "secmark_http_requests_total",
        "counter",
        "Requests answered, by status.",
        "status",
        by_status,
    )
    errors = {status: count for status, count in by_status.items() if int(status) >= 400}
    lines += _family(
        "secmark_http_errors_total",
        "counter",
        "Requests answered with an error (4xx or 5xx), by status.",
        "status",
        errors,
    )
    return "\n".join(lines) + "\n"
