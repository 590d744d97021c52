"""Verdict bundles and their offline re-verification.

A bundle (``secmark.bundle`` version 1, canonical JSON) holds, as their exact
bytes, every document a third party needs to re-check a verdict without
contacting anybody: the arbiter's identity, the claim (with the commitment,
release and timestamp evidence inside), the challenge, the sealed reveal and
its opened contents, the transcript and the verdict, plus the TSA root
certificates the arbiter trusted.

:func:`examine_bundle` runs the named checks of :func:`bundle_checks` in
order (every signature, timestamp, VRF proof, derivation, and the match
count and statistics recomputed from the transcript) and returns a
:class:`~secmark.protocol.bundle_report.BundleReport` of their records, also
for a bundle that fails; :func:`verify_bundle` raises at the first failure
instead. What cannot be re-checked is recorded as not checked, resting on
the arbiter's signature: that the suspect really gave the answers in the
transcript, the known labels of its decoys, and the rival claims and
cross-checks a verdict lists. Trust is never self-asserted silently: without
the judge's own TSA roots the report's times are
:attr:`TimeTrust.SELF_ASSERTED`, and without a pinned arbiter key id the
report says any arbiter's signature was accepted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from fractions import Fraction
from typing import Any, ClassVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from secmark.encoding import format_time, utc_now
from secmark.errors import (
    EncodingError,
    ProofError,
    ProtocolError,
    SecmarkError,
    SignatureError,
    TimestampError,
)
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
from secmark.protocol.bundle_report import (
    BundleReport,
    CaseFacts,
    Failure,
    Figures,
    Party,
    RootSource,
    TimestampToken,
    TimeTrust,
    TrustedTime,
    TsaRoot,
    VerdictFacts,
)
from secmark.protocol.case import Case
from secmark.protocol.challenge import check_challenge_indices
from secmark.protocol.checks import Basis, Checklist, CheckResult, CheckSpec
from secmark.protocol.querying import input_digest, score_answers
from secmark.protocol.reveals import revealed_triggers
from secmark.protocol.suspects import canonical_suspect
from secmark.stats import DEFAULT_CONFIDENCE, MAX_TRIALS, clopper_pearson
from secmark.timestamp import TrustStore
from secmark.timestamp.evidence import TimestampEvidence

__all__ = [
    "MAX_BUNDLE_SIZE",
    "Bundle",
    "BundleReport",
    "TimeTrust",
    "build_bundle",
    "bundle_checks",
    "bundle_trust_store",
    "describe_trusted_time",
    "examine_bundle",
    "trusted_time",
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


def bundle_checks(time_trust: TimeTrust, *, pinned: bool) -> tuple[CheckSpec, ...]:
    """The checks :func:`examine_bundle` runs, in order (specs/dispute.md 8.8
    steps 1 to 8, then what rests on the arbiter's signature alone).

    Names are stable; the bases of the timestamp checks follow whose TSA
    roots are used, that of ``arbiter-pin`` whether an arbiter was pinned.
    """
    times = time_trust.basis
    pin = Basis.JUDGE_PIN if pinned else Basis.BUNDLE_ARBITER
    return (
        CheckSpec(
            "bundle-format",
            "the bundle is canonical JSON of a secmark.bundle, version 1, within the size limit",
            "bundle",
            Basis.RECOMPUTATION,
        ),
        CheckSpec(
            "tsa-roots",
            "each TSA root in the bundle is one certificate in canonical PEM, validly self-signed",
            "TSA roots in the bundle",
            Basis.CRYPTOGRAPHY,
        ),
        CheckSpec(
            "arbiter-identity",
            "the arbiter's identity document is signed by its own keys",
            "arbiter identity",
            Basis.CRYPTOGRAPHY,
        ),
        CheckSpec(
            "arbiter-pin",
            "the arbiter is the one whose key id the judge pinned",
            "arbiter identity",
            pin,
        ),
        CheckSpec(
            "claim-signature",
            "the claim and its commitment are signed by the commitment's owner",
            "claim",
            Basis.CRYPTOGRAPHY,
        ),
        CheckSpec(
            "claim-terms",
            "the claim is addressed to this arbiter, with its family's evidence kind and a "
            "canonical suspect reference",
            "claim",
            Basis.RECOMPUTATION,
        ),
        CheckSpec(
            "commitment-time",
            "the commitment's timestamp verifies and gives its trusted time",
            "commitment timestamp",
            times,
        ),
        CheckSpec(
            "release-time",
            "the release is signed by the owner, names the commitment and is timestamped after it",
            "release",
            times,
        ),
        CheckSpec(
            "challenge",
            "the challenge is signed by the arbiter and names this claim, commitment and suspect",
            "challenge",
            Basis.CRYPTOGRAPHY,
        ),
        CheckSpec(
            "challenge-indices",
            "the challenged indices are those the arbiter's VRF proof selects",
            "challenge",
            Basis.CRYPTOGRAPHY,
        ),
        CheckSpec(
            "reveal",
            "the reveal is signed by the owner and answers this challenge",
            "reveal",
            Basis.CRYPTOGRAPHY,
        ),
        CheckSpec(
            "revealed-triggers",
            "the revealed proofs answer this challenge, each verifies, every trigger is re-derived",
            "reveal contents",
            Basis.CRYPTOGRAPHY,
        ),
        CheckSpec(
            "transcript",
            "the transcript is signed by the arbiter, of this challenge and suspect, with exactly "
            "the challenged triggers and the challenge's number of decoys",
            "transcript",
            Basis.CRYPTOGRAPHY,
        ),
        CheckSpec(
            "trigger-inputs",
            "every input sent as a trigger is the committed trigger",
            "transcript",
            Basis.RECOMPUTATION,
        ),
        CheckSpec(
            "verdict-signature",
            "the verdict is signed by the arbiter and tests at its challenge's level",
            "verdict",
            Basis.CRYPTOGRAPHY,
        ),
        CheckSpec(
            "verdict-figures",
            "the verdict's trials, matches, threshold, p0, failed queries and decoy accuracy "
            "are those recomputed from the transcript",
            "verdict",
            Basis.RECOMPUTATION,
        ),
        CheckSpec(
            "verdict-references",
            "the verdict names this bundle's documents, owner, suspect, trusted times, release "
            "and earlier challenges",
            "verdict",
            Basis.RECOMPUTATION,
        ),
        CheckSpec(
            "verdict-outcome",
            "the outcome is the one the recomputed test and the verdict's rivals and "
            "cross-checks give",
            "verdict",
            Basis.RECOMPUTATION,
        ),
        CheckSpec(
            "suspect-answers",
            "the suspect gave the answers the transcript records, it is the suspect its "
            "reference names, and the decoys sent were decoys",
            "transcript",
            Basis.ARBITER,
        ),
        CheckSpec(
            "decoy-labels",
            "the known labels the transcript records for decoys are those of the decoy inputs sent",
            "transcript",
            Basis.ARBITER,
        ),
        CheckSpec(
            "rivals-and-cross-checks",
            "the rival claims and cross-checks the verdict lists are as it states them",
            "verdict",
            Basis.ARBITER,
        ),
        CheckSpec(
            "reveal-in-time",
            "the reveal arrived before the challenge expired",
            "reveal",
            Basis.ARBITER,
        ),
        CheckSpec(
            "policy",
            "the challenge size, the number of decoys and the level alpha are the arbiter's policy",
            "challenge",
            Basis.ARBITER,
        ),
    )


def _level(alpha: Fraction) -> str:
    """A level as people read it: ``2^-64`` for a power of two, else the fraction."""
    if alpha.numerator == 1 and alpha.denominator & (alpha.denominator - 1) == 0:
        return f"2^-{alpha.denominator.bit_length() - 1}"
    return str(alpha)


def _fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def trusted_time(
    event: str,
    evidence_text: bytes,
    subject: str,
    trust: TrustStore,
    now: datetime,
    source: RootSource,
) -> TrustedTime:
    """The trusted time of ``subject`` from its evidence, with every token.

    Raises:
        EncodingError: the evidence is malformed.
        ProtocolError: it dates another document.
        TimestampError: no token verifies (each one's reason named).
    """
    evidence = TimestampEvidence.from_json(evidence_text)
    if evidence.subject != subject:
        raise ProtocolError(f"timestamp evidence dates {evidence.subject}, not {subject}")
    check = evidence.check(trust, now=now)
    trusted = check.require_trusted_time()
    tokens = tuple(
        TimestampToken(
            source=token.source,
            time=token.verified.gen_time if token.verified else None,
            tsa=token.verified.tsa_subject if token.verified else None,
            root_sha256=token.verified.root_certificate_sha256 if token.verified else None,
            error=token.error,
        )
        for token in check.tokens
    )
    # The trusted time is the earliest verified token's: name the root it chains to.
    earliest = next(token for token in tokens if token.time == trusted)
    return TrustedTime(
        event=event,
        document_id=subject,
        time=trusted,
        root_sha256=earliest.root_sha256 or "",
        root_source=source,
        tokens=tokens,
    )


def describe_trusted_time(time: TrustedTime) -> str:
    verified = [token for token in time.tokens if token.time is not None]
    earliest = next(token for token in verified if token.time == time.time)
    return (
        f"trusted time {format_time(time.time)} from {earliest.tsa}, whose chain ends at the "
        f"{time.root_source.value}'s root SHA-256 {time.root_sha256}; "
        f"{len(verified)} of {len(time.tokens)} token(s) verified"
    )


def bundle_trust_store(texts: tuple[str, ...]) -> TrustStore:
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


class _Examination:
    """One run of the checks over a bundle; each stage records its checks
    and keeps the facts they established for the report."""

    def __init__(
        self,
        trust: TrustStore | None,
        arbiter_key_id: str | None,
        now: datetime,
    ) -> None:
        self.judge_trust = trust
        self.pin = arbiter_key_id
        self.now = now
        self.time_trust = TimeTrust.JUDGE_ROOTS if trust is not None else TimeTrust.SELF_ASSERTED
        self.root_source = RootSource.JUDGE if trust is not None else RootSource.BUNDLE
        self.checks = Checklist(bundle_checks(self.time_trust, pinned=arbiter_key_id is not None))
        self.owner: Party | None = None
        self.arbiter: Party | None = None
        self.case: CaseFacts | None = None
        self.times: list[TrustedTime] = []
        self.bundle_roots: tuple[x509.Certificate, ...] = ()
        self.figures: Figures | None = None
        self.verdict: VerdictFacts | None = None

    def run(self, data: bytes) -> str:
        """Every check in order; the verdict's outcome when all passed.

        Raises:
            SecmarkError: the first check that failed (recorded as failed).
        """
        checks = self.checks
        with checks.check("bundle-format") as found:
            bundle = decode_payload(data, Bundle, MAX_BUNDLE_SIZE)
            found.evidence = f"canonical JSON, {len(data)} bytes, secmark.bundle version 1"
        with checks.check("tsa-roots") as found:
            bundle_roots = bundle_trust_store(bundle.tsa_roots)
            self.bundle_roots = bundle_roots.roots
            found.evidence = (
                f"{len(bundle_roots.roots)} root(s), each one certificate in canonical PEM "
                "with a valid self-signature"
            )
        trust = bundle_roots if self.judge_trust is None else self.judge_trust
        self.trust = trust

        with checks.check("arbiter-identity") as found:
            arbiter = open_identity(bundle.arbiter_identity.encode()).document
            self.arbiter = Party("arbiter", arbiter.key_id, arbiter.name)
            found.evidence = f"arbiter {arbiter.key_id}, signed by its own keys"
        # The pin is checked before anything the arbiter signed is read further.
        if self.pin is None:
            checks.not_checked(
                "arbiter-pin",
                f"NOT pinned: no arbiter key id was given, so a bundle signed by any arbiter, "
                f"the bundle maker's own included, verifies; {arbiter.key_id} is only the "
                "bundle's word. Pin the arbiter's key id you trust.",
            )
        else:
            with checks.check("arbiter-pin") as found:
                if arbiter.key_id != self.pin:
                    raise SignatureError(
                        f"the bundle is signed by arbiter {arbiter.key_id}, not by the pinned "
                        f"arbiter {self.pin}"
                    )
                found.evidence = f"arbiter {arbiter.key_id} is the pinned one"

        with checks.check("claim-signature") as found:
            envelope, claim = read_unverified_payload(
                bundle.claim.encode(), Claim, max_size=MAX_CLAIM_SIZE
            )
            commitment = open_commitment(claim.commitment)
            owner = commitment.document.owner
            envelope.verify(owner)
            claim_id = hashlib.sha256(envelope.payload).hexdigest()
            self.owner = Party("owner", owner.key_id, None)
            found.evidence = (
                f"claim {claim_id} and commitment {commitment.digest} signed by owner "
                f"{owner.key_id}"
            )
        with checks.check("claim-terms") as found:
            _require(claim.arbiter == arbiter.key_id, "the claim is addressed to another arbiter")
            _require(
                claim.evidence_kinds == evidence_kinds_for(commitment.document.family),
                "the claim's evidence kind does not fit its commitment's family",
            )
            if canonical_suspect(claim.suspect) != claim.suspect:
                raise ProtocolError("the claim's suspect reference is not canonical")
            found.evidence = (
                f"addressed to arbiter {arbiter.key_id}; evidence kind "
                f"{', '.join(claim.evidence_kinds)}; suspect {claim.suspect}"
            )
        model = commitment.document
        self.case = CaseFacts(
            claim_id=claim_id,
            suspect=claim.suspect,
            commitment_id=commitment.digest,
            family=model.family.NAME,
            size=model.size,
            model_label=model.model_label,
            release_id=None,
            release_model=None,
            release_version=None,
            release_digest=None,
        )

        with checks.check("commitment-time") as found:
            committed = trusted_time(
                "commitment",
                claim.commitment_evidence,
                commitment.digest,
                trust,
                self.now,
                self.root_source,
            )
            self.times.append(committed)
            found.evidence = describe_trusted_time(committed)
        commitment_time = committed.time

        release = None
        released: TrustedTime | None = None
        if claim.release is not None and claim.release_evidence is not None:
            with checks.check("release-time") as found:
                release = open_release(claim.release, owner)
                _require(
                    release.document.commitment_id == commitment.digest,
                    "the release names another commitment",
                )
                released = trusted_time(
                    "release",
                    claim.release_evidence,
                    release.digest,
                    trust,
                    self.now,
                    self.root_source,
                )
                _require(
                    commitment_time < released.time,
                    "the release is timestamped before its commitment",
                )
                self.times.append(released)
                found.evidence = (
                    f"release {release.digest}, signed by the owner; "
                    + describe_trusted_time(released)
                )
            self.case = replace(
                self.case,
                release_id=release.digest,
                release_model=release.document.model_name,
                release_version=release.document.model_version,
                release_digest=release.document.model_digest,
            )
        else:
            checks.not_checked("release-time", "the claim registers no released model")

        with checks.check("challenge") as found:
            challenge = open_challenge(bundle.challenge.encode(), arbiter.public_keys)
            document = challenge.document
            _require(document.claim_id == claim_id, "the challenge answers another claim")
            _require(
                document.commitment_id == commitment.digest,
                "the challenge names another commitment",
            )
            _require(document.suspect == claim.suspect, "the challenge names another suspect")
            found.evidence = f"challenge {challenge.digest}, signed by the arbiter"
        with checks.check("challenge-indices") as found:
            check_challenge_indices(document, arbiter.public_keys.vrf_key, model.size)
            found.evidence = (
                f"{len(document.indices)} of the N = {model.size} committed triggers, "
                f"{len(document.excluded)} excluded as revealed earlier, as the VRF proof selects"
            )

        with checks.check("reveal") as found:
            reveal = open_reveal(bundle.reveal.encode(), owner)
            _require(
                reveal.document.challenge_id == challenge.digest,
                "the reveal answers another challenge",
            )
            found.evidence = f"reveal {reveal.digest}, signed by owner {owner.key_id}"
        with checks.check("revealed-triggers") as found:
            contents = RevealContents.from_json(bundle.reveal_contents.encode())
            _require(
                contents.challenge_id == challenge.digest,
                "the revealed proofs answer another challenge",
            )
            triggers = revealed_triggers(commitment, contents, document.indices)
            found.evidence = (
                f"{len(triggers)} VRF proofs verified, every trigger and its label re-derived"
            )

        with checks.check("transcript") as found:
            transcript = open_transcript(bundle.transcript.encode(), arbiter.public_keys)
            _require(
                transcript.document.challenge_id == challenge.digest,
                "the transcript is of another challenge",
            )
            _require(
                transcript.document.suspect == claim.suspect,
                "the transcript is of another suspect",
            )
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
            found.evidence = (
                f"transcript {transcript.digest}, signed by the arbiter: {len(by_index)} "
                f"trigger and {document.decoys} decoy queries"
            )
        with checks.check("trigger-inputs") as found:
            for trigger in triggers:
                _require(
                    by_index[trigger.index].input_sha256 == input_digest(trigger.input),
                    f"the input sent as trigger {trigger.index} is not the committed trigger",
                )
            found.evidence = (
                f"the SHA-256 of each of the {len(triggers)} inputs sent as triggers is that "
                "of the re-derived trigger"
            )

        with checks.check("verdict-signature") as found:
            signed_verdict = open_verdict(bundle.verdict.encode(), arbiter.public_keys)
            verdict = signed_verdict.document
            # The level is the challenge's (halved for each earlier challenge of the
            # commitment, bounded by MAX_ALPHA); the verdict must test at exactly it.
            alpha = document.alpha
            _require(
                verdict.test.alpha == str(alpha),
                "the verdict tests at another level than its challenge",
            )
            found.evidence = (
                f"verdict {signed_verdict.digest}, signed by the arbiter, at alpha = "
                + _level(alpha)
            )
        with checks.check("verdict-figures") as found:
            rescored = score_answers(
                model.labels,
                [trigger.label for trigger in triggers],
                entries,
                alpha=alpha,
            )
            test = rescored.test
            _require(
                (rescored.trials, rescored.matches, test.threshold, test.p0_exact)
                == (
                    verdict.test.trials,
                    verdict.test.matches,
                    verdict.test.threshold,
                    verdict.test.p0,
                ),
                "the verdict's figures differ from those recomputed from the transcript",
            )
            _require(
                (rescored.trigger_errors, rescored.decoy_errors)
                == (verdict.test.trigger_errors, verdict.test.decoy_errors),
                "the verdict's error counts differ from the transcript's",
            )
            _require(
                (rescored.decoys_labelled, rescored.decoys_correct)
                == (verdict.test.decoys_labelled, verdict.test.decoys_correct),
                "the verdict's decoy accuracy (labelled decoys, correct answers) differs from "
                "the transcript's",
            )
            decoy_interval: tuple[float | None, float | None] = (None, None)
            if 0 < rescored.decoys_labelled <= MAX_TRIALS:
                decoy_interval = clopper_pearson(
                    rescored.decoys_labelled, rescored.decoys_correct, DEFAULT_CONFIDENCE
                )
            self.figures = Figures(
                trials=rescored.trials,
                matches=rescored.matches,
                threshold=test.threshold,
                p0=test.p0_exact,
                alpha=test.alpha_exact,
                log2_alpha=test.log2_alpha,
                p_value=test.p_value,
                log2_p_value=test.log2_p_value,
                ci_low=test.ci_low,
                ci_high=test.ci_high,
                decision=test.decision,
                trigger_errors=rescored.trigger_errors,
                decoy_errors=rescored.decoy_errors,
                challenged=len(document.indices),
                decoys=document.decoys,
                prior_challenges=document.prior_challenges,
                decoys_labelled=rescored.decoys_labelled,
                decoys_correct=rescored.decoys_correct,
                decoy_ci_low=decoy_interval[0],
                decoy_ci_high=decoy_interval[1],
            )
            found.evidence = (
                f"{rescored.matches} of {rescored.trials} trials matched (threshold "
                f"{test.threshold}, p0 = {test.p0_exact}); {rescored.trigger_errors} trigger and "
                f"{rescored.decoy_errors} decoy queries failed; {rescored.decoys_correct} of "
                f"{rescored.decoys_labelled} labelled decoys answered with their label: as the "
                "verdict states"
            )
        with checks.check("verdict-references") as found:
            _require(
                (
                    verdict.claim_id,
                    verdict.challenge_id,
                    verdict.commitment_id,
                    verdict.transcript_id,
                )
                == (claim_id, challenge.digest, commitment.digest, transcript.digest),
                "the verdict names other documents than the bundle holds",
            )
            _require(
                verdict.owner == owner.key_id and verdict.suspect == claim.suspect,
                "the verdict names another owner or suspect",
            )
            _require(
                verdict.commitment_time == commitment_time,
                "the verdict states another commitment time",
            )
            if release is not None and released is not None:
                _require(
                    verdict.release is not None and verdict.release.trusted_time == released.time,
                    "the verdict states another release time",
                )
                _require(
                    (verdict.release.release_id, verdict.release.model_digest)  # type: ignore[union-attr]
                    == (release.digest, release.document.model_digest),
                    "the verdict names another release than the claim's",
                )
            else:
                _require(
                    verdict.release is None,
                    "the verdict states a release the claim does not register",
                )
            _require(
                verdict.prior_challenges == document.prior_challenges,
                "the verdict states another number of earlier challenges than the challenge",
            )
            found.evidence = (
                "the claim, challenge, commitment and transcript of this bundle, its owner and "
                "suspect, the trusted commitment time"
                + (" and the release" if release is not None else "")
                + f", {document.prior_challenges} earlier challenge(s)"
            )
        with checks.check("verdict-outcome") as found:
            holds = test.decision
            if not holds:
                _require(
                    verdict.outcome == "rejected",
                    "the verdict upholds a claim whose test does not hold",
                )
            elif not verdict.rivals:
                _require(
                    verdict.outcome == "upheld",
                    "the verdict rejects a claim that holds with no rival",
                )
            # specs/dispute.md 8.7: the outcome is a function of the verdict's own
            # rivals and cross-checks (attested by the arbiter), re-derived here.
            expected = verdict.outcome_given(holds)
            _require(
                verdict.outcome == expected,
                f"the verdict's outcome {verdict.outcome!r} is not the {expected!r} that its "
                "test, rivals and cross-checks give",
            )
            found.evidence = (
                f"{verdict.outcome}: the test "
                + ("holds" if holds else "does not hold")
                + f", with {len(verdict.rivals)} rival claim(s) and "
                f"{len(verdict.cross_checks)} cross-check(s)"
            )
        self.verdict = VerdictFacts(
            outcome=verdict.outcome,
            reason=verdict.reason,
            issued=verdict.issued,
            challenge_issued=document.issued,
            challenge_expires=document.expires,
            rivals=verdict.rivals,
            cross_checks=verdict.cross_checks,
        )

        checks.not_checked(
            "suspect-answers",
            f"attested by the arbiter's signature ({arbiter.key_id}), not re-checkable "
            f"offline: that {claim.suspect} gave the {len(entries)} answers recorded "
            f"({rescored.matches} of {rescored.trials} trials matched), and what the "
            f"{document.decoys} decoys were (only their digests are recorded)",
        )
        checks.not_checked(
            "decoy-labels",
            f"{rescored.decoys_labelled} of the {document.decoys} decoys carry a known label "
            "in the transcript, attested by the arbiter's signature alone: the decoy inputs "
            "are not in the bundle, so neither they nor their labels can be re-checked (the "
            f"{rescored.decoys_correct} correct answers are recounted from the labels as stated)"
            if rescored.decoys_labelled
            else "no decoy carries a known label in the transcript: nothing rests on the "
            "arbiter's word here",
        )
        checks.not_checked(
            "rivals-and-cross-checks",
            f"{len(verdict.rivals)} rival claim(s) and {len(verdict.cross_checks)} "
            "cross-check(s), as attested by the arbiter: the released models they test are "
            "not in the bundle (the outcome is re-derived from them as stated)",
        )
        checks.not_checked(
            "reveal-in-time",
            f"the challenge expired at {format_time(document.expires)} by the arbiter's clock; "
            "the reveal carries no time of its own",
        )
        checks.not_checked(
            "policy",
            f"k = {len(document.indices)} triggers, {document.decoys} decoys, alpha = "
            f"{_level(alpha)} (halved for each of {document.prior_challenges} earlier "
            "challenge(s)): visible here, chosen by the arbiter",
        )
        return verdict.outcome

    def report(self, outcome: str | None, error: SecmarkError | None) -> BundleReport:
        records = self.checks.records()
        failure = None
        if error is not None:
            failed = next(c for c in records if c.result is CheckResult.FAILED)
            failure = Failure(failed.name, type(error).__name__, error.exit_code, str(error))
        used_roots = {time.root_sha256 for time in self.times}
        carried = {_fingerprint(root) for root in self.bundle_roots}
        judge_roots = () if self.judge_trust is None else self.judge_trust.roots
        given = {_fingerprint(root) for root in judge_roots}
        roots = [
            TsaRoot(
                sha256=_fingerprint(root),
                subject=root.subject.rfc4514_string(),
                source=RootSource.JUDGE,
                in_bundle=_fingerprint(root) in carried,
                used=_fingerprint(root) in used_roots,
            )
            for root in judge_roots
        ]
        # The bundle's roots that the judge did not give too: used only when
        # no judge roots were given.
        roots += [
            TsaRoot(
                sha256=_fingerprint(root),
                subject=root.subject.rfc4514_string(),
                source=RootSource.BUNDLE,
                in_bundle=True,
                used=self.judge_trust is None and _fingerprint(root) in used_roots,
            )
            for root in self.bundle_roots
            if _fingerprint(root) not in given
        ]
        return BundleReport(
            outcome=outcome if error is None else None,
            commitment_time=self.times[0].time if self.times else None,
            time_trust=self.time_trust,
            arbiter_key_id=None if self.arbiter is None else self.arbiter.key_id,
            arbiter_pinned=self.pin is not None,
            checked_at=self.now,
            checks=records,
            owner=self.owner,
            arbiter=self.arbiter,
            case=self.case,
            times=tuple(self.times),
            roots=tuple(roots),
            figures=self.figures,
            verdict=self.verdict if error is None else None,
            failure=failure,
            error=error,
        )


def examine_bundle(
    data: bytes,
    trust: TrustStore | None = None,
    *,
    arbiter_key_id: str | None = None,
    now: datetime | None = None,
) -> BundleReport:
    """Run every check of a bundle offline and return the report, also when
    a check fails: the failed check is recorded with the error's message,
    the checks after it as not checked, ``outcome`` is ``None`` and
    ``error`` holds the exception (:func:`verify_bundle` raises it).

    Arguments as :func:`verify_bundle`.

    Raises:
        EncodingError: ``arbiter_key_id`` is not a key id (the judge's input,
            not the bundle's).
        TimestampError: ``now`` is naive.
    """
    if arbiter_key_id is not None:
        pin = Fields({"key_id": arbiter_key_id}, context="the pinned arbiter")
        arbiter_key_id = pin.hex_digest("key_id")
    now = utc_now() if now is None else now
    if now.tzinfo is None:
        raise TimestampError("the verifier's clock must be timezone-aware")
    examination = _Examination(trust, arbiter_key_id, now)
    try:
        outcome = examination.run(data)
    except SecmarkError as error:
        return examination.report(None, error)
    return examination.report(outcome, None)


def verify_bundle(
    data: bytes,
    trust: TrustStore | None = None,
    *,
    arbiter_key_id: str | None = None,
    now: datetime | None = None,
) -> BundleReport:
    """Re-check a bundle offline; return the report, or raise at the first failure.

    ``trust`` is the judge's own trust store; without it the TSA roots in
    the bundle are used and the report's ``time_trust`` is
    :attr:`TimeTrust.SELF_ASSERTED` (its ``roots`` name their fingerprints so
    the judge can compare them with roots they trust).
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
    report = examine_bundle(data, trust, arbiter_key_id=arbiter_key_id, now=now)
    if report.error is not None:
        raise report.error
    return report
