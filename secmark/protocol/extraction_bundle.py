"""Extraction bundles: everything a judge needs to re-check an extraction verdict offline.

A bundle holds the arbiter's identity, the claim, the log extract, the
transcript, the verdict and the TSA roots the arbiter trusted.
:func:`examine_extraction_bundle` runs, in order, the checks of
:func:`extraction_bundle_checks`: the claim checks the arbiter ran
(:mod:`secmark.protocol.extraction`), then the sample the arbiter's VRF
chose, the transcript, the recount of the test, and that the verdict states
what the checks found. The suspect's answers rest on the arbiter's
signature; the log's traffic on its operator's (or, where the owner
operates the log, on the owner's) word.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any, ClassVar

from cryptography.hazmat.primitives.serialization import Encoding

from secmark.encoding import format_time, utc_now
from secmark.errors import ProofError, ProtocolError, SecmarkError, SignatureError
from secmark.messages.challenge import MAX_ALPHA
from secmark.messages.document import Fields, decode_payload, encode_payload
from secmark.messages.extraction import REJECTED, UPHELD, open_extraction_verdict
from secmark.messages.identity import open_identity
from secmark.messages.transcript import open_transcript
from secmark.protocol.bundle import bundle_trust_store
from secmark.protocol.bundle_report import RootSource, TimeTrust
from secmark.protocol.checks import Basis, Check, Checklist, CheckSpec
from secmark.protocol.extraction import (
    ExtractionDecision,
    claim_checks,
    examine_claim,
    sample_alpha,
    test_figures,
    tested_entries,
)
from secmark.timestamp import TrustStore

__all__ = [
    "MAX_EXTRACTION_BUNDLE_SIZE",
    "ExtractionBundle",
    "ExtractionReport",
    "build_extraction_bundle",
    "examine_extraction_bundle",
    "extraction_bundle_checks",
    "is_extraction_bundle",
]

MAX_EXTRACTION_BUNDLE_SIZE = 2 * 1024 * 1024 * 1024
"""A bundle holds a log extract (up to 1 GiB) and the transcript."""

_MAX_ROOTS = 16


@dataclass(frozen=True)
class ExtractionBundle:
    """``secmark.extraction-bundle`` version 1: documents as UTF-8 text of their bytes."""

    TYPE: ClassVar[str] = "secmark.extraction-bundle"
    VERSION: ClassVar[int] = 1

    arbiter_identity: str
    claim: str
    extract: str
    transcript: str
    verdict: str
    tsa_roots: tuple[str, ...]

    def to_fields(self) -> dict[str, Any]:
        return {
            "arbiter_identity": self.arbiter_identity,
            "claim": self.claim,
            "extract": self.extract,
            "transcript": self.transcript,
            "tsa_roots": list(self.tsa_roots),
            "verdict": self.verdict,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> ExtractionBundle:
        limit = MAX_EXTRACTION_BUNDLE_SIZE
        return cls(
            arbiter_identity=fields.text("arbiter_identity", max_length=limit),
            claim=fields.text("claim", max_length=limit),
            extract=fields.text("extract", max_length=limit),
            transcript=fields.text("transcript", max_length=limit),
            verdict=fields.text("verdict", max_length=limit),
            tsa_roots=tuple(
                fields.text_list("tsa_roots", max_items=_MAX_ROOTS, max_length=64 * 1024)
            ),
        )


def is_extraction_bundle(data: bytes) -> bool:
    """Whether ``data`` claims to be an extraction bundle (its top-level
    ``type``): which verifier to run, nothing more; the verifier checks it."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and value.get("type") == ExtractionBundle.TYPE


def build_extraction_bundle(
    arbiter_identity: bytes,
    trust: TrustStore,
    claim: bytes,
    extract: bytes,
    decision: ExtractionDecision,
) -> bytes:
    """The bundle of a decided extraction claim."""
    return encode_payload(
        ExtractionBundle(
            arbiter_identity=arbiter_identity.decode(),
            claim=claim.decode(),
            extract=extract.decode(),
            transcript=decision.transcript.to_json().decode(),
            verdict=decision.verdict.to_json().decode(),
            tsa_roots=tuple(root.public_bytes(Encoding.PEM).decode() for root in trust.roots),
        )
    )


def extraction_bundle_checks(time_trust: TimeTrust) -> tuple[CheckSpec, ...]:
    """Every check of an extraction bundle, in the order run."""
    return (
        CheckSpec(
            "bundle-format",
            "the bundle is canonical JSON of a known type and version",
            "bundle",
            Basis.RECOMPUTATION,
        ),
        CheckSpec(
            "tsa-roots",
            "the bundle's TSA roots are well-formed, canonical and self-signed",
            "bundle",
            Basis.RECOMPUTATION,
        ),
        CheckSpec(
            "arbiter-identity",
            "the arbiter's identity document is signed by its own keys",
            "arbiter",
            Basis.CRYPTOGRAPHY,
        ),
        CheckSpec(
            "arbiter-pin",
            "the arbiter is the one the judge pinned",
            "arbiter",
            Basis.JUDGE_PIN,
        ),
        CheckSpec(
            "verdict-signature",
            "the verdict and the transcript are signed by the arbiter",
            "verdict",
            Basis.CRYPTOGRAPHY,
        ),
        *claim_checks(time_trust.basis),
        CheckSpec(
            "claim-addressed",
            "the claim names this arbiter, and the verdict this claim, policy and checkpoint",
            "extraction claim",
            Basis.RECOMPUTATION,
        ),
        CheckSpec(
            "sample",
            "the tested entries are the ones the arbiter's VRF proof selects",
            "verdict",
            Basis.CRYPTOGRAPHY,
        ),
        CheckSpec(
            "transcript",
            "the transcript sent each tested input and each logged unmarked input once, "
            "with its served answer as the known label of a decoy",
            "transcript",
            Basis.RECOMPUTATION,
        ),
        CheckSpec(
            "suspect-answers",
            "the suspect gave the answers the transcript records",
            "transcript",
            Basis.ARBITER,
        ),
        CheckSpec(
            "test",
            "the exact test, re-counted at the policy's p0 and alpha over the log's accounts, "
            "gives the verdict's figures and outcome",
            "verdict",
            Basis.RECOMPUTATION,
        ),
    )


@dataclass(frozen=True)
class ExtractionReport:
    """What a judge reads: every check, and the outcome when all passed.

    ``outcome`` is None when a check failed. It is only as good as
    ``time_trust`` and ``arbiter_pinned``, and its log rests on the word the
    ``log-word`` check names.
    """

    outcome: str | None
    time_trust: TimeTrust
    arbiter_key_id: str | None
    arbiter_pinned: bool
    checked_at: datetime
    checks: tuple[Check, ...]
    error: SecmarkError | None = None

    @property
    def passed(self) -> bool:
        return self.outcome is not None

    def to_data(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "outcome": self.outcome,
            "time_trust": self.time_trust.value,
            "arbiter_key_id": self.arbiter_key_id,
            "arbiter_pinned": self.arbiter_pinned,
            "checks": [check.to_data() for check in self.checks],
        }


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ProofError(message)


def examine_extraction_bundle(
    data: bytes,
    *,
    trust: TrustStore | None = None,
    arbiter_key_id: str | None = None,
    now: datetime | None = None,
) -> ExtractionReport:
    """Run every check of an extraction bundle; never raises for the bundle's content.

    ``trust`` are the judge's own TSA roots (without them the trusted times
    rest on the bundle's roots: self-asserted); ``arbiter_key_id`` pins the
    arbiter.
    """
    time_trust = TimeTrust.JUDGE_ROOTS if trust is not None else TimeTrust.SELF_ASSERTED
    checks = Checklist(extraction_bundle_checks(time_trust))
    checked_at = now or utc_now()
    signer: str | None = None
    try:
        outcome, signer = _examine(data, trust, arbiter_key_id, checked_at, checks)
        error = None
    except SecmarkError as failure:
        outcome, error = None, failure
    return ExtractionReport(
        outcome=outcome,
        time_trust=time_trust,
        arbiter_key_id=signer,
        arbiter_pinned=arbiter_key_id is not None,
        checked_at=checked_at,
        checks=checks.records(),
        error=error,
    )


def _examine(
    data: bytes,
    judge_trust: TrustStore | None,
    pin: str | None,
    now: datetime,
    checks: Checklist,
) -> tuple[str, str]:
    with checks.check("bundle-format") as found:
        bundle = decode_payload(data, ExtractionBundle, MAX_EXTRACTION_BUNDLE_SIZE)
        found.evidence = f"canonical JSON, {len(data)} bytes, secmark.extraction-bundle version 1"
    with checks.check("tsa-roots") as found:
        bundle_roots = bundle_trust_store(bundle.tsa_roots)
        found.evidence = f"{len(bundle_roots.roots)} root(s), canonical and self-signed"
    trust = bundle_roots if judge_trust is None else judge_trust
    with checks.check("arbiter-identity") as found:
        arbiter = open_identity(bundle.arbiter_identity.encode()).document
        found.evidence = f"arbiter {arbiter.key_id}, signed by its own keys"
    if pin is None:
        checks.not_checked(
            "arbiter-pin",
            f"NOT pinned: any arbiter's signature verifies; {arbiter.key_id} is only the "
            "bundle's word. Pin the arbiter's key id you trust.",
            rests_on=Basis.BUNDLE_ARBITER,
        )
    else:
        with checks.check("arbiter-pin") as found:
            if arbiter.key_id != pin:
                raise SignatureError(
                    f"the bundle is signed by arbiter {arbiter.key_id}, not by the pinned "
                    f"arbiter {pin}"
                )
            found.evidence = f"arbiter {arbiter.key_id} is the pinned one"
    with checks.check("verdict-signature") as found:
        verdict = open_extraction_verdict(bundle.verdict.encode(), arbiter.public_keys)
        transcript = open_transcript(bundle.transcript.encode(), arbiter.public_keys)
        found.evidence = f"verdict {verdict.digest} and transcript {transcript.digest}"
    claim_bytes, extract_bytes = bundle.claim.encode(), bundle.extract.encode()
    case = examine_claim(
        claim_bytes,
        extract_bytes,
        trust=trust,
        root_source=RootSource.JUDGE if judge_trust is not None else RootSource.BUNDLE,
        now=now,
        checks=checks,
    )
    stated = verdict.document
    claim = case.claim.document
    with checks.check("claim-addressed") as found:
        if claim.arbiter != arbiter.key_id:
            raise ProtocolError("the claim is addressed to another arbiter")
        checkpoint = case.extract.checkpoint
        _require(
            (
                stated.claim_id,
                stated.policy_id,
                stated.checkpoint_id,
                stated.checkpoint_size,
                stated.client,
                stated.suspect,
                stated.transcript_id,
                format_time(stated.policy_time),
                format_time(stated.checkpoint_time),
                stated.log_word,
                stated.accounts,
                stated.marked_entries,
            )
            == (
                case.claim.digest,
                case.policy.digest,
                checkpoint.digest,
                checkpoint.document.size,
                claim.client,
                claim.suspect,
                transcript.digest,
                format_time(case.policy_time.time),
                format_time(case.checkpoint_time.time),
                case.log_word,
                case.extract.client_count,
                len(case.extract.marked),
            ),
            "the verdict does not name this bundle's claim, policy, checkpoint, transcript, "
            "trusted times, log word, accounts or marked entries",
        )
        found.evidence = f"claim {case.claim.digest} to arbiter {arbiter.key_id}"
    with checks.check("sample") as found:
        beta = arbiter.public_keys.vrf_key.verify(
            sample_alpha(case.policy.digest, claim.client, claim.suspect), stated.sample_proof
        )
        tested = tested_entries(case, beta, stated.tested)
        found.evidence = f"{len(tested)} of {stated.marked_entries} marked entries tested" + (
            "" if len(tested) == stated.marked_entries else ", as the VRF proof selects"
        )
    with checks.check("transcript") as found:
        document = transcript.document
        _require(
            document.challenge_id == case.claim.digest and document.suspect == claim.suspect,
            "the transcript is of another claim or suspect",
        )
        sent = [
            (entry.trigger_index, entry.input_sha256, entry.decoy_label)
            for entry in document.entries
        ]
        expected = [(j, e.input_digest, None) for j, e in enumerate(tested)] + [
            (None, e.input_digest, e.served_answer) for e in case.extract.unmarked
        ]
        _require(
            Counter(sent) == Counter(expected),
            "the transcript's queries are not exactly the tested entries and the decoys",
        )
        found.evidence = (
            f"{len(tested)} tested inputs and {len(case.extract.unmarked)} decoys, "
            f"queried at {document.queried}"
        )
    checks.not_checked(
        "suspect-answers",
        "the suspect's answers are the arbiter's signed word",
    )
    with checks.check("test") as found:
        level = Fraction(stated.figures.alpha)
        alpha = level * stated.accounts
        _require(0 < alpha <= MAX_ALPHA, f"the verdict's level {alpha} exceeds 2^-20")
        figures = test_figures(case, tested, transcript.document, alpha)
        _require(figures == stated.figures, "the verdict's figures differ from the recount")
        outcome = UPHELD if figures.matches >= figures.threshold else REJECTED
        _require(outcome == stated.outcome, "the verdict's outcome differs from the recount")
        found.evidence = (
            f"{figures.matches} of {figures.trials} marked answers given; threshold "
            f"{figures.threshold} at level {figures.alpha} (p0 = {figures.p0}); {outcome}"
        )
    return stated.outcome, arbiter.key_id
