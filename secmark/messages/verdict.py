"""The verdict: the arbiter's signed decision on one claim.

Besides the exact test on the suspect's answers, a verdict states the
commitment's (and release's) trusted times, how many challenges the arbiter
had issued on the same commitment before, every other claim on the same
suspect with its times, and every cross-check of registered released models,
so a judge can re-derive the outcome from the verdict alone
(:func:`outcome_of`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from secmark.crypto.keys import PublicKeys
from secmark.encoding import format_time
from secmark.errors import EncodingError
from secmark.messages.document import Fields, SignedDocument, open_document

__all__ = [
    "MAX_CROSS_CHECKED",
    "MAX_RIVALS",
    "OUTCOMES",
    "CrossCheck",
    "ReleaseTime",
    "RivalClaim",
    "TestFigures",
    "Verdict",
    "open_verdict",
    "outcome_of",
]

OUTCOMES = ("upheld", "rejected", "ambiguous")
"""upheld: the claim holds and no rival's holds, or the registered releases
prove it the origin over every rival whose claim holds; rejected: it does
not hold, or the releases prove a holding rival the origin over it;
ambiguous: every other holding claim (:func:`outcome_of`,
``specs/dispute.md`` 8.7)."""

MAX_RIVALS = 256
"""Most rival claims a verdict lists: an arbiter refuses to decide a case
with more rather than sign a verdict nobody could open."""

MAX_CROSS_CHECKED = 64
"""Most holding claims (the decided one included) whose registered releases
are cross-checked: every release against every watermark, so a verdict holds
at most ``MAX_CROSS_CHECKED ** 2`` cross-checks. With more holding claims
none is made and the outcome is ambiguous (no proof of origin)."""

_MAX_VERDICT_SIZE = 4 * 1024 * 1024
_MAX_REASON = 4096
_MAX_COUNT = 1 << 40


# str(Fraction) of a probability in (0, 1): "n/d", digits only. Matched, never
# parsed: Fraction("1e-99999999") would compute 10^99999999, and a verifier
# compares these as text with the figures it recomputes.
_FRACTION_SPELLING = re.compile(r"[1-9][0-9]{0,127}/[1-9][0-9]{0,127}")


def _fraction_text(fields: Fields, name: str) -> str:
    text = fields.text(name, max_length=257)
    # int() of at most 128 digits each: bounded work, checked after the spelling.
    if not _FRACTION_SPELLING.fullmatch(text) or math.gcd(*map(int, text.split("/"))) != 1:
        raise EncodingError(
            f"secmark.verdict: field {name!r} must be a fraction n/d in lowest terms "
            f"written with digits only, as str(Fraction) writes it, not {text[:64]!r}"
        )
    return text


@dataclass(frozen=True)
class TestFigures:
    """The exact one-sided binomial test (``specs/statistics.md``), the
    failed queries, and the suspect's accuracy on decoys of known label:
    ``decoys_labelled`` decoys carried one, ``decoys_correct`` of them were
    answered with it (by the trigger match rule). The decoy figures are
    evidence for a reader, never an input of the decision
    (``specs/statistics.md`` 8)."""

    trials: int
    matches: int
    p0: str
    alpha: str
    threshold: int
    p_value: float
    log2_p_value: float
    ci_low: float
    ci_high: float
    trigger_errors: int
    decoy_errors: int
    decoys_labelled: int
    decoys_correct: int

    @property
    def significant(self) -> bool:
        return self.matches >= self.threshold

    def to_fields(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "ci_high": self.ci_high,
            "ci_low": self.ci_low,
            "decoy_errors": self.decoy_errors,
            "decoys_correct": self.decoys_correct,
            "decoys_labelled": self.decoys_labelled,
            "log2_p_value": self.log2_p_value,
            "matches": self.matches,
            "p0": self.p0,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "trials": self.trials,
            "trigger_errors": self.trigger_errors,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> TestFigures:
        count = {"minimum": 0, "maximum": _MAX_COUNT}
        return cls(
            trials=fields.integer("trials", **count),
            matches=fields.integer("matches", **count),
            p0=_fraction_text(fields, "p0"),
            alpha=_fraction_text(fields, "alpha"),
            threshold=fields.integer("threshold", **count),
            p_value=fields.number("p_value"),
            log2_p_value=fields.number("log2_p_value"),
            ci_low=fields.number("ci_low"),
            ci_high=fields.number("ci_high"),
            trigger_errors=fields.integer("trigger_errors", **count),
            decoy_errors=fields.integer("decoy_errors", **count),
            decoys_labelled=fields.integer("decoys_labelled", **count),
            decoys_correct=fields.integer("decoys_correct", **count),
        )


@dataclass(frozen=True)
class ReleaseTime:
    release_id: str
    model_digest: str
    trusted_time: datetime

    def to_fields(self) -> dict[str, Any]:
        return {
            "model_digest": self.model_digest,
            "release_id": self.release_id,
            "trusted_time": format_time(self.trusted_time),
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> ReleaseTime:
        return cls(
            fields.hex_digest("release_id"),
            fields.hex_digest("model_digest"),
            fields.time("trusted_time"),
        )


@dataclass(frozen=True)
class RivalClaim:
    """Another claim on the same suspect, as the arbiter judged it."""

    claim_id: str
    owner: str
    commitment_time: datetime
    release_time: datetime | None
    holds_on_suspect: bool

    def to_fields(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id,
            "commitment_time": format_time(self.commitment_time),
            "holds_on_suspect": self.holds_on_suspect,
            "owner": self.owner,
            "release_time": None if self.release_time is None else format_time(self.release_time),
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> RivalClaim:
        return cls(
            fields.hex_digest("claim_id"),
            fields.hex_digest("owner"),
            fields.time("commitment_time"),
            None if fields.is_null("release_time") else fields.time("release_time"),
            fields.boolean("holds_on_suspect"),
        )


@dataclass(frozen=True)
class CrossCheck:
    """Whether the released model registered by ``model_of`` carries the
    watermark of ``watermark_of`` (both claim ids).

    ``trials``, ``matches`` and ``threshold`` are the exact test of the
    watermark's challenged triggers on the released model, at the level of
    that watermark's claim. The *control* scores the same model's answers to
    decoys, each against the label of a trigger drawn at random: a model
    that matches the labels on inputs that are not the triggers carries the
    watermark the way any model would, which proves nothing about where it
    came from (a label space whose real p0 exceeds the stated one: a
    "universal mark"). ``trigger_errors`` and ``decoy_errors`` count the
    queries the released model failed.
    """

    model_of: str
    watermark_of: str
    trials: int
    matches: int
    threshold: int
    log2_p_value: float
    trigger_errors: int
    decoy_errors: int
    control_trials: int
    control_matches: int
    control_threshold: int

    @property
    def carries(self) -> bool:
        return self.matches >= self.threshold

    @property
    def complete(self) -> bool:
        """Every query answered, and a test that could have found the mark."""
        return (
            self.trigger_errors == 0
            and self.decoy_errors == 0
            and 0 < self.threshold <= self.trials
        )

    @property
    def specific(self) -> bool:
        """The control ran (it could have fired) and did not fire."""
        return 0 < self.control_threshold <= self.control_trials and (
            self.control_matches < self.control_threshold
        )

    @property
    def proves_copy(self) -> bool:
        """The release carries the watermark as only a model made with its
        secret triggers can: complete, carried, and specific."""
        return self.complete and self.carries and self.specific

    @property
    def proves_absence(self) -> bool:
        """Complete, and the release does not carry the watermark."""
        return self.complete and not self.carries

    def to_fields(self) -> dict[str, Any]:
        return {
            "control_matches": self.control_matches,
            "control_threshold": self.control_threshold,
            "control_trials": self.control_trials,
            "decoy_errors": self.decoy_errors,
            "log2_p_value": self.log2_p_value,
            "matches": self.matches,
            "model_of": self.model_of,
            "threshold": self.threshold,
            "trials": self.trials,
            "trigger_errors": self.trigger_errors,
            "watermark_of": self.watermark_of,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> CrossCheck:
        count = {"minimum": 0, "maximum": _MAX_COUNT}
        return cls(
            model_of=fields.hex_digest("model_of"),
            watermark_of=fields.hex_digest("watermark_of"),
            trials=fields.integer("trials", **count),
            matches=fields.integer("matches", **count),
            threshold=fields.integer("threshold", **count),
            log2_p_value=fields.number("log2_p_value"),
            trigger_errors=fields.integer("trigger_errors", **count),
            decoy_errors=fields.integer("decoy_errors", **count),
            control_trials=fields.integer("control_trials", **count),
            control_matches=fields.integer("control_matches", **count),
            control_threshold=fields.integer("control_threshold", **count),
        )


def _proved_origin(
    first: str, second: str, checks: Mapping[tuple[str, str], CrossCheck | None]
) -> bool:
    """The registered releases prove claim ``first`` the origin over claim
    ``second``: ``second``'s release carries ``first``'s watermark (and not
    as any model would), and ``first``'s release does not carry ``second``'s."""
    copy, own = checks.get((second, first)), checks.get((first, second))
    return copy is not None and copy.proves_copy and own is not None and own.proves_absence


def outcome_of(
    claim_id: str,
    holds: bool,
    rivals: Sequence[RivalClaim],
    cross_checks: Sequence[CrossCheck],
) -> tuple[str, str | None]:
    """The outcome of ``specs/dispute.md`` 8.7 for a claim whose own test
    ``holds`` (or not), given its rivals and the cross-checks of registered
    releases; and, for a claim rejected by the cross-checks, the claim id of
    the rival proved the origin over it (else None).

    A pure function of what a verdict states, so that a judge re-derives the
    outcome offline. A cross-check listed twice for one (model, watermark)
    pair counts as not made. Time plays no part: only the pairs of
    cross-checks prove anything.
    """
    if not holds:
        return "rejected", None
    holding = list(
        dict.fromkeys(r.claim_id for r in rivals if r.holds_on_suspect and r.claim_id != claim_id)
    )
    if not holding:
        return "upheld", None
    checks: dict[tuple[str, str], CrossCheck | None] = {}
    for check in cross_checks:
        pair = (check.model_of, check.watermark_of)
        checks[pair] = None if pair in checks else check
    if all(_proved_origin(claim_id, rival, checks) for rival in holding):
        return "upheld", None
    for rival in holding:
        if _proved_origin(rival, claim_id, checks):
            return "rejected", rival
    return "ambiguous", None


@dataclass(frozen=True)
class Verdict:
    """``secmark.verdict`` version 1, signed by the arbiter."""

    TYPE: ClassVar[str] = "secmark.verdict"
    VERSION: ClassVar[int] = 1

    claim_id: str
    challenge_id: str
    commitment_id: str
    transcript_id: str
    owner: str
    suspect: str
    commitment_time: datetime
    release: ReleaseTime | None
    test: TestFigures
    prior_challenges: int
    rivals: tuple[RivalClaim, ...]
    cross_checks: tuple[CrossCheck, ...]
    outcome: str
    reason: str
    issued: datetime

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise EncodingError(f"a verdict's outcome is one of {OUTCOMES}, not {self.outcome!r}")

    def outcome_given(self, holds: bool) -> str:
        """The outcome this verdict's rivals and cross-checks give a claim
        whose test ``holds`` (:func:`outcome_of`)."""
        return outcome_of(self.claim_id, holds, self.rivals, self.cross_checks)[0]

    def to_fields(self) -> dict[str, Any]:
        return {
            "challenge_id": self.challenge_id,
            "claim_id": self.claim_id,
            "commitment_id": self.commitment_id,
            "commitment_time": format_time(self.commitment_time),
            "cross_checks": [check.to_fields() for check in self.cross_checks],
            "issued": format_time(self.issued),
            "outcome": self.outcome,
            "owner": self.owner,
            "prior_challenges": self.prior_challenges,
            "reason": self.reason,
            "release": None if self.release is None else self.release.to_fields(),
            "rivals": [rival.to_fields() for rival in self.rivals],
            "suspect": self.suspect,
            "test": self.test.to_fields(),
            "transcript_id": self.transcript_id,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Verdict:
        return cls(
            claim_id=fields.hex_digest("claim_id"),
            challenge_id=fields.hex_digest("challenge_id"),
            commitment_id=fields.hex_digest("commitment_id"),
            transcript_id=fields.hex_digest("transcript_id"),
            owner=fields.hex_digest("owner"),
            suspect=fields.text("suspect"),
            commitment_time=fields.time("commitment_time"),
            release=None
            if fields.is_null("release")
            else fields.nested("release", ReleaseTime.from_fields),
            test=fields.nested("test", TestFigures.from_fields),
            prior_challenges=fields.integer("prior_challenges", minimum=0, maximum=_MAX_COUNT),
            rivals=tuple(fields.objects("rivals", RivalClaim.from_fields, max_items=MAX_RIVALS)),
            cross_checks=tuple(
                fields.objects(
                    "cross_checks", CrossCheck.from_fields, max_items=MAX_CROSS_CHECKED**2
                )
            ),
            outcome=fields.text("outcome"),
            reason=fields.text("reason", max_length=_MAX_REASON),
            issued=fields.time("issued"),
        )


def open_verdict(data: bytes, arbiter: PublicKeys) -> SignedDocument[Verdict]:
    return open_document(data, Verdict, arbiter, max_size=_MAX_VERDICT_SIZE)
