"""ScanResults: a model's rows go in whole or not at all, once per scan."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from secmark.errors import EncodingError, ProtocolError
from secmark.scan import HostedModel, PairResult, ProbeSet, ScanPlan, ScanResults, scan_model
from tests.scan.conftest import noise_probe, oracle

PROBES = ProbeSet.build(
    [noise_probe("owner-a", 1), noise_probe("owner-b", 2)], n_models=3, alpha=2.0**-40
)


def model_results(model_id: str) -> list[PairResult]:
    suspect = oracle(PROBES.probes[0])
    return scan_model(HostedModel(model_id, suspect=suspect), PROBES)


@pytest.fixture
def results(tmp_path: Path) -> Iterator[ScanResults]:
    table = ScanResults.open(f"sqlite:///{tmp_path / 'scan.db'}")
    yield table
    table.close()


def test_results_read_back_as_recorded(results: ScanResults, tmp_path: Path) -> None:
    assert results.start("s1", PROBES.plan)
    assert not results.start("s1", PROBES.plan)  # resumed
    first, failed = model_results("m1"), PROBES.error_results("m0", "cannot open the model")
    results.record_model("s1", first)
    results.record_model("s1", failed)
    assert results.done_models("s1") == {"m0", "m1"}
    assert results.results("s1") == failed + first
    assert [r.hit for r in first] == [True, False]
    assert results.plan("s1") == ScanPlan(Fraction(1, 2**40), 3, 2)
    # Another process reads the same table.
    other = ScanResults.open(f"sqlite:///{tmp_path / 'scan.db'}")
    try:
        assert other.results("s1") == failed + first
        assert other.done_models("s2") == frozenset() and other.plan("s2") is None
    finally:
        other.close()


def test_a_model_is_recorded_once(results: ScanResults) -> None:
    results.start("s1", PROBES.plan)
    results.record_model("s1", model_results("m1"))
    with pytest.raises(ProtocolError, match="recorded in scan 's1' already"):
        results.record_model("s1", model_results("m1"))
    results.start("s2", PROBES.plan)
    results.record_model("s2", model_results("m1"))  # another scan


def test_a_model_is_recorded_whole_or_not_at_all(results: ScanResults) -> None:
    results.start("s1", PROBES.plan)
    half = model_results("m1")[:1]
    with pytest.raises(EncodingError, match="2 deposits"):
        results.record_model("s1", half)
    mixed = [model_results("m1")[0], model_results("m2")[1]]
    with pytest.raises(EncodingError, match="one model's results"):
        results.record_model("s1", mixed)
    assert results.done_models("s1") == frozenset()


def test_a_scan_resumes_only_with_its_plan(results: ScanResults) -> None:
    results.start("s1", PROBES.plan)
    other = ScanPlan(Fraction(1, 2**40), 4, 2)
    with pytest.raises(ProtocolError, match="was started with"):
        results.start("s1", other)
    moved = [replace(r, plan=other) for r in model_results("m1")]
    with pytest.raises(ProtocolError, match="not started with the results' plan"):
        results.record_model("s1", moved)
    with pytest.raises(ProtocolError, match="not started"):
        results.record_model("s9", model_results("m1"))


def test_only_files_and_servers_hold_results() -> None:
    with pytest.raises(EncodingError, match="must be a file"):
        ScanResults.open("sqlite://")
    with pytest.raises(EncodingError, match="not a database URL"):
        ScanResults.open("no url")
