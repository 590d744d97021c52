"""Fixtures of the dispute tests.

A :class:`World` holds what every dispute needs: an in-process timestamp
authority whose clock the test moves (so tokens can be dated before or after
one another), the trust store of that authority, the owner's, the thief's and
the arbiters' keys, and helpers that commit, register releases, file claims
and run whole cases. Suspects are in-process models that *memorise* trigger
sets: they answer every trigger of the given commitments with its committed
label (a perfectly watermarked model) and anything else with a fixed class
(or a pseudo-random one), which is exactly what the statistics treat as
"never trained on this trigger set".

Challenges are kept small (k = 48 of N = 256, one decoy per trigger) so the
whole protocol suite stays fast; at alpha = 2^-64 and p0 = 1/10 the
threshold is then 30 of 48.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from secmark.crypto import IdentityKeys
from secmark.encoding import canonical_json, utc_now
from secmark.messages import (
    PAYLOAD_TYPE,
    Envelope,
    SignedDocument,
    create_identity,
    sign_document,
)
from secmark.messages.challenge import Challenge, open_challenge
from secmark.messages.commitment import Commitment, create_commitment
from secmark.messages.families import NoiseFamily, OverlayFamily, PoolFamily
from secmark.messages.identity import Identity
from secmark.messages.labels import ClassLabels
from secmark.messages.release import create_release, model_file_digest
from secmark.messages.reveal import Reveal, RevealContents, RevealedTrigger
from secmark.messages.verdict import Verdict, open_verdict
from secmark.models import CallableSuspect, Suspect
from secmark.protocol.arbiter import Arbiter, ArbiterPolicy
from secmark.protocol.case import Case
from secmark.protocol.owner import answer_challenge, file_claim
from secmark.protocol.querying import BlackBoxResult
from secmark.timestamp import TimestampAuthority, TrustStore
from secmark.timestamp.evidence import collect_evidence
from secmark.triggers import (
    CommittedPool,
    derive_trigger,
    iter_triggers,
    pool_root,
    trigger_alpha,
)
from tests.conftest import fixed_keys

SIZE = 256
"""N: triggers per commitment."""

CHALLENGE_SIZE = 48
"""k: triggers per challenge."""

POLICY = ArbiterPolicy(challenge_size=CHALLENGE_SIZE, decoys_per_trigger=1)
FAMILY = NoiseFamily((1, 8, 8), "float32", 0.0, 1.0)
LABELS = ClassLabels(10)
SUSPECT = "sha256:" + hashlib.sha256(b"suspect model").hexdigest()
"""The suspect every case names: a model file, by its digest."""
"""The canonical reference the claims name unless a test says otherwise."""


class Clock:
    """A clock a test moves by hand (UTC, whole seconds)."""

    def __init__(self, start: datetime) -> None:
        self.now = start.replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Committed:
    """A signed, timestamped commitment, its owner's keys, and optionally
    a registered, timestamped release."""

    keys: IdentityKeys
    signed: SignedDocument[Commitment]
    evidence: bytes
    release: bytes | None = None
    release_evidence: bytes | None = None

    @property
    def data(self) -> bytes:
        return self.signed.to_json()

    @property
    def digest(self) -> str:
        return self.signed.digest

    @cached_property
    def answers(self) -> dict[bytes, int]:
        """Input bytes of every one of the N triggers -> its committed label."""
        table: dict[bytes, int] = {}
        for batch in iter_triggers(self.keys, self.signed, range(self.signed.document.size)):
            for value, label in zip(batch.inputs, batch.labels):
                table[np.ascontiguousarray(value).tobytes()] = int(label)
        return table


def _fallback(row: npt.NDArray[Any], otherwise: int | str) -> int:
    if otherwise == "random":
        return hashlib.sha256(row.tobytes()).digest()[0] % LABELS.num_classes
    return int(otherwise)


def memorising_suspect(
    *marks: Committed, otherwise: int | str = 0, reference: str = SUSPECT
) -> CallableSuspect:
    """A model carrying the watermarks of ``marks`` perfectly: every trigger
    of each answered with its committed label; every other input with class
    ``otherwise`` (or, with ``"random"``, a class drawn from the input's hash).
    It describes itself as ``reference``, the file it stands for."""
    table: dict[bytes, int] = {}
    for mark in marks:
        table.update(mark.answers)

    def model(batch: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        return np.array(
            [
                table.get(np.ascontiguousarray(row).tobytes(), _fallback(row, otherwise))
                for row in batch
            ],
            dtype=np.int64,
        )

    return CallableSuspect(model, reference=reference)


@dataclass
class CaseRun:
    """One claim taken through the arbiter's steps."""

    arbiter: Arbiter
    case: Case
    claim: bytes
    challenge: bytes
    reveal: bytes
    result: BlackBoxResult | None
    verdict: bytes | None = None

    @property
    def bundle(self) -> bytes:
        return self.case.read("bundle.json")

    @property
    def decision(self) -> Verdict:
        assert self.verdict is not None, "the case was not decided"
        return open_verdict(self.verdict, self.arbiter.keys.public_keys).document

    @property
    def challenge_document(self) -> SignedDocument[Challenge]:
        return open_challenge(self.challenge, self.arbiter.keys.public_keys)


class World:
    """A TSA with a settable clock, its trust store, and the parties' keys."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # Tokens dated after the verifier's clock are refused: start in the past,
        # since every timestamp moves the clock on (an hour by default).
        self.tsa_clock = Clock(utc_now() - timedelta(days=30))
        self.tsa = TimestampAuthority.initialize(
            folder / "tsa", passphrase=None, allow_unencrypted=True, clock=self.tsa_clock
        )
        self.trust = TrustStore(roots=(self.tsa.root_certificate,))
        self.owner = fixed_keys("owner")
        self.thief = fixed_keys("thief")
        self.arbiter_keys = fixed_keys("arbiter")
        self.arbiter_identity = create_identity(self.arbiter_keys, "arbiter")
        self.other_arbiter_keys = fixed_keys("other arbiter")
        self.other_arbiter_identity = create_identity(self.other_arbiter_keys, "other arbiter")

    def timestamp(self, subject: str, *, later_by: timedelta = timedelta(hours=1)) -> bytes:
        """Evidence for ``subject``, dated ``later_by`` after the previous token."""
        self.tsa_clock.now += later_by
        return collect_evidence(subject, [self.tsa.respond]).to_json()

    def commit(
        self, keys: IdentityKeys | None = None, *, size: int = SIZE, created: datetime | None = None
    ) -> Committed:
        keys = keys or self.owner
        signed = create_commitment(
            keys, family=FAMILY, labels=LABELS, size=size, model_label="model", created=created
        )
        return Committed(keys, signed, self.timestamp(signed.digest))

    def commit_pool(
        self, family: PoolFamily | OverlayFamily, items: npt.NDArray[Any]
    ) -> tuple[Committed, CommittedPool]:
        """The owner's timestamped commitment to a pool-family trigger set over
        ``items``, and the pool opened against it."""
        signed = create_commitment(
            self.owner,
            family=family,
            labels=LABELS,
            size=SIZE,
            model_label="pool",
            pool_root=pool_root(items, family),
        )
        committed = Committed(self.owner, signed, self.timestamp(signed.digest))
        return committed, CommittedPool.open(items, signed.document)

    def model_file(self, name: str) -> Path:
        """A small file whose bytes identify a released model."""
        path = self.folder / f"{name}.safetensors"
        path.write_bytes(f"weights of {name}".encode())
        return path

    def register_release(self, committed: Committed, model_file: Path) -> None:
        """Sign and timestamp the release of ``model_file`` under ``committed``."""
        release = create_release(
            committed.keys,
            commitment_id=committed.digest,
            model_digest=model_file_digest(model_file),
            model_name=model_file.stem,
            model_version="1",
        )
        committed.release = release.to_json()
        committed.release_evidence = self.timestamp(release.digest)

    def arbiter(
        self,
        *,
        policy: ArbiterPolicy = POLICY,
        clock: Callable[[], datetime] = utc_now,
        folder: str = "arbiter",
        other: bool = False,
    ) -> Arbiter:
        keys, identity = (
            (self.other_arbiter_keys, self.other_arbiter_identity)
            if other
            else (self.arbiter_keys, self.arbiter_identity)
        )
        return Arbiter(keys, identity, self.trust, self.folder / folder, policy=policy, clock=clock)

    def claim(
        self,
        committed: Committed,
        *,
        suspect: str = SUSPECT,
        arbiter: SignedDocument[Identity] | None = None,
        with_release: bool = True,
    ) -> bytes:
        release = committed.release if with_release else None
        return file_claim(
            committed.keys,
            commitment=committed.data,
            commitment_evidence=committed.evidence,
            suspect=suspect,
            arbiter=arbiter or self.arbiter_identity,
            release=release,
            release_evidence=committed.release_evidence if release is not None else None,
        )

    def run_case(
        self,
        committed: Committed,
        model: Suspect,
        *,
        arbiter: Arbiter | None = None,
        suspect: str = SUSPECT,
        with_release: bool = True,
        query: bool = True,
        decide: bool = True,
        released_models: Mapping[str, Path] | None = None,
        load_model: Callable[[Path], Suspect] | None = None,
    ) -> CaseRun:
        """File a claim and take it through challenge, reveal, query (unless
        ``query`` is false) and (unless ``decide`` is false) the verdict."""
        arbiter = arbiter or self.arbiter()
        claim = self.claim(
            committed, suspect=suspect, arbiter=arbiter.identity, with_release=with_release
        )
        case = arbiter.file_claim(claim)
        challenge = arbiter.challenge(case)
        reveal = answer_challenge(committed.keys, committed.signed, challenge, arbiter.identity)
        arbiter.receive_reveal(case, reveal)
        result = arbiter.query(case, model) if query else None
        run = CaseRun(arbiter, case, claim, challenge, reveal, result)
        if query and decide:
            run.verdict = arbiter.decide(
                case, released_models=released_models, load_model=load_model
            )
        return run


# -- forging helpers ----------------------------------------------------------


def resign(envelope: bytes, keys: IdentityKeys, change: Callable[[dict[str, Any]], None]) -> bytes:
    """The document in ``envelope`` with its payload changed by ``change``
    and signed again, canonically, by ``keys``."""
    payload = json.loads(Envelope.from_json(envelope).payload)
    change(payload)
    return Envelope.sign(PAYLOAD_TYPE, canonical_json(payload), keys).to_json()


def bundle_members(bundle: bytes) -> dict[str, Any]:
    return json.loads(bundle)  # type: ignore[no-any-return]


def bundle_with(bundle: bytes, **members: bytes | str) -> bytes:
    """``bundle`` with some member documents replaced (canonically re-encoded)."""
    value = bundle_members(bundle)
    for name, document in members.items():
        value[name] = document.decode() if isinstance(document, bytes) else document
    return canonical_json(value)


def forge_reveal(
    committed: Committed,
    challenge: bytes,
    arbiter: SignedDocument[Identity],
    indices: list[int],
    *,
    vrf_keys: IdentityKeys | None = None,
    challenge_id: str | None = None,
    signer: IdentityKeys | None = None,
) -> bytes:
    """A reveal of ``indices`` (any list, in that order) sealed to ``arbiter``.

    By default it is what an honest owner would send for those indices;
    ``vrf_keys`` proves them with another VRF key, ``challenge_id`` names
    another challenge, ``signer`` signs with another identity key.
    """
    challenge_id = challenge_id or open_challenge(challenge, arbiter.document.public_keys).digest
    revealed = []
    for index in indices:
        if vrf_keys is None:
            proof = derive_trigger(committed.keys, committed.signed, index).proof
        else:
            alpha = trigger_alpha(bytes.fromhex(committed.digest), index)
            proof, _ = vrf_keys.vrf.prove_and_hash(alpha)
        revealed.append(RevealedTrigger(index, proof))
    contents = RevealContents(challenge_id, tuple(revealed))
    reveal = Reveal(challenge_id, contents.seal(arbiter.document.public_keys))
    return sign_document(reveal, signer or committed.keys).to_json()


# -- fixtures -----------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


@pytest.fixture
def owner_mark(world: World) -> Committed:
    """The owner's commitment, timestamped."""
    return world.commit()


@pytest.fixture
def stolen_model(owner_mark: Committed) -> CallableSuspect:
    """A copy of the owner's watermarked model."""
    return memorising_suspect(owner_mark)


@pytest.fixture(scope="session")
def decided(tmp_path_factory: pytest.TempPathFactory) -> CaseRun:
    """One upheld case, shared read-only by the bundle tamper tests."""
    world = World(tmp_path_factory.mktemp("decided"))
    mark = world.commit()
    world.register_release(mark, world.model_file("released"))
    return world.run_case(mark, memorising_suspect(mark))
