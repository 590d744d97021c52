"""Extraction disputes: is a suspect trained on the marked answers one client received?

An owner files an extraction claim (:mod:`secmark.messages.extraction`)
with the log extract of one client account. The arbiter runs the named
checks of :data:`CLAIM_CHECKS` on them: the claim is the policy owner's,
the policy and the checkpoint were timestamped in that order, the extract is
the one the claim names, its leaves hash to the operator's signed
checkpoint, none of the account's marked entries is missing, every entry's
marking follows from the policy by the operator's VRF proof, and every
entry is dated between the two trusted times. It then tests the suspect on
the account's marked inputs (distinct inputs, once each; at most
``max_tested`` of them, chosen by the arbiter's VRF on the policy, the
account and the suspect when there are more), shuffled among the account's
logged unmarked inputs as decoys. The decision is the exact binomial test
at the policy's p0 and level ``alpha / A``, with A the client accounts in
the log (an owner may have tried every account privately). A bundle holds
everything a third party needs to repeat every check offline
(:mod:`secmark.protocol.extraction_bundle`). ``specs/serving.md`` 9 is
normative.

One claim per (policy, account, suspect) is decided at an arbiter: a second
would be a second test of the same hypothesis, and an owner could file one
per checkpoint until one passes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from secmark.crypto.keys import IdentityKeys
from secmark.encoding import canonical_json, format_time, parse_canonical_json, utc_now
from secmark.errors import EncodingError, ProofError, ProtocolError
from secmark.files import PUBLIC_FILE_MODE, exclusive_lock, read_regular_file, write_atomic
from secmark.messages.challenge import MAX_ALPHA, MAX_CHALLENGED
from secmark.messages.document import SignedDocument, read_unverified_payload, sign_document
from secmark.messages.extraction import (
    MAX_EXTRACTION_CLAIM_SIZE,
    OPERATOR_WORD,
    OWNER_WORD,
    REJECTED,
    UPHELD,
    ExtractionClaim,
    ExtractionVerdict,
    open_extraction_claim,
)
from secmark.messages.labels import ClassLabels
from secmark.messages.serving_policy import ServingPolicy, open_serving_policy
from secmark.messages.transcript import Transcript
from secmark.messages.verdict import TestFigures
from secmark.models.base import Suspect
from secmark.protocol.bundle import describe_trusted_time, trusted_time
from secmark.protocol.bundle_report import RootSource, TrustedTime
from secmark.protocol.checks import Basis, Checklist, CheckSpec
from secmark.protocol.querying import QueryPlan, run_plan, score_answers
from secmark.protocol.store import LOCK_FILE
from secmark.protocol.suspects import bind_suspect, canonical_suspect
from secmark.serving.entry import LogEntry
from secmark.serving.extract import ClientExtract, VerifiedExtract, verify_extract
from secmark.serving.marking import decode_inputs, verify_marking
from secmark.stats import DEFAULT_ALPHA
from secmark.timestamp import MAX_CLOCK_SKEW, TrustStore
from secmark.triggers.sampling import KeyStream, distinct_uniform_integers

__all__ = [
    "CLAIM_CHECKS",
    "MAX_TESTED",
    "SAMPLE_DOMAIN",
    "ExtractionArbiter",
    "ExtractionCase",
    "examine_claim",
    "sample_alpha",
    "sampled_positions",
    "test_figures",
]

SAMPLE_DOMAIN = b"secmark-v1 extraction sample"
"""Prefix of the arbiter's VRF input that chooses the tested entries."""

SAMPLE_STREAM_INFO = b"secmark-v1 extraction sample positions"

MAX_TESTED = MAX_CHALLENGED
"""The most marked entries one test sends the suspect."""

REGISTRY_FILE = "extraction-registry.json"
_MAX_REGISTRY_SIZE = 64 * 1024 * 1024


def claim_checks(time_basis: Basis) -> tuple[CheckSpec, ...]:
    """The checks of a claim and its extract, in order; trusted times rest on ``time_basis``."""
    return (
        CheckSpec(
            "claim-signature",
            "the claim is signed by the owner its serving policy names",
            "extraction claim",
            Basis.CRYPTOGRAPHY,
        ),
        CheckSpec(
            "policy-timestamp",
            "the serving policy's timestamp verifies and gives its trusted time",
            "serving policy",
            time_basis,
        ),
        CheckSpec(
            "extract-digest",
            "the log extract is the one the claim names",
            "log extract",
            Basis.RECOMPUTATION,
        ),
        CheckSpec(
            "log-checkpoint",
            "the extract's leaves hash to a checkpoint the policy's operator signed, "
            "none of the account's marked entries is missing, and no entry is foreign",
            "log extract",
            Basis.CRYPTOGRAPHY,
        ),
        CheckSpec(
            "checkpoint-timestamp",
            "the checkpoint's timestamp verifies and is not earlier than the policy's",
            "log checkpoint",
            time_basis,
        ),
        CheckSpec(
            "marking-proofs",
            "every entry's marking follows from the policy by the operator's VRF proof",
            "log entries",
            Basis.CRYPTOGRAPHY,
        ),
        CheckSpec(
            "entry-times",
            "every entry is dated between the policy's and the checkpoint's trusted times",
            "log entries",
            Basis.RECOMPUTATION,
        ),
        CheckSpec(
            "log-word",
            "whose word the log's traffic rests on",
            "log operator",
            Basis.CRYPTOGRAPHY,
        ),
    )


CLAIM_CHECKS = claim_checks(Basis.JUDGE_ROOTS)
"""The claim checks as an arbiter runs them, against its own trust store."""


@dataclass(frozen=True)
class ExtractionCase:
    """A claim and extract that passed every check of :func:`claim_checks`."""

    claim: SignedDocument[ExtractionClaim]
    policy: SignedDocument[ServingPolicy]
    extract: VerifiedExtract
    policy_time: TrustedTime
    checkpoint_time: TrustedTime

    @property
    def log_word(self) -> str:
        return OWNER_WORD if self.policy.document.owner_is_operator else OPERATOR_WORD


def _require(condition: bool, error: Exception) -> None:
    if not condition:
        raise error


def examine_claim(
    claim_bytes: bytes,
    extract_bytes: bytes,
    *,
    trust: TrustStore,
    root_source: RootSource,
    now: datetime,
    checks: Checklist,
) -> ExtractionCase:
    """Run :func:`claim_checks` on a claim and its extract, recording each in ``checks``.

    Raises:
        SecmarkError: the first check that failed (recorded as failed).
    """
    with checks.check("claim-signature") as found:
        _, unverified = read_unverified_payload(
            claim_bytes, ExtractionClaim, max_size=MAX_EXTRACTION_CLAIM_SIZE
        )
        policy = open_serving_policy(unverified.policy)
        claim = open_extraction_claim(claim_bytes, policy.document.owner)
        _require(
            canonical_suspect(claim.document.suspect) == claim.document.suspect,
            ProtocolError(
                f"the claim's suspect reference {claim.document.suspect!r} is not canonical"
            ),
        )
        found.evidence = (
            f"claim {claim.digest} on policy {policy.digest}, signed by its owner "
            f"{policy.document.owner.key_id}"
        )
    with checks.check("policy-timestamp") as found:
        policy_time = trusted_time(
            "serving-policy", claim.document.policy_evidence, policy.digest, trust, now, root_source
        )
        found.evidence = describe_trusted_time(policy_time)
    with checks.check("extract-digest") as found:
        digest = hashlib.sha256(extract_bytes).hexdigest()
        _require(
            digest == claim.document.extract_sha256,
            ProofError(
                f"the log extract's SHA-256 is {digest}, the claim names "
                f"{claim.document.extract_sha256}"
            ),
        )
        extract = ClientExtract.from_bytes(extract_bytes)
        _require(
            extract.client == claim.document.client,
            ProtocolError("the log extract is of another client account than the claim names"),
        )
        found.evidence = f"SHA-256 {digest}, {len(extract_bytes)} bytes"
    with checks.check("log-checkpoint") as found:
        verified = verify_extract(
            extract, operator=policy.document.operator, policy_id=bytes.fromhex(policy.digest)
        )
        _require(
            bool(verified.marked),
            ProtocolError("the client account has no marked entry up to the checkpoint"),
        )
        checkpoint = verified.checkpoint
        found.evidence = (
            f"checkpoint {checkpoint.digest} of {checkpoint.document.size} entries signed by "
            f"operator {policy.document.operator.key_id}; {len(verified.marked)} marked entries "
            f"with distinct inputs and {len(verified.unmarked)} unmarked ones of account "
            f"{verified.client}, none missing; {verified.client_count} client account(s) in the log"
        )
    with checks.check("checkpoint-timestamp") as found:
        checkpoint_time = trusted_time(
            "log-checkpoint",
            claim.document.checkpoint_evidence,
            checkpoint.digest,
            trust,
            now,
            root_source,
        )
        _require(
            checkpoint_time.time >= policy_time.time,
            ProtocolError(
                f"the checkpoint's trusted time {format_time(checkpoint_time.time)} is before "
                f"the policy's {format_time(policy_time.time)}: no entry of it can be under "
                "the policy"
            ),
        )
        found.evidence = describe_trusted_time(checkpoint_time)
    entries = verified.marked + verified.unmarked
    with checks.check("marking-proofs") as found:
        for entry in entries:
            verify_marking(
                policy,
                input_digest=bytes.fromhex(entry.input_digest),
                model_answer=entry.model_answer,
                served_answer=entry.served_answer,
                marked=entry.marked,
                proof=entry.proof,
            )
        found.evidence = f"{len(entries)} VRF proofs verified against the operator's key"
    with checks.check("entry-times") as found:
        earliest = policy_time.time - MAX_CLOCK_SKEW
        latest = checkpoint_time.time + MAX_CLOCK_SKEW
        for entry in entries:
            _require(
                earliest <= entry.time <= latest,
                ProtocolError(
                    f"an entry is dated {format_time(entry.time)}, outside the policy's "
                    f"and the checkpoint's trusted times (within {MAX_CLOCK_SKEW})"
                ),
            )
        found.evidence = f"{len(entries)} entries dated within the two trusted times"
    case = ExtractionCase(claim, policy, verified, policy_time, checkpoint_time)
    owner_operates = policy.document.owner_is_operator
    with checks.check("log-word") as found:
        found.evidence = (
            "the OWNER operates the log: its traffic (the entries, their client accounts and "
            "the model's answers) is only the owner's word, and the owner holds the marking "
            "key, so he could have chosen inputs whose marks agree with any model"
            if owner_operates
            else f"the log's traffic rests on operator {policy.document.operator.key_id}, "
            "not on the owner"
        )
    return case


def sample_alpha(policy_id: str, client: str, suspect: str) -> bytes:
    """``"secmark-v1 extraction sample" || policy id || client || SHA-256(suspect)``."""
    return (
        SAMPLE_DOMAIN
        + bytes.fromhex(policy_id)
        + bytes.fromhex(client)
        + hashlib.sha256(suspect.encode("utf-8")).digest()
    )


def sampled_positions(beta: bytes, total: int, most: int) -> tuple[int, ...]:
    """Which of ``total`` marked entries (ordered by input digest) are tested, ascending.

    All of them when ``total <= most``; else ``most`` distinct positions
    drawn from the ChaCha20 stream keyed by ``HKDF-SHA256(beta, info =
    "secmark-v1 extraction sample positions")``.
    """
    if total <= most:
        return tuple(range(total))
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SAMPLE_STREAM_INFO).derive(
        beta
    )
    drawn = distinct_uniform_integers(KeyStream(key), total, most)
    return tuple(sorted(int(value) for value in drawn))


def tested_entries(
    case: ExtractionCase, beta: bytes, most: int = MAX_TESTED
) -> tuple[LogEntry, ...]:
    """The marked entries the suspect is tested on, ordered by input digest."""
    ordered = sorted(case.extract.marked, key=lambda entry: entry.input_digest)
    return tuple(ordered[p] for p in sampled_positions(beta, len(ordered), most))


def test_figures(
    case: ExtractionCase, tested: tuple[LogEntry, ...], transcript: Transcript, alpha: Fraction
) -> TestFigures:
    """Re-count a transcript: matches of the tested entries' served answers, at
    the policy's p0 and level ``alpha / accounts``; decoys whose answer is the
    served (the model's) answer.

    Raises:
        EncodingError: the transcript does not hold one query per tested entry.
    """
    policy = case.policy.document
    result = score_answers(
        ClassLabels(policy.labels.num_classes),
        [entry.served_answer for entry in tested],
        transcript.entries,
        alpha=alpha / case.extract.client_count,
        p0=policy.p0,
    )
    return result.figures()


@dataclass(frozen=True)
class ExtractionDecision:
    """What :meth:`ExtractionArbiter.decide` signs."""

    transcript: SignedDocument[Transcript]
    verdict: SignedDocument[ExtractionVerdict]


class ExtractionArbiter:
    """An arbiter deciding extraction claims, with its registry in ``folder``.

    ``alpha`` is the level before the correction for the log's accounts.

    Raises (constructor):
        EncodingError: ``alpha`` not a Fraction in (0, 2^-20], or
            ``max_tested`` not in [1, MAX_TESTED].
    """

    def __init__(
        self,
        keys: IdentityKeys,
        trust: TrustStore,
        folder: Path,
        *,
        alpha: Fraction = DEFAULT_ALPHA,
        max_tested: int = MAX_TESTED,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if not isinstance(alpha, Fraction) or not 0 < alpha <= MAX_ALPHA:
            raise EncodingError("alpha must be a Fraction in (0, 2^-20]")
        if type(max_tested) is not int or not 1 <= max_tested <= MAX_TESTED:
            raise EncodingError(f"max_tested must be an integer in [1, {MAX_TESTED}]")
        self.keys = keys
        self.trust = trust
        self.folder = folder
        self.alpha = alpha
        self.max_tested = max_tested
        self._clock = clock
        folder.mkdir(parents=True, exist_ok=True)

    def check_claim(self, claim_bytes: bytes, extract_bytes: bytes) -> ExtractionCase:
        """Run every claim check; the claim must be addressed to this arbiter.

        Raises:
            SecmarkError: the first check that failed, or a claim for another arbiter.
        """
        case = examine_claim(
            claim_bytes,
            extract_bytes,
            trust=self.trust,
            root_source=RootSource.JUDGE,
            now=self._clock(),
            checks=Checklist(CLAIM_CHECKS),
        )
        if case.claim.document.arbiter != self.keys.key_id:
            raise ProtocolError("the claim is addressed to another arbiter")
        return case

    def _registry_key(self, case: ExtractionCase) -> str:
        claim = case.claim.document
        return hashlib.sha256(
            canonical_json([case.policy.digest, claim.client, claim.suspect])
        ).hexdigest()

    def _registry(self) -> dict[str, str]:
        path = self.folder / REGISTRY_FILE
        if not path.exists():
            return {}
        what = f"the extraction registry {path}"
        value = parse_canonical_json(
            read_regular_file(path, max_size=_MAX_REGISTRY_SIZE, what=what),
            max_size=_MAX_REGISTRY_SIZE,
            what=what,
        )
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise EncodingError(
                f"{what} is damaged (restore it from a backup: it records which claims were "
                "decided, so it cannot be rebuilt empty)"
            )
        return value

    def decide(
        self,
        case: ExtractionCase,
        suspect: Suspect,
        *,
        batch_size: int = 256,
    ) -> ExtractionDecision:
        """Query ``suspect`` and sign the transcript and the verdict.

        Raises:
            ProtocolError: this arbiter already decided a claim of the same
                policy, account and suspect; or the suspect is another than
                the claim names.
            SuspectError: too many queries failed; nothing is signed or
                recorded, and the case can be decided again.
        """
        claim = case.claim.document
        policy = case.policy.document
        queried = bind_suspect(claim.suspect, suspect)
        key = self._registry_key(case)
        with exclusive_lock(self.folder / LOCK_FILE, what="the arbiter folder"):
            earlier = self._registry().get(key)
            if earlier is not None:
                raise ProtocolError(
                    f"this arbiter already decided claim {earlier} on the same policy, account "
                    "and suspect: a second test of one hypothesis is refused"
                )
        proof, beta = self.keys.vrf.prove_and_hash(
            sample_alpha(case.policy.digest, claim.client, claim.suspect)
        )
        tested = tested_entries(case, beta, self.max_tested)
        decoys = case.extract.unmarked
        plan = QueryPlan.shuffled(
            list(range(len(tested))),
            decode_inputs([entry.input for entry in tested], policy.input),
            decode_inputs([entry.input for entry in decoys], policy.input),
            [entry.served_answer for entry in decoys],
        )
        started = self._clock()
        records = run_plan(
            suspect, ClassLabels(policy.labels.num_classes), plan, batch_size=batch_size
        )
        transcript = sign_document(
            Transcript(
                challenge_id=case.claim.digest,
                suspect=claim.suspect,
                started=started,
                finished=self._clock(),
                entries=records,
                queried=queried,
            ),
            self.keys,
        )
        figures = test_figures(case, tested, transcript.document, self.alpha)
        upheld = figures.matches >= figures.threshold
        verdict = sign_document(
            ExtractionVerdict(
                claim_id=case.claim.digest,
                policy_id=case.policy.digest,
                checkpoint_id=case.extract.checkpoint.digest,
                checkpoint_size=case.extract.checkpoint.document.size,
                transcript_id=transcript.digest,
                client=claim.client,
                suspect=claim.suspect,
                policy_time=case.policy_time.time,
                checkpoint_time=case.checkpoint_time.time,
                log_word=case.log_word,
                accounts=case.extract.client_count,
                marked_entries=len(case.extract.marked),
                tested=len(tested),
                sample_proof=proof,
                figures=figures,
                outcome=UPHELD if upheld else REJECTED,
                reason=_reason(case, figures, upheld),
                decided=self._clock(),
            ),
            self.keys,
        )
        with exclusive_lock(self.folder / LOCK_FILE, what="the arbiter folder"):
            registry = self._registry()
            if key in registry:
                raise ProtocolError(
                    f"claim {registry[key]} on the same policy, account and suspect was decided "
                    "meanwhile"
                )
            registry[key] = case.claim.digest
            write_atomic(
                self.folder / REGISTRY_FILE,
                canonical_json(registry),
                mode=PUBLIC_FILE_MODE,
                overwrite=True,
            )
        return ExtractionDecision(transcript, verdict)


def _reason(case: ExtractionCase, figures: TestFigures, upheld: bool) -> str:
    word = (
        "; the log is only the owner's word (the owner operates it)"
        if case.log_word == OWNER_WORD
        else ""
    )
    if upheld:
        return (
            f"the suspect gave {figures.matches} of {figures.trials} marked answers of account "
            f"{case.claim.document.client}, at least the threshold {figures.threshold} at level "
            f"{figures.alpha} (p0 = {figures.p0}){word}"
        )
    return (
        f"the suspect gave {figures.matches} of {figures.trials} marked answers, below the "
        f"threshold {figures.threshold} at level {figures.alpha} (p0 = {figures.p0}){word}"
    )
