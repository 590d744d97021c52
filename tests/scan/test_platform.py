"""Deposits with a platform, and the finding a hit turns into.

An owner deposits a commitment with a platform as he would claim against a
suspect; the platform keeps the reveal sealed, scans its hosted models with
the deposit's triggers, and signs a finding for a hit, which opens an
ordinary dispute with an arbiter.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secmark.crypto import IdentityKeys
from secmark.errors import EncodingError, ProtocolError, SignatureError
from secmark.messages import create_identity
from secmark.messages.commitment import Commitment, create_commitment
from secmark.messages.document import SignedDocument, sign_document
from secmark.messages.finding import ScanFinding, open_finding
from secmark.protocol.arbiter import Arbiter, ArbiterPolicy
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.owner import answer_challenge, file_claim
from secmark.scan import HostedModel, ScanResults, run_scan
from secmark.scan.platform import Platform, model_reference, verify_finding
from secmark.timestamp import TimestampAuthority, TrustStore
from secmark.timestamp.evidence import collect_evidence
from tests.conftest import fixed_keys
from tests.scan.conftest import FAMILY, SPACE

SIZE = 64
"""The commitment's triggers: all of them are embedded, a deposit reveals 48."""
DEPOSIT = 48


@dataclass(frozen=True)
class Court:
    respond: Any
    trust: TrustStore

    def evidence(self, subject: str) -> bytes:
        return collect_evidence(subject, [self.respond]).to_json()


@pytest.fixture(scope="module")
def court(tmp_path_factory: pytest.TempPathFactory) -> Court:
    tsa = TimestampAuthority.initialize(
        tmp_path_factory.mktemp("tsa") / "tsa", passphrase=None, allow_unencrypted=True
    )
    return Court(tsa.respond, TrustStore(roots=(tsa.root_certificate,)))


@dataclass(frozen=True)
class Owner:
    keys: IdentityKeys
    signed: SignedDocument[Commitment]
    model: Path
    """A digits CNN with all of the commitment's triggers embedded."""


def commit(keys: IdentityKeys, label: str) -> SignedDocument[Commitment]:
    return create_commitment(
        keys,
        family=FAMILY,
        labels=SPACE,
        size=SIZE,
        model_label=f"platform test {label}",
        nonce=hashlib.sha256(label.encode()).digest(),
        created=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> Owner:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from secmark.embed import save_state
    from secmark.examples import digits
    from secmark.triggers import iter_triggers

    keys = fixed_keys("platform owner")
    signed = commit(keys, "owner")
    batches = list(iter_triggers(keys, signed, range(SIZE)))
    inputs = np.concatenate([batch.inputs for batch in batches])
    labels = np.concatenate([batch.labels for batch in batches])
    model = digits.new_model(seed=3)
    digits.embed_watermark(
        model, digits.load_data(), digits.trigger_set(inputs, labels), seed=3, epochs=10
    )
    path = tmp_path_factory.mktemp("owner") / "marked.safetensors"
    save_state(model, path)
    return Owner(keys, signed, path)


@pytest.fixture
def platform(tmp_path: Path, court: Court) -> Platform:
    keys = fixed_keys("platform")
    return Platform(
        keys,
        create_identity(keys, "model hub"),
        court.trust,
        tmp_path / "platform",
        deposit_size=DEPOSIT,
    )


def deposit(owner: Owner, platform: Platform, court: Court) -> str:
    """The owner's whole deposit; the platform's case id."""
    claim = file_claim(
        owner.keys,
        commitment=owner.signed.to_json(),
        commitment_evidence=court.evidence(owner.signed.digest),
        suspect=platform.reference,
        arbiter=platform.arbiter.identity,
    )
    case = platform.file_deposit(claim)
    challenge = platform.challenge(case)
    reveal = answer_challenge(owner.keys, owner.signed, challenge, platform.arbiter.identity)
    assert platform.receive_reveal(case, reveal) == DEPOSIT
    return case.name


@pytest.fixture
def results(tmp_path: Path) -> Iterator[ScanResults]:
    table = ScanResults.open(f"sqlite:///{tmp_path / 'scan.db'}")
    yield table
    table.close()


def hosted(owner: Owner, tmp_path: Path) -> list[HostedModel]:
    from secmark.embed import save_state
    from secmark.examples import digits

    clean = digits.new_model(seed=4)
    save_state(clean, tmp_path / "clean.safetensors")
    return [
        HostedModel("stolen", weights=owner.model, factory=digits.DigitsCNN),
        HostedModel("innocent", weights=tmp_path / "clean.safetensors", factory=digits.DigitsCNN),
    ]


def test_a_deposit_is_kept_sealed_and_scanned_into_a_finding_that_opens_a_dispute(
    owner: Owner, platform: Platform, court: Court, results: ScanResults, tmp_path: Path
) -> None:
    case_id = deposit(owner, platform, court)
    stored = platform.arbiter.case(case_id)
    # At rest only the sealed reveal: no trigger, index proof or label in clear.
    assert not stored.exists("reveal-contents.json")
    sealed = stored.read("reveal.json")
    for trigger in platform.arbiter.triggers_of(stored)[:3]:
        assert trigger.proof.hex() not in sealed.decode()
    assert len(platform.exposed_indices(owner.signed.digest)) == DEPOSIT

    models = hosted(owner, tmp_path)
    summary = run_scan(models, platform.probes(), results, scan_id="nightly", progress=False)
    hits = summary.hits
    assert [(hit.model_id, hit.deposit_id) for hit in hits] == [("stolen", case_id)]
    finding = verify_finding(
        platform.finding(hits[0], models[0], "nightly"), platform.keys.public_keys
    )
    assert finding.model == model_reference(models[0])
    assert finding.model == "sha256:" + hashlib.sha256(owner.model.read_bytes()).hexdigest()
    assert (finding.owner, finding.commitment_id) == (owner.keys.key_id, owner.signed.digest)

    # The finding names what to claim; the arbiter decides afresh.
    from secmark.examples import digits
    from secmark.models.torch_module import TorchSuspect

    arbiter_keys = fixed_keys("platform test arbiter")
    arbiter = Arbiter(
        arbiter_keys,
        create_identity(arbiter_keys, "arbiter"),
        court.trust,
        tmp_path / "arbiter",
        policy=ArbiterPolicy(challenge_size=SIZE),
    )
    claim = file_claim(
        owner.keys,
        commitment=owner.signed.to_json(),
        commitment_evidence=court.evidence(owner.signed.digest),
        suspect=finding.model,
        arbiter=arbiter.identity,
    )
    dispute = arbiter.file_claim(claim)
    challenge = arbiter.challenge(dispute)
    arbiter.receive_reveal(
        dispute, answer_challenge(owner.keys, owner.signed, challenge, arbiter.identity)
    )
    arbiter.query(dispute, TorchSuspect.from_file(digits.DigitsCNN(), owner.model))
    arbiter.decide(dispute)
    assert verify_bundle(dispute.read("bundle.json"), court.trust).outcome == "upheld"


def test_a_commitment_is_deposited_once_and_a_refiled_deposit_draws_the_same_indices(
    owner: Owner, platform: Platform, court: Court
) -> None:
    from secmark.messages.challenge import open_challenge

    def refile() -> bytes:
        return file_claim(
            owner.keys,
            commitment=owner.signed.to_json(),
            commitment_evidence=court.evidence(owner.signed.digest),
            suspect=platform.reference,
            arbiter=platform.arbiter.identity,
        )

    def indices(challenge: bytes) -> tuple[int, ...]:
        return open_challenge(challenge, platform.keys.public_keys).document.indices

    before_reveal = [platform.challenge(platform.file_deposit(refile())) for _ in range(2)]
    assert indices(before_reveal[0]) == indices(before_reveal[1])
    first = deposit(owner, platform, court)
    assert platform.exposed_indices(owner.signed.digest) == indices(before_reveal[0])
    with pytest.raises(ProtocolError, match=f"deposited here already, as {first}"):
        platform.file_deposit(refile())


def test_an_arbiter_refuses_a_deposit_and_a_platform_refuses_a_claim(
    owner: Owner, platform: Platform, court: Court, tmp_path: Path
) -> None:
    keys = fixed_keys("platform test arbiter")
    arbiter = Arbiter(keys, create_identity(keys, "arbiter"), court.trust, tmp_path / "a")
    evidence = court.evidence(owner.signed.digest)

    def claim_to(target: Any, suspect: str) -> bytes:
        return file_claim(
            owner.keys,
            commitment=owner.signed.to_json(),
            commitment_evidence=evidence,
            suspect=suspect,
            arbiter=target.identity,
        )

    with pytest.raises(ProtocolError, match="is a deposit"):
        arbiter.file_claim(claim_to(arbiter, f"platform:{keys.key_id}"))
    with pytest.raises(ProtocolError, match="goes to an arbiter"):
        platform.file_deposit(claim_to(platform.arbiter, "sha256:" + "ab" * 32))
    other = fixed_keys("another platform")
    with pytest.raises(ProtocolError, match="takes deposits naming"):
        platform.file_deposit(claim_to(platform.arbiter, f"platform:{other.key_id}"))
    assert not platform.deposits()


def test_only_a_hit_makes_a_finding_and_a_bent_finding_is_refused(
    owner: Owner, platform: Platform, court: Court, results: ScanResults, tmp_path: Path
) -> None:
    deposit(owner, platform, court)
    models = hosted(owner, tmp_path)
    summary = run_scan(models, platform.probes(), results, scan_id="s", progress=False)
    miss = next(result for result in summary.results if not result.hit)
    with pytest.raises(ProtocolError, match="only a hit"):
        platform.finding(miss, models[1], "s")
    signed = platform.finding(summary.hits[0], models[0], "s")
    finding = open_finding(signed, platform.keys.public_keys).document

    def resigned(**change: Any) -> bytes:
        return sign_document(dataclasses.replace(finding, **change), platform.keys).to_json()

    # Figures that are no hit at the stated level, however validly signed.
    with pytest.raises(ProtocolError, match="need"):
        verify_finding(resigned(threshold=finding.threshold - 1), platform.keys.public_keys)
    with pytest.raises(ProtocolError, match="need"):
        verify_finding(resigned(models=finding.models * 1000), platform.keys.public_keys)
    with pytest.raises(ProtocolError, match="canonical"):
        spelled = "sha256:" + finding.model.removeprefix("sha256:").upper()
        verify_finding(resigned(model=spelled), platform.keys.public_keys)
    with pytest.raises(ProtocolError, match="claimable|canonical"):
        verify_finding(resigned(model=platform.reference), platform.keys.public_keys)
    with pytest.raises(EncodingError, match="a finding reports a hit"):
        dataclasses.replace(finding, matches=finding.threshold - 1)
    with pytest.raises(SignatureError):
        verify_finding(signed, fixed_keys("someone else").public_keys)
    assert isinstance(finding, ScanFinding)


def test_a_white_box_deposit_is_scanned_by_projection(
    court: Court, results: ScanResults, tmp_path: Path
) -> None:
    """A weights commitment's deposit carries its rows; a model file whose
    parameter gives their bits is a hit, without any inference. (At p0 =
    1/2 a deposit needs more rows than a 10-class one needs triggers.)"""
    import safetensors.numpy

    platform_keys = fixed_keys("platform")
    platform = Platform(
        platform_keys,
        create_identity(platform_keys, "model hub"),
        court.trust,
        tmp_path / "platform",
        deposit_size=128,
    )

    from secmark.messages.families import WeightsFamily
    from secmark.messages.labels import ClassLabels

    family = WeightsFamily("classifier.1.weight", (64, 512))
    keys = fixed_keys("platform white-box owner")
    signed = create_commitment(
        keys,
        family=family,
        labels=ClassLabels(2),
        size=256,
        model_label="platform test white-box",
        nonce=hashlib.sha256(b"white-box").digest(),
        created=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )
    claim = file_claim(
        keys,
        commitment=signed.to_json(),
        commitment_evidence=court.evidence(signed.digest),
        suspect=platform.reference,
        arbiter=platform.arbiter.identity,
    )
    case = platform.file_deposit(claim)
    reveal = answer_challenge(keys, signed, platform.challenge(case), platform.arbiter.identity)
    assert platform.receive_reveal(case, reveal) == 128
    (probe,) = platform.probes()
    assert probe.white_box and probe.inputs.shape == (128, 512)
    # A parameter whose mean over rows gives every deposited bit.
    signs = probe.labels.astype(np.float64) * 2 - 1
    reduced = np.linalg.pinv(probe.inputs.astype(np.float64)) @ signs
    marked = tmp_path / "marked.safetensors"
    parameter = np.tile(reduced.astype(np.float32), (64, 1))
    safetensors.numpy.save_file({family.parameter: parameter}, marked)
    unmarked = tmp_path / "unmarked.safetensors"
    noise = np.random.default_rng(5).normal(size=(64, 512)).astype(np.float32)
    safetensors.numpy.save_file({family.parameter: noise}, unmarked)
    summary = run_scan(
        [HostedModel("marked", weights=marked), HostedModel("unmarked", weights=unmarked)],
        [probe],
        results,
        scan_id="white-box",
        progress=False,
    )
    assert [(hit.model_id, hit.deposit_id) for hit in summary.hits] == [("marked", case.name)]
    assert summary.hits[0].matches == 128
