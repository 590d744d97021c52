"""TriggerMixer and mixed_batches: how many triggers, which ones, in what order."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

pytest.importorskip("torch")

import torch
from torch.utils.data import DataLoader, TensorDataset

from secmark.embed import TriggerDataset, TriggerMixer, batch_pairs, mixed_batches
from secmark.errors import EncodingError


def triggers(count: int = 10) -> TriggerDataset:
    # Input i is filled with the value i, so a mixed sample names its trigger.
    inputs = np.repeat(np.arange(count, dtype=np.float32), 4).reshape(count, 1, 2, 2)
    return TriggerDataset(inputs, np.arange(count) % 3)


def clean(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((size, 1, 2, 2), -1.0), torch.full((size,), 7, dtype=torch.int64)


def trigger_ids(mixed: torch.Tensor, clean_size: int) -> list[int]:
    return [int(sample[0, 0, 0]) for sample in mixed[clean_size:]]


def test_exactly_per_batch_triggers_are_appended_after_the_clean_samples() -> None:
    mixer = TriggerMixer(triggers(), per_batch=3)
    inputs, targets = clean()
    mixed_inputs, mixed_targets = mixer.mix(inputs, targets)
    assert mixed_inputs.shape == (19, 1, 2, 2) and mixed_targets.shape == (19,)
    assert torch.equal(mixed_inputs[:16], inputs) and torch.equal(mixed_targets[:16], targets)
    ids = trigger_ids(mixed_inputs, 16)
    assert len(ids) == 3
    assert mixed_targets[16:].tolist() == [i % 3 for i in ids]


@pytest.mark.parametrize("per_batch", [1, 3, 4, 10, 23])
def test_every_trigger_is_used_equally_often(per_batch: int) -> None:
    mixer = TriggerMixer(
        triggers(10), per_batch=per_batch, generator=torch.Generator().manual_seed(5)
    )
    used: list[int] = []
    for _ in range(7):
        used += trigger_ids(mixer.mix(*clean(2))[0], 2)
    counts = Counter(used)
    assert len(used) == 7 * per_batch
    assert set(counts) <= set(range(10))
    if len(used) >= 10:
        assert set(counts) == set(range(10))
    assert max(counts.values()) - min(counts.get(i, 0) for i in range(10)) <= 1


def test_each_pass_is_a_permutation_and_passes_differ() -> None:
    mixer = TriggerMixer(triggers(10), per_batch=5, generator=torch.Generator().manual_seed(1))
    passes = [
        trigger_ids(mixer.mix(*clean(1))[0], 1) + trigger_ids(mixer.mix(*clean(1))[0], 1)
        for _ in range(4)
    ]
    assert all(sorted(order) == list(range(10)) for order in passes)
    assert len({tuple(order) for order in passes}) > 1


def test_the_same_generator_seed_gives_the_same_sequence() -> None:
    def sequence(seed: int) -> list[int]:
        mixer = TriggerMixer(triggers(), per_batch=4, generator=torch.Generator().manual_seed(seed))
        return [i for _ in range(6) for i in trigger_ids(mixer.mix(*clean(1))[0], 1)]

    assert sequence(3) == sequence(3)
    assert sequence(3) != sequence(4)
    assert (
        TriggerMixer(triggers()).next_indices().tolist()
        == TriggerMixer(triggers()).next_indices().tolist()
    )


def test_the_clean_batch_dtype_and_memory_layout_are_kept() -> None:
    rng = np.random.default_rng(0)
    images = TriggerDataset(rng.random((5, 3, 4, 4), dtype=np.float32), np.arange(5))
    inputs = torch.rand(6, 3, 4, 4, dtype=torch.float64).to(memory_format=torch.channels_last)
    mixed, targets = TriggerMixer(images, per_batch=2).mix(
        inputs, torch.zeros(6, dtype=torch.int32)
    )
    assert mixed.dtype == torch.float64 and targets.dtype == torch.int32
    assert mixed.is_contiguous(memory_format=torch.channels_last)
    assert mixed.stride() == (48, 1, 12, 3)
    assert torch.equal(mixed[:6], inputs)


def test_mismatched_batches_are_refused() -> None:
    mixer = TriggerMixer(triggers(), per_batch=2)
    with pytest.raises(EncodingError, match="cannot be mixed"):
        mixer.mix(torch.zeros(4, 1, 3, 3), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(EncodingError, match="1-D integer"):
        mixer.mix(torch.zeros(4, 1, 2, 2), torch.zeros(4))
    with pytest.raises(EncodingError, match="1-D integer"):
        mixer.mix(torch.zeros(4, 1, 2, 2), torch.zeros(3, dtype=torch.int64))


@pytest.mark.parametrize("per_batch", [0, -1, 2.0, True])
def test_per_batch_must_be_a_positive_integer(per_batch: object) -> None:
    with pytest.raises(EncodingError, match="per_batch"):
        TriggerMixer(triggers(), per_batch=per_batch)  # type: ignore[arg-type]


def test_mixed_batches_wraps_a_loader() -> None:
    loader = DataLoader(TensorDataset(*clean(20)), batch_size=8)
    mixer = TriggerMixer(triggers(), per_batch=2)
    sizes = [(len(x), len(y)) for x, y in mixed_batches(loader, mixer)]
    assert sizes == [(10, 10), (10, 10), (6, 6)]


def test_batches_must_be_pairs_of_tensors() -> None:
    mixer = TriggerMixer(triggers(), per_batch=2)
    inputs, targets = clean(4)
    for bad in (
        [inputs],
        [(inputs, targets, targets)],
        [(inputs, targets.tolist())],
        [inputs.numpy()],
    ):
        with pytest.raises(EncodingError, match="pair"):
            list(mixed_batches(bad, mixer))
    assert [len(x) for x, _ in batch_pairs([[inputs, targets]])] == [4]
