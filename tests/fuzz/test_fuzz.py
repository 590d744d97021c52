"""A short, bounded fuzz run of every target inside the default test run.

Hypothesis draws the mutations (``st.randoms()`` drives the operators of
``mutate.py``); the oracles are those of ``runner.py``. About 10 inputs per
target keep the whole module under 10 s; the long run is
``python3 -m tests.fuzz`` or ``SECMARK_FUZZ_INPUTS=N pytest -m fuzz_long``.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.runner import Stats, baseline_of, generate, run_one, run_target
from tests.fuzz.targets import TARGETS

_SHORT = {
    "bundle": 4,
    "timestamp-evidence": 6,
    "trigger-set": 8,
    "extraction-bundle": 4,
    "log-extract": 8,
}
_DEFAULT_EXAMPLES = 12


def _assert_clean(stats: Stats) -> None:
    details = "\n".join(f"{f.kind}: {f.detail}" for f in stats.findings if f.kind != "wrong-type")
    assert stats.untyped == 0, details
    assert stats.forged == 0, details
    assert stats.round_trip == 0, details
    assert stats.slow == 0, details


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_short_fuzz_run_finds_nothing(name: str) -> None:
    target = TARGETS[name]
    seeds, baseline = baseline_of(target)
    stats = Stats(name)

    @settings(
        max_examples=_SHORT.get(name, _DEFAULT_EXAMPLES),
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(rng=st.randoms(use_true_random=False))
    def one(rng: random.Random) -> None:
        data, origin, kind = generate(target, rng, seeds)
        run_one(target, data, origin, kind, baseline, stats)

    one()
    _assert_clean(stats)


@pytest.mark.fuzz_long
@pytest.mark.skipif(
    not os.environ.get("SECMARK_FUZZ_INPUTS"), reason="set SECMARK_FUZZ_INPUTS for the long run"
)
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_long_fuzz_run_finds_nothing(name: str) -> None:
    stats = run_target(TARGETS[name], int(os.environ["SECMARK_FUZZ_INPUTS"]))
    print(stats.row())
    _assert_clean(stats)
