"""The report of a bundle's verification: checks, times, parties, figures.

:func:`secmark.protocol.bundle.examine_bundle` fills it in;
``secmark.report`` renders it as text, JSON and HTML. Every fact in it was
authenticated by a check that passed before it was recorded: a report of a
bundle that failed holds only what the checks before the failure
established, and never an outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from secmark.errors import SecmarkError
from secmark.messages.verdict import CrossCheck, RivalClaim
from secmark.protocol.checks import Basis, Check, CheckResult

__all__ = [
    "BundleReport",
    "BundleStatus",
    "CaseFacts",
    "Failure",
    "Figures",
    "Party",
    "RootSource",
    "TimeTrust",
    "TimestampToken",
    "TrustedTime",
    "TsaRoot",
    "VerdictFacts",
]


class TimeTrust(str, Enum):
    """Whose word the trusted times of a verified bundle rest on."""

    JUDGE_ROOTS = "judge-roots"
    """The timestamps verify against TSA roots the judge gave."""
    SELF_ASSERTED = "self-asserted"
    """The timestamps verify only against the TSA roots inside the bundle,
    which whoever made the bundle may have made: the times, and so the
    verdict, are the bundle's own assertion."""

    @property
    def basis(self) -> Basis:
        """The basis of every check that reads a trusted time."""
        return Basis.JUDGE_ROOTS if self is TimeTrust.JUDGE_ROOTS else Basis.BUNDLE_ROOTS


class BundleStatus(str, Enum):
    """What a verification run concluded."""

    VERIFIED = "verified"
    """Every check passed, the times against the judge's own TSA roots."""
    SELF_ASSERTED = "self-asserted"
    """Every check passed, but the times rest on the bundle's own TSA roots."""
    FAILED = "failed"
    """A check failed: the bundle proves nothing."""


class RootSource(str, Enum):
    """Where a TSA root the verifier used came from."""

    JUDGE = "judge"
    BUNDLE = "bundle"


@dataclass(frozen=True)
class TsaRoot:
    """A TSA root certificate: SHA-256 fingerprint of its DER (lower-case
    hex), subject (RFC 4514), who gave it to the verifier (the judge, or
    only the bundle), whether the bundle carries it, and whether a token of
    this bundle chained to it."""

    sha256: str
    subject: str
    source: RootSource
    in_bundle: bool
    used: bool


@dataclass(frozen=True)
class TimestampToken:
    """One token of a document's timestamp evidence: ``time`` and the
    TSA's ``tsa`` subject and ``root_sha256`` when it verified, ``error``
    (why not) when it did not. ``source`` is the evidence's own note of
    where the token came from (information only)."""

    source: str
    time: datetime | None
    tsa: str | None
    root_sha256: str | None
    error: str | None


@dataclass(frozen=True)
class TrustedTime:
    """The trusted time of one document: the earliest verified token's.

    ``event`` is ``"commitment"`` or ``"release"``; ``root_sha256`` the root
    that token chained to and ``root_source`` whether that root came from
    the judge or from the bundle.
    """

    event: str
    document_id: str
    time: datetime
    root_sha256: str
    root_source: RootSource
    tokens: tuple[TimestampToken, ...]


@dataclass(frozen=True)
class Party:
    """An owner or the arbiter: the key id that counts, and the name its
    identity document states (``None`` where the bundle names none: an
    owner is known by key id only). Names are the party's own label,
    unverified text."""

    role: str
    key_id: str
    name: str | None


@dataclass(frozen=True)
class CaseFacts:
    """What the claim is about, authenticated by the owner's signature."""

    claim_id: str
    suspect: str
    commitment_id: str
    family: str
    size: int
    model_label: str
    release_id: str | None
    release_model: str | None
    release_version: str | None
    release_digest: str | None


@dataclass(frozen=True)
class Figures:
    """The test, recomputed by the verifier from the transcript.

    ``p0`` and ``alpha`` are exact fractions ``"n/d"``; ``p_value`` may
    underflow to 0.0 (``log2_p_value`` does not); ``decision`` is
    ``matches >= threshold``, decided on exact rationals. ``challenged`` is
    k (triggers asked), ``decoys`` the decoys mixed with them.

    ``decoys_correct`` of the ``decoys_labelled`` decoys with a known label
    (the arbiter's word) were answered with it; ``decoy_ci_low`` and
    ``decoy_ci_high`` are the exact 95 % interval of that accuracy, None
    when no decoy is labelled (or more are than an interval is computed for,
    :data:`~secmark.stats.MAX_TRIALS`). None of them is part of the test.
    """

    trials: int
    matches: int
    threshold: int
    p0: str
    alpha: str
    log2_alpha: float
    p_value: float
    log2_p_value: float
    ci_low: float
    ci_high: float
    decision: bool
    trigger_errors: int
    decoy_errors: int
    challenged: int
    decoys: int
    prior_challenges: int
    decoys_labelled: int
    decoys_correct: int
    decoy_ci_low: float | None
    decoy_ci_high: float | None


@dataclass(frozen=True)
class VerdictFacts:
    """The verdict, re-derived: its outcome, the arbiter's reason (its own
    words, informative), when it says it issued it (its own clock), and the
    rivals and cross-checks it attests."""

    outcome: str
    reason: str
    issued: datetime
    challenge_issued: datetime
    challenge_expires: datetime
    rivals: tuple[RivalClaim, ...]
    cross_checks: tuple[CrossCheck, ...]


@dataclass(frozen=True)
class Failure:
    """The check that failed, the error's class name, its command-line exit
    code and its message."""

    check: str
    error: str
    exit_code: int
    message: str


@dataclass(frozen=True)
class BundleReport:
    """What a judge reads: every check, and what rests on whose word.

    ``outcome`` is the verdict's outcome, re-checked; ``None`` when a check
    failed. It is only as good as ``time_trust`` (self-asserted without the
    judge's own TSA roots) and ``arbiter_pinned`` (whether the judge named
    the arbiter's key id; if not, any arbiter's signature, the bundle
    maker's own included, was accepted). ``checked_at`` is the verifier's
    clock. Every other field holds only facts that a passed check
    established (``None`` or empty otherwise). ``error`` is the exception
    of the failed check, for callers that raise it.
    """

    outcome: str | None
    commitment_time: datetime | None
    time_trust: TimeTrust
    arbiter_key_id: str | None
    arbiter_pinned: bool
    checked_at: datetime
    checks: tuple[Check, ...]
    owner: Party | None = None
    arbiter: Party | None = None
    case: CaseFacts | None = None
    times: tuple[TrustedTime, ...] = ()
    roots: tuple[TsaRoot, ...] = ()
    figures: Figures | None = None
    verdict: VerdictFacts | None = None
    failure: Failure | None = None
    error: SecmarkError | None = field(default=None, compare=False, repr=False)

    @property
    def checks_passed(self) -> bool:
        """True when no check failed (the not-checked ones are what rests on
        the arbiter's word, or did not apply)."""
        return self.failure is None

    @property
    def status(self) -> BundleStatus:
        if self.failure is not None:
            return BundleStatus.FAILED
        if self.time_trust is TimeTrust.JUDGE_ROOTS:
            return BundleStatus.VERIFIED
        return BundleStatus.SELF_ASSERTED

    @property
    def fully_trusted(self) -> bool:
        """True when every check passed, the times rest on the judge's roots
        and the arbiter is pinned."""
        return self.status is BundleStatus.VERIFIED and self.arbiter_pinned

    @property
    def failed_check(self) -> Check | None:
        return next((c for c in self.checks if c.result is CheckResult.FAILED), None)

    def resting_on(self, basis: Basis) -> tuple[Check, ...]:
        """The checks whose result rests on ``basis``."""
        return tuple(check for check in self.checks if check.rests_on is basis)
