"""Token labels with reserved ids: never drawn, and p0 counts only the ids left.

A language model's target responses reserve the ids that would not come
back unchanged through its tokenizer; the null match probability per
position is then 1/(V - R), exactly, by the same rejection sampling.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from secmark.errors import EncodingError
from secmark.messages.document import Fields
from secmark.messages.labels import TokenLabels, label_space_from_fields
from secmark.stats import null_match_probability
from secmark.triggers.generate import draw_label
from secmark.triggers.sampling import KeyStream

SPACE = TokenLabels(16, 64, (0, 3, 4, 5, 15))


def test_reserved_ids_are_never_drawn_and_the_others_are_all_drawn_evenly() -> None:
    drawn = np.concatenate(
        [draw_label(SPACE, KeyStream(bytes([seed]) * 32)) for seed in range(200)]
    )
    assert set(drawn.tolist()).isdisjoint(SPACE.reserved)
    counts = np.bincount(drawn, minlength=16)
    allowed = [i for i in range(16) if i not in SPACE.reserved]
    assert counts[allowed].min() > 0
    # 12,800 draws over 11 ids: each near 1,164; a chi-square with 10 degrees
    # of freedom stays below 40 but for a 1e-5 chance.
    expected = len(drawn) / len(allowed)
    assert float(((counts[allowed] - expected) ** 2 / expected).sum()) < 40


def test_p0_counts_only_the_ids_that_can_be_drawn() -> None:
    assert null_match_probability(SPACE) == Fraction(1, 11)
    assert null_match_probability(TokenLabels(16, 4)) == Fraction(1, 16)


def test_no_reserved_ids_draw_exactly_as_before() -> None:
    """A space without reserved ids is the old one: same fields, same labels."""
    plain = TokenLabels(1000, 8)
    assert "reserved" not in plain.to_fields()
    stream_a, stream_b = KeyStream(b"\x07" * 32), KeyStream(b"\x07" * 32)
    assert (
        draw_label(plain, stream_a).tolist()
        == draw_label(TokenLabels(1000, 8, ()), stream_b).tolist()
    )


def test_reserved_ids_round_trip_and_other_spellings_are_refused() -> None:
    fields = SPACE.to_fields()
    assert label_space_from_fields(Fields(dict(fields), context="labels")) == SPACE
    with pytest.raises(EncodingError, match="leaving it out"):
        label_space_from_fields(Fields(fields | {"reserved": []}, context="labels"))
    for reserved, message in (
        ((3, 0), "sorted and distinct"),
        ((3, 3), "sorted and distinct"),
        ((16,), r"\[0, vocab_size\)"),
        (tuple(range(15)), "at least two"),
    ):
        with pytest.raises(EncodingError, match=message):
            TokenLabels(16, 4, reserved)
