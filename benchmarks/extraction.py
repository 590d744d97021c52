"""Serving-side marks through model extraction: cost, detection, countermeasures.

A gateway answers a VRF-selected fraction r of distinct inputs with a
VRF-derived wrong label (:class:`secmark.serving.marking.Marker`, a real
signed policy and fresh operator keys). This script measures, per task and
seed:

1. the served accuracy cost: accuracy of the served answers on the test
   split against the model's own, at r = 0.5, 1, 2, 5 %;
2. detection through extraction: a thief queries the API with the first n
   inputs of his own unlabeled pool (data the owner never trained on),
   trains a student on (input, served answer) -- hard labels, and at one
   rate soft labels (the served score vector, marked by swapping,
   :func:`secmark.serving.marking.marked_scores`) -- and the arbiter tests
   the student on the k distinct marked inputs of the account: m matches,
   exact log2 P[Binomial(k, p0) >= m]. An innocent model trained on the
   same inputs with their TRUE labels is tested on the same marked inputs.
   Beside the fixed-epoch student (the recipe's epochs), a careful thief
   early-stops: he holds out a tenth of his own queries with their SERVED
   answers (he has no other labels), trains on the rest and keeps the best
   epoch by held-out loss (``es-loss``) or by held-out agreement with the
   served answers (``es-acc``), stopping after 3 epochs without improvement
   (at most the recipe's epochs). His held-out queries count for the
   account like all others: their marks are among the k tested;
3. thief countermeasures at r = 2 % on the generated task: (a) every input
   asked twice, (b) every input asked as v noisy copies and the student
   trained on the majority answer, (c) fewer queries (the n grid).

The goal checked: every student within 5 points of the original's accuracy
trained on >= 2,000 answers at r <= 2 % is detected at alpha = 2^-64; the
goal table lists every such student per seed (detected or not, its gap).

Tasks: ``digits`` (the evaluation's CNN, K = 10, other-label rule, p0 =
1/9), ``breast_cancer`` (the evaluation's MLP, K = 2, any-label rule, p0 =
1/2) and ``generated`` (make_classification, 100 000 samples, 40 features,
20 informative, 10 classes, an MLP). The digits and breast-cancer training
splits of :mod:`secmark.evaluate.datasets` are cut in two by the seed: one
half trains the owner, the other is the thief's pool (so their n grid,
250 to 4,000, stops at the pool's size, too small for the goal); the test
split is the evaluation's. The generated task's owner trains on 40 000
samples, its thief's pool holds 50 000 and its n grid is 2,000 to 50,000.
Students and innocent models train with the task's recipe (as the
evaluation's ``distill`` attack does: Adam, its epochs, learning rate and
batch size, in a plain seeded loop, :func:`train_student`) from the same
initialisation for the same seed.
Keys and policy nonces are fresh each run (``IdentityKeys.generate()``), so
which inputs are marked differs between runs; the seed fixes the data,
splits, query order and initialisations.

Run: python3 benchmarks/extraction.py [--quick] [--seeds 1 2 3] [--out results.json]
(--quick: about 45 CPU seconds). The scale run (n up to 50,000) ran
the generated task at r = 1 and 2 % without soft labels, one process per
seed (``--tasks generated --rates 1/100 1/50 --no-soft --seeds S --out gS.json``),
digits and breast cancer with the defaults (``--tasks digits breast_cancer``),
and summarised the parts with ``--merge small.json g1.json g2.json g3.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from secmark.crypto.keys import IdentityKeys
from secmark.evaluate.datasets import CandidateRule, Recipe, Task, load_task
from secmark.evaluate.models import TabularClassifier
from secmark.evaluate.training import answers, fit
from secmark.messages.families import NoiseFamily
from secmark.messages.labels import ClassLabels
from secmark.messages.serving_policy import InputEncoding, create_serving_policy
from secmark.serving.marking import Marker, canonical_input, marked_scores
from secmark.stats import decision_threshold, log2_binomial_tail

ALPHA_STRONG = Fraction(1, 2**64)
ALPHA_WEAK = Fraction(1, 2**32)
COST_RATES = ("1/200", "1/100", "1/50", "1/20")
DETECTION_RATES = ("1/100", "1/50", "1/20")
SIZES = (250, 500, 1000, 2000, 4000)
GENERATED_SIZES = (2000, 5000, 10000, 20000, 50000)
"""The generated task's n grid: its pool is large enough for the goal's n."""
TASKS = ("digits", "breast_cancer", "generated")
DEFAULT_SEEDS = (1, 2, 3)
SOFT_RATE = "1/50"
COUNTER_RATE = "1/50"
COUNTER_TASK = "generated"
COUNTER_BASE = 2000
COUNTER_COPIES = (3, 5)
COUNTER_NOISE = 0.1
"""Standard deviation of the thief's Gaussian noise per standardised feature."""
GOAL_SIZE = 2000
GOAL_MAX_RATE = Fraction(1, 50)
GOAL_ACCURACY_POINTS = 5.0
HOLDOUT_SHARE = 0.1
"""Share of the careful thief's own queries held out to pick his epoch."""
PATIENCE = 3
"""Epochs without improvement after which the careful thief stops."""
EARLY_VARIANTS = ("es-loss", "es-acc")
"""The careful thief's two stopping rules: best validation loss, best validation
agreement with the served answers."""

_STUDENT_SEED_OFFSET = 7919
_HOLDOUT_SALT = 0x686F_6C64
_SPLIT_SALT = 0x7468_6566
_GENERATED_SAMPLES = 100_000
_GENERATED_TEST = 10_000
_GENERATED_OWNER_SHARE = 0.4


@dataclass(frozen=True)
class Setup:
    """One task of one seed: the owner's data in ``task`` (train = the owner's
    split), the thief's pool and the recipes."""

    task: Task
    pool_inputs: np.ndarray
    pool_targets: np.ndarray
    encoding: InputEncoding
    owner_recipe: Recipe
    thief_recipe: Recipe

    @property
    def classes(self) -> int:
        labels = self.task.labels
        assert isinstance(labels, ClassLabels)
        return labels.num_classes


def _split_half(task: Task, seed: int) -> Setup:
    rng = np.random.default_rng([seed, _SPLIT_SALT])
    order = rng.permutation(len(task.train_inputs))
    half = len(order) // 2
    owner, thief = order[:half], order[half:]
    owned = replace(
        task, train_inputs=task.train_inputs[owner], train_targets=task.train_targets[owner]
    )
    shape = tuple(int(d) for d in task.train_inputs.shape[1:])
    return Setup(
        owned,
        task.train_inputs[thief],
        task.train_targets[thief],
        InputEncoding("float32", shape),
        task.recipe,
        task.recipe,
    )


def _generated(seed: int, samples: int) -> Setup:
    from sklearn.datasets import make_classification

    features, targets = make_classification(
        n_samples=samples,
        n_features=40,
        n_informative=20,
        n_classes=10,
        random_state=seed,
    )
    test = min(_GENERATED_TEST, samples // 10)
    owner_end = test + int(_GENERATED_OWNER_SHARE * samples)
    # make_classification shuffles its rows: consecutive blocks are random splits.
    owner_x = features[test:owner_end]
    mean, std = owner_x.mean(axis=0), owner_x.std(axis=0)
    std[std == 0] = 1.0
    scaled = ((features - mean) / std).astype(np.float32)
    labels = targets.astype(np.int64)
    width = scaled.shape[1]
    thief_recipe = Recipe(epochs=30, lr=1e-3, batch_size=64, per_batch=1)
    task = Task(
        name="generated",
        kind="classification",
        train_inputs=scaled[test:owner_end],
        train_targets=labels[test:owner_end],
        test_inputs=scaled[:test],
        test_targets=labels[:test],
        family=NoiseFamily((width,), "float32", -2.0, 2.0),
        labels=ClassLabels(10),
        triggers=256,
        challenges=128,
        recipe=thief_recipe,
        target_scale=1.0,
        build_model=lambda: TabularClassifier(width, 10, hidden=256),
        candidates=CandidateRule(reserve=16, variants=256, spread=COUNTER_NOISE),
        pool_recipe=thief_recipe,
    )
    return Setup(
        task,
        scaled[owner_end:],
        labels[owner_end:],
        InputEncoding("float32", (width,)),
        Recipe(epochs=20, lr=1e-3, batch_size=256, per_batch=1),
        thief_recipe,
    )


def make_setup(name: str, seed: int, generated_samples: int) -> Setup:
    if name == "generated":
        return _generated(seed, generated_samples)
    return _split_half(load_task(name), seed)


def _tensor(values: np.ndarray) -> torch.Tensor:
    if values.dtype.kind == "f":
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.int64))


def _epoch(
    model: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
) -> None:
    """One pass of Adam on the cross-entropy over shuffled batches (targets are
    classes or score vectors)."""
    model.train()
    order = torch.randperm(len(inputs), generator=generator)
    total = 0.0
    for start in range(0, len(inputs), batch_size):
        chosen = order[start : start + batch_size]
        optimiser.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(inputs[chosen]), targets[chosen])
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        total += float(loss.detach())
    model.eval()
    if not math.isfinite(total):
        raise RuntimeError(f"student training diverged (loss {total})")


def train_student(
    setup: Setup,
    inputs: np.ndarray,
    targets: np.ndarray,
    seed: int,
    *,
    recipe: Recipe,
    init_seed: int,
) -> torch.nn.Module:
    """The thief's (and the innocent's) training: a fresh model of the task
    (initialised by ``init_seed``), ``recipe.epochs`` passes of Adam at
    ``recipe.lr`` over batches of ``recipe.batch_size`` shuffled by ``seed``.

    The same recipe as :func:`secmark.evaluate.training.fit`, in a plain loop
    (no DataLoader, no deterministic-kernel switch) that runs about 3.5 times
    faster on one CPU thread; still seeded and repeatable.
    """
    model = setup.task.new_model(init_seed)
    x, y = _tensor(inputs), _tensor(targets)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(recipe.epochs):
        _epoch(model, optimiser, x, y, recipe.batch_size, generator)
    return model


def train_early_stopped(
    setup: Setup,
    inputs: np.ndarray,
    served: np.ndarray,
    seed: int,
    *,
    recipe: Recipe,
    init_seed: int,
    holdout: float,
    patience: int,
    max_epochs: int,
) -> dict[str, tuple[torch.nn.Module, dict[str, Any]]]:
    """The careful thief: he holds out a ``holdout`` share of his own queries
    (their served answers, the only labels he has), trains on the rest as
    :func:`train_student` does and after every epoch measures the held-out
    cross-entropy and agreement with the served answers. Per stopping rule
    (``es-loss``: lowest loss, ``es-acc``: highest agreement, the earlier epoch
    on ties) he keeps the best epoch's weights; training stops once neither
    rule has improved for ``patience`` epochs, or after ``max_epochs``.
    Both rules come from one run. Returns, per rule, the model and its
    epochs (best, run) and held-out loss and agreement."""
    count = len(inputs)
    order = np.random.default_rng([seed, _HOLDOUT_SALT]).permutation(count)
    cut = max(1, round(holdout * count))
    held, kept = np.sort(order[:cut]), np.sort(order[cut:])
    x, y = _tensor(inputs[kept]), _tensor(served[kept])
    hx, hy = _tensor(inputs[held]), _tensor(served[held])
    model = setup.task.new_model(init_seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    generator = torch.Generator().manual_seed(seed)
    best: dict[str, dict[str, Any]] = {
        "es-loss": {"score": -math.inf},
        "es-acc": {"score": -math.inf},
    }
    ran = 0
    for epoch in range(1, max_epochs + 1):
        _epoch(model, optimiser, x, y, recipe.batch_size, generator)
        ran = epoch
        with torch.no_grad():
            logits = model(hx)
            loss = float(torch.nn.functional.cross_entropy(logits, hy))
            agreement = float((logits.argmax(dim=1) == hy).double().mean())
        for rule, score in (("es-loss", -loss), ("es-acc", agreement)):
            if score > best[rule]["score"]:
                best[rule] = {
                    "score": score,
                    "epoch": epoch,
                    "holdout_loss": loss,
                    "holdout_agreement": agreement,
                    "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
                }
        if all(epoch - entry["epoch"] >= patience for entry in best.values()):
            break
    out = {}
    for rule, entry in best.items():
        chosen = setup.task.new_model(init_seed)
        chosen.load_state_dict(entry["state"])
        chosen.eval()
        info = {
            "best_epoch": entry["epoch"],
            "epochs_run": ran,
            "max_epochs": max_epochs,
            "holdout": cut,
            "trained_on": len(kept),
            "holdout_loss": entry["holdout_loss"],
            "holdout_agreement": entry["holdout_agreement"],
        }
        out[rule] = (chosen, info)
    return out


def train_model(
    setup: Setup,
    inputs: np.ndarray,
    targets: np.ndarray,
    seed: int,
    *,
    recipe: Recipe,
    init_seed: int,
) -> torch.nn.Module:
    """A fresh model of the task (initialised by ``init_seed``) trained on
    ``(inputs, targets)`` with ``recipe``; targets are classes or score vectors."""
    task = replace(setup.task, recipe=recipe)
    model = task.new_model(init_seed)
    fit(task, model, inputs, targets, epochs=recipe.epochs, lr=recipe.lr, seed=seed)
    return model


def probabilities(model: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)))
    probs: np.ndarray = torch.softmax(logits.double(), dim=1).numpy()
    return probs


class Gateway:
    """The owner's prediction API under one policy: the model's answers,
    marked where the policy selects."""

    def __init__(self, setup: Setup, model: torch.nn.Module, rate: Fraction, seed: int) -> None:
        owner, operator = IdentityKeys.generate(), IdentityKeys.generate()
        release = hashlib.sha256(f"extraction benchmark {setup.task.name} {seed}".encode())
        policy = create_serving_policy(
            owner,
            operator=operator.public_keys,
            release_id=release.hexdigest(),
            num_classes=setup.classes,
            rate=rate,
            input_encoding=setup.encoding,
        )
        self.setup = setup
        self.model = model
        self.marker = Marker(policy, operator.vrf)
        self.p0 = policy.document.p0

    def serve(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Served labels, served score vectors, marked flags, input digests
        and the model's own answers for ``inputs``, one query each."""
        probs = probabilities(self.model, inputs)
        own = answers(self.setup.task, self.model, inputs)
        served = np.empty(len(inputs), dtype=np.int64)
        scores = probs.copy()
        marked = np.zeros(len(inputs), dtype=bool)
        digests = []
        for i, item in enumerate(inputs):
            marking = self.marker.mark(canonical_input(item, self.setup.encoding), int(own[i]))
            served[i] = marking.served_answer
            marked[i] = marking.selected
            digests.append(marking.input_digest)
            if marking.selected:
                scores[i] = marked_scores(probs[i], marking.served_answer)
        return {
            "served": served,
            "scores": scores.astype(np.float32),
            "marked": marked,
            "digests": np.array(digests, dtype=object),
            "own": own,
        }


def distinct_marked(marked: np.ndarray, digests: np.ndarray) -> np.ndarray:
    """Indices of the distinct marked inputs (first query of each digest)."""
    seen: set[bytes] = set()
    chosen = []
    for i in np.flatnonzero(marked):
        if digests[i] not in seen:
            seen.add(digests[i])
            chosen.append(int(i))
    return np.array(chosen, dtype=np.int64)


def arbiter_test(
    model: torch.nn.Module, setup: Setup, inputs: np.ndarray, served: np.ndarray, p0: Fraction
) -> dict[str, Any]:
    """The arbiter's test of ``model`` on the marked ``inputs``."""
    k = len(inputs)
    if k == 0:
        return {"k": 0, "m": 0, "log2_p": 0.0, "detected_64": False, "detected_32": False}
    m = int(np.sum(answers(setup.task, model, inputs) == served))
    return {
        "k": k,
        "m": m,
        "log2_p": log2_binomial_tail(k, m, p0),
        "detected_64": m >= decision_threshold(k, p0, ALPHA_STRONG),
        "detected_32": m >= decision_threshold(k, p0, ALPHA_WEAK),
    }


def accuracy(setup: Setup, model: torch.nn.Module) -> float:
    task = setup.task
    return task.score(answers(task, model, task.test_inputs), task.test_targets)


def majority(labels: np.ndarray, classes: int) -> np.ndarray:
    """Row-wise majority label; ties go to the first copy's label among the tied."""
    out = np.empty(len(labels), dtype=np.int64)
    for i, row in enumerate(labels):
        counts = np.bincount(row, minlength=classes)
        best = counts.max()
        out[i] = next(int(c) for c in row if counts[c] == best)
    return out


def run_seed(name: str, seed: int, config: argparse.Namespace, log: Any) -> dict[str, Any]:
    started = time.perf_counter()
    setup = make_setup(name, seed, config.generated_samples)
    task = setup.task
    owner = train_model(
        setup,
        task.train_inputs,
        task.train_targets,
        seed,
        recipe=setup.owner_recipe,
        init_seed=seed,
    )
    own_accuracy = accuracy(setup, owner)
    out: dict[str, Any] = {
        "task": name,
        "seed": seed,
        "classes": setup.classes,
        "owner_train": len(task.train_inputs),
        "pool": len(setup.pool_inputs),
        "test": len(task.test_inputs),
        "owner_accuracy": own_accuracy,
    }
    log(
        f"[{name} seed {seed}] owner trained on {len(task.train_inputs)}: "
        f"accuracy {own_accuracy:.4f}; thief pool {len(setup.pool_inputs)}"
    )

    # 1. Served accuracy cost on the test split.
    cost = []
    for text in config.cost_rates:
        rate = Fraction(text)
        gateway = Gateway(setup, owner, rate, seed)
        served = gateway.serve(task.test_inputs)
        served_accuracy = float(np.mean(served["served"] == task.test_targets))
        cost.append(
            {
                "rate": text,
                "marked": int(served["marked"].sum()),
                "served_accuracy": served_accuracy,
                "cost_points": 100 * (own_accuracy - served_accuracy),
            }
        )
    out["cost"] = cost

    # 2. Detection through extraction over the n grid.
    grid = config.sizes or (GENERATED_SIZES if name == "generated" else SIZES)
    sizes = sorted({min(n, len(setup.pool_inputs)) for n in grid})
    largest = max(sizes)
    pool_x = setup.pool_inputs[:largest]
    pool_y = setup.pool_targets[:largest]
    recipe = setup.thief_recipe
    student_seed = seed + _STUDENT_SEED_OFFSET
    innocents = {}
    innocent_accuracy = {}
    for n in sizes:
        model = train_student(
            setup, pool_x[:n], pool_y[:n], seed, recipe=recipe, init_seed=student_seed
        )
        innocents[n] = model
        innocent_accuracy[n] = accuracy(setup, model)
    rows = []
    gateways: dict[str, tuple[Gateway, dict[str, np.ndarray]]] = {}
    rates = list(dict.fromkeys([*config.rates, *([SOFT_RATE] if config.soft else [])]))
    for text in rates:
        gateway = Gateway(setup, owner, Fraction(text), seed)
        answered = gateway.serve(pool_x)
        gateways[text] = (gateway, answered)
        variants = []
        if text in config.rates:
            variants.append("hard")
        if config.soft and text == SOFT_RATE:
            variants.append("soft")
        for n in sizes:
            chosen = distinct_marked(answered["marked"][:n], answered["digests"][:n])
            marks_x = pool_x[chosen]
            marks_y = answered["served"][chosen]
            innocent = arbiter_test(innocents[n], setup, marks_x, marks_y, gateway.p0)
            students: list[tuple[str, torch.nn.Module, dict[str, Any]]] = []
            for variant in variants:
                targets = answered["served"][:n] if variant == "hard" else answered["scores"][:n]
                student = train_student(
                    setup, pool_x[:n], targets, seed, recipe=recipe, init_seed=student_seed
                )
                students.append((variant, student, {"epochs": recipe.epochs}))
            if config.early_stop and text in config.rates:
                stopped = train_early_stopped(
                    setup,
                    pool_x[:n],
                    answered["served"][:n],
                    seed,
                    recipe=recipe,
                    init_seed=student_seed,
                    holdout=config.holdout,
                    patience=config.patience,
                    max_epochs=config.max_epochs or recipe.epochs,
                )
                students.extend((rule, *stopped[rule]) for rule in EARLY_VARIANTS)
            for variant, student, training in students:
                row = {
                    "rate": text,
                    "variant": variant,
                    "n": n,
                    "training": training,
                    "student_accuracy": accuracy(setup, student),
                    "innocent_accuracy": innocent_accuracy[n],
                    "student": arbiter_test(student, setup, marks_x, marks_y, gateway.p0),
                    "innocent": innocent,
                }
                rows.append(row)
                s = row["student"]
                epochs = training.get("best_epoch", training.get("epochs"))
                log(
                    f"[{name} seed {seed}] r={text} {variant} n={n}: k={s['k']} m={s['m']} "
                    f"log2p={s['log2_p']:.1f} acc={row['student_accuracy']:.4f} "
                    f"epoch {epochs}/{training.get('epochs_run', epochs)} "
                    f"innocent m={innocent['m']} log2p={innocent['log2_p']:.1f} "
                    f"({time.perf_counter() - started:.0f} s)"
                )
    out["detection"] = rows

    # 3. Countermeasures on one task.
    if name == config.counter_task:
        rate = config.counter_rate
        if rate not in gateways:
            gateway = Gateway(setup, owner, Fraction(rate), seed)
            gateways[rate] = (gateway, gateway.serve(pool_x))
        out["countermeasures"] = countermeasures(setup, gateways[rate], seed, config, log)
    out["seconds"] = time.perf_counter() - started
    return out


def countermeasures(
    setup: Setup,
    gateway_answers: tuple[Gateway, dict[str, np.ndarray]],
    seed: int,
    config: argparse.Namespace,
    log: Any,
) -> dict[str, Any]:
    gateway, first = gateway_answers
    base = min(config.counter_base, len(setup.pool_inputs))
    inputs = setup.pool_inputs[:base]
    # (a) every input asked again, and again spelt with -0.0 for +0.0 where it can be.
    again = gateway.serve(inputs)
    respelt = np.where(inputs == 0, np.float32(-0.0), inputs)
    third = gateway.serve(respelt)
    changed = int(np.sum(again["served"] != first["served"][:base]))
    changed_respelt = int(np.sum(third["served"] != first["served"][:base]))
    repeat = {
        "queries": 2 * base,
        "answers_changed": changed,
        "answers_changed_respelt": changed_respelt,
        "distinct_marked": len(distinct_marked(again["marked"], again["digests"])),
    }
    log(f"[{setup.task.name} seed {seed}] asked twice: {changed} of {base} answers changed")
    rng = np.random.default_rng([seed, 0x6E6F_6973])
    perturbed = []
    recipe = setup.thief_recipe
    student_seed = seed + _STUDENT_SEED_OFFSET
    for copies in config.counter_copies:
        noisy = np.repeat(inputs, copies, axis=0)
        noisy = (noisy + rng.normal(0.0, COUNTER_NOISE, size=noisy.shape)).astype(np.float32)
        answered = gateway.serve(noisy)
        votes = answered["served"].reshape(base, copies)
        labels = majority(votes, setup.classes)
        own_labels = majority(answered["own"].reshape(base, copies), setup.classes)
        student = train_student(setup, inputs, labels, seed, recipe=recipe, init_seed=student_seed)
        chosen = distinct_marked(answered["marked"], answered["digests"])
        result = arbiter_test(student, setup, noisy[chosen], answered["served"][chosen], gateway.p0)
        row = {
            "copies": copies,
            "base_inputs": base,
            "queries": copies * base,
            "query_cost": copies,
            "marked_queries": int(answered["marked"].sum()),
            "marked_labels_in_training": int(np.sum(labels != own_labels)),
            "copies_agreeing_with_first": float(
                np.mean(answered["own"].reshape(base, copies) == answered["own"][::copies, None])
            ),
            "student_accuracy": accuracy(setup, student),
            "student": result,
        }
        perturbed.append(row)
        log(
            f"[{setup.task.name} seed {seed}] v={copies}: k={result['k']} m={result['m']} "
            f"log2p={result['log2_p']:.1f} acc={row['student_accuracy']:.4f}"
        )
    return {
        "rate": config.counter_rate,
        "noise": COUNTER_NOISE,
        "repeat": repeat,
        "perturbed": perturbed,
    }


# --- Summaries ---------------------------------------------------------------


def _p(value: float) -> str:
    return "1" if value == 0 else f"2^{value:.1f}"


def _epochs(row: dict[str, Any]) -> str:
    """The student's epochs: ``30`` (fixed) or ``best/run`` (early stopping)."""
    training = row.get("training") or {}
    if "best_epoch" in training:
        return f"{training['best_epoch']}/{training['epochs_run']}"
    return str(training.get("epochs", "?"))


def goal_table(runs: list[dict[str, Any]], print_: Any) -> dict[str, Any]:
    """The goal check over every student at n >= GOAL_SIZE and r <= GOAL_MAX_RATE:
    per (rate, variant, n), each seed's verdict at 2^-64 and accuracy gap to
    the original; the goal counts the students within GOAL_ACCURACY_POINTS."""
    keys = list(
        dict.fromkeys(
            (row["rate"], row["variant"], row["n"])
            for r in runs
            for row in r["detection"]
            if row["n"] >= GOAL_SIZE and Fraction(row["rate"]) <= GOAL_MAX_RATE
        )
    )
    table, failures = [], []
    checked = students = detected = 0
    if keys:
        print_(
            f"\ngoal table (n >= {GOAL_SIZE}, r <= 2 %; per seed: detected at 2^-64 '+' or "
            f"not '-', log2 p, gap to the original in points; '*' = within "
            f"{GOAL_ACCURACY_POINTS:g} points):"
        )
    for rate, variant, n in keys:
        cells, entry_rows = [], []
        for r in runs:
            row = next(
                (
                    row
                    for row in r["detection"]
                    if (row["rate"], row["variant"], row["n"]) == (rate, variant, n)
                ),
                None,
            )
            if row is None:
                continue
            gap = 100 * (r["owner_accuracy"] - row["student_accuracy"])
            hit = bool(row["student"]["detected_64"])
            close = gap <= GOAL_ACCURACY_POINTS
            students += 1
            detected += hit
            if close:
                checked += 1
                if not hit:
                    failures.append(
                        {
                            "seed": r["seed"],
                            "rate": rate,
                            "variant": variant,
                            "n": n,
                            "m": row["student"]["m"],
                            "k": row["student"]["k"],
                            "log2_p": row["student"]["log2_p"],
                            "gap_points": gap,
                        }
                    )
            entry_rows.append(
                {
                    "seed": r["seed"],
                    "detected_64": hit,
                    "log2_p": row["student"]["log2_p"],
                    "gap_points": gap,
                    "within_goal_accuracy": close,
                }
            )
            cells.append(
                f"{'+' if hit else '-'} {_p(row['student']['log2_p']):>9} "
                f"{gap:5.1f}{'*' if close else ' '}"
            )
        worst_p = max(e["log2_p"] for e in entry_rows)
        worst_gap = max(e["gap_points"] for e in entry_rows)
        all_hit = all(e["detected_64"] for e in entry_rows)
        table.append(
            {
                "rate": rate,
                "variant": variant,
                "n": n,
                "per_seed": entry_rows,
                "worst_log2_p": worst_p,
                "worst_gap_points": worst_gap,
                "detected_64_all_seeds": all_hit,
            }
        )
        print_(
            f"  r={rate:>6} {variant:>7} n={n:>5} | "
            + " | ".join(cells)
            + f" || worst: {'+' if all_hit else '-'} {_p(worst_p):>9} gap {worst_gap:5.1f}"
        )
    return {
        "table": table,
        "students": students,
        "detected": detected,
        "qualifying": checked,
        "failures": failures,
    }


def fewest_detected(rows: list[dict[str, Any]], key: str) -> int | None:
    """The fewest n from which on every larger n of the grid is detected."""
    ordered = sorted(rows, key=lambda r: r["n"])
    fewest = None
    for row in reversed(ordered):
        if not row["student"][key]:
            break
        fewest = row["n"]
    return fewest


def summarise(results: list[dict[str, Any]], print_: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    tasks = list(dict.fromkeys(r["task"] for r in results))
    for name in tasks:
        runs = [r for r in results if r["task"] == name]
        seeds = [r["seed"] for r in runs]
        print_(
            f"\n## {name} (K = {runs[0]['classes']}; owner trained on {runs[0]['owner_train']}, "
            f"thief pool {runs[0]['pool']}, test {runs[0]['test']}; seeds {seeds})"
        )
        print_("owner accuracy per seed: " + ", ".join(f"{r['owner_accuracy']:.4f}" for r in runs))
        print_("\nserved accuracy cost (points; per seed, worst):")
        cost_table = []
        for i, entry in enumerate(runs[0]["cost"]):
            per_seed = [r["cost"][i]["cost_points"] for r in runs]
            cost_table.append({"rate": entry["rate"], "per_seed": per_seed, "worst": max(per_seed)})
            print_(
                f"  r={entry['rate']:>6}: "
                + ", ".join(f"{c:5.2f}" for c in per_seed)
                + f"  worst {max(per_seed):.2f}"
            )
        print_("\ndetection (worst seed: largest log2 p; m/k per seed):")
        print_(
            f"  {'rate':>6} {'var':>7} {'n':>5} | {'student m/k per seed':<26} "
            f"{'worst log2p':>11} | {'student accuracy per seed':<23} {'gap':>5} | "
            f"{'epoch':<17} | {'innocent m/k':<22} {'best log2p':>10}"
        )
        det_table = []
        keys = list(
            dict.fromkeys((row["rate"], row["variant"], row["n"]) for row in runs[0]["detection"])
        )
        for rate, variant, n in keys:
            per = [
                next(
                    row
                    for row in r["detection"]
                    if (row["rate"], row["variant"], row["n"]) == (rate, variant, n)
                )
                for r in runs
            ]
            worst = max(p["student"]["log2_p"] for p in per)
            innocent_best = min(p["innocent"]["log2_p"] for p in per)
            gap = max(
                100 * (r["owner_accuracy"] - p["student_accuracy"]) for r, p in zip(runs, per)
            )
            det_table.append(
                {
                    "rate": rate,
                    "variant": variant,
                    "n": n,
                    "student_log2_p_per_seed": [p["student"]["log2_p"] for p in per],
                    "student_worst_log2_p": worst,
                    "detected_64_all_seeds": all(p["student"]["detected_64"] for p in per),
                    "detected_32_all_seeds": all(p["student"]["detected_32"] for p in per),
                    "innocent_log2_p_per_seed": [p["innocent"]["log2_p"] for p in per],
                    "innocent_detected_32_any_seed": any(p["innocent"]["detected_32"] for p in per),
                    "worst_accuracy_gap_points": gap,
                    "student_accuracy_per_seed": [p["student_accuracy"] for p in per],
                    "accuracy_gap_points_per_seed": [
                        100 * (r["owner_accuracy"] - p["student_accuracy"])
                        for r, p in zip(runs, per)
                    ],
                    "training_per_seed": [p.get("training") for p in per],
                }
            )
            mk = " ".join(f"{p['student']['m']}/{p['student']['k']}" for p in per)
            imk = " ".join(f"{p['innocent']['m']}/{p['innocent']['k']}" for p in per)
            acc = " ".join(f"{p['student_accuracy']:.4f}" for p in per)
            epochs = " ".join(_epochs(p) for p in per)
            print_(
                f"  {rate:>6} {variant:>7} {n:>5} | {mk:<26} {_p(worst):>11} | "
                f"{acc:<23} {gap:+5.1f} | {epochs:<17} | {imk:<22} {_p(innocent_best):>10}"
            )
        fewest = []
        for rate, variant in dict.fromkeys((k[0], k[1]) for k in keys):
            entry: dict[str, Any] = {"rate": rate, "variant": variant}
            for key, label in (("detected_64", "2^-64"), ("detected_32", "2^-32")):
                per_seed = [
                    fewest_detected(
                        [
                            row
                            for row in r["detection"]
                            if (row["rate"], row["variant"]) == (rate, variant)
                        ],
                        key,
                    )
                    for r in runs
                ]
                entry[label] = per_seed
                entry[f"{label} worst"] = (
                    None
                    if any(v is None for v in per_seed)
                    else max(v for v in per_seed if v is not None)
                )
            fewest.append(entry)
        print_("\nfewest n detected (from there on up the grid; per seed; '-' = never):")
        for entry in fewest:

            def show(values: list[int | None]) -> str:
                return " ".join("-" if v is None else str(v) for v in values)

            print_(
                f"  r={entry['rate']:>6} {entry['variant']:>4}: alpha 2^-64: "
                f"{show(entry['2^-64'])}   alpha 2^-32: {show(entry['2^-32'])}"
            )
        goal = goal_table(runs, print_)
        checked, failures = goal["qualifying"], goal["failures"]
        if checked == 0:
            verdict = "vacuous: no student qualifies"
            if runs[0]["pool"] < GOAL_SIZE:
                verdict += f" (pool too small for the goal: {runs[0]['pool']} < {GOAL_SIZE})"
        elif failures:
            verdict = f"FAILS: {len(failures)} of {checked} qualifying students undetected"
        else:
            verdict = f"holds: {checked} of {checked} qualifying students detected"
        print_(
            f"\ngoal check (every student within {GOAL_ACCURACY_POINTS:g} points trained on "
            f">= {GOAL_SIZE} answers at r <= 2 % detected at 2^-64): {verdict}"
        )
        print_(
            f"  without the accuracy condition: {goal['detected']} of {goal['students']} "
            f"students at n >= {GOAL_SIZE}, r <= 2 % detected at 2^-64"
        )
        variants = list(dict.fromkeys(e["variant"] for e in goal["table"]))
        for variant in variants:
            entries = [e for e in goal["table"] if e["variant"] == variant]
            rows_ = [x for e in entries for x in e["per_seed"]]
            close = [x for x in rows_ if x["within_goal_accuracy"]]
            print_(
                f"  {variant}: {sum(x['detected_64'] for x in rows_)} of {len(rows_)} detected; "
                f"within {GOAL_ACCURACY_POINTS:g} points: {len(close)}, of them detected "
                f"{sum(x['detected_64'] for x in close)}"
            )
        for f in failures:
            print_(
                f"  undetected: seed {f['seed']} r={f['rate']} {f['variant']} n={f['n']} "
                f"m/k={f['m']}/{f['k']} p={_p(f['log2_p'])} gap {f['gap_points']:.1f} points"
            )
        counter = [r["countermeasures"] for r in runs if "countermeasures" in r]
        if counter:
            print_(f"\ncountermeasures (r = {counter[0]['rate']}, noise sd {counter[0]['noise']}):")
            for r in runs:
                c = r["countermeasures"]
                rep = c["repeat"]
                print_(
                    f"  seed {r['seed']}: (a) asked twice: {rep['answers_changed']} of "
                    f"{rep['queries'] // 2} answers changed ({rep['answers_changed_respelt']} "
                    "with -0.0 spellings): no effect"
                )
                base_n = c["perturbed"][0]["base_inputs"] if c["perturbed"] else None
                base_row = next(
                    (
                        row
                        for row in r["detection"]
                        if row["rate"] == c["rate"]
                        and row["variant"] == "hard"
                        and row["n"] == base_n
                    ),
                    None,
                )
                if base_row:
                    s = base_row["student"]
                    print_(
                        f"      v=1 (plain, {base_row['n']} queries): m/k={s['m']}/{s['k']} "
                        f"p={_p(s['log2_p'])} acc={base_row['student_accuracy']:.4f}"
                    )
                for row in c["perturbed"]:
                    s = row["student"]
                    print_(
                        f"      (b) v={row['copies']} ({row['queries']} queries, "
                        f"{row['query_cost']}x): marked queries {row['marked_queries']}, "
                        f"marked labels left after majority {row['marked_labels_in_training']}"
                        f"; student m/k={s['m']}/{s['k']} p={_p(s['log2_p'])} "
                        f"acc={row['student_accuracy']:.4f}; copies keep the model's answer "
                        f"{100 * row['copies_agreeing_with_first']:.1f} %"
                    )
        summary[name] = {
            "cost": cost_table,
            "detection": det_table,
            "fewest_n": fewest,
            "goal_check": {
                "verdict": verdict,
                "qualifying": checked,
                "failures": failures,
                "any_accuracy_students": goal["students"],
                "any_accuracy_detected": goal["detected"],
                "table": goal["table"],
            },
        }
    return summary


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: one seed, n in (250, 1000), r in (2 %%, 5 %%), 20 000 generated samples",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument(
        "--rates",
        nargs="+",
        default=None,
        help="detection rates as fractions (1/50) or decimals (0.02)",
    )
    parser.add_argument("--cost-rates", nargs="+", default=None)
    parser.add_argument("--generated-samples", type=int, default=None)
    parser.add_argument("--counter-task", default=COUNTER_TASK)
    parser.add_argument("--counter-rate", default=COUNTER_RATE)
    parser.add_argument("--counter-base", type=int, default=COUNTER_BASE)
    parser.add_argument("--counter-copies", type=int, nargs="*", default=list(COUNTER_COPIES))
    parser.add_argument("--no-soft", dest="soft", action="store_false")
    parser.add_argument(
        "--no-early-stop",
        dest="early_stop",
        action="store_false",
        help="without the careful thief (early stopping on his own held-out answers)",
    )
    parser.add_argument("--holdout", type=float, default=HOLDOUT_SHARE)
    parser.add_argument("--patience", type=int, default=PATIENCE)
    parser.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        help="the careful thief's epoch cap (default: the fixed recipe's epochs)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="summarise the runs of these result files (of separate processes) instead of running",
    )
    parser.add_argument("--out", type=Path, default=None)
    config = parser.parse_args(argv)
    quick = config.quick
    if config.seeds is None:
        config.seeds = [1] if quick else list(DEFAULT_SEEDS)
    if config.tasks is None:
        config.tasks = list(TASKS)
    if config.sizes is None and quick:
        config.sizes = [250, 1000]
    if config.rates is None:
        config.rates = ["1/50", "1/20"] if quick else list(DETECTION_RATES)
    if config.cost_rates is None:
        config.cost_rates = list(COST_RATES)
    if config.generated_samples is None:
        config.generated_samples = 20_000 if quick else _GENERATED_SAMPLES
    if quick:
        config.counter_base = min(config.counter_base, 1000)
    config.rates = [str(Fraction(r)) for r in config.rates]
    config.cost_rates = [str(Fraction(r)) for r in config.cost_rates]
    config.counter_rate = str(Fraction(config.counter_rate))
    return config


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns (and with --out writes) the results."""
    config = parse_arguments(argv)
    torch.set_num_threads(config.threads)
    started = time.perf_counter()

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    results = []
    merged: list[dict[str, Any]] = []
    if config.merge:
        merged = [json.loads(path.read_text()) for path in config.merge]
        results = [run for part in merged for run in part["runs"]]
        results.sort(key=lambda r: (TASKS.index(r["task"]), r["seed"]))
        print(
            "merged: "
            + ", ".join(
                f"{path} ({part['seconds']:.0f} s)" for path, part in zip(config.merge, merged)
            )
        )
    for name in [] if config.merge else config.tasks:
        for seed in config.seeds:
            results.append(run_seed(name, seed, config, log))
    summary = summarise(results, print)
    seconds = time.perf_counter() - started
    if config.merge:
        seconds = max(part["seconds"] for part in merged)
    print(f"\ntotal {seconds:.0f} s")
    output = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(config).items()},
        "alpha": {"strong": "2^-64", "weak": "2^-32"},
        "seconds": seconds,
        "runs": results,
        "summary": summary,
    }
    if config.out is not None:
        config.out.write_text(json.dumps(output, indent=1, default=_json_default) + "\n")
    return output


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, float) and math.isinf(value):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


if __name__ == "__main__":
    main()
