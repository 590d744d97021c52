"""The arbiter's workflow: claim, challenge, reveal, query, decide.

:class:`Arbiter` keeps one case per claim (see :mod:`secmark.protocol.case`)
and a registry of the challenges issued per commitment in its store
(:mod:`secmark.protocol.store`): case folders ``cases/<claim id>/`` and
``registry.json`` in its folder by default, or a database. Each step checks
everything it receives before acting and writes its result before moving the
case on:

1. :meth:`Arbiter.file_claim`: the claim's signature by the commitment's
   owner, the commitment, its timestamp against the arbiter's trust store,
   the release and its timestamp (later than the commitment's), the suspect
   reference's canonical form, and that the claim is addressed here.
2. :meth:`Arbiter.challenge`: k indices from the arbiter's VRF output on
   (commitment id, suspect), with an expiry.
3. :meth:`Arbiter.receive_reveal`: before expiry, once; exactly the
   challenged indices, each VRF proof (and Merkle path) valid.
4. :meth:`Arbiter.query`: triggers shuffled among decoys (with their known
   labels when the decoy pool has them), every answer recorded.
5. :meth:`Arbiter.decide`: the exact test, the ordering against other claims
   on the same suspect and, when several hold, the cross-check of their
   registered released models; the signed verdict and the bundle.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from secmark.crypto.keys import IdentityKeys
from secmark.encoding import (
    canonical_json,
    format_time,
    is_hex_digest,
    parse_canonical_json,
    parse_time,
    utc_now,
)
from secmark.errors import (
    EncodingError,
    ProofError,
    ProtocolError,
    SecmarkError,
    SuspectError,
)
from secmark.messages.challenge import (
    MAX_ALPHA,
    MAX_CHALLENGED,
    Challenge,
    alpha_budget,
    open_challenge,
)
from secmark.messages.claim import MAX_CLAIM_SIZE, Claim, evidence_kinds_for
from secmark.messages.commitment import Commitment, open_commitment
from secmark.messages.document import Fields, SignedDocument, read_unverified_payload, sign_document
from secmark.messages.identity import Identity
from secmark.messages.labels import LabelSpace
from secmark.messages.release import MODEL_SIGNING_FILES_SHA256, model_file_digest, open_release
from secmark.messages.responses import ResponseList
from secmark.messages.reveal import RevealContents, open_reveal
from secmark.messages.transcript import MAX_QUERIES, Transcript, TranscriptEntry
from secmark.messages.verdict import (
    MAX_CROSS_CHECKED,
    MAX_RIVALS,
    CrossCheck,
    ReleaseTime,
    RivalClaim,
    TestFigures,
    Verdict,
    outcome_of,
)
from secmark.models.base import Suspect
from secmark.protocol.bundle import build_bundle
from secmark.protocol.case import Case
from secmark.protocol.challenge import prove_challenge
from secmark.protocol.querying import (
    BlackBoxResult,
    DecoyLabel,
    QueryPlan,
    QueryRecord,
    answer_matches,
    checked_decoy_labels,
    query_suspect,
    run_plan,
    score_answers,
    trials_per_trigger,
)
from secmark.protocol.reveals import revealed_pool_items, revealed_responses, revealed_triggers
from secmark.protocol.store import LOCK_FILE, REGISTRY_FILE, ArbiterStore, FolderStore
from secmark.protocol.suspects import bind_suspect, canonical_suspect
from secmark.provenance import model_folder_digest
from secmark.stats import DEFAULT_ALPHA, decision_threshold, null_match_probability
from secmark.timestamp import TrustStore
from secmark.timestamp.evidence import TimestampEvidence
from secmark.triggers import Trigger, draw_decoys

__all__ = ["LOCK_FILE", "MIN_CASE_PREFIX", "REGISTRY_FILE", "Arbiter", "ArbiterPolicy"]

_LOG = logging.getLogger("secmark.arbiter")


MIN_CASE_PREFIX = 4
"""Fewest hex digits of a case id that name a case: as for git's commit ids,
a stray digit or two is not taken for a case."""

_CASE_PREFIX = re.compile(rf"[0-9a-fA-F]{{{MIN_CASE_PREFIX},64}}")


QUERY_PLAN_FILE = "query-plan.safetensors"
QUERY_PROGRESS_FILE = "query-progress.json"
_MAX_PROGRESS_SIZE = 512 * 1024 * 1024
# alpha / 2^64 is below any decidable test; a challenge document allows no more.
_MAX_PRIOR_CHALLENGES = 64


_MAX_DECOYS_PER_TRIGGER = 64
_MAX_CHALLENGE_LIFETIME = timedelta(days=366)


@dataclass(frozen=True)
class ArbiterPolicy:
    """How an arbiter challenges: k, decoys per trigger, expiry, alpha.

    ``alpha`` is the level of a commitment's first challenge at this
    arbiter; the j-th later one tests at ``alpha / 2^j``
    (:func:`secmark.messages.challenge.alpha_budget`).

    Raises:
        EncodingError: a field of the wrong type or outside its range:
            ``challenge_size`` in [1, MAX_CHALLENGED], ``decoys_per_trigger``
            in [0, 64], ``challenge_lifetime`` in (0, 366 days], ``alpha``
            a Fraction in (0, MAX_ALPHA].
    """

    challenge_size: int = 128
    decoys_per_trigger: int = 2
    challenge_lifetime: timedelta = timedelta(days=7)
    alpha: Fraction = DEFAULT_ALPHA

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("challenge_size", self.challenge_size, 1, MAX_CHALLENGED),
            ("decoys_per_trigger", self.decoys_per_trigger, 0, _MAX_DECOYS_PER_TRIGGER),
        ):
            if type(value) is not int or not low <= value <= high:
                raise EncodingError(f"{name} must be an integer in [{low}, {high}], not {value!r}")
        if (
            not isinstance(self.challenge_lifetime, timedelta)
            or not timedelta(0) < self.challenge_lifetime <= _MAX_CHALLENGE_LIFETIME
        ):
            raise EncodingError("challenge_lifetime must be a timedelta in (0, 366 days]")
        if not isinstance(self.alpha, Fraction) or not 0 < self.alpha <= MAX_ALPHA:
            raise EncodingError(
                f"alpha must be a Fraction in (0, 2^-20]: a verdict at a level of "
                f"{self.alpha!r} would uphold innocent suspects too often"
            )


class Arbiter:
    """An arbiter working in ``folder`` with its keys and trust store.

    Its cases and registry are kept by ``store``: by default a
    :class:`~secmark.protocol.store.FolderStore` on ``folder`` (case folders
    under ``folder/cases``); a
    :class:`~secmark.protocol.database_store.DatabaseStore` keeps them in a
    database instead, ``folder`` then holding only the keys and configuration.

    With ``deposits=True`` it is a platform taking owners' deposits
    (``specs/scan.md``): it files only claims that name its own
    ``platform:`` reference, and keeps each reveal only as it came, sealed
    to its encryption key, opening it in memory when the triggers are
    needed. Without it, a claim naming a ``platform:`` reference is refused.
    """

    def __init__(
        self,
        keys: IdentityKeys,
        identity: SignedDocument[Identity],
        trust: TrustStore,
        folder: Path,
        *,
        policy: ArbiterPolicy = ArbiterPolicy(),
        clock: Callable[[], datetime] = utc_now,
        store: ArbiterStore | None = None,
        deposits: bool = False,
    ) -> None:
        if identity.document.key_id != keys.key_id:
            raise ProtocolError("the identity document is not the arbiter's own")
        self.keys = keys
        self.identity = identity
        self.trust = trust
        self.folder = folder
        self.policy = policy
        self._clock = clock
        # Triggers whose proofs this arbiter verified, by case and by the
        # digest of the reveal contents they came from: a case's steps and
        # cross-checks re-read them many times, and each check costs a VRF
        # verification per trigger.
        self._verified: dict[tuple[str, str], list[Trigger]] = {}
        self.damaged_cases: dict[str, str] = {}
        """Cases skipped because their state is damaged: case name -> why."""
        self.store: ArbiterStore = FolderStore(folder) if store is None else store
        self.deposits = deposits

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
        filed = self._filed_before(hashlib.sha256(envelope.payload).hexdigest(), data)
        if filed is not None:
            return filed
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
        self._require_role(claim.suspect)
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
                "model_digest_algorithm": release.document.model_digest_algorithm,
                "release_id": release.digest,
                "trusted_time": format_time(release_time),
            }
        # The exact threshold is the one costly check: it runs last, after every
        # signature and timestamp (specs/dispute.md, order of checks).
        self._require_decidable(commitment.document, self.policy.alpha)
        claim_id = SignedDocument(claim, envelope, owner.key_id).digest
        storage = self.store.case_storage(claim_id)
        # Under the lock: the same claim filed twice at once must not write
        # a fresh "claimed" state over a case that has moved on meanwhile.
        with self.store.exclusive():
            if storage.has_state():
                return Case.load(storage)
            # Documents without a state are what a crash before Case.create leaves: reuse them.
            storage.write("claim.json", data)
            return Case.create(
                storage,
                {
                    "claim_id": claim_id,
                    "commitment_id": commitment.digest,
                    "commitment_time": format_time(commitment_time),
                    "owner": owner.key_id,
                    "release": release_record,
                    "suspect": claim.suspect,
                },
            )

    def _require_role(self, suspect: str) -> None:
        """A deposit goes to the platform it names, and only a deposit does.

        Raises:
            ProtocolError: a ``platform:`` reference filed with an arbiter or
                another platform, or a suspect filed with a platform.
        """
        deposit = suspect.startswith("platform:")
        if deposit and not self.deposits:
            raise ProtocolError(
                "a claim naming a platform is a deposit: file it with that platform "
                "(secmark deposit), not with an arbiter"
            )
        if self.deposits and suspect != f"platform:{self.keys.key_id}":
            raise ProtocolError(
                "this platform takes deposits naming platform:"
                f"{self.keys.key_id}; a claim on a suspect goes to an arbiter"
            )

    def _filed_before(self, claim_id: str, data: bytes) -> Case | None:
        """The case of exactly these claim bytes, when they were filed before:
        they passed every check then, so filing them again costs no
        signature, timestamp or threshold."""
        storage = self.store.case_storage(claim_id)
        if not (storage.has_state() and storage.exists("claim.json")):
            return None
        if storage.read("claim.json") != data:
            return None
        return Case.load(storage)

    def _require_decidable(self, commitment: Commitment, alpha: Fraction) -> None:
        """Refuse a dispute that could not reach a verdict at ``alpha``.

        Raises:
            ProtocolError: even all trials matching would not be significant.
        """
        labels = commitment.labels
        count = min(self.policy.challenge_size, commitment.size)
        trials = count * trials_per_trigger(labels)
        if decision_threshold(trials, null_match_probability(labels), alpha) > trials:
            # specs/statistics.md 4: such a dispute must not run; it would only burn triggers.
            raise ProtocolError(
                f"even {trials} matches of {trials} trials would not be significant at alpha = "
                f"{alpha}: the commitment's N = {commitment.size} is too small for this "
                "arbiter's challenge size, or its earlier challenges here spent its budget"
            )

    def _trusted_time(self, evidence_bytes: bytes, subject: str) -> datetime:
        evidence = TimestampEvidence.from_json(evidence_bytes)
        if evidence.subject != subject:
            raise ProtocolError(f"the timestamp evidence dates {evidence.subject}, not {subject}")
        return evidence.check(self.trust, now=self._clock()).require_trusted_time()

    def case(self, claim_id: str) -> Case:
        """The case of ``claim_id``, loaded.

        Raises:
            SecmarkError: no such case; EncodingError: its state is damaged.
        """
        return Case.load(self.store.case_storage(claim_id))

    def case_id(self, prefix: str) -> str:
        """The claim id of the one case whose id starts with ``prefix``.

        A case is named by its claim id, 64 hex digits (what
        :meth:`file_claim` returns as the case's name); people type a
        unique prefix of it, as they do with git's commit ids. ``prefix``
        is :data:`MIN_CASE_PREFIX` to 64 hex digits, either case.

        Raises:
            EncodingError: ``prefix`` is not 4 to 64 hex digits.
            ProtocolError: no case id starts with it, or several do (the
                message names them, so the caller can type more digits).
        """
        if not isinstance(prefix, str) or not _CASE_PREFIX.fullmatch(prefix):
            shown = repr(prefix[:70]) if isinstance(prefix, str) else type(prefix).__name__
            raise EncodingError(
                f"a case is named by its id or a prefix of {MIN_CASE_PREFIX} to 64 hex digits, "
                f"not {shown}"
            )
        wanted = prefix.lower()
        matches = [
            name
            for name in self.store.case_names()
            if name.startswith(wanted) and is_hex_digest(name)
        ]
        if not matches:
            raise ProtocolError(
                f"no case id starts with {wanted} in {self.store.describe()}; "
                "the id is the one file-claim printed"
            )
        if len(matches) > 1:
            listed = ", ".join(name[: len(wanted) + 4] + "..." for name in matches[:5])
            more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
            raise ProtocolError(
                f"{len(matches)} case ids start with {wanted} ({listed}{more}); give more digits"
            )
        return matches[0]

    def find_case(self, prefix: str) -> Case:
        """The case whose id starts with ``prefix`` (:meth:`case_id`), loaded.

        Raises:
            EncodingError, ProtocolError: see :meth:`case_id`; a damaged
                state file as :meth:`case` raises it.
        """
        return self.case(self.case_id(prefix))

    def commitment_of(self, case: Case) -> SignedDocument[Commitment]:
        _, claim = read_unverified_payload(case.read("claim.json"), Claim, max_size=MAX_CLAIM_SIZE)
        return open_commitment(claim.commitment)

    # -- challenge --------------------------------------------------------

    def challenges_issued(self, commitment_id: str) -> int:
        return len(self.store.registry().get(commitment_id, {}))

    def challenge(self, case: Case) -> bytes:
        """Issue the case's challenge (signed bytes).

        Indices revealed by earlier challenges of the same commitment are
        excluded, and the test level halves with every earlier challenge of
        the commitment (``prior_challenges``). Re-filed claims on the same
        commitment and suspect get the same indices as long as no reveal
        came in between.

        Raises:
            ProtocolError: the case is not at "claimed"; too few unrevealed
                triggers are left, or the budget of levels is spent.
        """
        # Under the lock: a challenge counts and excludes the earlier ones;
        # two at once would each miss the other's registry entry.
        with self.store.exclusive():
            case.require("claimed", "issuing a challenge")
            commitment = self.commitment_of(case)
            size = commitment.document.size
            count = min(self.policy.challenge_size, size)
            issued_for_commitment = self.store.registry().get(commitment.digest, {})
            prior = len([claim for claim in issued_for_commitment if claim != case.name])
            if prior > _MAX_PRIOR_CHALLENGES:
                raise ProtocolError(
                    f"commitment {commitment.digest} has been challenged {prior} times here: "
                    "its budget of significance levels is spent"
                )
            alpha = alpha_budget(self.policy.alpha, prior)
            self._require_decidable(commitment.document, alpha)
            excluded = self._revealed_indices(commitment.digest, case)
            try:
                proof, indices = prove_challenge(
                    self.keys.vrf, commitment.digest, case.record["suspect"], size, count, excluded
                )
            except EncodingError as error:
                raise ProtocolError(str(error)) from None
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
                alpha=alpha,
                excluded=excluded,
            )
            signed = sign_document(challenge, self.keys)
            case.write("challenge.json", signed.to_json())
            self.store.record_challenge(commitment.digest, case.name, signed.digest)
            case.advance("challenged", challenge_id=signed.digest, prior_challenges=prior)
            return signed.to_json()

    def _revealed_indices(self, commitment_id: str, case: Case) -> tuple[int, ...]:
        """The indices that other cases of the commitment have had revealed.

        A case whose state is damaged still counts when its signed challenge
        is of this commitment and it holds a reveal: its indices may be out.
        """
        revealed: set[int] = set()
        for other in self._cases(besides=case.name):
            if other.record["commitment_id"] == commitment_id and other.at_least("revealed"):
                revealed.update(self._challenge(other).document.indices)
        for name in self.damaged_cases:
            storage = self.store.case_storage(name)
            if name == case.name or not storage.exists("reveal.json"):
                continue
            try:
                challenge = open_challenge(
                    storage.read("challenge.json"), self.keys.public_keys
                ).document
            except SecmarkError:
                continue  # no challenge of ours: nothing of it can have been revealed
            if challenge.commitment_id == commitment_id:
                revealed.update(challenge.indices)
        return tuple(sorted(revealed))

    def _cases(self, *, besides: str | None = None) -> list[Case]:
        """Every case in the store (but ``besides``) whose state loads.

        A damaged case is skipped and reported (:attr:`damaged_cases`, and a
        warning on the ``secmark.arbiter`` logger) rather than failing every
        step of every other case.
        """
        found = []
        for name in self.store.case_names():
            if name == besides:
                continue
            try:
                found.append(Case.load(self.store.case_storage(name)))
            except SecmarkError as error:
                self.damaged_cases[name] = str(error)
                _LOG.warning("skipping damaged case %s: %s", name, error)
        return found

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
        self._require_unexpired(challenge.document)
        commitment = self.commitment_of(case)
        self._require_unrevealed(commitment.digest, case, challenge.document)
        reveal = open_reveal(data, commitment.document.owner)
        if reveal.document.challenge_id != challenge.digest:
            raise ProofError("the reveal answers another challenge (a replay from another case?)")
        contents = reveal.document.open(self.keys.encryption_key)
        triggers = revealed_triggers(commitment, contents, challenge.document.indices)
        # The checks that depend on the other cases, again under the lock up
        # to the stage change: two reveals of overlapping indices checked at
        # once would both find the other unrevealed.
        with self.store.exclusive():
            case.require("challenged", "receiving a reveal")
            self._require_unexpired(challenge.document)
            self._require_unrevealed(commitment.digest, case, challenge.document)
            case.write("reveal.json", data)
            stored = contents.to_json()
            if not self.deposits:
                case.write("reveal-contents.json", stored)
            self._verified[(case.name, hashlib.sha256(stored).hexdigest())] = triggers
            case.advance("revealed")
        return triggers

    def _require_unexpired(self, challenge: Challenge) -> None:
        if self._clock() > challenge.expires:
            raise ProtocolError(
                f"the challenge expired at {format_time(challenge.expires)}; file a new claim "
                "(with a fresh nonce)"
            )

    def _require_unrevealed(self, commitment_id: str, case: Case, challenge: Challenge) -> None:
        overlap = set(challenge.indices) & set(self._revealed_indices(commitment_id, case))
        if overlap:
            # Another case of this commitment revealed some of these indices
            # after this challenge was issued: once its bundle is out, a
            # suspect could answer them with anything.
            raise ProtocolError(
                f"{len(overlap)} of the challenged indices were revealed in another case since "
                "this challenge was issued; file a new claim (with a fresh nonce)"
            )

    def triggers_of(self, case: Case) -> list[Trigger]:
        """The case's revealed triggers, re-derived from the stored reveal
        (once per stored reveal and arbiter: later calls reuse them)."""
        if not case.at_least("revealed"):
            raise ProtocolError(f"case {case.name} has no reveal yet")
        data = self._reveal_contents(case)
        key = (case.name, hashlib.sha256(data).hexdigest())
        if key not in self._verified:
            self._verified[key] = revealed_triggers(
                self.commitment_of(case),
                RevealContents.from_json(data),
                self._challenge(case).document.indices,
            )
        return self._verified[key]

    def responses_of(self, case: Case) -> ResponseList | None:
        """The committed response list the case's reveal opened, or None for
        a commitment without ``responses`` labels: the list a language-model
        suspect's answer texts are read against (``specs/derivation.md`` 7.12).

        Raises:
            ProtocolError: the case has no reveal yet.
            ProofError: the stored list does not check.
        """
        if not case.at_least("revealed"):
            raise ProtocolError(f"case {case.name} has no reveal yet")
        contents = RevealContents.from_json(self._reveal_contents(case))
        return revealed_responses(self.commitment_of(case).document, contents)

    def _reveal_contents(self, case: Case) -> bytes:
        """The case's reveal contents: as stored, or for a platform opened
        from the sealed reveal it keeps instead."""
        if not self.deposits:
            return case.read("reveal-contents.json")
        reveal = open_reveal(case.read("reveal.json"), self.commitment_of(case).document.owner)
        return reveal.document.open(self.keys.encryption_key).to_json()

    # -- query ------------------------------------------------------------

    def _decoys(
        self,
        case: Case,
        triggers: list[Trigger],
        count: int,
        decoy_pool: Sequence[npt.NDArray[Any]] | None,
    ) -> tuple[npt.NDArray[Any], tuple[int | None, ...]]:
        """Fresh decoys that equal no trigger input nor, for pool families,
        any pool item a trigger was made from; and the position in
        ``decoy_pool`` each was drawn from (:func:`~secmark.triggers.draw_decoys`)."""
        commitment = self.commitment_of(case)
        exclude = [trigger.input for trigger in triggers]
        if commitment.document.pool_root is not None:
            contents = RevealContents.from_json(self._reveal_contents(case))
            exclude += revealed_pool_items(commitment.document, contents)
            if decoy_pool is None and count:
                raise ProtocolError(
                    f"decoys of the {commitment.document.family.NAME} family are drawn from "
                    "unrevealed items of the same distribution: give the arbiter a decoy pool"
                )
        return draw_decoys(commitment.document, count, items=decoy_pool, exclude=exclude)

    def _query(
        self,
        case: Case,
        suspect: Suspect,
        decoys: int,
        decoy_pool: Sequence[npt.NDArray[Any]] | None = None,
    ) -> BlackBoxResult:
        commitment = self.commitment_of(case)
        triggers = self.triggers_of(case)
        challenge = self._challenge(case).document
        return query_suspect(
            suspect,
            commitment.document.labels,
            [trigger.index for trigger in triggers],
            np.stack([trigger.input for trigger in triggers]),
            [trigger.label for trigger in triggers],
            self._decoys(case, triggers, decoys, decoy_pool)[0],
            alpha=challenge.alpha,
        )

    def _query_plan(
        self,
        case: Case,
        triggers: list[Trigger],
        decoy_pool: Sequence[npt.NDArray[Any]] | None,
        pool_labels: Sequence[DecoyLabel] | None,
    ) -> QueryPlan:
        """The case's stored query plan, or a new one, stored before use.

        A stored plan wins: the pool and labels given are then not read.
        """
        decoys = self._challenge(case).document.decoys
        if case.exists(QUERY_PLAN_FILE):
            plan = QueryPlan.from_bytes(case.read(QUERY_PLAN_FILE))
            plan.check_triggers({t.index: t.input for t in triggers}, decoys)
            return plan
        inputs, sources = self._decoys(case, triggers, decoys, decoy_pool)
        plan = QueryPlan.shuffled(
            [trigger.index for trigger in triggers],
            np.stack([trigger.input for trigger in triggers]),
            inputs,
            None
            if pool_labels is None
            else [None if source is None else pool_labels[source] for source in sources],
        )
        case.write(QUERY_PLAN_FILE, plan.to_bytes())
        return plan

    def query(
        self,
        case: Case,
        suspect: Suspect,
        *,
        decoy_pool: Sequence[npt.NDArray[Any]] | None = None,
        decoy_labels: npt.ArrayLike | None = None,
    ) -> BlackBoxResult:
        """Query the suspect with the case's triggers among decoys and write
        the signed transcript.

        The inputs and their order are fixed once per case (the query plan)
        and answers are stored as they come, so a query step that stopped
        resumes where it stopped, with the same decoys in the same order.
        ``decoy_pool`` holds the candidates that decoys of the pool and
        overlay families are drawn from (unrevealed items of the same
        distribution; never the triggers). ``decoy_labels``, one per pool
        item (:func:`~secmark.protocol.querying.checked_decoy_labels`), are
        their known labels: a decoy drawn from item j carries label j into
        the plan and the transcript, and the suspect's accuracy on such
        decoys is counted beside the test (never in it). The labels are
        checked every time, but pool and labels are read only when the plan
        is first made: a resumed step keeps the stored plan's decoys and
        labels, whatever is given.

        Raises:
            EncodingError: labels without a pool, or labels that
                :func:`~secmark.protocol.querying.checked_decoy_labels` refuses.
            ProtocolError: the case is not at "revealed"; the suspect queries
                another model than the claim names
                (:func:`~secmark.protocol.suspects.bind_suspect`); or a pool
                family and no decoy pool.
            SuspectError: too many queries failed
                (:func:`secmark.protocol.querying.failure_budget`); the
                answers so far are kept and the case stays at "revealed",
                to be queried again.
        """
        case.require("revealed", "querying the suspect")
        commitment = self.commitment_of(case)
        pool_labels = None
        if decoy_labels is not None:
            if decoy_pool is None:
                raise EncodingError(
                    "decoy labels are the known labels of the decoy pool's items: give the "
                    "decoy pool with them"
                )
            pool_labels = checked_decoy_labels(
                commitment.document.labels, decoy_labels, len(decoy_pool)
            )
        # What is queried must be what the claim names, before any query.
        queried = bind_suspect(case.record["suspect"], suspect)
        challenge = self._challenge(case)
        triggers = self.triggers_of(case)
        plan = self._query_plan(case, triggers, decoy_pool, pool_labels)
        started, answered = self._progress(case)
        records = dict(answered)

        def keep(batch: Sequence[QueryRecord]) -> None:
            records.update((record.position, record) for record in batch)
            self._save_progress(case, started, records.values())

        result = score_answers(
            commitment.document.labels,
            [trigger.label for trigger in triggers],
            run_plan(suspect, commitment.document.labels, plan, answered=answered, on_batch=keep),
            alpha=challenge.document.alpha,
        )
        transcript = Transcript(
            challenge_id=challenge.digest,
            suspect=case.record["suspect"],
            started=started,
            finished=self._clock(),
            entries=result.records,
            queried=queried,
        )
        signed = sign_document(transcript, self.keys)
        case.write("transcript.json", signed.to_json())
        case.advance(
            "queried",
            transcript_id=signed.digest,
            holds=bool(result.test.decision),
            test=result.figures().to_fields(),
        )
        return result

    def _progress(self, case: Case) -> tuple[datetime, dict[int, QueryRecord]]:
        """When the case's query step first started, and the answers stored since."""
        if not case.exists(QUERY_PROGRESS_FILE):
            return self._clock(), {}
        value = parse_canonical_json(
            case.read(QUERY_PROGRESS_FILE), max_size=_MAX_PROGRESS_SIZE, what="query progress"
        )
        fields = Fields(value, context="query progress")
        started = fields.time("started")
        entries = fields.objects("answers", TranscriptEntry.from_fields, max_items=MAX_QUERIES)
        fields.finish()
        return started, {entry.position: entry for entry in entries}

    def _save_progress(self, case: Case, started: datetime, records: Iterable[QueryRecord]) -> None:
        answers = [
            record
            for record in sorted(records, key=lambda record: record.position)
            if record.error is None
        ]
        progress = {
            "answers": [entry.to_fields() for entry in answers],
            "started": format_time(started),
        }
        case.write(QUERY_PROGRESS_FILE, canonical_json(progress))

    # -- decision ---------------------------------------------------------

    def rivals(self, case: Case) -> list[Case]:
        """Other claims on the same suspect that reached the query step.

        A re-filed claim on the same commitment is the same claimant with the
        same watermark (its challenge is counted in ``prior_challenges``), not
        a rival; nor is a claim of the same owner on another of its
        commitments (a black-box and a white-box claim on one model get a
        verdict each, not an ambiguity between themselves).

        A case whose state is damaged is skipped and reported
        (:meth:`_cases`): one damaged folder must not block every decision.
        """
        return [
            other
            for other in self._cases(besides=case.name)
            if other.record["suspect"] == case.record["suspect"]
            and other.record["commitment_id"] != case.record["commitment_id"]
            and other.record["owner"] != case.record["owner"]
            and other.at_least("queried")
        ]

    def decide(
        self,
        case: Case,
        *,
        released_models: Mapping[str, Path] | None = None,
        load_model: Callable[[Path], Suspect] | None = None,
        decoy_pools: Mapping[str, Sequence[npt.NDArray[Any]]] | None = None,
    ) -> bytes:
        """Sign the verdict of a queried case and write its bundle.

        When the claim holds and rival claims on the same suspect hold too,
        each holding claimant's registered released model (a file, or a
        folder for a folder release, by claim id in ``released_models``,
        opened with ``load_model``) is queried for
        every holding claimant's watermark. The claim is then upheld only if
        those cross-checks prove it the origin over every holding rival, and
        ambiguous unless they prove a rival the origin over it; time plays no
        part (``specs/dispute.md`` 8.7,
        :func:`secmark.messages.verdict.outcome_of`). The decoys of a
        cross-check on a pool-family watermark are drawn from
        ``decoy_pools[claim id]`` (as :meth:`query` draws them).

        More than :data:`~secmark.messages.verdict.MAX_CROSS_CHECKED`
        holding claims are not cross-checked (that would take their square
        in checks); the outcome is then ambiguous.

        Raises:
            ProtocolError: the case is not queried, a deposited model file
                or folder is not the registered release (or not of its kind), a pool-family watermark to
                cross-check has no decoy pool, or more rival claims than a
                verdict lists (:data:`~secmark.messages.verdict.MAX_RIVALS`).
        """
        case.require("queried", "deciding")
        rivals = self.rivals(case)
        if len(rivals) > MAX_RIVALS:
            raise ProtocolError(
                f"{len(rivals)} rival claims on this suspect reached the query step; a verdict "
                f"lists at most {MAX_RIVALS}, so this case cannot be decided (an arbiter that "
                "admits claims on one suspect should stop before this many reach the query step)"
            )
        holding = [case] + [rival for rival in rivals if rival.record["holds"]]
        cross_checks: list[CrossCheck] = []
        if case.record["holds"] and 1 < len(holding) <= MAX_CROSS_CHECKED:
            cross_checks = self._cross_check(
                holding, released_models or {}, load_model, decoy_pools or {}
            )
        outcome, reason = self._outcome(case, rivals, cross_checks)
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
        decoy_pools: Mapping[str, Sequence[npt.NDArray[Any]]],
    ) -> list[CrossCheck]:
        """Query each holding claimant's registered, deposited release for
        every holding claimant's watermark, with at least one decoy per
        trigger for the control (:class:`CrossCheck`).

        A release that is not registered or not deposited is not checked,
        nor one that fails more queries than the failure budget allows: no
        pair of cross-checks, and so no proof of origin, can rest on it.
        """
        checks = []
        labels: dict[str, list[Any]] = {}
        for model_case in holding:
            release = model_case.record["release"]
            path = released_models.get(model_case.name)
            if release is None or path is None or load_model is None:
                continue  # no registered, deposited release: nothing is proved with it
            deposited = _deposited_digest(path, release["model_digest_algorithm"], model_case.name)
            if deposited != release["model_digest"]:
                raise ProtocolError(
                    f"the model deposited for claim {model_case.name} is not its registered release"
                )
            model = load_model(path)
            for mark_case in holding:
                challenge = self._challenge(mark_case).document
                decoys = max(challenge.decoys, len(challenge.indices))
                try:
                    result = self._query(mark_case, model, decoys, decoy_pools.get(mark_case.name))
                except SuspectError:
                    continue  # not measured: it proves nothing either way
                if mark_case.name not in labels:
                    labels[mark_case.name] = [t.label for t in self.triggers_of(mark_case)]
                space = self.commitment_of(mark_case).document.labels
                control = _control(space, labels[mark_case.name], result.records)
                checks.append(
                    CrossCheck(
                        model_of=model_case.name,
                        watermark_of=mark_case.name,
                        trials=result.trials,
                        matches=result.matches,
                        threshold=result.test.threshold,
                        log2_p_value=result.test.log2_p_value,
                        trigger_errors=result.trigger_errors,
                        decoy_errors=result.decoy_errors,
                        control_trials=control[0],
                        control_matches=control[1],
                        control_threshold=control[2],
                    )
                )
        return checks

    def _outcome(self, case: Case, rivals: list[Case], checks: list[CrossCheck]) -> tuple[str, str]:
        test = case.record["test"]
        outcome, origin = outcome_of(
            case.name, case.record["holds"], [_rival(rival) for rival in rivals], checks
        )
        holding = [rival for rival in rivals if rival.record["holds"]]
        if not case.record["holds"]:
            return outcome, (
                f"{test['matches']} of {test['trials']} trials matched; at least {test['threshold']} "
                f"are needed at alpha = {test['alpha']}: the suspect does not show this watermark"
            )
        if not holding:
            return outcome, (
                f"{test['matches']} of {test['trials']} trials matched (threshold {test['threshold']}, "
                f"p = 2^{test['log2_p_value']:.1f}); no other claim on this suspect holds"
            )
        if outcome == "upheld":
            return outcome, (
                f"this claim and {len(holding)} other(s) hold on the suspect; the registered "
                "releases prove this claimant the origin over each of them: every rival's release "
                "carries this claimant's watermark (and not as any model would), and this "
                "claimant's release carries none of theirs"
            )
        if outcome == "rejected":
            return outcome, (
                f"the registered releases prove claim {origin} the origin over this one: this "
                f"claimant's release carries the watermark of {origin} (and not as any model "
                f"would), and the release of {origin} does not carry this claimant's"
            )
        if len(holding) + 1 > MAX_CROSS_CHECKED:
            return outcome, (
                f"this claim and {len(holding)} other(s) hold on the suspect: more than "
                f"{MAX_CROSS_CHECKED} holding claims are not cross-checked, so no release proves "
                "any of them the origin"
            )
        return outcome, (
            f"this claim and {len(holding)} other(s) hold on the suspect, and the cross-checks of "
            "registered releases prove none of them the origin over this one nor this one over "
            "all of them. Only a pair of cross-checks proves origin; commitment times do not, and "
            "a release that is not registered or deposited, whose queries failed, or that does "
            "not carry the other's watermark (or carries it as any model would) proves nothing"
        )


_CONTROL_ALPHA = Fraction(1, 1 << 16)
"""Level of the cross-check control. Far laxer than any verdict's alpha on
purpose: a control that fires only withdraws a proof (the outcome becomes
ambiguous, never upheld or rejected), so an honest release loses a proof
with probability at most about 2^-16, while a lax control catches a
watermark that models carry only moderately more often than its stated p0
(at k = 48 and p0 = 1/10 the control fires at 16 matches, the test needs
32: a model matching half the labels without being made with them passes
the test and misses the control with probability below 2^-13). It is a
second line: a label space whose stated p0 is wrong is refused at commit
time (DESIGN, first soundness rule)."""


def _deposited_digest(path: Path, algorithm: str, claim_id: str) -> str:
    """The digest of a deposited release, computed as its registration was.

    Raises:
        ProtocolError: a file deposited for a folder release, or the reverse.
        SecmarkError: the deposit cannot be read or hashed.
    """
    if algorithm == MODEL_SIGNING_FILES_SHA256:
        if not path.is_dir():
            raise ProtocolError(
                f"claim {claim_id} registers a model folder (model-signing digest): "
                f"deposit the folder, not {path}"
            )
        return model_folder_digest(path)
    if path.is_dir():
        raise ProtocolError(
            f"claim {claim_id} registers a model file (sha256-file): deposit the file, "
            f"not the folder {path}"
        )
    return model_file_digest(path)


def _control(
    space: LabelSpace, labels: Sequence[Any], records: Sequence[QueryRecord]
) -> tuple[int, int, int]:
    """(trials, matches, threshold) of the cross-check control.

    The first decoys in the order sent (at most one per trigger) are each
    scored against the label of a distinct trigger drawn by the operating
    system's CSPRNG, so no model can know which label a decoy is scored
    against; the threshold is the exact one at ``_CONTROL_ALPHA`` and the
    watermark's stated p0. A model that was not made with the secret
    labels matches them on decoys as often as on triggers.
    """
    decoys = [record for record in records if not record.is_trigger][: len(labels)]
    drawn = secrets.SystemRandom().sample(range(len(labels)), len(decoys))
    matches = sum(
        answer_matches(space, labels[j], record.answer)
        for record, j in zip(decoys, drawn)
        if record.answer is not None
    )
    trials = len(decoys) * trials_per_trigger(space)
    if not trials:
        return 0, 0, 1
    threshold = decision_threshold(trials, null_match_probability(space), _CONTROL_ALPHA)
    return trials, matches, threshold


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
