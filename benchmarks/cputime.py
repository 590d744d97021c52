"""Ratios of CPU times, measured in interleaved rounds, for the benchmarks.

On a small shared machine wall-clock time mostly measures the other jobs.
Each side is timed with ``time.process_time`` (CPU seconds of this process,
both threads and kernel time included); in every round each side runs once,
in an order that alternates from round to round so that a slow spell hits
both, and the reported ratio is the median of the per-round ratios.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Ratio", "compare", "cpu_seconds", "load_average"]


def load_average() -> str:
    """The machine's 1-minute load average and core count, to print beside
    figures: contention inflates Python code's CPU time more than
    libsodium's, so ratios measured on a busy machine come out higher."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def cpu_seconds(run: Callable[[], object]) -> float:
    """CPU seconds of one call of ``run``."""
    started = time.process_time()
    run()
    return time.process_time() - started


@dataclass(frozen=True)
class Ratio:
    """Per-round CPU seconds of a subject and of each of its floors."""

    items: int
    subject: list[float]
    floors: dict[str, list[float]]

    def per_item_us(self, name: str | None = None) -> float:
        samples = self.subject if name is None else self.floors[name]
        return statistics.median(samples) / self.items * 1e6

    def ratios(self, name: str) -> list[float]:
        return [s / f for s, f in zip(self.subject, self.floors[name])]

    def median(self, name: str) -> float:
        return statistics.median(self.ratios(name))

    def describe(self, name: str, target: float | None = None) -> str:
        rounds = sorted(self.ratios(name))
        verdict = ""
        if target is not None:
            met = "met" if self.median(name) <= target else "NOT MET"
            verdict = f"  target <= {target}: {met}"
        return (
            f"{self.median(name):.3f}x {name} ({self.per_item_us(name):.1f} us; "
            f"rounds {rounds[0]:.3f}..{rounds[-1]:.3f}){verdict}"
        )


def compare(
    subject: Callable[[], object],
    floors: dict[str, Callable[[], object]],
    *,
    items: int,
    rounds: int,
) -> Ratio:
    """Time ``subject`` and each floor once per round, interleaved."""
    subject()  # warm-up: first-call costs (imports, caches) are not measured
    for floor in floors.values():
        floor()
    subject_seconds: list[float] = []
    floor_seconds: dict[str, list[float]] = {name: [] for name in floors}
    for round_ in range(rounds):
        runs: list[tuple[str | None, Callable[[], object]]] = [
            (None, subject),
            *floors.items(),
        ]
        if round_ % 2:
            runs.reverse()
        for name, run in runs:
            seconds = cpu_seconds(run)
            if name is None:
                subject_seconds.append(seconds)
            else:
                floor_seconds[name].append(seconds)
    return Ratio(items, subject_seconds, floor_seconds)
