"""A whole dispute on the digits example, offline, in one call.

The story, on a simulated calendar (the built-in TSA's clock is set to each
date; everything else is real):

1. a thief commits a key of his own *before* the owner does;
2. the owner commits, timestamps, derives the trigger set, trains it into a
   small CNN and registers the released model;
3. the thief copies the released model, fine-tunes it on half the data,
   embeds his own watermark and registers his copy as his release; he also
   tries a "trigger set" of inputs he chose himself after the theft;
4. the arbiter judges all three claims against the thief's deployed model,
   cross-checks the registered released models, and signs the verdicts;
5. the owner's bundle is re-verified offline.

Every document is left in the demo's folder (:data:`DEMO_FILES` says what
each is), with the TSA's root certificate a judge re-checks the owner's
bundle against (:meth:`DemoOutcome.verify_command`).
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from secmark.crypto.keys import IdentityKeys
from secmark.embed import embed, save_state
from secmark.encoding import format_time, utc_now
from secmark.errors import SecmarkError
from secmark.examples.digits import (
    IMAGE_SHAPE,
    DigitsData,
    embed_watermark,
    load_data,
    new_model,
    train_loader,
    trigger_set,
)
from secmark.files import PUBLIC_FILE_MODE, write_atomic
from secmark.messages.commitment import Commitment, create_commitment
from secmark.messages.document import SignedDocument
from secmark.messages.families import NoiseFamily, PoolFamily
from secmark.messages.identity import create_identity
from secmark.messages.labels import ClassLabels
from secmark.messages.release import Release, create_release, model_file_digest
from secmark.messages.verdict import open_verdict
from secmark.models.torch_module import TorchSuspect
from secmark.protocol.arbiter import Arbiter, ArbiterPolicy
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.case import Case
from secmark.protocol.owner import answer_challenge, file_claim
from secmark.timestamp import TimestampAuthority, TrustStore
from secmark.timestamp.evidence import collect_evidence
from secmark.triggers import CommittedPool, iter_triggers, pool_root

__all__ = [
    "DEMO_FILES",
    "MARKER_FILE",
    "Calendar",
    "DemoDesk",
    "DemoOutcome",
    "prepare_folder",
    "run_demo",
    "verify_command",
]

TRIGGERS = 256
CHALLENGE = 128

MARKER_FILE = ".secmark-demo"
"""Written first into the demo's folder: only a folder holding it is ever
emptied to run the demo again (:func:`prepare_folder`)."""

OWNER_BUNDLE = "owner.bundle.json"
TSA_ROOT = "tsa/root.pem"

DEMO_FILES: tuple[tuple[str, str], ...] = (
    ("tsa/", "the demo's timestamp authority (its key is unencrypted: a demo only)"),
    (TSA_ROOT, "its root certificate: the judge's trust anchor"),
    ("owner.identity.json", "the owner's public identity"),
    ("thief.identity.json", "the thief's public identity"),
    ("arbiter.identity.json", "the arbiter's public identity"),
    ("thief.commitment.json", "the thief's commitment, made before the theft"),
    ("thief.commitment.evidence.json", "its RFC 3161 timestamps"),
    ("owner.commitment.json", "the owner's commitment to 256 triggers"),
    ("owner.commitment.evidence.json", "its RFC 3161 timestamps"),
    ("owner-model.safetensors", "the owner's watermarked model, as released"),
    ("owner.release.json", "the owner's registration of that release"),
    ("owner.release.evidence.json", "its RFC 3161 timestamps"),
    ("thief-model.safetensors", "the stolen, fine-tuned, re-marked model the arbiter queries"),
    ("thief.release.json", "the thief's registration of his copy"),
    ("thief.release.evidence.json", "its RFC 3161 timestamps"),
    ("thief.chosen.commitment.json", "the thief's commitment to inputs chosen after the theft"),
    ("thief.chosen.evidence.json", "its RFC 3161 timestamps"),
    ("arbiter/", "the arbiter's folder: one case per claim under cases/<claim id>/"),
    (OWNER_BUNDLE, "the owner's verdict bundle: what a judge re-checks offline"),
)
"""Each file (or folder, ending in ``/``) the demo leaves, relative to its
folder, with what it is."""


@dataclass(frozen=True)
class DemoOutcome:
    """What the demo found, and where it left its documents.

    ``*_outcome`` are the verdicts of the three claims; ``bundle_verified``
    says the owner's bundle passed :func:`secmark.protocol.bundle.verify_bundle`
    against the demo TSA's root; ``arbiter_key_id`` is the arbiter a judge
    pins; ``cases`` maps ``owner``, ``thief`` and ``chosen inputs`` to
    their claim ids.
    """

    owner_outcome: str
    thief_outcome: str
    chosen_inputs_outcome: str
    bundle_verified: bool
    seconds: float
    folder: Path
    arbiter_key_id: str
    cases: dict[str, str]

    @property
    def succeeded(self) -> bool:
        """The story ended as it should: the owner upheld, both thief's claims
        rejected, the bundle verified."""
        return (
            self.owner_outcome == "upheld"
            and self.thief_outcome == "rejected"
            and self.chosen_inputs_outcome == "rejected"
            and self.bundle_verified
        )

    @property
    def bundle(self) -> Path:
        return self.folder / OWNER_BUNDLE

    @property
    def trust_root(self) -> Path:
        return self.folder / TSA_ROOT

    def verify_command(self) -> list[str]:
        """The command line that re-checks the owner's bundle offline against
        the demo TSA's root, with the arbiter pinned."""
        return verify_command(self.bundle, self.trust_root, self.arbiter_key_id)


def verify_command(bundle: Path, trust_root: Path, arbiter_key_id: str) -> list[str]:
    """The command line that re-checks ``bundle`` offline against the TSA
    root ``trust_root``, with the arbiter pinned (exit status 0: verified)."""
    return [
        "secmark",
        "verify-bundle",
        str(bundle),
        "--trust",
        str(trust_root),
        "--arbiter",
        arbiter_key_id,
    ]


def prepare_folder(folder: Path, *, replace: bool = False) -> None:
    """Make ``folder`` ready for the demo: created if missing, else empty.

    A folder that is not empty is refused, unless ``replace`` is true and
    it holds :data:`MARKER_FILE` (an earlier demo made it): its contents are
    then removed. Nothing else is ever deleted.

    Raises:
        SecmarkError: ``folder`` is a file, or not empty and either
            ``replace`` is false or it was not made by the demo.
    """
    if folder.exists() and not folder.is_dir():
        raise SecmarkError(f"{folder} is a file; give the demo a folder with --out")
    folder.mkdir(parents=True, exist_ok=True)
    entries = list(folder.iterdir())
    if not entries:
        return
    if not (folder / MARKER_FILE).is_file():
        raise SecmarkError(
            f"{folder} is not empty and was not made by secmark demo; "
            "choose another folder with --out"
        )
    if not replace:
        raise SecmarkError(
            f"{folder} holds an earlier demo; give --force to replace it, "
            "or another folder with --out"
        )
    for entry in entries:
        # A link is removed, never followed: only the folder's own entries go.
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


class Calendar:
    """The simulated dates the built-in TSA signs."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class DemoDesk:
    """A demo's folder, prepared (:func:`prepare_folder`) and marked, with the
    built-in TSA on a simulated calendar whose "today" is the real one.

    Raises (constructor):
        SecmarkError: the folder cannot be used.
    """

    def __init__(self, folder: Path, *, replace: bool, history: timedelta) -> None:
        prepare_folder(folder, replace=replace)
        write_atomic(
            folder / MARKER_FILE,
            b"made by secmark demo; secmark demo --force may empty this folder\n",
            mode=PUBLIC_FILE_MODE,
        )
        self.folder = folder
        self.today = utc_now()
        self.calendar = Calendar(self.today - history)
        self.tsa = TimestampAuthority.initialize(
            folder / "tsa", passphrase=None, allow_unencrypted=True, clock=self.calendar
        )
        self.trust = TrustStore(roots=(self.tsa.root_certificate,))

    def save(self, name: str, data: bytes) -> None:
        """Write a public file of the demo."""
        write_atomic(self.folder / name, data, mode=PUBLIC_FILE_MODE, overwrite=True)

    def timestamp(self, name: str, subject: str, days_ago: int) -> bytes:
        """Evidence for document id ``subject``, dated ``days_ago`` days before
        today, saved as ``name`` and returned."""
        self.calendar.now = self.today - timedelta(days=days_ago)
        evidence = collect_evidence(subject, [self.tsa.respond]).to_json()
        self.save(name, evidence)
        return evidence


def _derive_all(
    keys: IdentityKeys, commitment: SignedDocument[Commitment]
) -> tuple[np.ndarray, np.ndarray]:
    batches = list(iter_triggers(keys, commitment, range(commitment.document.size)))
    return np.concatenate([b.inputs for b in batches]), np.concatenate([b.labels for b in batches])


def run_demo(
    folder: Path, say: Callable[[str], None] = print, *, replace: bool = False
) -> DemoOutcome:
    """Run the dispute, leaving every document under ``folder``, and tell
    the story line by line through ``say``.

    ``folder`` must be missing or empty, or (with ``replace``) hold an
    earlier demo: see :func:`prepare_folder`. torch runs with its current
    thread count: set it to one first on a small machine
    (:func:`secmark.cli.evaluate.torch_threads`).

    Raises:
        SecmarkError: the folder cannot be used (:func:`prepare_folder`).
    """
    started = time.monotonic()
    desk = DemoDesk(folder, replace=replace, history=timedelta(days=365))
    calendar, trust, save, today = desk.calendar, desk.trust, desk.save, desk.today

    def timestamp(name: str, document: SignedDocument[Any], days_ago: int) -> bytes:
        return desk.timestamp(name, document.digest, days_ago)

    def register(
        keys: IdentityKeys,
        signed: SignedDocument[Commitment],
        released: nn.Module,
        path: Path,
        who: str,
        days_ago: int,
    ) -> tuple[SignedDocument[Release], bytes]:
        """Save the model, register it as released and timestamp the registration."""
        save_state(released, path)
        release = create_release(
            keys,
            commitment_id=signed.digest,
            model_digest=model_file_digest(path),
            model_name=f"{who}'s digits CNN",
            model_version="1.0",
        )
        save(f"{who}.release.json", release.to_json())
        return release, timestamp(f"{who}.release.evidence.json", release, days_ago)

    owner, thief, arbiter_keys = (
        IdentityKeys.generate(),
        IdentityKeys.generate(),
        IdentityKeys.generate(),
    )
    arbiter_identity = create_identity(arbiter_keys, "Neutral Arbitration Service")
    save("arbiter.identity.json", arbiter_identity.to_json())
    save("owner.identity.json", create_identity(owner, "Model Owner Ltd").to_json())
    save("thief.identity.json", create_identity(thief, "Thief").to_json())
    family, labels = NoiseFamily(IMAGE_SHAPE, "float32", 0.0, 1.0), ClassLabels(10)
    data = load_data()

    thief_commitment = create_commitment(
        thief, family=family, labels=labels, size=TRIGGERS, model_label="kept ready"
    )
    save("thief.commitment.json", thief_commitment.to_json())
    thief_evidence = timestamp("thief.commitment.evidence.json", thief_commitment, 300)
    say(f"[{format_time(calendar.now)}] thief commits a key of his own, long before any theft")

    commitment = create_commitment(
        owner, family=family, labels=labels, size=TRIGGERS, model_label="digits CNN"
    )
    save("owner.commitment.json", commitment.to_json())
    evidence = timestamp("owner.commitment.evidence.json", commitment, 200)
    say(
        f"[{format_time(calendar.now)}] owner commits to {TRIGGERS} triggers: {commitment.digest[:16]}..."
    )
    inputs, trigger_labels = _derive_all(owner, commitment)
    model = new_model(seed=1)
    report = embed_watermark(model, data, trigger_set(inputs, trigger_labels), seed=1)
    owner_model = folder / "owner-model.safetensors"
    release, release_evidence = register(owner, commitment, model, owner_model, "owner", 150)
    say(
        f"[{format_time(calendar.now)}] owner embeds and releases the model: clean accuracy "
        f"{report.clean_accuracy_after:.1%}, watermark accuracy {report.watermark_accuracy_after:.1%} "
        f"({report.seconds:.1f} s of training)"
    )

    stolen = _steal(model, data, thief, thief_commitment)
    thief_model = folder / "thief-model.safetensors"
    thief_release, thief_release_evidence = register(
        thief, thief_commitment, stolen, thief_model, "thief", 30
    )
    say(
        f"[{format_time(calendar.now)}] thief copies it, fine-tunes it, embeds his own watermark, registers it as his"
    )

    chosen_commitment, chosen_pool, chosen_evidence = _chosen_inputs(thief, timestamp)
    save("thief.chosen.commitment.json", chosen_commitment.to_json())

    arbiter = Arbiter(
        arbiter_keys,
        arbiter_identity,
        trust,
        folder / "arbiter",
        policy=ArbiterPolicy(challenge_size=CHALLENGE),
    )
    # The thief's deployed model, loaded from its weights file: the claims name
    # it by that file's SHA-256, which is what the arbiter binds its queries to.
    suspect = TorchSuspect.from_file(new_model(seed=0), thief_model)
    suspect_reference = suspect.describe()

    def run_case(
        keys: IdentityKeys,
        signed: SignedDocument[Commitment],
        evidence: bytes,
        release: tuple[SignedDocument[Release], bytes] | None = None,
        pool: CommittedPool | None = None,
    ) -> Case:
        claim = file_claim(
            keys,
            commitment=signed.to_json(),
            commitment_evidence=evidence,
            suspect=suspect_reference,
            arbiter=arbiter_identity,
            release=None if release is None else release[0].to_json(),
            release_evidence=None if release is None else release[1],
        )
        case = arbiter.file_claim(claim)
        challenge = arbiter.challenge(case)
        reveal = answer_challenge(keys, signed, challenge, arbiter_identity, pool=pool)
        arbiter.receive_reveal(case, reveal)
        # Decoys of a pool family are other items of the pool, never the
        # revealed ones (the arbiter leaves those out itself).
        decoy_pool = None if pool is None else [pool.item(i) for i in range(len(pool))]
        arbiter.query(case, suspect, decoy_pool=decoy_pool)
        return arbiter.case(case.name)

    say(
        f"[{format_time(today)}] three claims reach the arbiter about the thief's deployed "
        f"digits model ({suspect_reference[:23]}...):"
    )
    owner_case = run_case(owner, commitment, evidence, (release, release_evidence))
    thief_case = run_case(
        thief, thief_commitment, thief_evidence, (thief_release, thief_release_evidence)
    )
    chosen_case = run_case(thief, chosen_commitment, chosen_evidence, pool=chosen_pool)
    for name, case in (
        ("owner", owner_case),
        ("thief (own key)", thief_case),
        ("thief (chosen inputs)", chosen_case),
    ):
        test = case.record["test"]
        say(
            f"  {name:22s} {test['matches']:3d}/{test['trials']} trigger answers match (threshold {test['threshold']})"
        )

    released = {owner_case.name: owner_model, thief_case.name: thief_model}

    def load(path: Path) -> TorchSuspect:
        from secmark.embed import load_state

        released_model = new_model(seed=0)
        load_state(path, released_model)
        return TorchSuspect(released_model)

    outcomes = {}
    for name, case in (
        ("chosen inputs", chosen_case),
        ("owner", owner_case),
        ("thief", thief_case),
    ):
        arbiter.decide(case, released_models=released, load_model=load)
        decided = arbiter.case(case.name)
        outcomes[name] = decided.record["outcome"]
    verdict = open_verdict(
        (owner_case.folder / "verdict.json").read_bytes(), arbiter_keys.public_keys
    )
    names = {owner_case.name: "owner", thief_case.name: "thief"}
    say("  cross-check of the registered released models:")
    for check in verdict.document.cross_checks:
        say(
            f"    {names[check.model_of]}'s release carries the {names[check.watermark_of]}'s mark: "
            f"{'yes' if check.carries else 'no '} ({check.matches}/{check.trials})"
        )
    say(
        f"  verdicts: owner {outcomes['owner'].upper()}, thief {outcomes['thief'].upper()}, "
        f"chosen inputs {outcomes['chosen inputs'].upper()}"
    )

    bundle_path = owner_case.folder / "bundle.json"
    bundle_report = verify_bundle(bundle_path.read_bytes(), trust)
    save(OWNER_BUNDLE, bundle_path.read_bytes())
    say(
        f"offline re-verification of {folder / OWNER_BUNDLE}: {bundle_report.outcome}, "
        "every check passed"
    )
    return DemoOutcome(
        owner_outcome=outcomes["owner"],
        thief_outcome=outcomes["thief"],
        chosen_inputs_outcome=outcomes["chosen inputs"],
        bundle_verified=True,
        seconds=time.monotonic() - started,
        folder=folder,
        arbiter_key_id=arbiter_keys.key_id,
        cases={
            "owner": owner_case.name,
            "thief": thief_case.name,
            "chosen inputs": chosen_case.name,
        },
    )


def _steal(
    model: nn.Module, data: DigitsData, thief: IdentityKeys, commitment: SignedDocument[Commitment]
) -> nn.Module:
    """Fine-tune a copy on half the training data with the thief's triggers mixed in."""
    stolen = copy.deepcopy(model)
    half = DigitsData(
        data.train_inputs[: len(data.train_inputs) // 2],
        data.train_labels[: len(data.train_labels) // 2],
        data.test_inputs,
        data.test_labels,
    )
    inputs, labels = _derive_all(thief, commitment)
    embed(
        stolen,
        train_loader(half, seed=2),
        trigger_set(inputs, labels),
        epochs=30,
        lr=1e-3,
        seed=2,
        progress=False,
    )
    return stolen


def _chosen_inputs(
    thief: IdentityKeys, timestamp: Callable[..., bytes]
) -> tuple[SignedDocument[Commitment], CommittedPool, bytes]:
    """The thief's after-the-fact "trigger set": inputs he picked after the
    theft. The protocol only lets him commit them as a pool, from which the
    VRF picks the items and draws the labels: labels matched to the stolen
    model's answers (what makes adversarial examples work as fake triggers)
    cannot be expressed, and his commitment is dated after the theft."""
    rng = np.random.default_rng(7)
    items = [rng.random(IMAGE_SHAPE, dtype=np.float32) for _ in range(512)]
    family = PoolFamily(len(items), IMAGE_SHAPE, "float32")
    commitment = create_commitment(
        thief,
        family=family,
        labels=ClassLabels(10),
        size=TRIGGERS,
        model_label="inputs chosen after the theft",
        pool_root=pool_root(items, family),
    )
    evidence = timestamp("thief.chosen.evidence.json", commitment, 10)
    return commitment, CommittedPool.open(items, commitment.document), evidence
