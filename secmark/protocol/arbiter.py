"""The arbiter's workflow: claim, challenge, reveal, query, decide.

:class:`Arbiter` keeps one case folder per claim (``cases/<claim id>/``,
see :mod:`secmark.protocol.case`) and a registry of the challenges issued per
commitment (``registry.json``). Each step checks everything it receives
before acting and writes its result before moving the case on:

1. :meth:`Arbiter.file_claim`: the claim's signature by the commitment's
   owner, the commitment, its timestamp against the arbiter's trust store,
   the release and its timestamp (later than the commitment's), the suspect
   reference's canonical form, and that the claim is addressed here.
2. :meth:`Arbiter.challenge`: k indices from the arbiter's VRF output on
   (commitment id, suspect), with an expiry.
3. :meth:`Arbiter.receive_reveal`: before expiry, once; exactly the
   challenged indices, each VRF proof (and Merkle path) valid.
4. :meth:`Arbiter.query`: triggers shuffled among decoys, every answer recorded.
5. :meth:`Arbiter.decide`: the exact test, the ordering against other claims
   on the same suspect and, when several hold, the cross-check of their
   registered released models; the signed verdict and the bundle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from secmark.crypto.keys import IdentityKeys
from secmark.encoding import canonical_json, format_time, parse_canonical_json, parse_time, utc_now
from secmark.errors import EncodingError, ProofError, ProtocolError
from secmark.files import PUBLIC_FILE_MODE, write_atomic
from secmark.messages.challenge import Challenge, open_challenge
from secmark.messages.claim import MAX_CLAIM_SIZE, Claim, evidence_kinds_for
from secmark.messages.commitment import Commitment, open_commitment
from secmark.messages.document import Fields, SignedDocument, read_unverified_payload, sign_document
from secmark.messages.identity import Identity
from secmark.messages.release import model_file_digest, open_release
from secmark.messages.reveal import RevealContents, open_reveal
from secmark.messages.transcript import Transcript, TranscriptEntry
from secmark.messages.verdict import CrossCheck, ReleaseTime, RivalClaim, TestFigures, Verdict
from secmark.models.base import Suspect
from secmark.protocol.bundle import build_bundle
from secmark.protocol.case import Case
from secmark.protocol.challenge import prove_challenge
from secmark.protocol.querying import BlackBoxResult, query_suspect, trials_per_trigger
from secmark.protocol.reveals import revealed_triggers
from secmark.protocol.suspects import canonical_suspect
from secmark.stats import DEFAULT_ALPHA, decision_threshold, null_match_probability
from secmark.timestamp import TrustStore
from secmark.timestamp.evidence import TimestampEvidence
from secmark.triggers import Trigger, generate_decoys

__all__ = ["Arbiter", "ArbiterPolicy"]

REGISTRY_FILE = "registry.json"
_MAX_REGISTRY_SIZE = 64 * 1024 * 1024


@dataclass(frozen=True)
class ArbiterPolicy:
    """How an arbiter challenges: k, decoys per trigger, expiry, alpha."""

    challenge_size: int = 128
    decoys_per_trigger: int = 2
    challenge_lifetime: timedelta = timedelta(days=7)
    alpha: Fraction = DEFAULT_ALPHA


def _figures(result: BlackBoxResult) -> TestFigures:
    test = result.test
    return TestFigures(
        trials=result.trials,
        matches=result.matches,
        p0=test.p0_exact,
        alpha=test.alpha_exact,
        threshold=test.threshold,
        p_value=test.p_value,
        log2_p_value=test.log2_p_value,
        ci_low=test.ci_low,
        ci_high=test.ci_high,
        trigger_errors=result.trigger_errors,
        decoy_errors=result.decoy_errors,
    )


class Arbiter:
    """An arbiter working in ``folder`` with its keys and trust store."""

    def __init__(
        self,
        keys: IdentityKeys,
        identity: SignedDocument[Identity],
        trust: TrustStore,
        folder: Path,
        *,
        policy: ArbiterPolicy = ArbiterPolicy(),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if identity.document.key_id != keys.key_id:
            raise ProtocolError("the identity document is not the arbiter's own")
        self.keys = keys
        self.identity = identity
        self.trust = trust
        self.folder = folder
        self.policy = policy
        self._clock = clock
        (folder / "cases").mkdir(parents=True, exist_ok=True)

    # -- claims -----------------------------------------------------------

    def file_claim(self, data: bytes) -> Case:
        """Check a claim and open its case (or return the existing one).

        Raises:
            EncodingError, SignatureError: malformed or wrongly signed parts.
            TimestampError: no timestamp verifies against the trust store.
            ProtocolError: addressed to another arbiter, evidence kinds
                other than the commitment's family gives, non-canonical
                suspect reference, release not after the commitment, or not
                for the committed model.
        """
        envelope, claim = read_unverified_payload(data, Claim, max_size=MAX_CLAIM_SIZE)
        commitment = open_commitment(claim.commitment)
        owner = commitment.document.owner
        envelope.verify(owner)
        # One commitment, one kind of evidence: a weights commitment is checked
        # on weights, any other by queries, and each claim gets its own verdict.
        expected_kinds = evidence_kinds_for(commitment.document.family)
        if claim.evidence_kinds != expected_kinds:
            raise ProtocolError(
                f"a claim on a {commitment.document.family.NAME} commitment offers "
                f"{', '.join(expected_kinds)} evidence, not {', '.join(claim.evidence_kinds)}"
            )
        if claim.arbiter != self.keys.key_id:
            raise ProtocolError(
                f"the claim is addressed to arbiter {claim.arbiter}, not to this one"
            )
        if canonical_suspect(claim.suspect) != claim.suspect:
            raise ProtocolError(
                f"the suspect reference is not canonical; file it as {canonical_suspect(claim.suspect)!r}"
            )
        labels = commitment.document.labels
        count = min(self.policy.challenge_size, commitment.document.size)
        trials = count * trials_per_trigger(labels)
        if decision_threshold(trials, null_match_probability(labels), self.policy.alpha) > trials:
            # specs/statistics.md 4: such a dispute must not run; it would only burn triggers.
            raise ProtocolError(
                f"even {trials} matches of {trials} trials would not be significant at alpha = "
                f"{self.policy.alpha}: the commitment's N = {commitment.document.size} is too small "
                "for this arbiter's challenge size"
            )
        commitment_time = self._trusted_time(claim.commitment_evidence, commitment.digest)
        release_record = None
        if claim.release is not None and claim.release_evidence is not None:
            release = open_release(claim.release, owner)
            if release.document.commitment_id != commitment.digest:
                raise ProtocolError("the release names another commitment than the claim's")
            release_time = self._trusted_time(claim.release_evidence, release.digest)
            if not commitment_time < release_time:
                raise ProtocolError(
                    "the release was timestamped before its commitment: the watermark cannot "
                    "have been committed before the model was released"
                )
            release_record = {
                "model_digest": release.document.model_digest,
                "release_id": release.digest,
                "trusted_time": format_time(release_time),
            }
        claim_id = SignedDocument(claim, envelope, owner.key_id).digest
        folder = self.folder / "cases" / claim_id
        if (folder / "state.json").exists():
            return Case.load(folder)
        # A folder without state is what a crash before Case.create leaves: reuse it.
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / "claim.json", data, mode=PUBLIC_FILE_MODE, overwrite=True)
        return Case.create(
            folder,
            {
                "claim_id": claim_id,
                "commitment_id": commitment.digest,
                "commitment_time": format_time(commitment_time),
                "owner": owner.key_id,
                "release": release_record,
                "suspect": claim.suspect,
            },
        )

    def _trusted_time(self, evidence_bytes: bytes, subject: str) -> datetime:
        evidence = TimestampEvidence.from_json(evidence_bytes)
        if evidence.subject != subject:
            raise ProtocolError(f"the timestamp evidence dates {evidence.subject}, not {subject}")
        return evidence.check(self.trust).require_trusted_time()

    def case(self, claim_id: str) -> Case:
        return Case.load(self.folder / "cases" / claim_id)

    def commitment_of(self, case: Case) -> SignedDocument[Commitment]:
        _, claim = read_unverified_payload(case.read("claim.json"), Claim, max_size=MAX_CLAIM_SIZE)
        return open_commitment(claim.commitment)

    # -- challenge --------------------------------------------------------

    def _registry(self) -> dict[str, dict[str, str]]:
        path = self.folder / REGISTRY_FILE
        if not path.exists():
            return {}
        value = parse_canonical_json(
            path.read_bytes(), max_size=_MAX_REGISTRY_SIZE, what="registry"
        )
        if not isinstance(value, dict):
            raise EncodingError("the arbiter registry is damaged")
        return value

    def challenges_issued(self, commitment_id: str) -> int:
        return len(self._registry().get(commitment_id, {}))

    def challenge(self, case: Case) -> bytes:
        """Issue the case's challenge (signed bytes). Re-filed claims on the
        same commitment and suspect get the same indices by construction."""
        case.require("claimed", "issuing a challenge")
        commitment = self.commitment_of(case)
        size = commitment.document.size
        count = min(self.policy.challenge_size, size)
        proof, indices = prove_challenge(
            self.keys.vrf, commitment.digest, case.record["suspect"], size, count
        )
        registry = self._registry()
        issued_for_commitment = registry.setdefault(commitment.digest, {})
        prior = len([claim for claim in issued_for_commitment if claim != case.name])
        now = self._clock()
        challenge = Challenge(
            claim_id=case.name,
            commitment_id=commitment.digest,
            suspect=case.record["suspect"],
            indices=indices,
            vrf_proof=proof,
            decoys=self.policy.decoys_per_trigger * count,
            prior_challenges=prior,
            issued=now,
            expires=now + self.policy.challenge_lifetime,
        )
        signed = sign_document(challenge, self.keys)
        case.write("challenge.json", signed.to_json())
        issued_for_commitment[case.name] = signed.digest
        write_atomic(
            self.folder / REGISTRY_FILE,
            canonical_json(registry),
            mode=PUBLIC_FILE_MODE,
            overwrite=True,
        )
        case.advance("challenged", challenge_id=signed.digest, prior_challenges=prior)
        return signed.to_json()

    def _challenge(self, case: Case) -> SignedDocument[Challenge]:
        return open_challenge(case.read("challenge.json"), self.keys.public_keys)

    # -- reveal -----------------------------------------------------------

    def receive_reveal(self, case: Case, data: bytes) -> list[Trigger]:
        """Open and check the owner's reveal; return the re-derived triggers.

        Raises:
            ProtocolError: the case is not waiting for a reveal (answered
                already), or the challenge expired.
            SignatureError: not signed by the commitment's owner.
            ProofError: another challenge, not exactly the challenged
                indices, or an invalid proof or Merkle path.
        """
        case.require("challenged", "receiving a reveal")
        challenge = self._challenge(case)
        if self._clock() > challenge.document.expires:
            raise ProtocolError(
                f"the challenge expired at {format_time(challenge.document.expires)}; file a new claim (with a fresh nonce)"
            )
        commitment = self.commitment_of(case)
        reveal = open_reveal(data, commitment.document.owner)
        if reveal.document.challenge_id != challenge.digest:
            raise ProofError("the reveal answers another challenge (a replay from another case?)")
        contents = reveal.document.open(self.keys.encryption_key)
        triggers = revealed_triggers(commitment, contents, challenge.document.indices)
        case.write("reveal.json", data)
        case.write("reveal-contents.json", contents.to_json())
        case.advance("revealed")
        return triggers

    def triggers_of(self, case: Case) -> list[Trigger]:
        """The case's revealed triggers, re-derived from the stored reveal."""
        if not case.at_least("revealed"):
            raise ProtocolError(f"case {case.name} has no reveal yet")
        contents = RevealContents.from_json(case.read("reveal-contents.json"))
        return revealed_triggers(
            self.commitment_of(case), contents, self._challenge(case).document.indices
        )

    # -- query ------------------------------------------------------------

    def _query(self, case: Case, suspect: Suspect, decoys: int) -> BlackBoxResult:
        commitment = self.commitment_of(case)
        triggers = self.triggers_of(case)
        items = None
        if commitment.document.pool_root is not None:
            items = [trigger.input for trigger in triggers]
        return query_suspect(
            suspect,
            commitment.document.labels,
            [trigger.index for trigger in triggers],
            np.stack([trigger.input for trigger in triggers]),
            [trigger.label for trigger in triggers],
            generate_decoys(commitment.document, decoys, items=items),
            alpha=self.policy.alpha,
        )

    def query(self, case: Case, suspect: Suspect) -> BlackBoxResult:
        """Query the suspect with the case's triggers among fresh decoys and
        write the signed transcript."""
        case.require("revealed", "querying the suspect")
        challenge = self._challenge(case)
        started = self._clock()
        result = self._query(case, suspect, challenge.document.decoys)
        transcript = Transcript(
            challenge_id=challenge.digest,
            suspect=case.record["suspect"],
            started=started,
            finished=self._clock(),
            entries=tuple(
                TranscriptEntry(r.position, r.input_sha256, r.trigger_index, r.answer, r.error)
                for r in result.records
            ),
        )
        signed = sign_document(transcript, self.keys)
        case.write("transcript.json", signed.to_json())
        case.advance(
            "queried",
            transcript_id=signed.digest,
            holds=bool(result.test.decision),
            test=_figures(result).to_fields(),
        )
        return result

    # -- decision ---------------------------------------------------------

    def rivals(self, case: Case) -> list[Case]:
        """Other claims on the same suspect that reached the query step.

        A re-filed claim on the same commitment is the same claimant with the
        same watermark (its challenge is counted in ``prior_challenges``), not
        a rival; nor is a claim of the same owner on another of its
        commitments (a black-box and a white-box claim on one model get a
        verdict each, not an ambiguity between themselves).
        """
        found = []
        for folder in sorted((self.folder / "cases").iterdir()):
            if folder.name == case.name or not (folder / "state.json").exists():
                continue
            other = Case.load(folder)
            if (
                other.record["suspect"] == case.record["suspect"]
                and other.record["commitment_id"] != case.record["commitment_id"]
                and other.record["owner"] != case.record["owner"]
                and other.at_least("queried")
            ):
                found.append(other)
        return found

    def decide(
        self,
        case: Case,
        *,
        released_models: Mapping[str, Path] | None = None,
        load_model: Callable[[Path], Suspect] | None = None,
    ) -> bytes:
        """Sign the verdict of a queried case and write its bundle.

        When the claim holds and rival claims on the same suspect hold too,
        each holding claimant's registered released model (a file, by claim
        id in ``released_models``, opened with ``load_model``) is queried for
        every holding claimant's watermark; see ``specs/dispute.md`` for the
        rule that picks a winner.

        Raises:
            ProtocolError: the case is not queried, or a deposited model
                file is not the registered release.
        """
        case.require("queried", "deciding")
        rivals = self.rivals(case)
        holding = [case] + [rival for rival in rivals if rival.record["holds"]]
        cross_checks: list[CrossCheck] = []
        if case.record["holds"] and len(holding) > 1:
            cross_checks = self._cross_check(holding, released_models or {}, load_model)
        outcome, reason = self._outcome(case, holding, cross_checks)
        commitment_id = case.record["commitment_id"]
        release = case.record["release"]
        verdict = Verdict(
            claim_id=case.name,
            challenge_id=case.record["challenge_id"],
            commitment_id=commitment_id,
            transcript_id=case.record["transcript_id"],
            owner=case.record["owner"],
            suspect=case.record["suspect"],
            commitment_time=parse_time(case.record["commitment_time"]),
            release=None
            if release is None
            else ReleaseTime(
                release["release_id"], release["model_digest"], parse_time(release["trusted_time"])
            ),
            test=_figures_from_record(case.record["test"]),
            prior_challenges=case.record["prior_challenges"],
            rivals=tuple(_rival(rival) for rival in rivals),
            cross_checks=tuple(cross_checks),
            outcome=outcome,
            reason=reason,
            issued=self._clock(),
        )
        signed = sign_document(verdict, self.keys)
        case.write("verdict.json", signed.to_json())
        case.write(
            "bundle.json", build_bundle(self.identity.to_json(), self.trust, case, signed.to_json())
        )
        case.advance("decided", verdict_id=signed.digest, outcome=outcome)
        return signed.to_json()

    def _cross_check(
        self,
        holding: list[Case],
        released_models: Mapping[str, Path],
        load_model: Callable[[Path], Suspect] | None,
    ) -> list[CrossCheck]:
        checks = []
        for model_case in holding:
            release = model_case.record["release"]
            path = released_models.get(model_case.name)
            if release is None or path is None or load_model is None:
                continue  # no registered, deposited release: this claimant cannot prevail
            if model_file_digest(path) != release["model_digest"]:
                raise ProtocolError(
                    f"the model deposited for claim {model_case.name} is not its registered release"
                )
            model = load_model(path)
            for mark_case in holding:
                challenge = self._challenge(mark_case)
                result = self._query(mark_case, model, challenge.document.decoys)
                checks.append(
                    CrossCheck(
                        model_of=model_case.name,
                        watermark_of=mark_case.name,
                        trials=result.trials,
                        matches=result.matches,
                        threshold=result.test.threshold,
                        log2_p_value=result.test.log2_p_value,
                    )
                )
        return checks

    def _outcome(
        self, case: Case, holding: list[Case], checks: list[CrossCheck]
    ) -> tuple[str, str]:
        test = case.record["test"]
        if not case.record["holds"]:
            return "rejected", (
                f"{test['matches']} of {test['trials']} trials matched; at least {test['threshold']} "
                f"are needed at alpha = {test['alpha']}: the suspect does not show this watermark"
            )
        if len(holding) == 1:
            return "upheld", (
                f"{test['matches']} of {test['trials']} trials matched (threshold {test['threshold']}, "
                f"p = 2^{test['log2_p_value']:.1f}); no other claim on this suspect holds"
            )
        winners = [c.name for c in holding if _prevails(c, holding, checks)]
        if winners == [case.name]:
            return "upheld", (
                "several claims hold on the suspect; this claimant's registered release carries its "
                "own watermark and no other, and was committed before the others' releases"
            )
        if len(winners) == 1:
            return "rejected", f"claim {winners[0]} prevails on the cross-check of released models"
        return "ambiguous", (
            "several claims hold on the suspect and the cross-check of released models singles "
            "out none of them"
        )


def _prevails(candidate: Case, holding: list[Case], checks: list[CrossCheck]) -> bool:
    """The rule of ``specs/dispute.md``: own mark on own release, no other
    mark there, and committed before every rival's release."""
    carries = {(c.model_of, c.watermark_of): c.carries for c in checks}
    if not carries.get((candidate.name, candidate.name), False):
        return False
    committed = parse_time(candidate.record["commitment_time"])
    for rival in holding:
        if rival is candidate:
            continue
        if carries.get((candidate.name, rival.name), True):
            return False
        rival_release = rival.record["release"]
        if rival_release is not None and not committed < parse_time(rival_release["trusted_time"]):
            return False
    return True


def _rival(case: Case) -> RivalClaim:
    release = case.record["release"]
    return RivalClaim(
        claim_id=case.name,
        owner=case.record["owner"],
        commitment_time=parse_time(case.record["commitment_time"]),
        release_time=None if release is None else parse_time(release["trusted_time"]),
        holds_on_suspect=case.record["holds"],
    )


def _figures_from_record(record: dict[str, Any]) -> TestFigures:
    fields = Fields(record, context="case test")
    figures = TestFigures.from_fields(fields)
    fields.finish()
    return figures
