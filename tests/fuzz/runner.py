"""Runs a target's mutations and applies the oracles; counts outcomes."""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from secmark.errors import SecmarkError
from tests.fuzz.mutate import mutate_bytes
from tests.fuzz.targets import AcceptedForgery, RoundTripError, Target

__all__ = ["SLOW_SECONDS", "Finding", "Stats", "generate", "run_one", "run_target"]

SLOW_SECONDS = 1.0
"""An input that takes longer is reported: a stall is a denial of service."""


@dataclass
class Finding:
    kind: str  # "untyped", "forged", "round-trip", "slow", "wrong-type"
    input: bytes
    detail: str


@dataclass
class Stats:
    target: str
    inputs: int = 0
    rejected: int = 0
    """Refused with the target's typed error."""
    accepted_same: int = 0
    """Accepted as the seed's own content (a mutation that changed nothing signed)."""
    accepted_resigned: int = 0
    """A re-signed mutation accepted: the key holder signed it, it is theirs."""
    accepted_unsigned: int = 0
    """An accepted mutation of a target without signature."""
    untyped: int = 0
    """An exception other than SecmarkError (must be 0)."""
    wrong_type: int = 0
    """A SecmarkError, but not the target's own subclass (reported, not fatal)."""
    forged: int = 0
    """A byte- or JSON-level mutation of signed content accepted as another document (must be 0)."""
    round_trip: int = 0
    """Accepted, but the bytes read are not the encoding of what was accepted (must be 0)."""
    slow: int = 0
    slowest: float = 0.0
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return self.untyped + self.forged + self.round_trip + self.slow

    def row(self) -> str:
        return (
            f"{self.target:<20} {self.inputs:>8} {self.rejected:>8} {self.accepted_same:>6} "
            f"{self.accepted_resigned + self.accepted_unsigned:>7} {self.wrong_type:>6} "
            f"{self.untyped:>7} {self.forged:>6} {self.round_trip:>6} {self.slow:>5} "
            f"{self.slowest * 1000:>8.1f} {self.seconds:>7.1f}"
        )

    @staticmethod
    def header() -> str:
        return (
            f"{'target':<20} {'inputs':>8} {'typed':>8} {'same':>6} {'other':>7} {'subcls':>6} "
            f"{'untyped':>7} {'forged':>6} {'rtrip':>6} {'slow':>5} {'max ms':>8} {'secs':>7}"
        )


def generate(target: Target, rng: random.Random, seeds: list[bytes]) -> tuple[bytes, bytes, str]:
    """(input, its seed, kind): kind is "bytes", "edit" (unsigned JSON) or "resigned"."""
    seed = rng.choice(seeds)
    roll = rng.random()
    if target.resign is not None and roll < 0.35:
        mutated = target.resign(seed, rng)
        if mutated is not None:
            return mutated, seed, "resigned"
    if target.edit is not None and roll < 0.55:
        mutated = target.edit(seed, rng)
        if mutated is not None:
            return mutated, seed, "edit"
    return mutate_bytes(seed, rng), seed, "bytes"


def run_one(
    target: Target, data: bytes, seed: bytes, kind: str, baseline: dict[bytes, Any], stats: Stats
) -> None:
    """Feed one input and classify the outcome into ``stats``."""
    stats.inputs += 1
    started = time.perf_counter()
    try:
        accepted = target.check(data)
    except target.expected:
        stats.rejected += 1
    except AcceptedForgery as error:
        stats.forged += 1
        stats.findings.append(Finding("forged", data, f"{kind} mutation: {error}"))
    except RoundTripError as error:
        stats.round_trip += 1
        stats.findings.append(Finding("round-trip", data, str(error)))
    except SecmarkError as error:
        stats.wrong_type += 1
        if len([f for f in stats.findings if f.kind == "wrong-type"]) < 5:
            stats.findings.append(Finding("wrong-type", data, f"{type(error).__name__}: {error}"))
    except Exception as error:  # noqa: BLE001 - the oracle: anything untyped is a finding
        stats.untyped += 1
        stats.findings.append(
            Finding(
                "untyped",
                data,
                f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=-4)}",
            )
        )
    else:
        if (
            data == seed
            or accepted == baseline[seed]
            or (kind == "raw" and any(accepted == value for value in baseline.values()))
        ):
            stats.accepted_same += 1
        elif kind == "resigned":
            stats.accepted_resigned += 1
        elif not target.signed:
            stats.accepted_unsigned += 1
        else:
            stats.forged += 1
            stats.findings.append(Finding("forged", data, f"{kind} mutation accepted"))
    elapsed = time.perf_counter() - started
    stats.slowest = max(stats.slowest, elapsed)
    if elapsed > SLOW_SECONDS:
        stats.slow += 1
        stats.findings.append(Finding("slow", data, f"{elapsed:.2f} s"))


def baseline_of(target: Target) -> tuple[list[bytes], dict[bytes, Any]]:
    seeds = target.seeds()
    return seeds, {seed: target.check(seed) for seed in seeds}


def inputs(target: Target, count: int, seed: int) -> Iterator[tuple[bytes, bytes, str]]:
    rng = random.Random(f"{target.name}/{seed}")
    seeds = target.seeds()
    for _ in range(count):
        yield generate(target, rng, seeds)


def run_target(
    target: Target, count: int, *, seed: int = 0, deadline: float | None = None
) -> Stats:
    """Run ``count`` mutated inputs (fewer if ``deadline``, a perf_counter
    time, passes first)."""
    stats = Stats(target.name)
    _, baseline = baseline_of(target)
    started = time.perf_counter()
    for data, origin, kind in inputs(target, count, seed):
        run_one(target, data, origin, kind, baseline, stats)
        if deadline is not None and time.perf_counter() > deadline:
            break
    stats.seconds = time.perf_counter() - started
    return stats
