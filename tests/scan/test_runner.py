"""run_scan: a stopped scan resumes without scanning a model twice; Ray gives
the in-process results."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secmark.errors import EncodingError, ProtocolError, SecmarkError
from secmark.examples.digits import DigitsCNN
from secmark.scan import HostedModel, ScanResults, run_scan
from tests.scan.conftest import Hosted, RecordingSuspect, noise_probe, oracle, weights_probe

PROBES = [noise_probe("owner-a", 1), noise_probe("owner-b", 2)]


@pytest.fixture
def results(tmp_path: Path) -> Iterator[ScanResults]:
    table = ScanResults.open(f"sqlite:///{tmp_path / 'scan.db'}")
    yield table
    table.close()


def interrupt(batch: np.ndarray) -> np.ndarray:
    raise KeyboardInterrupt


def test_a_stopped_scan_resumes_without_scanning_a_model_twice(results: ScanResults) -> None:
    first = [oracle(PROBES[0]), RecordingSuspect(interrupt), oracle()]
    with pytest.raises(KeyboardInterrupt):
        run_scan(
            [HostedModel(f"m{i}", suspect=s) for i, s in enumerate(first)],
            PROBES,
            results,
            scan_id="nightly",
            progress=False,
        )
    assert results.done_models("nightly") == {"m0"}
    assert not first[2].calls

    again = [oracle(PROBES[0]), oracle(), oracle(PROBES[1])]
    summary = run_scan(
        [HostedModel(f"m{i}", suspect=s) for i, s in enumerate(again)],
        PROBES,
        results,
        scan_id="nightly",
        progress=False,
    )
    assert not again[0].calls and again[1].calls and again[2].calls
    assert (summary.scanned, summary.skipped, len(summary.results)) == (2, 1, 6)
    assert [(r.model_id, r.deposit_id) for r in summary.hits] == [
        ("m0", "owner-a"),
        ("m2", "owner-b"),
    ]
    assert summary.errors == ()
    assert summary.plan.n_models == 3 and summary.plan.per_pair_alpha == summary.plan.alpha / 6

    with pytest.raises(ProtocolError, match="was started with"):
        run_scan(
            [HostedModel("m0", suspect=oracle())],
            PROBES,
            results,
            scan_id="nightly",
            progress=False,
        )


def test_a_scan_is_checked_before_it_starts(results: ScanResults) -> None:
    model = HostedModel("m", suspect=oracle())
    cases: list[tuple[dict[str, Any], str]] = [
        ({"engine": "spark"}, "engine"),
        ({"workers": 0}, "workers"),
        ({"scan_id": ""}, "scan id"),
    ]
    for options, message in cases:
        with pytest.raises(EncodingError, match=message):
            run_scan([model], PROBES, results, **{"scan_id": "s", **options})
    with pytest.raises(EncodingError, match="model id repeats"):
        run_scan([model, model], PROBES, results, scan_id="s")
    assert results.plan("s") is None


def test_the_ray_engine_without_ray_says_how_to_install_it(
    results: ScanResults, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SecmarkError, match=r"pip install 'secmark\[scan\]'"):
        run_scan([HostedModel("m", suspect=oracle())], PROBES, results, scan_id="s", engine="ray")
    assert results.plan("s") is None  # nothing started


def test_ray_on_two_local_cpus_gives_the_in_process_results(
    hosted: Hosted, results: ScanResults
) -> None:
    pytest.importorskip("ray")
    models = [
        HostedModel("marked", weights=hosted.marked, factory=DigitsCNN),
        HostedModel("clean", weights=hosted.clean, factory=DigitsCNN),
        HostedModel("weights only", weights=hosted.marked),
    ]
    probes = [
        hosted.deposit_a,
        hosted.deposit_b,
        weights_probe("owner-w", seed=21, weights=hosted.marked),
    ]
    local = run_scan(models, probes, results, scan_id="local", progress=False)
    on_ray = run_scan(
        models, probes, results, scan_id="ray", engine="ray", workers=2, progress=False
    )
    assert on_ray.results == local.results
    assert {(r.model_id, r.deposit_id) for r in local.hits} == {
        ("marked", "owner-a"),
        ("marked", "owner-w"),
        ("weights only", "owner-w"),
    }
    assert {(r.model_id, r.deposit_id) for r in local.errors} == {
        ("weights only", "owner-a"),
        ("weights only", "owner-b"),
    }
