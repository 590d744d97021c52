"""White-box evidence on the digits CNN: what a weights watermark survives, and what breaks it.

Two reductions of the committed ``classifier.1.weight`` are measured, each
in its own part (``--only`` runs one): ``mean-out`` (Uchida et al.), which
a function-preserving rearrangement of the units defeats, and
``canonical`` (``specs/derivation.md`` 7.11.1), which undoes such
rearrangements.

**mean-out.** The owner commits to ``WeightsFamily("classifier.1.weight", (64, 512))``
(mean-out reduction, so M = 512) with ``ClassLabels(2)`` and T = 256 bits,
derives the rows and bits from the commitment, and trains the digits CNN from
scratch with the regulariser ``lam * BCE(sigmoid(X w), b)`` added to the
cross-entropy (same seed, data order and recipe as the unmarked baseline).
The cost is measured over five seeds: clean test accuracy, unmarked vs
marked (mean drop <= 0.5 percentage points; one test image is 0.28), and bit
accuracy on all 256 bits (>= 99 % for every seed). The attacks start from
the seed-1 marked model.

Each model below is then saved as safetensors and put through the whole
arbiter protocol (claim, challenge of k = 128 rows chosen by the arbiter's
VRF, sealed reveal, query of a ``WeightsSuspect`` with the rows among decoys,
signed verdict, offline ``verify_bundle``) at alpha = 2^-64, whose threshold
is ``decision_threshold(128, 1/2, 2^-64)`` matches, each case at an arbiter
that has not seen the commitment before (one arbiter excludes the rows that
earlier cases revealed and halves alpha with each). "any k" says whether the
verdict would hold for *every* possible challenge of 128 of the 256 rows,
i.e. whether at most 128 - threshold bits are wrong.

Models:

- the released (marked) model, and an unmarked model of the same recipe;
- fine-tuned: all layers, 30 epochs on 50 % of the training data, Adam lr 1e-3;
- pruned: global magnitude pruning, the smallest 50 / 70 / 80 / 90 % of all
  conv and linear weights set to zero, then 5 epochs of fine-tuning (50 %
  data, lr 1e-3) with the mask kept (this small CNN does not survive 90 %:
  its clean accuracy is reported next to the verdict);
- int8: every weight tensor rounded to 255 levels (per-tensor symmetric
  scale) and stored dequantised;
- output rows of ``classifier.1`` permuted (with its bias and the matching
  columns of ``classifier.3``): the same function, the same mean over rows;
- input columns of ``classifier.1`` permuted with the matching permutation of
  ``features.2``'s 32 output channels (each channel's 16 columns move
  together): the same function, the reduced vector permuted;
- ``classifier.1`` re-initialised, then 10 epochs of fine-tuning of all
  layers (50 % data, lr 1e-3);
- a thief's own weights commitment checked on the stolen marked model.

**canonical.** The owner also commits to
``WeightsFamily("classifier.1.weight", (64, 512), "canonical", "rademacher",
producer="features.2.weight", consumer="classifier.3.weight",
unit_size=16)`` (T = 256, M = 512) and marks the CNN against it with lam = 0.5
(``--canonical-lam``; same recipe otherwise), for seeds 1, 2 and 3; each
seed also gets a mean-out marked model (lam = 0.1, ``--lam``) and an unmarked
one. Reported per seed: clean accuracy, unmarked vs marked (mean drop <= 0.5
percentage points; the worst seed's is shown too), and bit accuracy (>= 99 %
for every seed); then, for the mean-out and the canonical marked model of
each seed, the clean accuracy and the bits kept of 256 (and "any k") after
each of these, all computed from the suspect's own weights and shown for the
worst seed:

- rearrangements of ``secmark.evaluate.obfuscation``, each alone and all
  in one model: the units of ``features.2`` (32) and of ``classifier.1``
  (64) permuted, or rescaled by factors drawn log-uniformly from
  [0.05, 20]; the units of ``features.0`` rescaled likewise; 16 dummy units
  on ``features.2`` and 32 on ``classifier.1``; a unit of each split in two
  (shares 0.25 and 0.75); a unit of each split into a clique that cancels
  in part (shares 3 and -2). Each must keep the function
  (``digits.forward_state``'s logits on the 360 test images within 1e-4 of
  the model's own; the largest difference is reported), and after each the
  canonical verdict must hold for every challenge, on every seed. A
  mean-out suspect whose committed parameter changed shape (dummies,
  splits) is refused: the check does not apply to it;
- the attacks of the mean-out part: fine-tuning, pruning 50 / 70 / 80 / 90 %
  then fine-tuning, int8, ``classifier.1`` re-initialised then 10 epochs.

The null: five unmarked CNNs (seeds 11 to 15, the clean recipe), their
bits against the owner's mean-out and canonical rows: matches of 5 x 256
and the two-sided exact binomial p-value at 1/2 (>= 1e-3 required).
Finally the seed-1 canonical model with all rearrangements at once, saved
as safetensors, goes through one whole arbiter case (as above), which must
be upheld.

Run: python3 benchmarks/whitebox.py [--only mean-out|canonical] [--threads N] [--lam L]
    [--canonical-lam L]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from functools import partial
from pathlib import Path

import numpy as np
import safetensors.numpy
import torch
from torch import nn
from torch.nn.utils import prune

from secmark.crypto import IdentityKeys
from secmark.embed import (
    WeightsEmbedReport,
    WeightsRegularizer,
    embed_weights,
    evaluate_accuracy,
    save_state,
    train,
    weights_rows,
)
from secmark.errors import SuspectError
from secmark.evaluate.obfuscation import (
    add_dummy_units,
    permute_units,
    rescale_units,
    split_unit,
)
from secmark.examples import digits
from secmark.messages import create_identity
from secmark.messages.commitment import Commitment, create_commitment
from secmark.messages.document import SignedDocument
from secmark.messages.families import WeightsFamily
from secmark.messages.labels import ClassLabels
from secmark.models import WeightsSuspect
from secmark.protocol.arbiter import Arbiter, ArbiterPolicy
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.owner import answer_challenge, file_claim
from secmark.stats import binomial_tail, decision_threshold
from secmark.timestamp import TimestampAuthority, TrustStore
from secmark.timestamp.evidence import collect_evidence

PARAMETER = "classifier.1.weight"
FAMILY = WeightsFamily(PARAMETER, (64, 512), "mean-out", "rademacher")
CANONICAL = WeightsFamily(
    PARAMETER,
    (64, 512),
    "canonical",
    "rademacher",
    producer="features.2.weight",
    consumer="classifier.3.weight",
    unit_size=16,
)
BITS = 256
CHALLENGE = 128
ALPHA = Fraction(1, 2**64)
SEEDS = (1, 2, 3, 4, 5)
CANONICAL_SEEDS = (1, 2, 3)
NULL_SEEDS = (11, 12, 13, 14, 15)
DEFAULT_LAM = 0.1
DEFAULT_CANONICAL_LAM = 0.5
ATTACK_LR = 1e-3
FINE_TUNE_EPOCHS = 30
PRUNE_EPOCHS = 5
REINIT_EPOCHS = 10
PRUNE_RATES = (0.5, 0.7, 0.8, 0.9)
ATTACK_SEED = 7

READERS = {"features.0": "features.2", "features.2": "classifier.1", "classifier.1": "classifier.3"}
"""The layer that reads each hidden layer's units."""
SCALES = (0.05, 20.0)
DUMMY_UNITS = {"features.2": 16, "classifier.1": 32}
SPLIT_UNIT, SPLIT_SHARE = 3, 0.25
CLIQUE_UNIT, CLIQUE_SHARE = 7, 3.0
"""Shares 3 and 1 - 3 = -2: the copy cancels two thirds of the original."""

MIN_BIT_ACCURACY = 0.99
MAX_CLEAN_DROP_POINTS = 0.5
SAME_FUNCTION_TOLERANCE = 1e-4
MIN_NULL_P = 1e-3

State = dict[str, np.ndarray]
Rearrangement = Callable[[State, np.random.Generator], State]


@dataclass(frozen=True)
class Setting:
    """What both parts share: the owner, the data, the decision rule and the options."""

    owner: IdentityKeys
    data: digits.DigitsData
    attacker_data: digits.DigitsData
    threshold: int
    lam: float
    canonical_lam: float
    threads: int

    @property
    def wrong_allowed(self) -> int:
        """Wrong bits of 256 that still leave every challenge of 128 above the threshold."""
        return CHALLENGE - self.threshold


def fixed_keys(label: str) -> IdentityKeys:
    def seed(part: str) -> bytes:
        return hashlib.sha256(f"secmark whitebox benchmark {label} {part}".encode()).digest()

    return IdentityKeys(seed("signing"), seed("vrf"), seed("encryption"))


def commit(
    keys: IdentityKeys, label: str, family: WeightsFamily = FAMILY
) -> SignedDocument[Commitment]:
    return create_commitment(
        keys,
        family=family,
        labels=ClassLabels(2),
        size=BITS,
        model_label=f"secmark digits CNN, white-box ({label})",
        nonce=hashlib.sha256(f"secmark whitebox benchmark nonce {label}".encode()).digest(),
        created=datetime(2025, 1, 1, tzinfo=timezone.utc),
    )


def half_data(data: digits.DigitsData) -> digits.DigitsData:
    """The attacker's data: a fixed half of the training split."""
    keep = np.random.default_rng(ATTACK_SEED).permutation(len(data.train_labels))[
        : len(data.train_labels) // 2
    ]
    return digits.DigitsData(
        data.train_inputs[keep], data.train_labels[keep], data.test_inputs, data.test_labels
    )


def mark(
    data: digits.DigitsData,
    family: WeightsFamily,
    rows: np.ndarray,
    bits: np.ndarray,
    lam: float,
    seed: int,
) -> tuple[nn.Module, WeightsEmbedReport]:
    """The digits CNN of ``seed`` trained from scratch with the regulariser of ``family``."""
    model = digits.new_model(seed)
    report = embed_weights(
        model,
        digits.train_loader(data, seed=seed),
        WeightsRegularizer(model, family, rows, bits, lam),
        epochs=digits.DEFAULT_EPOCHS,
        lr=digits.DEFAULT_LR,
        seed=seed,
        holdout=data.test,
        progress=False,
    )
    return model, report


def unmarked_model(data: digits.DigitsData, seed: int) -> nn.Module:
    model = digits.new_model(seed)
    digits.train_clean(model, data, seed=seed)
    return model


def fine_tune(model: nn.Module, data: digits.DigitsData, epochs: int) -> None:
    train(
        model,
        digits.train_loader(data, seed=ATTACK_SEED),
        epochs=epochs,
        lr=ATTACK_LR,
        seed=ATTACK_SEED,
        progress=False,
    )


def weight_modules(model: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def layer(model: nn.Module, name: str) -> nn.Conv2d | nn.Linear:
    module = model.get_submodule(name)
    assert isinstance(module, (nn.Conv2d, nn.Linear))
    return module


def bias(module: nn.Conv2d | nn.Linear) -> torch.Tensor:
    assert module.bias is not None
    return module.bias


def tuned(model: nn.Module, data: digits.DigitsData) -> nn.Module:
    attacked = copy.deepcopy(model)
    fine_tune(attacked, data, FINE_TUNE_EPOCHS)
    return attacked


def pruned(model: nn.Module, data: digits.DigitsData, rate: float) -> nn.Module:
    attacked = copy.deepcopy(model)
    prune.global_unstructured(
        [(module, "weight") for module in weight_modules(attacked)],
        pruning_method=prune.L1Unstructured,
        amount=rate,
    )
    # The pruning mask stays in force while fine-tuning (weight = weight_orig * mask).
    fine_tune(attacked, data, PRUNE_EPOCHS)
    for module in weight_modules(attacked):
        prune.remove(module, "weight")
    return attacked


def quantised(model: nn.Module) -> nn.Module:
    attacked = copy.deepcopy(model)
    with torch.no_grad():
        for module in weight_modules(attacked):
            weight = module.weight
            scale = weight.abs().max() / 127
            weight.copy_(torch.round(weight / scale).clamp(-127, 127) * scale)
    return attacked


def permuted_outputs(model: nn.Module) -> nn.Module:
    attacked = copy.deepcopy(model)
    order = torch.from_numpy(np.random.default_rng(ATTACK_SEED).permutation(64))
    hidden, output = layer(attacked, "classifier.1"), layer(attacked, "classifier.3")
    with torch.no_grad():
        hidden.weight.copy_(hidden.weight[order])
        bias(hidden).copy_(bias(hidden)[order])
        output.weight.copy_(output.weight[:, order])
    return attacked


def permuted_inputs(model: nn.Module) -> nn.Module:
    attacked = copy.deepcopy(model)
    channels = torch.from_numpy(np.random.default_rng(ATTACK_SEED).permutation(32))
    conv, hidden = layer(attacked, "features.2"), layer(attacked, "classifier.1")
    # Flatten orders features channel-major: channel c owns columns 16c..16c+15.
    columns = (channels[:, None] * 16 + torch.arange(16)[None, :]).reshape(-1)
    with torch.no_grad():
        conv.weight.copy_(conv.weight[channels])
        bias(conv).copy_(bias(conv)[channels])
        hidden.weight.copy_(hidden.weight[:, columns])
    return attacked


def reinitialised(model: nn.Module, data: digits.DigitsData) -> nn.Module:
    attacked = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ATTACK_SEED)
        layer(attacked, "classifier.1").reset_parameters()
    fine_tune(attacked, data, REINIT_EPOCHS)
    return attacked


def state(model: nn.Module) -> State:
    """A model's state dict as numpy arrays."""
    return {name: value.detach().cpu().numpy().copy() for name, value in model.state_dict().items()}


def units(values: State, name: str) -> int:
    return int(values[f"{name}.bias"].shape[0])


def permuted(name: str) -> Rearrangement:
    def apply(values: State, rng: np.random.Generator) -> State:
        return permute_units(values, name, READERS[name], rng.permutation(units(values, name)))

    return apply


def rescaled(name: str) -> Rearrangement:
    def apply(values: State, rng: np.random.Generator) -> State:
        low, high = np.log(SCALES)
        scales = np.exp(rng.uniform(low, high, units(values, name)))
        return rescale_units(values, name, READERS[name], scales)

    return apply


def with_dummies(name: str) -> Rearrangement:
    def apply(values: State, rng: np.random.Generator) -> State:
        return add_dummy_units(values, name, READERS[name], DUMMY_UNITS[name], rng)

    return apply


def split(name: str, unit: int, share: float) -> Rearrangement:
    def apply(values: State, rng: np.random.Generator) -> State:
        return split_unit(values, name, READERS[name], unit, share)

    return apply


REARRANGEMENTS: tuple[tuple[str, Rearrangement], ...] = (
    ("features.2 units permuted", permuted("features.2")),
    ("classifier.1 units permuted", permuted("classifier.1")),
    ("features.2 units rescaled", rescaled("features.2")),
    ("classifier.1 units rescaled", rescaled("classifier.1")),
    ("features.0 units rescaled", rescaled("features.0")),
    ("features.2 + 16 dummy units", with_dummies("features.2")),
    ("classifier.1 + 32 dummy units", with_dummies("classifier.1")),
    ("features.2 unit split", split("features.2", SPLIT_UNIT, SPLIT_SHARE)),
    ("classifier.1 unit split", split("classifier.1", SPLIT_UNIT, SPLIT_SHARE)),
    ("features.2 clique that cancels", split("features.2", CLIQUE_UNIT, CLIQUE_SHARE)),
    ("classifier.1 clique that cancels", split("classifier.1", CLIQUE_UNIT, CLIQUE_SHARE)),
)
COMBINED = "all rearrangements at once"


def rearranged(model: nn.Module, steps: Sequence[Rearrangement]) -> State:
    """The model's state after ``steps`` in order, drawing from one generator."""
    rng = np.random.default_rng(ATTACK_SEED)
    values = state(model)
    for step in steps:
        values = step(values, rng)
    return values


def attacked_state(attack: Callable[[nn.Module], nn.Module]) -> Callable[[nn.Module], State]:
    return lambda model: state(attack(model))


def logits(values: State, data: digits.DigitsData) -> torch.Tensor:
    with torch.no_grad():
        return digits.forward_state(values, torch.from_numpy(data.test_inputs))


def bits_kept(
    values: State, family: WeightsFamily, rows: np.ndarray, bits: np.ndarray
) -> int | None:
    """Bits of ``rows`` the suspect ``values`` answers as committed; None: refused."""
    try:
        suspect = WeightsSuspect.from_family(values, family)
    except SuspectError:
        return None
    return int(np.sum(suspect.predict(rows) == bits))


def two_sided_p(trials: int, matches: int) -> float:
    """The exact two-sided binomial p-value of ``matches`` of ``trials`` at 1/2."""
    upper = binomial_tail(trials, matches, 0.5)
    lower = binomial_tail(trials, trials - matches, 0.5)  # P[X <= matches], by symmetry
    return min(1.0, 2 * min(upper, lower))


@dataclass(frozen=True)
class Attack:
    """A model to check, and the outcome required of it (None: measured only)."""

    name: str
    make: Callable[[], nn.Module]
    expected: str | None
    preserves_function: bool = False


@dataclass(frozen=True)
class Row:
    name: str
    expected: str | None
    clean_accuracy: float
    same_function: bool | None
    bits_matched: int
    matches: int
    threshold: int
    holds: bool
    outcome: str
    any_challenge: bool


@dataclass(frozen=True)
class Case:
    """What the canonical part does to a marked model (its state afterwards)."""

    name: str
    make: Callable[[nn.Module], State]
    keeps_function: bool


@dataclass(frozen=True)
class Outcome:
    """One case on one seed's marked model of one family."""

    clean_accuracy: float
    kept: int | None
    logit_difference: float | None


class Court:
    """An in-process TSA, and per case a fresh arbiter (same keys) and the owner's side.

    One arbiter excludes the rows that earlier cases of a commitment
    revealed and halves alpha with each (``Arbiter.challenge``): 256 rows
    allow two challenges of 128 there. Every case here is the commitment's
    first, as at an arbiter that has not seen it.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        authority = TimestampAuthority.initialize(
            folder / "tsa", passphrase=None, allow_unencrypted=True
        )
        self.respond = authority.respond
        self.trust = TrustStore(roots=(authority.root_certificate,))
        self.arbiter_keys = fixed_keys("arbiter")
        self.arbiter_identity = create_identity(self.arbiter_keys, "benchmark arbiter")
        self.cases = 0
        self.evidence: dict[str, bytes] = {}

    def case(
        self, keys: IdentityKeys, signed: SignedDocument[Commitment], path: Path
    ) -> tuple[int, int, bool, str]:
        """(matches, threshold, holds, outcome) of a claim on the model file ``path``."""
        if signed.digest not in self.evidence:
            self.evidence[signed.digest] = collect_evidence(signed.digest, [self.respond]).to_json()
        family = signed.document.family
        assert isinstance(family, WeightsFamily)
        suspect = WeightsSuspect.from_family(path, family)
        claim = file_claim(
            keys,
            commitment=signed.to_json(),
            commitment_evidence=self.evidence[signed.digest],
            suspect=suspect.describe(),
            arbiter=self.arbiter_identity,
        )
        self.cases += 1
        arbiter = Arbiter(
            self.arbiter_keys,
            self.arbiter_identity,
            self.trust,
            self.folder / f"arbiter-{self.cases}",
            policy=ArbiterPolicy(challenge_size=CHALLENGE, alpha=ALPHA),
        )
        case = arbiter.file_claim(claim)
        challenge = arbiter.challenge(case)
        arbiter.receive_reveal(
            case, answer_challenge(keys, signed, challenge, self.arbiter_identity)
        )
        result = arbiter.query(case, suspect)
        arbiter.decide(case)
        report = verify_bundle(case.read("bundle.json"), self.trust)
        return result.matches, result.test.threshold, bool(result.test.decision), report.outcome


def embedding_cost(
    data: digits.DigitsData, rows: np.ndarray, bits: np.ndarray, lam: float
) -> tuple[nn.Module, nn.Module, list[tuple[int, float, float, float, float]]]:
    """Train an unmarked and a marked model per seed; return the seed-1 pair
    and, per seed, (seed, unmarked acc, marked acc, bit acc, embedding s)."""
    figures = []
    kept: tuple[nn.Module, nn.Module] | None = None
    for seed in SEEDS:
        unmarked = unmarked_model(data, seed)
        marked, report = mark(data, FAMILY, rows, bits, lam, seed)
        figures.append(
            (
                seed,
                evaluate_accuracy(unmarked, data.test),
                report.clean_accuracy_after or 0.0,
                report.bit_accuracy_after,
                report.seconds,
            )
        )
        kept = kept or (unmarked, marked)
    assert kept is not None
    return kept[0], kept[1], figures


def print_checks(checks: list[tuple[str, bool, str]]) -> bool:
    print()
    for text, passed, target in checks:
        print(f"[{'PASS' if passed else 'FAIL'}] {text}   (target {target})")
    return all(passed for _, passed, _ in checks)


def mean_out_part(setting: Setting) -> bool:
    """The mean-out part; whether every check passed."""
    owner, data, attacker_data = setting.owner, setting.data, setting.attacker_data
    thief = fixed_keys("thief")
    owner_commitment, thief_commitment = commit(owner, "owner"), commit(thief, "thief")
    rows, bits = weights_rows(owner, owner_commitment)
    thief_rows, thief_bits = weights_rows(thief, thief_commitment)
    print(
        f"digits CNN, {PARAMETER} {FAMILY.parameter_shape} mean-out -> M = {FAMILY.projected_size}; "
        f"T = {BITS} bits, k = {CHALLENGE}, alpha = 2^-64 -> threshold {setting.threshold} of "
        f"{CHALLENGE}; lam = {setting.lam}, Adam lr {digits.DEFAULT_LR}, {digits.DEFAULT_EPOCHS} "
        f"epochs; {setting.threads} thread(s), device cpu"
    )

    unmarked, marked, figures = embedding_cost(data, rows, bits, setting.lam)
    print()
    print("seed | clean acc unmarked | clean acc marked | drop (pp) | bit acc marked | s embed")
    for seed, clean, marked_clean, bit_accuracy, seconds in figures:
        print(
            f"{seed:4d} | {clean:18.2%} | {marked_clean:16.2%} | {100 * (clean - marked_clean):+9.2f} | "
            f"{bit_accuracy:14.2%} | {seconds:7.2f}"
        )
    drop = 100 * (statistics.fmean(f[1] for f in figures) - statistics.fmean(f[2] for f in figures))
    worst_bits = min(f[3] for f in figures)

    def same_function(model: nn.Module) -> bool:
        with torch.no_grad():
            inputs = torch.from_numpy(data.test_inputs)
            return bool(torch.allclose(model(inputs), marked(inputs), atol=1e-4))

    attacks = [
        Attack("released (marked) model", lambda: marked, "upheld"),
        Attack(
            f"fine-tuned {FINE_TUNE_EPOCHS} ep, 50 % data",
            lambda: tuned(marked, attacker_data),
            "upheld",
        ),
        *[
            Attack(
                f"pruned {rate:.0%} + {PRUNE_EPOCHS} ep fine-tune",
                lambda rate=rate: pruned(marked, attacker_data, rate),  # type: ignore[misc]
                "upheld",
            )
            for rate in PRUNE_RATES
        ],
        Attack("int8 quantised (per tensor)", lambda: quantised(marked), "upheld"),
        Attack("classifier.1 output rows permuted", lambda: permuted_outputs(marked), None, True),
        Attack("classifier.1 input columns permuted", lambda: permuted_inputs(marked), None, True),
        Attack(
            f"classifier.1 re-initialised + {REINIT_EPOCHS} ep",
            lambda: reinitialised(marked, attacker_data),
            None,
        ),
        Attack("unmarked model, same recipe", lambda: unmarked, "rejected"),
    ]
    results: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        court = Court(Path(folder))
        for position, attack in enumerate(attacks):
            model = attack.make()
            path = save_state(model, Path(folder) / f"model-{position}.safetensors")
            matched = int(np.sum(WeightsSuspect.from_family(path, FAMILY).predict(rows) == bits))
            matches, row_threshold, holds, outcome = court.case(owner, owner_commitment, path)
            results.append(
                Row(
                    attack.name,
                    attack.expected,
                    evaluate_accuracy(model, data.test),
                    same_function(model) if attack.preserves_function else None,
                    matched,
                    matches,
                    row_threshold,
                    holds,
                    outcome,
                    BITS - matched <= setting.wrong_allowed,
                )
            )
        stolen = Path(folder) / "model-0.safetensors"
        thief_matched = int(
            np.sum(WeightsSuspect.from_family(stolen, FAMILY).predict(thief_rows) == thief_bits)
        )
        matches, row_threshold, holds, outcome = court.case(thief, thief_commitment, stolen)
        results.append(
            Row(
                "thief's own commitment, stolen model",
                "rejected",
                evaluate_accuracy(marked, data.test),
                None,
                thief_matched,
                matches,
                row_threshold,
                holds,
                outcome,
                BITS - thief_matched <= setting.wrong_allowed,
            )
        )

    print()
    print(
        f"{'model (seed 1)':38} | clean acc | same fn | bits of {BITS}    | arbiter k={CHALLENGE}    | "
        "verdict  | any k | required"
    )
    for row in results:
        same = "-" if row.same_function is None else ("yes" if row.same_function else "NO")
        print(
            f"{row.name:38} | {row.clean_accuracy:9.2%} | {same:7} | "
            f"{row.bits_matched:3d} = {row.bits_matched / BITS:7.2%} | "
            f"{row.matches:3d}/{CHALLENGE} (>= {row.threshold}) | {row.outcome:8} | "
            f"{'yes' if row.any_challenge else 'no':5} | {row.expected or 'measured'}"
        )

    required = [row for row in results if row.expected is not None]
    failed = [row.name for row in required if row.outcome != row.expected]
    passed = print_checks(
        [
            (
                f"bit accuracy on all {BITS} bits, worst of {len(SEEDS)} seeds: {worst_bits:.2%}",
                worst_bits >= MIN_BIT_ACCURACY,
                f">= {MIN_BIT_ACCURACY:.0%}",
            ),
            (
                f"clean accuracy drop, mean of {len(SEEDS)} seeds: {drop:+.2f} pp",
                drop <= MAX_CLEAN_DROP_POINTS,
                f"<= {MAX_CLEAN_DROP_POINTS} pp",
            ),
            (
                f"required verdicts (upheld after fine-tuning, pruning, int8; rejected for the "
                f"unmarked model and the thief's commitment): {len(required) - len(failed)} of "
                f"{len(required)}" + (f"; wrong: {', '.join(failed)}" if failed else ""),
                not failed,
                f"{len(required)}",
            ),
        ]
    )

    by_name = {row.name: row for row in results}
    output_rows = by_name["classifier.1 output rows permuted"]
    input_columns = by_name["classifier.1 input columns permuted"]
    reinit = by_name[f"classifier.1 re-initialised + {REINIT_EPOCHS} ep"]
    print()
    print("what breaks it (measured above):")
    print(
        f"  permuting the output rows of {PARAMETER} (same function: {output_rows.same_function}): "
        f"{output_rows.bits_matched}/{BITS} bits, {output_rows.outcome}; the mean over rows is "
        "invariant to their order, so this attack does nothing against mean-out"
    )
    print(
        f"  permuting its input columns with features.2's channels (same function: "
        f"{input_columns.same_function}): {input_columns.bits_matched}/{BITS} bits, "
        f"{input_columns.outcome}; a function-preserving permutation defeats the white-box check "
        "(black-box evidence is immune to it; the canonical reduction undoes it)"
    )
    print(
        f"  re-initialising {PARAMETER.rsplit('.', 1)[0]} and retraining {REINIT_EPOCHS} epochs: "
        f"{reinit.bits_matched}/{BITS} bits, {reinit.outcome}, clean accuracy {reinit.clean_accuracy:.2%}"
    )
    return passed


def canonical_cases(attacker_data: digits.DigitsData) -> list[Case]:
    return [
        Case("released (marked) model", state, False),
        *[Case(name, partial(rearranged, steps=(step,)), True) for name, step in REARRANGEMENTS],
        Case(COMBINED, partial(rearranged, steps=[step for _, step in REARRANGEMENTS]), True),
        Case(
            f"fine-tuned {FINE_TUNE_EPOCHS} ep, 50 % data",
            attacked_state(partial(tuned, data=attacker_data)),
            False,
        ),
        *[
            Case(
                f"pruned {rate:.0%} + {PRUNE_EPOCHS} ep fine-tune",
                attacked_state(partial(pruned, data=attacker_data, rate=rate)),
                False,
            )
            for rate in PRUNE_RATES
        ],
        Case("int8 quantised (per tensor)", attacked_state(quantised), False),
        Case(
            f"classifier.1 re-initialised + {REINIT_EPOCHS} ep",
            attacked_state(partial(reinitialised, data=attacker_data)),
            False,
        ),
    ]


def canonical_part(setting: Setting) -> bool:
    """The canonical part; whether every check passed."""
    owner, data = setting.owner, setting.data
    owner_commitment = commit(owner, "owner canonical", CANONICAL)
    families = {
        "mean-out": (FAMILY, *weights_rows(owner, commit(owner, "owner"))),
        "canonical": (CANONICAL, *weights_rows(owner, owner_commitment)),
    }
    lams = {"mean-out": setting.lam, "canonical": setting.canonical_lam}
    print(
        f"digits CNN, {PARAMETER} {CANONICAL.parameter_shape} canonical (producer "
        f"{CANONICAL.producer}, consumer {CANONICAL.consumer}, unit size {CANONICAL.unit_size}) "
        f"-> M = {CANONICAL.projected_size}; T = {BITS} bits, k = {CHALLENGE}, alpha = 2^-64 -> "
        f"threshold {setting.threshold} of {CHALLENGE} (any k: at most {setting.wrong_allowed} "
        f"wrong of {BITS}); lam = {setting.canonical_lam} (mean-out {setting.lam}), Adam lr "
        f"{digits.DEFAULT_LR}, {digits.DEFAULT_EPOCHS} epochs; seeds {CANONICAL_SEEDS}; "
        f"{setting.threads} thread(s), device cpu"
    )

    cases = canonical_cases(setting.attacker_data)
    outcomes: dict[tuple[str, str], list[Outcome]] = {}
    figures = []
    combined_seed_one: State | None = None
    print()
    print("seed | clean acc unmarked | clean acc marked | drop (pp) | bit acc marked | s embed")
    for seed in CANONICAL_SEEDS:
        clean = evaluate_accuracy(unmarked_model(data, seed), data.test)
        for reduction, (family, rows, bits) in families.items():
            marked, report = mark(data, family, rows, bits, lams[reduction], seed)
            if reduction == "canonical":
                marked_clean = report.clean_accuracy_after or 0.0
                figures.append((clean, marked_clean, report.bit_accuracy_after))
                print(
                    f"{seed:4d} | {clean:18.2%} | {marked_clean:16.2%} | "
                    f"{100 * (clean - marked_clean):+9.2f} | {report.bit_accuracy_after:14.2%} | "
                    f"{report.seconds:7.2f}"
                )
            reference = logits(state(marked), data)
            for case in cases:
                values = case.make(marked)
                answers = logits(values, data)
                outcomes.setdefault((case.name, reduction), []).append(
                    Outcome(
                        float((answers.argmax(dim=1).numpy() == data.test_labels).mean()),
                        bits_kept(values, family, rows, bits),
                        float((answers - reference).abs().max()) if case.keeps_function else None,
                    )
                )
                if (
                    seed == CANONICAL_SEEDS[0]
                    and reduction == "canonical"
                    and case.name == COMBINED
                ):
                    combined_seed_one = values
    drops = [100 * (clean - marked_clean) for clean, marked_clean, _ in figures]
    worst_bits = min(bit_accuracy for _, _, bit_accuracy in figures)

    def any_k(kept: int | None) -> bool:
        return kept is not None and BITS - kept <= setting.wrong_allowed

    def bits_cell(results: list[Outcome]) -> str:
        kept = [outcome.kept for outcome in results]
        if None in kept:
            return "refused" if all(k is None for k in kept) else "refused on some seeds"
        values = [k for k in kept if k is not None]
        return f"{min(values):3d} ({'/'.join(str(k) for k in values)})"

    print()
    print(
        f"{'model (worst of seeds ' + '/'.join(map(str, CANONICAL_SEEDS)) + ')':36} | "
        f"same fn (max |dlogit|) | mean-out: acc | bits of {BITS} (per seed) | any k | "
        f"canonical: acc | bits of {BITS} (per seed) | any k"
    )
    for case in cases:
        mean_out, canonical = outcomes[(case.name, "mean-out")], outcomes[(case.name, "canonical")]
        differences = [
            outcome.logit_difference
            for outcome in mean_out + canonical
            if outcome.logit_difference is not None
        ]
        same = "-"
        if differences:
            verdict = "yes" if max(differences) <= SAME_FUNCTION_TOLERANCE else "NO"
            same = f"{verdict} ({max(differences):.1e})"
        cells = []
        for results in (mean_out, canonical):
            cells.append(
                f"{min(outcome.clean_accuracy for outcome in results):13.2%} | "
                f"{bits_cell(results):24} | "
                f"{'yes' if all(any_k(outcome.kept) for outcome in results) else 'no':5}"
            )
        print(f"{case.name:36} | {same:22} | {cells[0]} | {cells[1]}".rstrip())

    null = {reduction: 0 for reduction in families}
    for seed in NULL_SEEDS:
        values = state(unmarked_model(data, seed))
        for reduction, (family, rows, bits) in families.items():
            kept = bits_kept(values, family, rows, bits)
            assert kept is not None
            null[reduction] += kept
    trials = len(NULL_SEEDS) * BITS
    null_p = {reduction: two_sided_p(trials, matches) for reduction, matches in null.items()}
    print()
    print(
        f"null: {len(NULL_SEEDS)} unmarked CNNs (seeds {NULL_SEEDS[0]}-{NULL_SEEDS[-1]}, clean "
        "recipe) against the owner's rows"
    )
    print(f"{'family':9} | matches of {trials} | rate   | two-sided p at 1/2")
    for reduction, matches in null.items():
        print(f"{reduction:9} | {matches:15d} | {matches / trials:6.2%} | {null_p[reduction]:.3g}")

    assert combined_seed_one is not None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "obfuscated.safetensors"
        safetensors.numpy.save_file(combined_seed_one, str(path))
        matches, row_threshold, _, outcome = Court(Path(folder)).case(owner, owner_commitment, path)
    shapes = ", ".join(
        f"{name} {combined_seed_one[name].shape}"
        for name in (CANONICAL.producer or "", PARAMETER, CANONICAL.consumer or "")
    )
    print()
    print(
        f"arbiter case on the seed-{CANONICAL_SEEDS[0]} canonical model, {COMBINED} ({shapes}), "
        f"as safetensors: {matches}/{CHALLENGE} (>= {row_threshold}), verdict {outcome}"
    )

    rearrangements = [case for case in cases if case.keeps_function]
    differences = [
        outcome.logit_difference
        for case in rearrangements
        for reduction in families
        for outcome in outcomes[(case.name, reduction)]
        if outcome.logit_difference is not None
    ]
    kept_everywhere = [
        case.name
        for case in rearrangements
        if all(any_k(outcome.kept) for outcome in outcomes[(case.name, "canonical")])
    ]
    seeds = len(CANONICAL_SEEDS)
    passed = print_checks(
        [
            (
                f"canonical bit accuracy on all {BITS} bits, worst of {seeds} seeds: {worst_bits:.2%}",
                worst_bits >= MIN_BIT_ACCURACY,
                f">= {MIN_BIT_ACCURACY:.0%}",
            ),
            (
                (
                    f"clean accuracy drop, mean of {seeds} seeds: {statistics.fmean(drops):+.2f} pp "
                    f"(worst seed {max(drops):+.2f} pp)"
                ),
                statistics.fmean(drops) <= MAX_CLEAN_DROP_POINTS,
                f"<= {MAX_CLEAN_DROP_POINTS} pp",
            ),
            (
                (
                    f"function kept by every rearrangement, every seed, both families: max |dlogit| "
                    f"{max(differences):.1e}"
                ),
                max(differences) <= SAME_FUNCTION_TOLERANCE,
                f"<= {SAME_FUNCTION_TOLERANCE:.0e}",
            ),
            (
                (
                    f"canonical verdict holds for every challenge after the rearrangement, every seed: "
                    f"{len(kept_everywhere)} of {len(rearrangements)}"
                ),
                len(kept_everywhere) == len(rearrangements),
                f"{len(rearrangements)}",
            ),
            *[
                (
                    (
                        f"null, {reduction}: {null[reduction]}/{trials} matches, two-sided p = "
                        f"{null_p[reduction]:.3g}"
                    ),
                    null_p[reduction] >= MIN_NULL_P,
                    f"p >= {MIN_NULL_P:g}",
                )
                for reduction in families
            ],
            (
                f"arbiter verdict on the seed-{CANONICAL_SEEDS[0]} model, {COMBINED}: {outcome}",
                outcome == "upheld",
                "upheld",
            ),
        ]
    )

    print()
    print("what breaks it (measured above: some seed's verdict fails for some challenge):")
    for reduction in families:
        broken = [
            case.name
            for case in cases
            if not all(any_k(outcome.kept) for outcome in outcomes[(case.name, reduction)])
        ]
        print(f"  {reduction}: {', '.join(broken) or 'nothing'}")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=("mean-out", "canonical"), help="run one part (default: both)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument(
        "--lam",
        type=float,
        default=DEFAULT_LAM,
        help=f"mean-out regulariser weight (default {DEFAULT_LAM})",
    )
    parser.add_argument(
        "--canonical-lam",
        type=float,
        default=DEFAULT_CANONICAL_LAM,
        help=f"canonical regulariser weight (default {DEFAULT_CANONICAL_LAM})",
    )
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    started = time.perf_counter()

    data = digits.load_data()
    setting = Setting(
        owner=fixed_keys("owner"),
        data=data,
        attacker_data=half_data(data),
        threshold=decision_threshold(CHALLENGE, Fraction(1, 2), ALPHA),
        lam=arguments.lam,
        canonical_lam=arguments.canonical_lam,
        threads=arguments.threads,
    )
    passed = True
    if arguments.only != "canonical":
        passed = mean_out_part(setting) and passed
    if arguments.only != "mean-out":
        if arguments.only is None:
            print()
        passed = canonical_part(setting) and passed
    print()
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
