"""Run a platform scan: every hosted model against every deposit, resumably.

:func:`run_scan` states the scan's :class:`~secmark.scan.engine.ScanPlan`
(Bonferroni over all models and deposits), records it under the scan id, and
scans each model not recorded yet (:meth:`ScanResults.done_models`), storing
each model's results as one transaction as soon as it is done: a scan
stopped at any point is resumed by running it again with the same models,
probes and alpha, and no model is scanned twice.

Two engines run the models:

- ``"local"``: one after the other, in this process;
- ``"ray"``: one Ray task per model, on a cluster (``ray_address``) or on a
  local instance of ``workers`` CPUs started for the scan and stopped after
  it. The probes are put in Ray's object store once and every task gets
  them by reference; results are stored as each task finishes. Ray is
  imported only for this engine (``pip install 'secmark[scan]'``).

A progress bar is shown on standard error when it is a terminal.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from tqdm import tqdm

from secmark.errors import EncodingError, SecmarkError
from secmark.scan.engine import (
    DEFAULT_SCAN_BATCH,
    HostedModel,
    PairResult,
    ProbeSet,
    ScanPlan,
    scan_model,
)
from secmark.scan.probes import ScanProbe, checked_id
from secmark.scan.results import ScanResults
from secmark.stats import DEFAULT_ALPHA

__all__ = ["ENGINES", "ScanSummary", "run_scan"]

ScanEngine = Literal["local", "ray"]
ENGINES: tuple[ScanEngine, ...] = ("local", "ray")


@dataclass(frozen=True)
class ScanSummary:
    """What a scan holds once :func:`run_scan` returns.

    ``scanned`` counts the models scanned by this call, ``skipped`` those
    recorded before it (a resumed scan); ``results`` are all the scan's
    stored results, by model id then deposit id, each referring to
    ``plan``.
    """

    scan_id: str
    plan: ScanPlan
    scanned: int
    skipped: int
    results: tuple[PairResult, ...]

    @property
    def hits(self) -> tuple[PairResult, ...]:
        """The pairs whose matches reached the threshold: each a reason to open a dispute."""
        return tuple(result for result in self.results if result.hit)

    @property
    def errors(self) -> tuple[PairResult, ...]:
        """The pairs that could not be counted: nothing was decided about them."""
        return tuple(result for result in self.results if result.error is not None)


def _checked_models(models: Sequence[HostedModel]) -> list[HostedModel]:
    listed = list(models)
    if not listed or not all(isinstance(model, HostedModel) for model in listed):
        raise EncodingError("a scan needs at least one model, each a HostedModel")
    ids = [model.model_id for model in listed]
    if len(set(ids)) != len(ids):
        raise EncodingError("each model is scanned once: a model id repeats")
    return listed


def run_scan(
    models: Sequence[HostedModel],
    probes: Sequence[ScanProbe],
    results: ScanResults,
    *,
    scan_id: str,
    alpha: Fraction | float = DEFAULT_ALPHA,
    engine: ScanEngine = "local",
    ray_address: str | None = None,
    workers: int | None = None,
    batch_size: int = DEFAULT_SCAN_BATCH,
    progress: bool = True,
) -> ScanSummary:
    """Scan every model against every probe and store the results under ``scan_id``.

    ``alpha`` is the family-wise level: each pair is tested at
    ``alpha / (len(models) * len(probes))``. A scan already started under
    ``scan_id`` is resumed: its recorded models are skipped. ``workers``:
    for Ray, the most tasks run at once (and the CPUs of a local instance;
    None: every CPU of the machine, or as many tasks as models on a
    cluster); ignored in process. ``batch_size``: rows per call to a model.

    A model that fails is recorded with errors (:func:`scan_model`); so is
    one whose Ray worker died (Ray's own retries spent) or could not receive
    it (a factory the worker cannot import). Any other exception stops the
    scan, with every model finished so far stored.

    Raises:
        EncodingError: no models or probes, a model or deposit id twice, an
            unknown engine, ``alpha``, ``workers`` or ``batch_size`` out of
            range.
        ProtocolError: ``scan_id`` was started with another plan.
        SecmarkError: the results database failed, or Ray is not installed
            (``pip install 'secmark[scan]'``) or could not start.
    """
    checked_id(scan_id, "a scan id")
    listed = _checked_models(models)
    if engine not in ENGINES:
        raise EncodingError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r:.40}")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise EncodingError(f"workers must be a positive integer, not {workers!r:.40}")
    probe_set = ProbeSet.build(probes, n_models=len(listed), alpha=alpha)
    ray = _import_ray() if engine == "ray" else None
    results.start(scan_id, probe_set.plan)
    done = results.done_models(scan_id)
    todo = [model for model in listed if model.model_id not in done]
    with tqdm(
        total=len(listed),
        initial=len(listed) - len(todo),
        unit="model",
        desc=f"scan {scan_id}",
        file=sys.stderr,
        disable=not (progress and sys.stderr.isatty()),
    ) as bar:
        if engine == "local":
            for model in todo:
                results.record_model(scan_id, scan_model(model, probe_set, batch_size=batch_size))
                bar.update(1)
        elif todo:
            _run_on_ray(
                ray,
                todo,
                probe_set,
                results,
                scan_id=scan_id,
                address=ray_address,
                workers=workers,
                batch_size=batch_size,
                bar=bar,
            )
    return ScanSummary(
        scan_id=scan_id,
        plan=probe_set.plan,
        scanned=len(todo),
        skipped=len(listed) - len(todo),
        results=tuple(results.results(scan_id)),
    )


def _import_ray() -> Any:
    """The ``ray`` module, or a SecmarkError saying how to install it."""
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise SecmarkError("the Ray engine needs Ray: pip install 'secmark[scan]'") from None


def _scan_task(model: HostedModel, probes: ProbeSet, batch_size: int) -> list[PairResult]:
    """One Ray task: scan one model, with torch on one thread (a task has one CPU)."""
    if model.factory is not None:
        try:
            import torch
        except ImportError:
            pass  # scan_model reports the missing torch as the model's error
        else:
            torch.set_num_threads(1)
    return scan_model(model, probes, batch_size=batch_size)


def _run_on_ray(
    ray: Any,
    todo: list[HostedModel],
    probes: ProbeSet,
    results: ScanResults,
    *,
    scan_id: str,
    address: str | None,
    workers: int | None,
    batch_size: int,
    bar: tqdm[Any],
) -> None:
    """Scan ``todo`` with one Ray task per model, storing each as it finishes."""
    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.WARNING,
        }
        if address is None:
            options["num_cpus"] = workers
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            ray.shutdown()  # whatever the failed start left running
            raise SecmarkError(f"cannot start Ray for the scan: {error}") from None
    pending: dict[Any, HostedModel] = {}
    try:
        task = ray.remote(num_cpus=1)(_scan_task)
        shared = ray.put(probes)
        queue = list(reversed(todo))
        limit = workers if workers is not None else len(todo)
        while queue or pending:
            while queue and len(pending) < limit:
                model = queue.pop()
                pending[task.remote(model, shared, batch_size)] = model
            (finished,), _ = ray.wait(list(pending), num_returns=1)
            model = pending.pop(finished)
            try:
                pairs = ray.get(finished)
            except ray.exceptions.RayError as error:
                cause = getattr(error, "cause", None)
                if isinstance(error, ray.exceptions.RayTaskError) and not isinstance(
                    cause, ray.exceptions.RayError
                ):
                    raise  # an exception of the scan itself, as it would be in process
                # The worker died, or could not receive the model (a factory
                # it cannot import): the model's failure, not the scan's.
                text = str(cause or error).strip().splitlines() or [type(error).__name__]
                pairs = probes.error_results(
                    model.model_id, f"the scan task failed: {type(error).__name__}: {text[0]}"
                )
            results.record_model(scan_id, pairs)
            bar.update(1)
    finally:
        if started:
            ray.shutdown()
        else:
            for ref in pending:
                ray.cancel(ref)
