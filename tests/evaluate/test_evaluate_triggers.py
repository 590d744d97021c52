"""Trigger sets of the evaluation: the pool family draws committed candidates."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from secmark.errors import EncodingError
from secmark.evaluate import derive_triggers, load_task
from secmark.messages.families import PoolFamily


def test_pool_triggers_are_committed_candidates_with_their_own_labels() -> None:
    task = replace(load_task("digits"), triggers=32)
    pool = task.test_inputs
    family = PoolFamily(len(pool), tuple(pool.shape[1:]), "float32")
    triggers = derive_triggers(task, role="owner", seed=1, family=family, pool=pool)
    assert triggers.bases is not None and np.array_equal(triggers.inputs, triggers.bases)
    candidates = {item.tobytes() for item in pool}
    assert all(item.tobytes() in candidates for item in triggers.inputs)
    assert set(triggers.labels.tolist()) <= set(range(10))
    again = derive_triggers(task, role="owner", seed=1, family=family, pool=pool)
    assert np.array_equal(again.inputs, triggers.inputs)
    with pytest.raises(EncodingError, match="pool family needs its candidate pool"):
        derive_triggers(task, role="owner", seed=1, family=family)
