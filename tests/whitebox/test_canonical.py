"""The canonical reduction: white-box bits that survive neural structural obfuscation.

A model marked against a ``canonical`` commitment keeps every bit when its
units are permuted, rescaled, split or padded with dummies (each of which
keeps its function, checked here too), while the same rearrangement brings
a ``mean-out`` watermark to chance; the form is computed from the suspect
alone, so unmarked models stay at the null rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmark.errors import EncodingError, SuspectError
from secmark.messages import create_identity
from secmark.messages.document import Fields
from secmark.messages.families import MAX_CANONICAL_UNITS, WeightsFamily, family_from_fields
from secmark.models import WeightsSuspect, reduce_parameter
from secmark.models.canonical import (
    balance,
    canonical_vector,
    check_layer_shapes,
    parallel_groups,
)
from secmark.protocol.arbiter import Arbiter, ArbiterPolicy
from secmark.protocol.bundle import verify_bundle
from secmark.stats import binomial_tail
from tests.conftest import fixed_keys
from tests.test_schemas import validator
from tests.whitebox.conftest import FAMILY, SEED, Authority, Marked, commit, state
from tests.whitebox.test_protocol import CHALLENGE, run

CANONICAL = WeightsFamily(
    "classifier.1.weight",
    (64, 512),
    "canonical",
    "rademacher",
    producer="features.2.weight",
    consumer="classifier.3.weight",
    unit_size=16,
)
EPOCHS = 10
LAM = 0.5
"""Larger than mean-out's 0.1: the form depends on three layers, and a
larger margin keeps more bits through fine-tuning."""

State = dict[str, np.ndarray]


@dataclass(frozen=True)
class CanonicalMarked:
    rows: np.ndarray
    bits: np.ndarray
    state: State
    signed: Any
    keys: Any


@pytest.fixture(scope="module")
def canonical(marked: Marked) -> CanonicalMarked:
    """The digits CNN marked against a canonical commitment (same owner,
    seed and recipe as the mean-out fixture)."""
    from secmark.embed import WeightsRegularizer, embed_weights, weights_rows
    from secmark.examples import digits

    signed = commit(marked.keys, "canonical", CANONICAL)
    rows, bits = weights_rows(marked.keys, signed)
    data = digits.load_data()
    model = digits.new_model(SEED)
    report = embed_weights(
        model,
        digits.train_loader(data, seed=SEED),
        WeightsRegularizer(model, CANONICAL, rows, bits, LAM),
        epochs=EPOCHS,
        lr=digits.DEFAULT_LR,
        seed=SEED,
        holdout=data.test,
        progress=False,
    )
    assert report.bit_accuracy_after == 1.0
    return CanonicalMarked(rows, bits, state(model), signed, marked.keys)


def canonical_bits(values: State, rows: np.ndarray) -> np.ndarray:
    suspect = WeightsSuspect.from_family(values, CANONICAL)
    return suspect.predict(rows.astype(np.float64))


def rearrangements() -> dict[str, Callable[[State], State]]:
    from secmark.evaluate.obfuscation import (
        add_dummy_units,
        permute_units,
        rescale_units,
        split_unit,
    )

    rng = np.random.default_rng(7)

    def everything(values: State) -> State:
        values = permute_units(values, "features.2", "classifier.1", rng.permutation(32))
        values = rescale_units(values, "features.2", "classifier.1", rng.uniform(0.1, 10, 32))
        values = add_dummy_units(values, "features.2", "classifier.1", 8, rng)
        values = split_unit(values, "features.2", "classifier.1", 3, 0.3)
        values = permute_units(values, "classifier.1", "classifier.3", rng.permutation(64))
        values = rescale_units(values, "classifier.1", "classifier.3", rng.uniform(0.1, 10, 64))
        values = add_dummy_units(values, "classifier.1", "classifier.3", 16, rng)
        values = split_unit(values, "classifier.1", "classifier.3", 5, 2.0)
        values = rescale_units(values, "features.0", "features.2", rng.uniform(0.1, 10, 16))
        values = split_unit(values, "features.0", "features.2", 2, 0.5)
        return add_dummy_units(values, "features.0", "features.2", 4, rng)

    return {
        "inputs permuted": lambda v: permute_units(
            v, "features.2", "classifier.1", np.random.default_rng(1).permutation(32)
        ),
        "inputs rescaled": lambda v: rescale_units(
            v, "features.2", "classifier.1", np.random.default_rng(2).uniform(0.05, 20, 32)
        ),
        "input dummies": lambda v: add_dummy_units(
            v, "features.2", "classifier.1", 16, np.random.default_rng(3)
        ),
        "input split": lambda v: split_unit(v, "features.2", "classifier.1", 0, 0.25),
        "input clique that cancels": lambda v: split_unit(v, "features.2", "classifier.1", 7, 3.0),
        "outputs permuted": lambda v: permute_units(
            v, "classifier.1", "classifier.3", np.random.default_rng(4).permutation(64)
        ),
        "outputs rescaled": lambda v: rescale_units(
            v, "classifier.1", "classifier.3", np.random.default_rng(5).uniform(0.05, 20, 64)
        ),
        "output dummies": lambda v: add_dummy_units(
            v, "classifier.1", "classifier.3", 32, np.random.default_rng(6)
        ),
        "units before the producer rescaled": lambda v: rescale_units(
            v, "features.0", "features.2", np.random.default_rng(8).uniform(0.05, 20, 16)
        ),
        "units before the producer split": lambda v: split_unit(
            v, "features.0", "features.2", 4, 0.6
        ),
        "everything at once": everything,
    }


@pytest.mark.parametrize("name", sorted(rearrangements()))
def test_a_rearranged_model_computes_the_same_and_answers_the_same_bits(
    canonical: CanonicalMarked, name: str
) -> None:
    import torch

    from secmark.examples import digits

    rearranged = rearrangements()[name](canonical.state)
    inputs = torch.from_numpy(digits.load_data().test_inputs)
    with torch.no_grad():
        before = digits.forward_state(canonical.state, inputs)
        after = digits.forward_state(rearranged, inputs)
    assert torch.allclose(before, after, rtol=1e-4, atol=1e-4)
    original = WeightsSuspect.from_family(canonical.state, CANONICAL)
    suspect = WeightsSuspect.from_family(rearranged, CANONICAL)
    assert np.allclose(original.reduced, suspect.reduced, rtol=0, atol=1e-5)
    bits = canonical_bits(rearranged, canonical.rows)
    assert bits.tolist() == canonical.bits.tolist()


def test_the_rearrangement_that_defeats_mean_out_does_not_defeat_the_canonical_form(
    marked: Marked, canonical: CanonicalMarked
) -> None:
    """Without the canonical reduction the permuted model loses its mark."""
    permute = rearrangements()["inputs permuted"]
    mean_out = WeightsSuspect.from_family(permute(state(marked.marked)), FAMILY)
    kept = int((mean_out.predict(marked.rows) == marked.bits).sum())
    assert kept < 160  # of 256: chance, where the unpermuted model keeps all
    assert (
        int((canonical_bits(permute(canonical.state), canonical.rows) == canonical.bits).sum())
        == 256
    )


def test_unmarked_models_answer_the_canonical_rows_at_the_null_rate(
    canonical: CanonicalMarked,
) -> None:
    """Five unmarked CNNs (trained without the rows) match 1/2 of the bits:
    the form reads the suspect alone, so it cannot import the mark."""
    from secmark.examples import digits

    data = digits.load_data()
    matches = 0
    for seed in range(11, 16):
        model = digits.new_model(seed)
        digits.train_clean(model, data, seed=seed, epochs=2)
        matches += int((canonical_bits(state(model), canonical.rows) == canonical.bits).sum())
    trials = 5 * len(canonical.bits)
    assert binomial_tail(trials, matches, 0.5) > 2**-10
    assert binomial_tail(trials, trials - matches, 0.5) > 2**-10


def test_a_canonical_claim_on_the_rearranged_model_is_upheld(
    canonical: CanonicalMarked,
    tmp_path: Path,
    authority: Authority,
) -> None:
    import safetensors.numpy

    keys = fixed_keys("white-box arbiter")
    arbiter = Arbiter(
        keys,
        create_identity(keys, "arbiter"),
        authority.trust,
        tmp_path / "arbiter",
        policy=ArbiterPolicy(challenge_size=CHALLENGE),
    )

    path = tmp_path / "obfuscated.safetensors"
    safetensors.numpy.save_file(rearrangements()["everything at once"](canonical.state), path)
    suspect = WeightsSuspect.from_family(path, CANONICAL)
    bundle = run(canonical.keys, canonical.signed, suspect, arbiter, authority)
    assert verify_bundle(bundle, authority.trust).outcome == "upheld"


def test_the_torch_form_points_where_the_numpy_form_does(canonical: CanonicalMarked) -> None:
    import torch

    from secmark.embed import canonical_tensor
    from secmark.examples import digits

    model = digits.new_model(SEED)
    model.load_state_dict(
        {name: torch.from_numpy(value) for name, value in canonical.state.items()}
    )
    with torch.no_grad():
        trained = canonical_tensor(model, CANONICAL).double().numpy()
    expected = WeightsSuspect.from_family(canonical.state, CANONICAL).reduced
    assert np.allclose(trained / np.linalg.norm(trained), expected, atol=1e-5)


# The family and its encoding.


def test_a_canonical_family_round_trips_and_names_its_layers() -> None:
    fields = CANONICAL.to_fields()
    assert fields["producer"] == "features.2.weight" and fields["unit_size"] == 16
    assert family_from_fields(Fields(fields, context="family")) == CANONICAL
    assert CANONICAL.projected_size == 512
    assert "producer" not in FAMILY.to_fields()
    validator("commitment")  # the schema loads; documents are checked below


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"producer": None}, "producer and consumer"),
        ({"consumer": ""}, "producer and consumer"),
        ({"consumer": "classifier.1.weight"}, "three parameters"),
        ({"unit_size": 3}, "whole number of units"),
        ({"parameter_shape": (64, 32, 16)}, "2-D parameter"),
        ({"parameter_shape": (MAX_CANONICAL_UNITS + 1, 4), "unit_size": 1}, "at most"),
        ({"reduction": "mean-out"}, "no producer, consumer or unit size"),
    ],
)
def test_a_malformed_canonical_family_is_refused(change: dict[str, Any], message: str) -> None:
    values = {
        "parameter": CANONICAL.parameter,
        "parameter_shape": CANONICAL.parameter_shape,
        "reduction": "canonical",
        "projection": "rademacher",
        "producer": CANONICAL.producer,
        "consumer": CANONICAL.consumer,
        "unit_size": CANONICAL.unit_size,
    } | change
    with pytest.raises(EncodingError, match=message):
        WeightsFamily(**values)


def test_other_spellings_of_the_layers_are_refused_when_decoded() -> None:
    extra = FAMILY.to_fields() | {"producer": "features.2.weight"}
    fields = Fields(extra, context="family")
    family_from_fields(fields)
    # The reader leaves the producer unread: the document layer refuses it.
    with pytest.raises(EncodingError, match="unexpected fields.*producer"):
        fields.finish()
    missing = {k: v for k, v in CANONICAL.to_fields().items() if k != "unit_size"}
    with pytest.raises(EncodingError, match="unit_size"):
        family_from_fields(Fields(missing, context="family"))


def test_the_schema_agrees_on_what_a_canonical_family_needs() -> None:
    from jsonschema import ValidationError

    schema = validator("commitment")
    family_schema = next(
        branch
        for branch in schema.schema["properties"]["family"]["oneOf"]
        if branch["properties"]["name"].get("const") == "weights"
    )
    family_validator = type(schema)(family_schema)
    family_validator.validate(CANONICAL.to_fields())
    family_validator.validate(FAMILY.to_fields())
    for bad in (
        {k: v for k, v in CANONICAL.to_fields().items() if k != "producer"},
        FAMILY.to_fields() | {"unit_size": 1},
        CANONICAL.to_fields() | {"parameter_shape": [64, 32, 16]},
    ):
        with pytest.raises(ValidationError):
            family_validator.validate(bad)


# The suspect's side: layers that do not fit are refused, never guessed.


def layer(seed: int, outputs: int = 6, inputs: int = 4, size: int = 3) -> State:
    rng = np.random.default_rng(seed)
    return {
        "w": rng.normal(size=(outputs, inputs * size)).astype(np.float32),
        "p": rng.normal(size=(inputs, 5, 2)).astype(np.float32),
        "q": rng.normal(size=(3, outputs)).astype(np.float32),
    }


SMALL = WeightsFamily("w", (6, 12), "canonical", producer="p", consumer="q", unit_size=3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"p": np.ones((5, 5, 2), np.float32)}, "producer has shape"),
        ({"p": np.ones((4,), np.float32)}, "producer has shape"),
        ({"q": np.ones((3, 7), np.float32)}, "consumer has shape"),
        ({"w": np.ones((6, 13), np.float32)}, "not outputs x"),
        ({"q": np.ones((3, 6), np.int32)}, "not floating point"),
        ({"p": np.full((4, 5, 2), np.nan, np.float32)}, "NaN"),
    ],
)
def test_layers_that_do_not_fit_are_refused(change: State, message: str) -> None:
    with pytest.raises(SuspectError, match=message):
        WeightsSuspect.from_family(layer(1) | change, SMALL)


def test_a_missing_layer_is_refused_by_name() -> None:
    values = layer(1)
    del values["q"]
    with pytest.raises(SuspectError, match="no parameter 'q'"):
        WeightsSuspect.from_family(values, SMALL)


def test_a_hostile_number_of_units_is_refused_before_any_pair_is_compared() -> None:
    units = MAX_CANONICAL_UNITS + 1
    with pytest.raises(SuspectError, match="more than"):
        check_layer_shapes((6, units * 3), (units, 5), (3, 6), 3)


def test_the_canonical_reduction_needs_all_three_layers() -> None:
    with pytest.raises(SuspectError, match="producer and consumer"):
        reduce_parameter(np.ones((6, 12)), "canonical")


def test_a_layer_with_no_live_unit_gives_the_zero_vector_and_answers_zero() -> None:
    values = layer(1) | {"q": np.zeros((3, 6), np.float32)}
    suspect = WeightsSuspect.from_family(values, SMALL)
    assert not suspect.reduced.any()
    assert not suspect.predict(np.ones((4, 12))).any()


# The building blocks.


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.integers(0, 5))
def test_groups_follow_the_rows_not_their_order(seed: int, rows: int, copies: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(rows, 6))
    extra = [vectors[rng.integers(rows)] * rng.uniform(0.1, 10) for _ in range(copies)]
    vectors = np.concatenate([vectors, np.zeros((1, 6)), *[e[None] for e in extra]])
    order = rng.permutation(len(vectors))
    groups = {frozenset(group) for group in parallel_groups(vectors)}
    permuted = {
        frozenset(int(order[i]) for i in group) for group in parallel_groups(vectors[order])
    }
    assert permuted == groups
    assert sum(len(group) for group in groups) == len(vectors) - 1  # the zero row is in none
    assert len(groups) == rows


def test_directions_further_apart_than_the_tolerance_stay_apart() -> None:
    base = np.array([1.0, 0.0, 0.0])
    near = np.array([1.0, 5e-6, 0.0])
    far = np.array([1.0, 5e-5, 0.0])
    assert parallel_groups(np.stack([base, near, far])) == [(0, 1), (2,)]
    assert parallel_groups(np.stack([base, -base])) == [(0,), (1,)]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_balancing_reads_a_rows_scale_whatever_the_columns(seed: int) -> None:
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(0.1, 2.0, size=(5, 7))
    rows, _ = balance(matrix)
    row_scale, column_scale = rng.uniform(0.1, 10, 5), rng.uniform(0.1, 10, 7)
    scaled_rows, _ = balance(matrix * row_scale[:, None] * column_scale[None, :])
    ratio = (rows / row_scale) / scaled_rows
    assert np.allclose(ratio, ratio[0], rtol=1e-9)


def test_the_form_of_the_vector_file_layer_is_unit_norm() -> None:
    vector = canonical_vector(layer(2)["w"], layer(2)["p"], layer(2)["q"], unit_size=3, size=12)
    assert math.isclose(float(np.linalg.norm(vector)), 1.0, rel_tol=1e-12)
