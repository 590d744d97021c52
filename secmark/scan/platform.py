"""A platform's deposits: owners' sealed, platform-challenged trigger subsets, and its findings.

An owner *deposits* a commitment with a platform exactly as he would claim
against a suspect (``specs/scan.md``): a claim whose suspect is the
platform's own ``platform:<key id>`` reference, a challenge whose indices
the platform's VRF draws from the commitment and that reference (so
re-depositing cannot re-roll them), and a reveal of those triggers sealed
to the platform's encryption key. :class:`Platform` runs those steps on an
:class:`~secmark.protocol.arbiter.Arbiter` in deposit mode: the reveal is
kept only as it came, sealed, and opened in memory when a scan needs the
triggers; each deposit's challenge records the indices it exposed.

A scan's hit becomes a signed :class:`~secmark.messages.finding.ScanFinding`
(:meth:`Platform.finding`); :func:`verify_finding` checks one. A finding
opens an ordinary dispute: the owner files a claim on the model it names
with an arbiter, who challenges afresh. It adds no trust: nothing the
platform signed enters that dispute.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np

from secmark.crypto.keys import IdentityKeys, PublicKeys
from secmark.encoding import utc_now
from secmark.errors import EncodingError, ProtocolError, SecmarkError, SuspectError
from secmark.messages.challenge import open_challenge
from secmark.messages.document import SignedDocument, sign_document
from secmark.messages.finding import ScanFinding, open_finding
from secmark.messages.identity import Identity
from secmark.models.reference import canonical_reference
from secmark.protocol.arbiter import Arbiter, ArbiterPolicy
from secmark.protocol.case import Case
from secmark.protocol.store import ArbiterStore
from secmark.scan.engine import HostedModel, PairResult
from secmark.scan.probes import ScanProbe
from secmark.stats import decision_threshold
from secmark.stats.null import null_match_probability
from secmark.timestamp import TrustStore

__all__ = ["DEFAULT_DEPOSIT_SIZE", "Platform", "model_reference", "verify_finding"]

DEFAULT_DEPOSIT_SIZE = 64
"""Triggers a deposit reveals: enough for a hit at 2^-64 over 10^7 pairs
for 10 classes (threshold about 40 of 64), a small share of a commitment."""

_FILE_CHUNK = 1 << 20


def model_reference(model: HostedModel) -> str:
    """The canonical suspect reference a finding names for ``model``: what
    its black-box suspect describes itself as, or ``sha256:`` of its weights
    file (what an arbiter loading that file would describe).

    Raises:
        SuspectError: the weights file cannot be read.
        EncodingError: the suspect describes itself by no claimable reference.
    """
    if model.suspect is not None:
        return canonical_reference(model.suspect.describe())
    if model.weights is None:
        raise EncodingError(f"model {model.model_id!r} has neither a suspect nor weights")
    digest = hashlib.sha256()
    try:
        with Path(model.weights).open("rb") as source:
            for chunk in iter(lambda: source.read(_FILE_CHUNK), b""):
                digest.update(chunk)
    except OSError as error:
        raise SuspectError(f"cannot read {model.weights}: {error.strerror}") from None
    return "sha256:" + digest.hexdigest()


class Platform:
    """A platform taking deposits in ``folder`` with its keys and trust store.

    ``deposit_size`` is how many triggers each deposit reveals (the
    challenge size; no decoys, since the platform runs its hosted models
    itself). ``store`` is as for :class:`~secmark.protocol.arbiter.Arbiter`.
    """

    def __init__(
        self,
        keys: IdentityKeys,
        identity: SignedDocument[Identity],
        trust: TrustStore,
        folder: Path,
        *,
        deposit_size: int = DEFAULT_DEPOSIT_SIZE,
        store: ArbiterStore | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._clock = clock
        self.arbiter = Arbiter(
            keys,
            identity,
            trust,
            folder,
            policy=ArbiterPolicy(challenge_size=deposit_size, decoys_per_trigger=0),
            clock=clock,
            store=store,
            deposits=True,
        )

    @property
    def keys(self) -> IdentityKeys:
        return self.arbiter.keys

    @property
    def reference(self) -> str:
        """What an owner's deposit names as its suspect: ``platform:<key id>``."""
        return f"platform:{self.keys.key_id}"

    def file_deposit(self, data: bytes) -> Case:
        """Check a deposit (a claim naming :attr:`reference`) and open its case.

        A commitment is deposited once: its indices were drawn from it and
        this platform's reference, so a second deposit after the first one's
        reveal could only expose more of its triggers.

        Raises:
            As :meth:`~secmark.protocol.arbiter.Arbiter.file_claim`, and
            ProtocolError when the claim names anything but this platform,
            or its commitment was deposited here already.
        """
        case = self.arbiter.file_claim(data)
        for other in self.deposits():
            if (
                other.name != case.name
                and other.record["commitment_id"] == case.record["commitment_id"]
            ):
                raise ProtocolError(
                    f"commitment {case.record['commitment_id']} is deposited here already, "
                    f"as {other.name}"
                )
        return case

    def challenge(self, case: Case) -> bytes:
        """The deposit's challenge (signed bytes), drawn by the platform's VRF.

        Raises:
            As :meth:`~secmark.protocol.arbiter.Arbiter.challenge`.
        """
        return self.arbiter.challenge(case)

    def receive_reveal(self, case: Case, data: bytes) -> int:
        """Check the owner's sealed reveal and keep it, sealed; the number of
        triggers it reveals.

        Raises:
            As :meth:`~secmark.protocol.arbiter.Arbiter.receive_reveal`.
        """
        return len(self.arbiter.receive_reveal(case, data))

    def deposits(self) -> list[Case]:
        """The deposits whose reveal came in, in order of their ids."""
        cases = (self.arbiter.case(name) for name in sorted(self.arbiter.store.case_names()))
        return [case for case in cases if case.at_least("revealed")]

    def exposed_indices(self, commitment_id: str) -> tuple[int, ...]:
        """Every trigger index of ``commitment_id`` a deposit here revealed."""
        exposed: set[int] = set()
        for case in self.deposits():
            if case.record["commitment_id"] == commitment_id:
                challenge = open_challenge(case.read("challenge.json"), self.keys.public_keys)
                exposed.update(challenge.document.indices)
        return tuple(sorted(exposed))

    def probes(self) -> list[ScanProbe]:
        """One probe per deposit: its triggers, re-derived and checked from
        the sealed reveal, opened in memory only.

        Raises:
            SecmarkError: a stored reveal no longer opens or verifies.
        """
        probes = []
        for case in self.deposits():
            commitment = self.arbiter.commitment_of(case).document
            triggers = self.arbiter.triggers_of(case)
            probes.append(
                ScanProbe(
                    deposit_id=case.name,
                    inputs=np.stack([trigger.input for trigger in triggers]),
                    labels=np.stack([np.asarray(trigger.label) for trigger in triggers]),
                    space=commitment.labels,
                    family=commitment.family,
                )
            )
        return probes

    def finding(self, result: PairResult, model: HostedModel, scan_id: str) -> bytes:
        """The signed finding of a hit ``result`` on ``model``.

        Raises:
            ProtocolError: the result is no hit, or of another model or no
                deposit here.
            SecmarkError: as :func:`model_reference`.
        """
        if not result.hit or result.matches is None:
            raise ProtocolError("only a hit makes a finding")
        if result.model_id != model.model_id:
            raise ProtocolError(
                f"the result is of model {result.model_id!r}, not {model.model_id!r}"
            )
        case = self.arbiter.case(result.deposit_id)
        if not case.at_least("revealed"):
            raise ProtocolError(f"{result.deposit_id} is no deposit of this platform")
        commitment = self.arbiter.commitment_of(case).document
        finding = ScanFinding(
            scan_id=scan_id,
            deposit_id=case.name,
            commitment_id=case.record["commitment_id"],
            owner=case.record["owner"],
            model=model_reference(model),
            p0=null_match_probability(commitment.labels),
            alpha=result.plan.alpha,
            models=result.plan.n_models,
            deposits=result.plan.n_deposits,
            trials=result.trials,
            threshold=result.threshold,
            matches=result.matches,
            scanned=self._clock(),
        )
        return sign_document(finding, self.keys).to_json()


def verify_finding(data: bytes, platform: PublicKeys) -> ScanFinding:
    """A finding signed by ``platform`` whose figures are those of a hit.

    Checks the signature, that the model reference is one a claim can name
    (so an ordinary claim can follow), and that the threshold is the exact
    one for ``trials`` at ``p0`` and the scan's per-pair level, with the
    matches at or above it.

    Raises:
        SignatureError, EncodingError: not a finding signed by ``platform``.
        ProtocolError: a model reference no claim can name, or figures that
            are not a hit at the stated level.
    """
    finding = open_finding(data, platform).document
    try:
        reference = canonical_reference(finding.model)
    except EncodingError as error:
        raise ProtocolError(f"the finding's model is no claimable reference: {error}") from None
    if reference != finding.model or reference.startswith("platform:"):
        raise ProtocolError("the finding names a model by no canonical suspect reference")
    try:
        threshold = decision_threshold(finding.trials, finding.p0, finding.per_pair_alpha)
    except (SecmarkError, ValueError) as error:
        raise ProtocolError(f"the finding's test cannot be computed: {error}") from None
    if threshold != finding.threshold or finding.matches < threshold:
        raise ProtocolError(
            f"the finding's threshold is {finding.threshold}; {finding.trials} trials at p0 "
            f"{finding.p0} and level {finding.per_pair_alpha} need {threshold} matches"
        )
    return finding
