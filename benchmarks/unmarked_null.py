"""Do innocent models match the committed labels at the stated p0, per family?

Five unmarked digits CNNs (``secmark.examples.digits``, seeds 1-5, trained
without any trigger) answer the 256 triggers of one commitment per trigger
family: ``noise`` (uniform float32 noise), ``pool`` (digits of the test
split, Merkle-committed) and ``overlay`` (those digits with 8 keyed pixels
replaced). Labels are ``ClassLabels(10)``, so p0 = 1/10 whatever the
model answers. Reported per family and model: matches of 256, the exact
one-sided p-value P[Binom(256, p0) >= m], and over the five models the
pooled matches against Binom(1280, p0), one-sided: an innocent model must
never match significantly above p0 (below is allowed: p0 bounds the rate of
any model, and models of one recipe answer the same inputs alike, so the
pooled figure is not a test of five independent samples). The pool family's inputs
are real digits, so a model answers them confidently, yet the labels are
independent of the inputs and the rate stays at p0.

Run: python3 benchmarks/unmarked_null.py   (about a minute on one core)
"""

from __future__ import annotations

import hashlib
from fractions import Fraction

import numpy as np
import torch
from scipy.stats import binomtest

from secmark.crypto import IdentityKeys
from secmark.embed import predict_labels
from secmark.examples import digits
from secmark.messages.commitment import create_commitment
from secmark.messages.families import NoiseFamily, OverlayFamily, PoolFamily
from secmark.messages.labels import ClassLabels
from secmark.stats import binomial_test
from secmark.triggers import CommittedPool, iter_triggers, pool_root

TRIGGERS = 256
SEEDS = (1, 2, 3, 4, 5)
LABELS = ClassLabels(10)
P0 = Fraction(1, 10)


def _keys() -> IdentityKeys:
    return IdentityKeys(
        *(hashlib.sha256(f"unmarked-null {part}".encode()).digest() for part in "svx")
    )


def _triggers(family, pool_items=None) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    keys = _keys()
    root = None if pool_items is None else pool_root(pool_items, family)
    signed = create_commitment(
        keys, family=family, labels=LABELS, size=TRIGGERS, model_label="null", pool_root=root
    )
    pool = None if pool_items is None else CommittedPool.open(pool_items, signed.document)
    (batch,) = iter_triggers(keys, signed, range(TRIGGERS), batch_size=TRIGGERS, pool=pool)
    return batch.inputs, batch.labels


def main() -> None:
    torch.set_num_threads(1)
    data = digits.load_data()
    items = np.ascontiguousarray(data.test_inputs)
    families = {
        "noise": _triggers(NoiseFamily((1, 8, 8), "float32", 0.0, 1.0)),
        "pool": _triggers(PoolFamily(len(items), (1, 8, 8), "float32"), items),
        "overlay": _triggers(OverlayFamily(len(items), (1, 8, 8), "float32", 8, 0.0, 1.0), items),
    }
    matches: dict[str, list[int]] = {name: [] for name in families}
    for seed in SEEDS:
        model = digits.new_model(seed)
        digits.train_clean(model, data, seed=seed)
        for name, (inputs, labels) in families.items():
            answers = predict_labels(model, inputs)
            matches[name].append(int((answers == labels).sum()))
    print(f"p0 = {P0}; {len(SEEDS)} unmarked models; {TRIGGERS} triggers per family")
    for name, counts in matches.items():
        tests = [binomial_test(TRIGGERS, m, P0) for m in counts]
        pooled = binomtest(sum(counts), TRIGGERS * len(SEEDS), float(P0), alternative="greater")
        print(
            f"{name:8s} matches {counts} "
            f"(rates {min(counts) / TRIGGERS:.3f}-{max(counts) / TRIGGERS:.3f}); "
            f"one-sided p {min(t.p_value for t in tests):.3g}-{max(t.p_value for t in tests):.3g}; "
            f"pooled {sum(counts)}/{TRIGGERS * len(SEEDS)} = "
            f"{sum(counts) / (TRIGGERS * len(SEEDS)):.4f}, one-sided p = {pooled.pvalue:.3g}"
        )


if __name__ == "__main__":
    main()
