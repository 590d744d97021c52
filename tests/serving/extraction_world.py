"""An extraction dispute's world: a TSA, the parties, a served model and its marked traffic.

Shared by the extraction tests and the schema tests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from secmark.crypto.keys import IdentityKeys
from secmark.encoding import utc_now
from secmark.messages.document import SignedDocument
from secmark.messages.extraction import create_extraction_claim
from secmark.messages.identity import create_identity
from secmark.messages.serving_policy import InputEncoding, ServingPolicy, create_serving_policy
from secmark.models.callable import CallableSuspect
from secmark.protocol.extraction import ExtractionArbiter
from secmark.protocol.extraction_bundle import build_extraction_bundle
from secmark.serving.entry import LogEntry, client_account
from secmark.serving.log import QueryLog
from secmark.serving.marking import Marker, canonical_input
from secmark.timestamp import TimestampAuthority, TrustStore
from secmark.timestamp.evidence import collect_evidence

ENCODING = InputEncoding("float32", (8,))
CLASSES = 10
SUSPECT = "sha256:" + hashlib.sha256(b"the suspect's weights").hexdigest()
WEIGHTS = np.random.default_rng(0).normal(size=(8, CLASSES))


def served_model(batch: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """The owner's model: a fixed linear classifier."""
    return np.argmax(np.asarray(batch, dtype=np.float64) @ WEIGHTS, axis=1).astype(np.int64)


def keys(label: str) -> IdentityKeys:
    seed = hashlib.sha256(label.encode()).digest()
    return IdentityKeys(seed, hashlib.sha256(seed).digest(), hashlib.sha256(seed + b"x").digest())


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Served:
    """A policy, its marked traffic in a log, and the timestamps of both."""

    policy: SignedDocument[ServingPolicy]
    policy_evidence: bytes
    log: QueryLog
    thief: str
    answers: dict[bytes, int]
    """What the thief's account was served, by canonical input."""


class World:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.clock = Clock(utc_now() - timedelta(days=30))
        self.tsa = TimestampAuthority.initialize(
            folder / "tsa", passphrase=None, allow_unencrypted=True, clock=self.clock
        )
        self.trust = TrustStore(roots=(self.tsa.root_certificate,))
        self.owner = keys("owner")
        self.platform = keys("platform")
        self.arbiter_keys = keys("arbiter")
        self.arbiter_identity = create_identity(self.arbiter_keys, "arbiter")

    def timestamp(self, subject: str) -> bytes:
        self.clock.now += timedelta(hours=1)
        return collect_evidence(subject, [self.tsa.respond]).to_json()

    def serve(
        self,
        *,
        operator: IdentityKeys | None = None,
        queries: int = 300,
        rate: Fraction = Fraction(1, 5),
        repeat: int = 1,
    ) -> Served:
        """A policy operated by ``operator`` (the platform by default); the
        thief's account asks ``queries`` random inputs (each ``repeat``
        times), two other accounts ask some more."""
        operator = operator or self.platform
        policy = create_serving_policy(
            self.owner,
            operator=operator.public_keys,
            release_id=hashlib.sha256(b"release").hexdigest(),
            num_classes=CLASSES,
            rate=rate,
            log_rate=Fraction(1, 10),
            input_encoding=ENCODING,
        )
        evidence = self.timestamp(policy.digest)
        policy_id = bytes.fromhex(policy.digest)
        log = QueryLog.open(
            f"sqlite:///{self.folder / f'log-{policy.digest[:8]}.sqlite'}", policy_id=policy_id
        )
        marker = Marker(policy, operator.vrf)
        rng = np.random.default_rng(1)
        thief = client_account(policy_id, "thief's API key")
        answers: dict[bytes, int] = {}
        traffic = [("thief's API key", queries), ("a client", 60), ("another client", 60)]
        self.clock.now += timedelta(minutes=5)
        for api_key, count in traffic:
            account = client_account(policy_id, api_key)
            inputs = rng.random((count, 8))
            entries = []
            for row, answer in zip(inputs, served_model(inputs), strict=True):
                canonical = canonical_input(row, ENCODING)
                for _ in range(repeat if api_key == "thief's API key" else 1):
                    mark = marker.mark(canonical, int(answer))
                    if api_key == "thief's API key":
                        answers[canonical] = mark.served_answer
                    if mark.logged:
                        assert mark.proof is not None
                        entries.append(
                            LogEntry(
                                policy_id,
                                account,
                                self.clock.now,
                                canonical,
                                int(answer),
                                mark.served_answer,
                                mark.selected,
                                mark.proof,
                            )
                        )
                    self.clock.now += timedelta(seconds=1)
            log.append(entries)
        return Served(policy, evidence, log, thief, answers)

    def claim(
        self, served: Served, *, operator: IdentityKeys | None = None, suspect: str = SUSPECT
    ) -> tuple[bytes, bytes]:
        """The owner's claim on the thief's account at a fresh checkpoint, and the extract."""
        checkpoint = served.log.checkpoint(operator or self.platform)
        checkpoint_evidence = self.timestamp(checkpoint.digest)
        extract = served.log.extract(served.thief, checkpoint.document.size, decoys=True)
        return self.claim_with(served, extract.to_bytes(), checkpoint_evidence, suspect=suspect)

    def claim_with(
        self, served: Served, extract: bytes, checkpoint_evidence: bytes, *, suspect: str = SUSPECT
    ) -> tuple[bytes, bytes]:
        claim = create_extraction_claim(
            self.owner,
            policy=served.policy.to_json(),
            policy_evidence=served.policy_evidence,
            checkpoint_evidence=checkpoint_evidence,
            extract_sha256=hashlib.sha256(extract).hexdigest(),
            client=served.thief,
            suspect=suspect,
            arbiter=self.arbiter_keys.key_id,
        )
        return claim.to_json(), extract

    def arbiter(self, name: str = "arbiter") -> ExtractionArbiter:
        return ExtractionArbiter(
            self.arbiter_keys, self.trust, self.folder / name, clock=lambda: utc_now()
        )

    def decide(
        self, claim: bytes, extract: bytes, model: Any, arbiter: ExtractionArbiter | None = None
    ) -> bytes:
        arbiter = arbiter or self.arbiter()
        case = arbiter.check_claim(claim, extract)
        decision = arbiter.decide(case, CallableSuspect(model, reference=SUSPECT))
        return build_extraction_bundle(
            self.arbiter_identity.to_json(), self.trust, claim, extract, decision
        )


def copy_of(answers: dict[bytes, int]) -> Any:
    """A copy that learnt every answer the thief was served."""

    def model(batch: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        rows = [canonical_input(row, ENCODING) for row in batch]
        fallback = served_model(batch)
        return np.array([answers.get(r, int(f)) for r, f in zip(rows, fallback, strict=True)])

    return model


def random_model(batch: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """An independent model: a class from each input's hash."""
    return np.array(
        [hashlib.sha256(np.ascontiguousarray(row).tobytes()).digest()[0] % CLASSES for row in batch]
    )
