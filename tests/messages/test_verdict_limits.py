"""A verdict at its item limits still opens: an arbiter never signs one too
large for the reader (and the judge) to accept."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from secmark.errors import ProtocolError
from secmark.messages import sign_document
from secmark.messages.verdict import (
    MAX_CROSS_CHECKED,
    MAX_RIVALS,
    CrossCheck,
    ReleaseTime,
    RivalClaim,
    Verdict,
    open_verdict,
)
from secmark.messages.verdict import (
    TestFigures as Figures,
)
from tests.conftest import fixed_keys
from tests.protocol.conftest import World, memorising_suspect

_LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
_LARGEST_COUNT = (1 << 40) - 1
# The longest decimal spelling a binary64 takes in JSON.
_LONGEST_FLOAT = -2.2250738585072014e-308


def _hex(label: str, index: int) -> str:
    return hashlib.sha256(f"{label} {index}".encode()).hexdigest()


def _largest_verdict() -> Verdict:
    figures = Figures(
        _LARGEST_COUNT,
        _LARGEST_COUNT,
        "255/256",
        "1/18446744073709551616",
        _LARGEST_COUNT,
        _LONGEST_FLOAT,
        _LONGEST_FLOAT,
        _LONGEST_FLOAT,
        _LONGEST_FLOAT,
        *(_LARGEST_COUNT,) * 4,
    )
    count = _LARGEST_COUNT
    return Verdict(
        claim_id=_hex("claim", 0),
        challenge_id=_hex("challenge", 0),
        commitment_id=_hex("commitment", 0),
        transcript_id=_hex("transcript", 0),
        owner=_hex("owner", 0),
        suspect="sha256:" + _hex("suspect", 0),
        commitment_time=_LATEST,
        release=ReleaseTime(_hex("release", 0), _hex("model", 0), _LATEST),
        test=figures,
        prior_challenges=_LARGEST_COUNT,
        rivals=tuple(
            RivalClaim(_hex("rival", i), _hex("owner", i), _LATEST, _LATEST, True)
            for i in range(MAX_RIVALS)
        ),
        cross_checks=tuple(
            CrossCheck(
                _hex("claim", i // MAX_CROSS_CHECKED),
                _hex("claim", i % MAX_CROSS_CHECKED),
                *(count,) * 3,
                _LONGEST_FLOAT,
                *(count,) * 5,
            )
            for i in range(MAX_CROSS_CHECKED**2)
        ),
        outcome="ambiguous",
        # Control characters take six bytes each once escaped in JSON.
        reason="\x01" * 4096,
        issued=_LATEST,
    )


def test_the_largest_verdict_an_arbiter_can_sign_opens() -> None:
    keys = fixed_keys("arbiter")
    signed = sign_document(_largest_verdict(), keys)
    opened = open_verdict(signed.to_json(), keys.public_keys)
    assert len(opened.document.cross_checks) == MAX_CROSS_CHECKED**2
    assert len(opened.document.rivals) == MAX_RIVALS


def test_decide_refuses_more_rivals_than_a_verdict_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path)
    mark = world.commit()
    run = world.run_case(mark, memorising_suspect(mark), decide=False)
    too_many: list[Any] = [run.case] * (MAX_RIVALS + 1)
    monkeypatch.setattr(run.arbiter, "rivals", lambda case: too_many)
    with pytest.raises(ProtocolError, match=f"at most {MAX_RIVALS}"):
        run.arbiter.decide(run.case)
    assert not (run.case.folder / "verdict.json").exists()
    assert not (run.case.folder / "bundle.json").exists()
