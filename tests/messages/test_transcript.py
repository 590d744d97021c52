"""Transcript entries with a decoy's known label (specs/dispute.md 8.2.6):
they read back as written, a class stays an int, and a trigger entry that
carries a decoy label is refused."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest

from secmark.encoding import canonical_json, parse_canonical_json
from secmark.errors import EncodingError
from secmark.messages import Fields
from secmark.messages.transcript import TranscriptEntry

DIGEST = hashlib.sha256(b"input").hexdigest()


def _read(fields: dict[str, Any]) -> TranscriptEntry:
    """An entry's fields through canonical JSON and the strict reader."""
    reader = Fields(parse_canonical_json(canonical_json(fields), max_size=1 << 16), context="entry")
    entry = TranscriptEntry.from_fields(reader)
    reader.finish()
    return entry


@pytest.mark.parametrize(
    "entry",
    [
        TranscriptEntry(0, DIGEST, None, 3, None, 7),  # a labelled decoy, answered
        TranscriptEntry(1, DIGEST, None, None, "refused", 2),  # a labelled decoy, failed
        TranscriptEntry(2, DIGEST, None, 0.5, None, 0.25),  # a regression value
        TranscriptEntry(3, DIGEST, None, 3, None, None),  # an unlabelled decoy
        TranscriptEntry(4, DIGEST, 17, 3, None),  # a trigger
    ],
)
def test_an_entry_reads_back_as_written(entry: TranscriptEntry) -> None:
    fields = entry.to_fields()
    assert fields["decoy_label"] == entry.decoy_label
    again = _read(fields)
    assert again == entry and type(again.decoy_label) is type(entry.decoy_label)


def test_an_entry_without_a_decoy_label_field_is_refused() -> None:
    fields = TranscriptEntry(0, DIGEST, None, 3, None, 7).to_fields()
    del fields["decoy_label"]
    with pytest.raises(EncodingError, match="missing field 'decoy_label'"):
        _read(fields)


def test_a_trigger_entry_with_a_decoy_label_is_refused() -> None:
    with pytest.raises(EncodingError, match="only a decoy has a known label"):
        TranscriptEntry(0, DIGEST, 17, 3, None, 3)
    fields = {**TranscriptEntry(0, DIGEST, 17, 3, None).to_fields(), "decoy_label": 3}
    with pytest.raises(EncodingError, match="only a decoy has a known label"):
        _read(fields)


@pytest.mark.parametrize("label", [True, "3", [3], math.nan, math.inf])
def test_a_decoy_label_is_a_finite_number(label: Any) -> None:
    with pytest.raises(EncodingError, match="finite number"):
        TranscriptEntry(0, DIGEST, None, 3, None, label)
    if isinstance(label, float):
        return  # canonical JSON has no NaN or infinity to read
    fields = {**TranscriptEntry(0, DIGEST, None, 3, None).to_fields(), "decoy_label": label}
    with pytest.raises(EncodingError, match="decoy_label"):
        _read(fields)
