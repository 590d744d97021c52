"""Platform scan: what a scan costs, what it would cost a large platform, and what it finds.

One invocation measures four things, in this order, and prints a table for each.

1. **Cost per (model x deposit) pair**, in process and on local Ray.
   Hosted models are digits CNNs (``secmark.examples.digits.DigitsCNN``,
   38,282 weights) and a wide CNN defined here with 3.25 times the channels
   and hidden units (397,706 weights, 10.4 times as many), each saved as
   safetensors and opened from its file by the scan as a platform would
   (weights are randomly initialised: inference costs the same whatever they
   hold). Deposits are random noise triggers of the digits family with
   uniform class labels (their content costs nothing). Every model is checked against every deposit with
   :func:`secmark.scan.run_scan`:

   - ``local``: in this process, one model after the other;
   - ``ray, 1 worker`` and ``ray, 2 workers``: a local Ray instance of that
     many CPUs, started before the timed scan, and warmed up by a scan of
     its own (worker processes started, torch imported), so the figures are
     the steady cost of a scan, not of starting Ray; ``ray.init`` is timed
     beside them.

   Per pair: wall-clock time, and CPU time of this process plus every
   process it started (Ray's workers, raylet and GCS included), read from
   ``/proc`` (Linux only); the speed-up from one to two workers is the ratio
   of wall times. torch runs on one thread per process (``--threads``).
   What two workers can gain depends on what the machine's cores really
   give: the benchmark first measures how much work two busy processes get
   done at once, in cores' worth of one (2.0 on two free cores), the
   ceiling of that speed-up. The probes Ray broadcasts are measured as the
   bytes of the pickled ProbeSet (protocol 5, what Ray's serialiser writes
   into its object store).

2. **A paper-scale estimate**: 10^4 models x 10^3 deposits of 64 triggers on
   64 nodes of 16 cores. Its unit costs are measured, not extrapolated from
   small scans: a fresh process (one torch thread, as a Ray task has) builds
   the probe set of 10^3 deposits at the Bonferroni level of 10^7 pairs and
   scans models of both sizes against it, timed per model; the driver's
   share (unpickling a model's results and recording them in SQLite) is
   timed apart, and so is one ``ray.wait`` over 10^4 finished object refs
   (the Ray engine's driver makes one per model, over every pending task:
   what each result costs more once the driver lags); memory is the
   process's peak resident set (``VmHWM``), with the sizes of what the scan
   holds (weights, probes, their concatenated copy, every layer's output
   for one batch) beside it. Ray's overhead per task is taken from table 1
   (CPU per pair on one Ray worker minus in process, times the deposits).
   The estimate assumes every core of the cluster is a whole core (worker
   and driver alike) and says which part limits first.

3. **False hits**: ``--unmarked`` digits CNNs trained without triggers, for
   ``--unmarked-epochs`` epochs each from different seeds, scanned against
   the deposits of ``--deposits`` owners, each the first ``--triggers`` of
   the 256 noise triggers derived (:func:`secmark.triggers.iter_triggers`)
   from that owner's signed commitment. None may be a hit at the family-wise
   alpha = 2^-64 (Bonferroni over every model and deposit of the scan); the
   histogram of their log2 p-values is printed beside the counts the exact
   binomial null expects (for independent pairs: they are not, since models
   that answer noise alike get alike counts, so the classes the unmarked
   models answer are printed too), with the smallest p-value.

4. **Detection**, in the same scan: for each of the first ``--marked``
   owners, a model with all 256 of the owner's triggers embedded
   (:func:`secmark.examples.digits.embed_watermark`, its default recipe) and
   its stolen variants: a verbatim copy; fine-tuned (all layers, 10 epochs
   on a random half of the training data, lr 1e-3); pruned (50 % global
   magnitude, the masks kept while fine-tuning as above); quantised to int8
   (:func:`secmark.evaluate.attacks.quantize_weights`). Each must be a hit
   for its owner's deposit and for no other.

Run: python3 benchmarks/scan.py [--models 8] [--deposits 16] [--triggers 64]
     [--paper-models 2] [--unmarked 100] [--unmarked-epochs 3] [--marked 2]
(about 2.5 minutes on a loaded two-core machine; smaller values shrink it).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import logging
import math
import multiprocessing
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from secmark.crypto import IdentityKeys
from secmark.embed import evaluate_accuracy, predict_labels, save_state
from secmark.evaluate.attacks import quantize_weights
from secmark.evaluate.models import weight_layers
from secmark.examples import digits
from secmark.messages.commitment import create_commitment
from secmark.messages.families import NoiseFamily
from secmark.messages.labels import ClassLabels
from secmark.scan import HostedModel, PairResult, ProbeSet, ScanProbe, ScanResults, run_scan
from secmark.scan.runner import ScanEngine
from secmark.stats import DEFAULT_ALPHA, log2_binomial_tail, null_match_probability
from secmark.triggers import iter_triggers

FAMILY = NoiseFamily(digits.IMAGE_SHAPE, "float32", 0.0, 1.0)
SPACE = ClassLabels(digits.NUM_CLASSES)
WIDE_CHANNELS = (52, 104)
WIDE_HIDDEN = 208
"""The wide CNN's two convolutions' channels and hidden units: 3.25 times the
digits CNN's 16, 32 and 64, which gives 10.4 times its weights."""

PAPER_MODELS = 10**4
PAPER_DEPOSITS = 10**3
PAPER_TRIGGERS = 64
NODES = 64
CORES_PER_NODE = 16
NODE_MEMORY_GIB = 64
"""The assumed cluster: 64 nodes of 16 cores and 64 GiB each."""

COMMITTED = 256
"""Triggers in each owner's commitment: a marked model learns all of them,
the owner deposits the first ``--triggers``."""
FINE_TUNE_EPOCHS = 10
FINE_TUNE_LR = 1e-3
PRUNED = 0.5
MIB = 2**20


class WideCNN(nn.Module):
    """The digits CNN with WIDE_CHANNELS channels and WIDE_HIDDEN hidden units."""

    def __init__(self) -> None:
        super().__init__()
        first, second = WIDE_CHANNELS
        self.features = nn.Sequential(
            nn.Conv2d(1, first, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(first, second, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(second * 4 * 4, WIDE_HIDDEN),
            nn.ReLU(),
            nn.Linear(WIDE_HIDDEN, digits.NUM_CLASSES),
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(self.features(inputs))
        return logits


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "digits CNN": digits.DigitsCNN,
    "wide CNN": WideCNN,
}


def weight_count(factory: Callable[[], nn.Module]) -> int:
    return sum(parameter.numel() for parameter in factory().parameters())


def tree_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and every live descendant."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    root = os.getpid()

    def descends(pid: int) -> bool:
        while pid > 1:
            if pid == root:
                return True
            pid = parents.get(pid, 1)
        return False

    return sum(seconds for pid, seconds in times.items() if descends(pid))


def memory_mib(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"/proc/self/status has no {field}")


def _busy_loop(_: object = None) -> float:
    started = time.perf_counter()
    total = 0
    for value in range(5_000_000):
        total += value
    return time.perf_counter() - started


def parallel_capacity() -> float:
    """How many cores' worth of work two busy processes get done at once
    (2.0 on two free cores; less where the cores are shared or throttled)."""
    alone = _busy_loop()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        together = pool.map(_busy_loop, range(2))
    return 2 * alone / max(together)


def deposits(count: int, triggers: int) -> list[ScanProbe]:
    """Random noise deposits, for the cost measurements (content costs nothing)."""
    rng = np.random.default_rng(0)
    return [
        ScanProbe(
            f"owner-{index}",
            rng.random((triggers, *FAMILY.shape), dtype=np.float32),
            rng.integers(0, digits.NUM_CLASSES, size=triggers, dtype=np.int64),
            SPACE,
            FAMILY,
        )
        for index in range(count)
    ]


def hosted(
    factory: Callable[[], nn.Module], count: int, folder: Path, name: str
) -> list[HostedModel]:
    models = []
    for index in range(count):
        torch.manual_seed(index)
        path = save_state(factory(), folder / f"{name}-{index}.safetensors")
        models.append(HostedModel(f"{name}-{index}", weights=path, factory=factory))
    return models


def pickled_bytes(probes: list[ScanProbe], n_models: int) -> int:
    """Bytes of the ProbeSet a Ray scan of ``n_models`` models broadcasts."""
    return len(pickle.dumps(ProbeSet.build(probes, n_models=n_models), protocol=5))


# 1. Cost per pair ---------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    wall_ms: float
    cpu_ms: float


def timed_scan(
    models: list[HostedModel],
    probes: list[ScanProbe],
    results: ScanResults,
    scan_id: str,
    workers: int | None = None,
) -> Figures:
    """Scan in process (``workers`` None) or on the running Ray instance, once
    to warm up and once timed."""
    engine: ScanEngine = "local" if workers is None else "ray"
    pairs = len(models) * len(probes)
    for run in ("warm-up", "timed"):
        cpu, wall = tree_cpu_seconds(), time.perf_counter()
        summary = run_scan(
            models,
            probes,
            results,
            scan_id=f"{scan_id} {run}",
            engine=engine,
            workers=workers,
            progress=False,
        )
        wall, cpu = time.perf_counter() - wall, tree_cpu_seconds() - cpu
        if summary.errors:
            raise SystemExit(f"{scan_id}: {summary.errors[0].error}")
    return Figures(wall / pairs * 1e3, cpu / pairs * 1e3)


@dataclass(frozen=True)
class Scaling:
    figures: dict[tuple[str, str], Figures]
    """By (architecture, engine)."""
    ray_starts: dict[int, float]
    """Seconds of ``ray.init`` by number of CPUs."""
    probe_bytes: int
    wait_ms: float
    """One ``ray.wait`` for the first of PAPER_MODELS finished object refs (the
    slower of the two Ray instances)."""


ENGINE_NAMES = ("local", "ray, 1 worker", "ray, 2 workers")
WAIT_CALLS = 20


def ray_wait_ms() -> float:
    """Milliseconds of one ``ray.wait`` for the first of PAPER_MODELS finished
    refs, on the running Ray instance. The Ray engine's driver makes one call
    per model over all pending tasks; finished ones pile up when it lags."""
    import ray

    refs = [ray.put(index) for index in range(PAPER_MODELS)]
    started = time.perf_counter()
    for _ in range(WAIT_CALLS):
        ray.wait(refs, num_returns=1)
    return (time.perf_counter() - started) / WAIT_CALLS * 1e3


def measure_scaling(args: argparse.Namespace) -> Scaling:
    import ray

    probes = deposits(args.deposits, args.triggers)
    figures: dict[tuple[str, str], Figures] = {}
    starts: dict[int, float] = {}
    waits: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        results = ScanResults.open(f"sqlite:///{folder / 'scan.db'}")
        fleets = {
            name: hosted(factory, args.models, folder, name.split()[0])
            for name, factory in ARCHITECTURES.items()
        }
        for name, models in fleets.items():
            figures[name, "local"] = timed_scan(models, probes, results, f"local {name}")
        for workers, engine in ((1, ENGINE_NAMES[1]), (2, ENGINE_NAMES[2])):
            started = time.perf_counter()
            ray.init(
                num_cpus=workers,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            starts[workers] = time.perf_counter() - started
            try:
                for name, models in fleets.items():
                    figures[name, engine] = timed_scan(
                        models, probes, results, f"ray {workers} {name}", workers
                    )
                waits.append(ray_wait_ms())
            finally:
                ray.shutdown()
        results.close()
    return Scaling(figures, starts, pickled_bytes(probes, args.models), max(waits))


def print_scaling(args: argparse.Namespace, capacity: float, scaling: Scaling) -> None:
    print(
        f"\n== 1. Cost per pair: {args.models} models x {args.deposits} deposits of "
        f"{args.triggers} triggers ({args.models * args.deposits} pairs per architecture), "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"{'model':<26} {'engine':<16} {'wall ms/pair':>13} {'CPU ms/pair':>12}")
    for (name, engine), figures in scaling.figures.items():
        label = f"{name} ({weight_count(ARCHITECTURES[name]):,} w)"
        print(f"{label:<26} {engine:<16} {figures.wall_ms:>13.2f} {figures.cpu_ms:>12.2f}")
    ratio = weight_count(WideCNN) / weight_count(digits.DigitsCNN)
    print(f"wide CNN / digits CNN weights: {ratio:.1f}x")
    for name in ARCHITECTURES:
        one, two = (scaling.figures[name, engine] for engine in ENGINE_NAMES[1:])
        print(f"speed-up 1 -> 2 Ray workers, {name}: {one.wall_ms / two.wall_ms:.2f}x (wall)")
    print(f"machine's ceiling: two busy processes run at {capacity:.2f} cores' worth of one")
    for workers, seconds in scaling.ray_starts.items():
        print(f"ray.init with {workers} CPU(s): {seconds:.1f} s (not in the figures)")
    print(
        f"probes broadcast to the object store: {scaling.probe_bytes:,} bytes "
        f"({scaling.probe_bytes / (args.deposits * args.triggers):.0f} per trigger)"
    )
    sys.stdout.flush()


# 2. Paper-scale estimate --------------------------------------------------


@dataclass(frozen=True)
class WorkerCost:
    """One architecture's scan of a model against the paper's probe set."""

    cpu_s: float
    wall_s: float
    peak_mib: float
    """The process's peak resident memory once its models are scanned."""
    driver_cpu_s: float
    driver_wall_s: float
    """Unpickling the model's results and recording them: the driver's share."""
    result_bytes: int
    weights_mib: float
    activations_mib: float
    """Every layer's output for one full batch of the scan."""


@dataclass(frozen=True)
class PaperUnits:
    probe_bytes: int
    probe_arrays_mib: float
    """The probes' inputs and labels; the scan also holds one concatenated copy."""
    build_s: float
    baseline_mib: float
    """Resident memory of the process after its imports, before the probes."""
    costs: dict[str, WorkerCost]


def activations_mib(model: nn.Module, rows: int) -> float:
    """MiB of every leaf module's output for one batch of ``rows`` inputs."""
    sizes: list[int] = []
    hooks = [
        module.register_forward_hook(
            lambda _module, _inputs, output: sizes.append(output.numel() * output.element_size())
        )
        for module in model.modules()
        if not list(module.children())
    ]
    with torch.no_grad():
        model(torch.zeros(rows, *digits.IMAGE_SHAPE))
    for hook in hooks:
        hook.remove()
    return sum(sizes) / MIB


def paper_units(models_per_architecture: int, threads: int) -> PaperUnits:
    """The paper's unit costs, measured in the fresh process this runs in."""
    from secmark.scan import DEFAULT_SCAN_BATCH, scan_model

    torch.set_num_threads(threads)
    baseline = memory_mib("VmRSS")
    probes = deposits(PAPER_DEPOSITS, PAPER_TRIGGERS)
    started = time.perf_counter()
    probe_set = ProbeSet.build(probes, n_models=PAPER_MODELS)
    build_s = time.perf_counter() - started
    arrays = sum(probe.inputs.nbytes + probe.labels.nbytes for probe in probes) / MIB
    warm_up = ProbeSet.build(probes[:1], n_models=1)
    costs: dict[str, WorkerCost] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        results = ScanResults.open(f"sqlite:///{folder / 'paper.db'}")
        results.start("paper", probe_set.plan)
        for name, factory in ARCHITECTURES.items():
            models = hosted(factory, models_per_architecture, folder, name.split()[0])
            scan_model(models[0], warm_up)
            cpu = wall = driver_cpu = driver_wall = 0.0
            for model in models:
                cpu_started, wall_started = time.process_time(), time.perf_counter()
                pairs = scan_model(model, probe_set)
                cpu += time.process_time() - cpu_started
                wall += time.perf_counter() - wall_started
                sent = pickle.dumps(pairs, protocol=5)
                cpu_started, wall_started = time.process_time(), time.perf_counter()
                results.record_model("paper", pickle.loads(sent))
                driver_cpu += time.process_time() - cpu_started
                driver_wall += time.perf_counter() - wall_started
            count = len(models)
            module = factory()
            costs[name] = WorkerCost(
                cpu_s=cpu / count,
                wall_s=wall / count,
                peak_mib=memory_mib("VmHWM"),
                driver_cpu_s=driver_cpu / count,
                driver_wall_s=driver_wall / count,
                result_bytes=len(sent),
                weights_mib=sum(p.numel() * p.element_size() for p in module.parameters()) / MIB,
                activations_mib=activations_mib(module, DEFAULT_SCAN_BATCH),
            )
        results.close()
    return PaperUnits(
        probe_bytes=len(pickle.dumps(probe_set, protocol=5)),
        probe_arrays_mib=arrays,
        build_s=build_s,
        baseline_mib=baseline,
        costs=costs,
    )


def duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def print_estimate(args: argparse.Namespace, scaling: Scaling, units: PaperUnits) -> None:
    pairs = PAPER_MODELS * PAPER_DEPOSITS
    cores = NODES * CORES_PER_NODE
    waves = math.ceil(PAPER_MODELS / cores)
    print(
        f"\n== 2. Paper estimate: {PAPER_MODELS:,} models x {PAPER_DEPOSITS:,} deposits of "
        f"{PAPER_TRIGGERS} triggers = {pairs:,} pairs (Bonferroni: each at 2^-64 / {pairs:,}), "
        f"{NODES} nodes x {CORES_PER_NODE} cores = {cores:,} Ray workers, "
        f"{NODE_MEMORY_GIB} GiB per node (assumed)"
    )
    print(
        f"unit costs measured in one process on one torch thread, {args.paper_models} models "
        f"per architecture against all {PAPER_DEPOSITS:,} deposits; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"probes: {units.probe_arrays_mib:.1f} MiB of arrays, {units.probe_bytes / MIB:.1f} MiB "
        f"pickled into the object store (one copy per node: "
        f"{units.probe_bytes * NODES / 2**30:.2f} GiB sent in all); ProbeSet.build "
        f"{units.build_s:.2f} s once"
    )
    wait_s = scaling.wait_ms / 1e3
    for name, cost in units.costs.items():
        local, ray_one = (scaling.figures[name, engine] for engine in ENGINE_NAMES[:2])
        overhead_s = (ray_one.cpu_ms - local.cpu_ms) * args.deposits / 1e3
        task_cpu_s = cost.cpu_s + max(overhead_s, 0.0)
        workers_s = waves * task_cpu_s
        driver_s = cost.driver_cpu_s * PAPER_MODELS
        lagging_s = (cost.driver_wall_s + wait_s) * PAPER_MODELS
        held_mib = cost.weights_mib + 2 * units.probe_arrays_mib + cost.activations_mib
        node_gib = (CORES_PER_NODE * cost.peak_mib + units.probe_bytes / MIB) / 1024
        if node_gib > NODE_MEMORY_GIB:
            limit = "the nodes' memory"
        elif driver_s >= workers_s:
            limit = "the driver, recording results"
        elif lagging_s >= workers_s:
            limit = "the driver once it lags (ray.wait over the finished results), else the workers"
        else:
            limit = "the workers' compute"
        print(f"-- {name} ({weight_count(ARCHITECTURES[name]):,} weights)")
        print(
            f"   per model (task): {cost.cpu_s:.2f} s CPU, {cost.wall_s:.2f} s wall in process, "
            f"+ {overhead_s * 1e3:.0f} ms CPU Ray overhead per task (table 1"
            f"{', negative: taken as 0' if overhead_s < 0 else ''}) = "
            f"{task_cpu_s / PAPER_DEPOSITS * 1e3:.2f} ms CPU per pair"
        )
        print(
            f"   workers: {duration(task_cpu_s * PAPER_MODELS)} CPU in all; wall {waves} waves "
            f"of {cores:,} tasks x {task_cpu_s:.2f} s = {duration(workers_s)} (a whole core each)"
        )
        print(
            f"   driver, serial: {cost.driver_cpu_s * 1e3:.0f} ms CPU ({cost.driver_wall_s * 1e3:.0f}"
            f" ms wall here) per model to unpickle {cost.result_bytes / 1024:.0f} KiB of results "
            f"and record {PAPER_DEPOSITS:,} rows in SQLite = {duration(driver_s)} CPU in all; "
            f"lagging, + {scaling.wait_ms:.0f} ms of ray.wait per model = {duration(lagging_s)}"
        )
        print(
            f"   memory per worker: {cost.peak_mib:.0f} MiB peak resident, measured "
            f"({units.baseline_mib:.0f} MiB of it the process's imports, before any probe); "
            f"held by the scan, from tensor sizes: weights {cost.weights_mib:.2f} + probes "
            f"{units.probe_arrays_mib:.1f} + their concatenated copy "
            f"{units.probe_arrays_mib:.1f} + every layer's output for one batch "
            f"{cost.activations_mib:.1f} = {held_mib:.0f} MiB"
        )
        print(
            f"   per node: {node_gib:.1f} of {NODE_MEMORY_GIB} GiB ({CORES_PER_NODE} workers + "
            f"one probe copy); wall time {duration(max(workers_s, driver_s))} to "
            f"{duration(max(workers_s, lagging_s))}; limited first by {limit}"
        )
    sys.stdout.flush()


# 3 and 4. False hits and detection ----------------------------------------


@dataclass(frozen=True)
class Owner:
    deposit: ScanProbe
    inputs: np.ndarray
    labels: np.ndarray
    """All COMMITTED triggers of the owner's commitment."""


def owner(index: int, triggers: int) -> Owner:
    """Owner ``index``'s commitment, its triggers and its deposit of the first ``triggers``."""

    def secret(part: str) -> bytes:
        return hashlib.sha256(f"secmark scan benchmark owner {index} {part}".encode()).digest()

    keys = IdentityKeys(secret("signing"), secret("vrf"), secret("encryption"))
    signed = create_commitment(
        keys,
        family=FAMILY,
        labels=SPACE,
        size=COMMITTED,
        model_label=f"digits CNN of owner {index}",
        nonce=secret("nonce"),
        created=datetime(2025, 1, 1, tzinfo=timezone.utc),
    )
    (batch,) = iter_triggers(keys, signed, range(COMMITTED), batch_size=COMMITTED)
    deposit = ScanProbe(
        f"owner-{index}", batch.inputs[:triggers], batch.labels[:triggers], SPACE, FAMILY
    )
    return Owner(deposit, batch.inputs, batch.labels)


def fine_tune(model: nn.Module, thief: digits.DigitsData, seed: int) -> None:
    digits.train_clean(model, thief, seed=seed, epochs=FINE_TUNE_EPOCHS, lr=FINE_TUNE_LR)


def prune_and_fine_tune(model: nn.Module, thief: digits.DigitsData, seed: int) -> None:
    """Global magnitude pruning of PRUNED of the weights, then fine-tuning with
    the masks in place, so the pruned weights stay zero."""
    targets = [(layer, "weight") for layer in weight_layers(model)]
    torch_prune.global_unstructured(
        targets, pruning_method=torch_prune.L1Unstructured, amount=PRUNED
    )
    fine_tune(model, thief, seed)
    for layer, name in targets:
        torch_prune.remove(layer, name)  # type: ignore[no-untyped-call]


def quantise(model: nn.Module, thief: digits.DigitsData, seed: int) -> None:
    quantize_weights(model, 8)


def verbatim(model: nn.Module, thief: digits.DigitsData, seed: int) -> None:
    """The stolen model hosted as it is."""


VARIANTS: dict[str, Callable[[nn.Module, digits.DigitsData, int], None]] = {
    "copy": verbatim,
    "fine-tuned": fine_tune,
    f"pruned {PRUNED:.0%} + ft": prune_and_fine_tune,
    "int8": quantise,
}


@dataclass(frozen=True)
class Fleet:
    models: list[HostedModel]
    accuracy: dict[str, float]
    """Clean test accuracy by model id."""
    stolen: dict[str, str]
    """The owner's deposit id of each stolen variant, by model id."""
    answers: np.ndarray
    """How often the unmarked models answer each class to the deposits' triggers."""
    unmarked_seconds: float
    marked_seconds: float


def save(model: nn.Module, model_id: str, folder: Path) -> HostedModel:
    path = save_state(model, folder / f"{model_id}.safetensors")
    return HostedModel(model_id, weights=path, factory=digits.DigitsCNN)


def train_fleet(
    args: argparse.Namespace, owners: list[Owner], data: digits.DigitsData, folder: Path
) -> Fleet:
    models: list[HostedModel] = []
    accuracy: dict[str, float] = {}
    stolen: dict[str, str] = {}
    answers = np.zeros(digits.NUM_CLASSES, dtype=np.int64)
    triggers = np.concatenate([mark.deposit.inputs for mark in owners])
    started = time.perf_counter()
    for index in range(args.unmarked):
        seed = 1000 + index
        model = digits.new_model(seed)
        digits.train_clean(model, data, seed=seed, epochs=args.unmarked_epochs)
        models.append(save(model, f"unmarked-{index}", folder))
        accuracy[models[-1].model_id] = evaluate_accuracy(model, data.test)
        answers += np.bincount(predict_labels(model, triggers), minlength=digits.NUM_CLASSES)
    unmarked_seconds = time.perf_counter() - started
    started = time.perf_counter()
    count = len(data.train_labels)
    half = np.random.default_rng(0).permutation(count)[: count // 2]
    thief = digits.DigitsData(
        data.train_inputs[half], data.train_labels[half], data.test_inputs, data.test_labels
    )
    for index, mark in enumerate(owners[: args.marked]):
        marked = digits.new_model(index)
        digits.embed_watermark(
            marked, data, digits.trigger_set(mark.inputs, mark.labels), seed=index
        )
        for name, attack in VARIANTS.items():
            variant = copy.deepcopy(marked)
            attack(variant, thief, 100 + index)
            models.append(save(variant, f"owner-{index} {name}", folder))
            accuracy[models[-1].model_id] = evaluate_accuracy(variant, data.test)
            stolen[models[-1].model_id] = mark.deposit.deposit_id
    return Fleet(models, accuracy, stolen, answers, unmarked_seconds, time.perf_counter() - started)


BIN_EDGES = (0, -1, -2, -4, -8, -16, -32, -64)


def bin_label(index: int) -> str:
    if index == len(BIN_EDGES) - 1:
        return f"<= {BIN_EDGES[-1]}"
    return f"({BIN_EDGES[index + 1]}, {BIN_EDGES[index]}]"


def bin_of(log2_p: float) -> int:
    """The histogram bin of a log2 p-value: (-1, 0], (-2, -1], ..., <= -64."""
    return next(
        (index for index in range(len(BIN_EDGES) - 1) if log2_p > BIN_EDGES[index + 1]),
        len(BIN_EDGES) - 1,
    )


def null_bins(trials: int, p0: Fraction) -> list[float]:
    """The probability of each bin under the null P[match] = p0, exactly from the binomial."""
    chances = [0.0] * len(BIN_EDGES)
    for matches in range(trials + 1):
        mass = math.comb(trials, matches) * p0**matches * (1 - p0) ** (trials - matches)
        chances[bin_of(log2_binomial_tail(trials, matches, p0))] += float(mass)
    return chances


def print_null_and_detection(
    args: argparse.Namespace, fleet: Fleet, results: list[PairResult], elapsed: float
) -> None:
    plan = results[0].plan
    unmarked = [r for r in results if r.model_id not in fleet.stolen]
    others = [r for r in results if r.model_id in fleet.stolen]
    crossed = [r for r in others if r.deposit_id != fleet.stolen[r.model_id]]
    threshold = results[0].threshold
    print(
        f"\n== 3. False hits: {args.unmarked} unmarked digits CNNs ({args.unmarked_epochs} "
        f"epochs each, seeds 1000-{999 + args.unmarked}, mean test accuracy "
        f"{np.mean([fleet.accuracy[r.model_id] for r in unmarked]):.3f}, trained in "
        f"{fleet.unmarked_seconds:.0f} s) x {args.deposits} owners' deposits of "
        f"{args.triggers} derived noise triggers"
    )
    print(
        f"one scan of {plan.n_models} models x {plan.n_deposits} deposits = {plan.pairs:,} pairs "
        f"at alpha = 2^{math.log2(plan.alpha):.0f}: each pair at 2^"
        f"{math.log2(plan.per_pair_alpha):.1f}, a hit from {threshold} of {args.triggers} matches"
    )
    expected = null_bins(args.triggers, null_match_probability(SPACE))
    others_label = "marked x others'"
    print(f"{'log2 p':<12} {'unmarked':>9} {'expected':>9} {others_label:>17}  histogram")
    counts = [[0] * len(BIN_EDGES) for _ in range(2)]
    for column, group in enumerate((unmarked, crossed)):
        for result in group:
            if result.log2_p_value is None:
                raise SystemExit(f"{result.model_id}: {result.error}")
            counts[column][bin_of(result.log2_p_value)] += 1
    widest = max(counts[0])
    for index in range(len(BIN_EDGES)):
        bar = "#" * math.ceil(50 * counts[0][index] / widest)
        print(
            f"{bin_label(index):<12} {counts[0][index]:>9} {expected[index] * len(unmarked):>9.1f} "
            f"{counts[1][index]:>17}  {bar}"
        )
    for what, group in (("unmarked", unmarked), ("marked x other owners' deposits", crossed)):
        hits = sum(result.hit for result in group)
        lowest = min(group, key=lambda result: result.log2_p_value or 0.0)
        print(
            f"{what}: {hits} hits in {len(group):,} pairs ({'met' if hits == 0 else 'NOT MET'}: "
            f"0 expected); smallest p = 2^{lowest.log2_p_value:.1f} ({lowest.matches} of "
            f"{lowest.trials}, {lowest.model_id} on {lowest.deposit_id})"
        )
    shares = fleet.answers / fleet.answers.sum()
    common = ", ".join(f"class {c} {shares[c]:.0%}" for c in np.argsort(shares)[::-1][:3])
    print(
        f"unmarked models' answers to the deposits' triggers: {common}, ...: models that "
        "answer noise alike get alike counts on a deposit, so the pairs are not the "
        "independent draws the expected column assumes (Bonferroni needs no independence)"
    )
    print(
        f"\n== 4. Detection: {args.marked} owners' marked models ({COMMITTED} triggers embedded,"
        f" trained with their variants in {fleet.marked_seconds:.0f} s); fine-tuning: "
        f"{FINE_TUNE_EPOCHS} epochs on half the training data, lr {FINE_TUNE_LR:g}"
    )
    print(
        f"{'model':<26} {'accuracy':>8} {'matches':>9} {'threshold':>9} {'log2 p':>8} "
        f"{'hit':>4} {'other hits':>10}"
    )
    detected = 0
    for model_id, deposit_id in fleet.stolen.items():
        mine = [r for r in others if r.model_id == model_id]
        (own,) = (r for r in mine if r.deposit_id == deposit_id)
        elsewhere = sum(r.hit for r in mine if r.deposit_id != deposit_id)
        detected += int(own.hit and elsewhere == 0)
        print(
            f"{model_id:<26} {fleet.accuracy[model_id]:>8.3f} "
            f"{f'{own.matches}/{own.trials}':>9} {own.threshold:>9} "
            f"{own.log2_p_value or 0.0:>8.1f} {'yes' if own.hit else 'NO':>4} {elsewhere:>10}"
        )
    verdict = "met" if detected == len(fleet.stolen) else "NOT MET"
    print(
        f"{detected} of {len(fleet.stolen)} hit their owner's deposit and no other ({verdict}); "
        f"the scan took {elapsed:.1f} s in process"
    )
    sys.stdout.flush()


def false_hits_and_detection(args: argparse.Namespace) -> None:
    data = digits.load_data()
    owners = [owner(index, args.triggers) for index in range(args.deposits)]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        fleet = train_fleet(args, owners, data, folder)
        results = ScanResults.open(f"sqlite:///{folder / 'scan.db'}")
        started = time.perf_counter()
        summary = run_scan(
            fleet.models,
            [mark.deposit for mark in owners],
            results,
            scan_id="false hits and detection",
            alpha=DEFAULT_ALPHA,
            progress=False,
        )
        elapsed = time.perf_counter() - started
        results.close()
    if summary.errors:
        raise SystemExit(f"{summary.errors[0].model_id}: {summary.errors[0].error}")
    print_null_and_detection(args, fleet, list(summary.results), elapsed)


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=8, help="models of each architecture")
    parser.add_argument("--deposits", type=int, default=16, help="deposits (owners) per scan")
    parser.add_argument("--triggers", type=int, default=64, help="triggers per deposit")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument(
        "--paper-models",
        type=int,
        default=2,
        help="models of each architecture scanned against the paper's 10^3 deposits",
    )
    parser.add_argument("--unmarked", type=int, default=100, help="unmarked models scanned")
    parser.add_argument("--unmarked-epochs", type=int, default=3)
    parser.add_argument("--marked", type=int, default=2, help="owners whose models are stolen")
    args = parser.parse_args()
    counts = (args.models, args.deposits, args.threads, args.paper_models, args.unmarked)
    if min(counts) < 1 or args.unmarked_epochs < 1:
        parser.error("counts, threads and epochs must be at least 1")
    if not 1 <= args.triggers <= COMMITTED or not 1 <= args.marked <= args.deposits:
        parser.error(f"--triggers must be in [1, {COMMITTED}], --marked in [1, --deposits]")
    torch.set_num_threads(args.threads)

    capacity = parallel_capacity()
    scaling = measure_scaling(args)
    print_scaling(args, capacity, scaling)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        units = pool.submit(paper_units, args.paper_models, args.threads).result()
    print_estimate(args, scaling, units)
    false_hits_and_detection(args)
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
