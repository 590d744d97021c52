"""Verdict bundles and their offline re-verification.

A bundle (``secmark.bundle`` version 1, canonical JSON) holds, as their exact
bytes, every document a third party needs to re-check a verdict without
contacting anybody: the arbiter's identity, the claim (with the commitment,
release and timestamp evidence inside), the challenge, the sealed reveal and
its opened contents, the transcript and the verdict, plus the TSA root
certificates the arbiter trusted.

:func:`verify_bundle` re-checks every signature, timestamp, VRF proof,
derivation and the match count and statistics recomputed from the
transcript. What it cannot re-check, and says so: that the suspect really
gave the answers in the transcript (the arbiter's signature attests them),
and the rival claims and cross-checks a verdict lists (attested likewise).
Trust is never self-asserted silently: without the judge's own TSA roots the
report's times are :attr:`TimeTrust.SELF_ASSERTED`, and without a pinned
arbiter key id the report says any arbiter's signature was accepted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from secmark.encoding import format_time, utc_now
from secmark.errors import EncodingError, ProofError, ProtocolError, SignatureError
from secmark.messages.challenge import open_challenge
from secmark.messages.claim import MAX_CLAIM_SIZE, Claim, evidence_kinds_for
from secmark.messages.commitment import open_commitment
from secmark.messages.document import (
    Fields,
    decode_payload,
    encode_payload,
    read_unverified_payload,
)
from secmark.messages.identity import open_identity
from secmark.messages.release import open_release
from secmark.messages.reveal import RevealContents, open_reveal
from secmark.messages.transcript import open_transcript
from secmark.messages.verdict import open_verdict
from secmark.protocol.case import Case
from secmark.protocol.challenge import check_challenge_indices
from secmark.protocol.querying import input_digest, score_answers
from secmark.protocol.reveals import revealed_triggers
from secmark.protocol.suspects import canonical_suspect
from secmark.timestamp import TrustStore
from secmark.timestamp.evidence import TimestampEvidence

__all__ = [
    "MAX_BUNDLE_SIZE",
    "Bundle",
    "BundleReport",
    "TimeTrust",
    "build_bundle",
    "verify_bundle",
]

MAX_BUNDLE_SIZE = 1024 * 1024 * 1024
"""Transcripts of large challenges dominate; a gigabyte is far beyond them."""

_MAX_ROOTS = 16


@dataclass(frozen=True)
class Bundle:
    """``secmark.bundle`` version 1: documents as UTF-8 text of their bytes."""

    TYPE: ClassVar[str] = "secmark.bundle"
    VERSION: ClassVar[int] = 1

    arbiter_identity: str
    claim: str
    challenge: str
    reveal: str
    reveal_contents: str
    transcript: str
    verdict: str
    tsa_roots: tuple[str, ...]

    def to_fields(self) -> dict[str, Any]:
        return {
            "arbiter_identity": self.arbiter_identity,
            "challenge": self.challenge,
            "claim": self.claim,
            "reveal": self.reveal,
            "reveal_contents": self.reveal_contents,
            "transcript": self.transcript,
            "tsa_roots": list(self.tsa_roots),
            "verdict": self.verdict,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Bundle:
        limit = MAX_BUNDLE_SIZE
        return cls(
            arbiter_identity=fields.text("arbiter_identity", max_length=limit),
            claim=fields.text("claim", max_length=limit),
            challenge=fields.text("challenge", max_length=limit),
            reveal=fields.text("reveal", max_length=limit),
            reveal_contents=fields.text("reveal_contents", max_length=limit),
            transcript=fields.text("transcript", max_length=limit),
            verdict=fields.text("verdict", max_length=limit),
            tsa_roots=tuple(
                fields.text_list("tsa_roots", max_items=_MAX_ROOTS, max_length=64 * 1024)
            ),
        )


def build_bundle(arbiter_identity: bytes, trust: TrustStore, case: Case, verdict: bytes) -> bytes:
    """The bundle of a decided case."""
    bundle = Bundle(
        arbiter_identity=arbiter_identity.decode(),
        claim=case.read("claim.json").decode(),
        challenge=case.read("challenge.json").decode(),
        reveal=case.read("reveal.json").decode(),
        reveal_contents=case.read("reveal-contents.json").decode(),
        transcript=case.read("transcript.json").decode(),
        verdict=verdict.decode(),
        tsa_roots=tuple(root.public_bytes(Encoding.PEM).decode() for root in trust.roots),
    )
    return encode_payload(bundle)


class TimeTrust(str, Enum):
    """Whose word the trusted times of a verified bundle rest on."""

    JUDGE_ROOTS = "judge-roots"
    """The timestamps verify against TSA roots the judge gave."""
    SELF_ASSERTED = "self-asserted"
    """The timestamps verify only against the TSA roots inside the bundle,
    which whoever made the bundle may have made: the times, and so the
    verdict, are the bundle's own assertion."""


@dataclass(frozen=True)
class BundleReport:
    """What a judge reads: every fact re-checked, and what rests on trust.

    ``outcome`` is the verdict's outcome, re-checked. It is only as good as
    ``time_trust`` (self-asserted without the judge's own TSA roots) and
    ``arbiter_pinned`` (whether the judge named the arbiter's key id; if not,
    any arbiter's signature, the bundle maker's own included, was accepted).
    """

    outcome: str
    commitment_time: datetime
    lines: tuple[str, ...]
    time_trust: TimeTrust
    arbiter_key_id: str
    arbiter_pinned: bool

    @property
    def fully_trusted(self) -> bool:
        """True when the times rest on the judge's roots and the arbiter is pinned."""
        return self.time_trust is TimeTrust.JUDGE_ROOTS and self.arbiter_pinned


def _time(
    evidence_text: bytes, subject: str, trust: TrustStore, now: datetime | None
) -> tuple[datetime, list[str]]:
    evidence = TimestampEvidence.from_json(evidence_text)
    if evidence.subject != subject:
        raise ProtocolError(f"timestamp evidence dates {evidence.subject}, not {subject}")
    check = evidence.check(trust, now=now)
    return check.require_trusted_time(), evidence.describe(check)


def _trust_lines(time_trust: TimeTrust, arbiter_key_id: str, *, pinned: bool) -> list[str]:
    """What the report's facts rest on: whose TSA roots, and which arbiter."""
    if time_trust is TimeTrust.JUDGE_ROOTS:
        time_line = "  time: verified against the judge's own TSA roots (listed above)"
    else:
        time_line = (
            "  time: SELF-ASSERTED: the timestamps verify only against TSA roots inside the "
            "bundle, which whoever made the bundle may have made, and with them every time "
            "in it; the verdict rests on those roots. Verify with your own TSA roots."
        )
    if pinned:
        arbiter_line = f"  arbiter: {arbiter_key_id}, pinned by the judge"
    else:
        arbiter_line = (
            f"  arbiter: {arbiter_key_id}, NOT pinned: a bundle signed by any arbiter, the "
            "bundle maker's own included, verifies. Pin the arbiter's key id you trust."
        )
    return ["trust:", time_line, arbiter_line]


def _bundle_roots(texts: tuple[str, ...]) -> TrustStore:
    """The TSA roots a bundle carries, checked so that no byte of them can
    change unnoticed: each entry is exactly one certificate, in the canonical
    PEM the arbiter writes, whose self-signature verifies.

    Raises:
        EncodingError: no root, or an entry that is not one well-formed
            certificate in canonical PEM.
        SignatureError: a root whose self-signature does not verify.
    """
    if not texts:
        raise EncodingError("the bundle carries no TSA root")
    roots = []
    for position, text in enumerate(texts):
        try:
            (root,) = x509.load_pem_x509_certificates(text.encode())
            canonical = root.public_bytes(Encoding.PEM).decode()
            # Parse now every field later steps read: the parser is lazy.
            root.subject.rfc4514_string(), root.issuer.rfc4514_string(), root.extensions
            root.not_valid_before_utc, root.not_valid_after_utc, root.public_key()
        except Exception:  # noqa: BLE001 - the certificate parser fails in many ways on untrusted bytes
            raise EncodingError(
                f"TSA root {position} of the bundle is not one well-formed certificate"
            ) from None
        if canonical != text:
            raise EncodingError(f"TSA root {position} of the bundle is not in canonical PEM")
        try:
            root.verify_directly_issued_by(root)
        except (ValueError, TypeError, InvalidSignature):
            raise SignatureError(
                f"TSA root {position} of the bundle is not validly self-signed"
            ) from None
        if root in roots:
            # One root twice would be another spelling of the same bundle.
            raise EncodingError(f"TSA root {position} of the bundle repeats an earlier one")
        roots.append(root)
    return TrustStore(roots=tuple(roots))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ProofError(message)


def verify_bundle(
    data: bytes,
    trust: TrustStore | None = None,
    *,
    arbiter_key_id: str | None = None,
    now: datetime | None = None,
) -> BundleReport:
    """Re-check a bundle offline; return the report, or raise at the first failure.

    ``trust`` is the judge's own trust store; without it the TSA roots in
    the bundle are used, the report's ``time_trust`` is
    :attr:`TimeTrust.SELF_ASSERTED` and its lines say so and name the roots'
    fingerprints so the judge can compare them with roots they trust.
    ``arbiter_key_id`` pins the arbiter (its identity key id, 64 lowercase hex
    digits): a bundle signed by another arbiter is refused; without it the
    report says the arbiter is not pinned. ``now`` is the verifier's clock
    (tz-aware; default: the real UTC clock): tokens dated after it by more
    than :data:`~secmark.timestamp.MAX_CLOCK_SKEW` do not verify.

    Raises:
        EncodingError, SignatureError, ProofError, TimestampError,
        ProtocolError: the check that failed, named in the message
        (``SignatureError`` for a bundle of another arbiter than the pinned one;
        ``EncodingError`` for a pin that is not a key id).
    """
    if arbiter_key_id is not None:
        pin = Fields({"key_id": arbiter_key_id}, context="the pinned arbiter")
        arbiter_key_id = pin.hex_digest("key_id")
    now = utc_now() if now is None else now
    bundle = decode_payload(data, Bundle, MAX_BUNDLE_SIZE)
    bundle_roots = _bundle_roots(bundle.tsa_roots)
    time_trust = TimeTrust.JUDGE_ROOTS
    roots_note = "the judge's trust store"
    if trust is None:
        trust = bundle_roots
        time_trust = TimeTrust.SELF_ASSERTED
        roots_note = (
            "the TSA roots inside the bundle, not the judge's, so the times are "
            "SELF-ASSERTED; compare their fingerprints with roots you trust"
        )

    arbiter = open_identity(bundle.arbiter_identity.encode()).document
    # The pin is checked before anything the arbiter signed is read further.
    if arbiter_key_id is not None and arbiter.key_id != arbiter_key_id:
        raise SignatureError(
            f"the bundle is signed by arbiter {arbiter.key_id}, not by the pinned arbiter "
            f"{arbiter_key_id}"
        )
    envelope, claim = read_unverified_payload(bundle.claim.encode(), Claim, max_size=MAX_CLAIM_SIZE)
    commitment = open_commitment(claim.commitment)
    owner = commitment.document.owner
    envelope.verify(owner)
    claim_id = hashlib.sha256(envelope.payload).hexdigest()
    _require(claim.arbiter == arbiter.key_id, "the claim is addressed to another arbiter")
    _require(
        claim.evidence_kinds == evidence_kinds_for(commitment.document.family),
        "the claim's evidence kind does not fit its commitment's family",
    )
    if canonical_suspect(claim.suspect) != claim.suspect:
        raise ProtocolError("the claim's suspect reference is not canonical")
    commitment_time, commitment_lines = _time(
        claim.commitment_evidence, commitment.digest, trust, now
    )

    release_lines: list[str] = []
    release_time = None
    if claim.release is not None and claim.release_evidence is not None:
        release = open_release(claim.release, owner)
        _require(
            release.document.commitment_id == commitment.digest,
            "the release names another commitment",
        )
        release_time, release_lines = _time(claim.release_evidence, release.digest, trust, now)
        _require(commitment_time < release_time, "the release is timestamped before its commitment")

    challenge = open_challenge(bundle.challenge.encode(), arbiter.public_keys)
    document = challenge.document
    _require(document.claim_id == claim_id, "the challenge answers another claim")
    _require(document.commitment_id == commitment.digest, "the challenge names another commitment")
    _require(document.suspect == claim.suspect, "the challenge names another suspect")
    check_challenge_indices(document, arbiter.public_keys.vrf_key, commitment.document.size)

    reveal = open_reveal(bundle.reveal.encode(), owner)
    _require(
        reveal.document.challenge_id == challenge.digest, "the reveal answers another challenge"
    )
    contents = RevealContents.from_json(bundle.reveal_contents.encode())
    _require(
        contents.challenge_id == challenge.digest, "the revealed proofs answer another challenge"
    )
    triggers = revealed_triggers(commitment, contents, document.indices)

    transcript = open_transcript(bundle.transcript.encode(), arbiter.public_keys)
    _require(
        transcript.document.challenge_id == challenge.digest,
        "the transcript is of another challenge",
    )
    _require(transcript.document.suspect == claim.suspect, "the transcript is of another suspect")
    entries = transcript.document.entries
    by_index = {e.trigger_index: e for e in entries if e.trigger_index is not None}
    _require(
        sorted(by_index) == list(document.indices),
        "the transcript's triggers are not the challenged ones",
    )
    _require(
        len(entries) - len(by_index) == document.decoys,
        "the transcript's decoy count differs from the challenge",
    )
    for trigger in triggers:
        _require(
            by_index[trigger.index].input_sha256 == input_digest(trigger.input),
            f"the input sent as trigger {trigger.index} is not the committed trigger",
        )

    verdict = open_verdict(bundle.verdict.encode(), arbiter.public_keys).document
    # The level is the challenge's (halved for each earlier challenge of the
    # commitment, bounded by MAX_ALPHA); the verdict must test at exactly it.
    alpha = document.alpha
    _require(
        verdict.test.alpha == str(alpha), "the verdict tests at another level than its challenge"
    )
    rescored = score_answers(
        commitment.document.labels,
        [trigger.label for trigger in triggers],
        entries,
        alpha=alpha,
    )
    _require(
        (rescored.trials, rescored.matches, rescored.test.threshold, rescored.test.p0_exact)
        == (verdict.test.trials, verdict.test.matches, verdict.test.threshold, verdict.test.p0),
        "the verdict's figures differ from those recomputed from the transcript",
    )
    _require(
        (rescored.trigger_errors, rescored.decoy_errors)
        == (verdict.test.trigger_errors, verdict.test.decoy_errors),
        "the verdict's error counts differ from the transcript's",
    )
    _require(
        (verdict.claim_id, verdict.challenge_id, verdict.commitment_id, verdict.transcript_id)
        == (claim_id, challenge.digest, commitment.digest, transcript.digest),
        "the verdict names other documents than the bundle holds",
    )
    _require(
        verdict.owner == owner.key_id and verdict.suspect == claim.suspect,
        "the verdict names another owner or suspect",
    )
    _require(
        verdict.commitment_time == commitment_time, "the verdict states another commitment time"
    )
    if release_time is not None:
        _require(
            verdict.release is not None and verdict.release.trusted_time == release_time,
            "the verdict states another release time",
        )
        _require(
            (verdict.release.release_id, verdict.release.model_digest)  # type: ignore[union-attr]
            == (release.digest, release.document.model_digest),
            "the verdict names another release than the claim's",
        )
    else:
        _require(
            verdict.release is None, "the verdict states a release the claim does not register"
        )
    _require(
        verdict.prior_challenges == document.prior_challenges,
        "the verdict states another number of earlier challenges than the challenge",
    )
    holds = rescored.test.decision
    if not holds:
        _require(
            verdict.outcome == "rejected", "the verdict upholds a claim whose test does not hold"
        )
    elif not verdict.rivals:
        _require(
            verdict.outcome == "upheld", "the verdict rejects a claim that holds with no rival"
        )
    # specs/dispute.md 8.7: the outcome is a function of the verdict's own
    # rivals and cross-checks (attested by the arbiter), re-derived here.
    _require(
        verdict.outcome == verdict.outcome_given(holds),
        f"the verdict's outcome {verdict.outcome!r} is not the "
        f"{verdict.outcome_given(holds)!r} that its test, rivals and cross-checks give",
    )

    model = commitment.document
    lines = [
        f"claim {claim_id}",
        f"  owner {owner.key_id} claims that {claim.suspect} carries its watermark",
        f"  commitment {commitment.digest}: {model.family.NAME} family, N = {model.size}, model label {model.model_label!r}",
        f"committed (timestamps checked against {roots_note}):",
        *(f"  {line}" for line in commitment_lines),
        f"  trusted commitment time: {format_time(commitment_time)}",
        *(
            f"  TSA root SHA-256 {root.fingerprint(hashes.SHA256()).hex()} ({root.subject.rfc4514_string()})"
            for root in trust.roots
        ),
        *_trust_lines(time_trust, arbiter.key_id, pinned=arbiter_key_id is not None),
    ]
    if release_time is not None:
        lines += ["released (registered model):", *(f"  {line}" for line in release_lines)]
    lines += [
        (
            f"asked: {len(document.indices)} triggers chosen by the arbiter's VRF (proof checked), "
            f"mixed with {document.decoys} decoys; "
            f"{document.prior_challenges} earlier challenge(s) on this commitment"
        ),
        f"revealed: {len(triggers)} VRF proofs checked, every trigger re-derived and matched to the input sent",
        (
            f"answered: {rescored.matches} of {rescored.trials} trials matched the committed labels "
            f"({rescored.trigger_errors} trigger and {rescored.decoy_errors} decoy queries failed)"
        ),
        f"  the suspect's answers are attested by the arbiter's signature ({arbiter.key_id}), not re-checkable offline",
        f"statistics: p0 = {rescored.test.p0_exact}, p-value = 2^{rescored.test.log2_p_value:.2f}, "
        f"threshold {rescored.test.threshold} at alpha = 2^{rescored.test.log2_alpha:.0f}: "
        + ("the null hypothesis is rejected" if holds else "the null hypothesis stands"),
        f"verdict: {verdict.outcome} ({verdict.reason})",
    ]
    if verdict.rivals or verdict.cross_checks:
        lines.append(
            f"  {len(verdict.rivals)} rival claim(s) and {len(verdict.cross_checks)} cross-check(s), "
            "as attested by the arbiter:"
        )
        lines += [
            f"    rival {r.claim_id[:16]}: committed {format_time(r.commitment_time)}, "
            f"holds on suspect: {r.holds_on_suspect}"
            for r in verdict.rivals
        ]
        lines += [
            f"    release of {c.model_of[:16]} carries mark of {c.watermark_of[:16]}: {c.carries} "
            f"({c.matches}/{c.trials}, threshold {c.threshold}; control {c.control_matches}/"
            f"{c.control_trials}, fires at {c.control_threshold}; "
            f"{c.trigger_errors + c.decoy_errors} queries failed): "
            + (
                "proves a copy"
                if c.proves_copy
                else "proves absence"
                if c.proves_absence
                else "proves nothing"
            )
            for c in verdict.cross_checks
        ]
    return BundleReport(
        verdict.outcome,
        commitment_time,
        tuple(lines),
        time_trust=time_trust,
        arbiter_key_id=arbiter.key_id,
        arbiter_pinned=arbiter_key_id is not None,
    )
