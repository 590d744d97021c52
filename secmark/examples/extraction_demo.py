"""A model-extraction dispute on the digits example, offline, in one call.

The story (``specs/serving.md``), on a simulated calendar for the owner's
documents (the built-in TSA's clock is set to each date) and the real clock
for the traffic (the marking wrapper dates log entries itself):

1. the owner commits to a trigger set, trains it into the digits CNN on the
   first :data:`OWNER_IMAGES` training images, registers the release and
   signs a serving policy naming a platform as the log's operator; the
   policy is timestamped before the API serves, and
   :func:`~secmark.stats.extraction.extraction_plan` says how many queries
   a copy needs before it is detected;
2. the platform serves the model through
   :class:`~secmark.serving.wrapper.MarkedClassifier` into a SQLite
   :class:`~secmark.serving.log.QueryLog`; two ordinary clients query it,
   and a thief's account asks the other training images (which the owner
   never trained on) and noisy copies of them, then trains a student on
   the answers (hard labels);
3. an innocent party trains the same student model on the same inputs with
   their true labels, never touching the API;
4. the platform signs a checkpoint, timestamped, and hands the owner the
   thief account's extract; the owner claims that each model was trained on
   that account's answers; the arbiter decides both claims, and each bundle
   is re-verified offline against the TSA root a judge holds, with the
   arbiter pinned.

Every document is left in the demo's folder (:data:`EXTRACTION_DEMO_FILES`
says what each is). torch runs with its current thread count: set it to one
first on a small machine (:func:`secmark.cli.evaluate.torch_threads`).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from secmark.crypto.keys import IdentityKeys
from secmark.embed import evaluate_accuracy, load_state, predict_labels, save_state
from secmark.encoding import format_time, utc_now
from secmark.examples.demo import TSA_ROOT, DemoDesk, verify_command
from secmark.examples.digits import (
    IMAGE_SHAPE,
    NUM_CLASSES,
    DigitsData,
    embed_watermark,
    load_data,
    new_model,
    train_clean,
    trigger_set,
)
from secmark.messages.commitment import create_commitment
from secmark.messages.extraction import create_extraction_claim
from secmark.messages.families import NoiseFamily
from secmark.messages.identity import create_identity
from secmark.messages.labels import ClassLabels
from secmark.messages.release import create_release, model_file_digest
from secmark.messages.serving_policy import InputEncoding, create_serving_policy
from secmark.models.callable import CallableSuspect
from secmark.protocol.extraction import ExtractionArbiter
from secmark.protocol.extraction_bundle import build_extraction_bundle, examine_extraction_bundle
from secmark.serving.entry import client_account
from secmark.serving.log import QueryLog
from secmark.serving.marking import Marker
from secmark.serving.wrapper import MarkedClassifier
from secmark.stats import DEFAULT_ALPHA
from secmark.stats.extraction import extraction_plan
from secmark.timestamp import TrustStore
from secmark.timestamp.evidence import collect_evidence
from secmark.triggers import iter_triggers

__all__ = [
    "EXTRACTION_DEMO_FILES",
    "ExtractionDemoOutcome",
    "SuspectResult",
    "run_extraction_demo",
]

OWNER_IMAGES = 1000
"""Training images the owner trains on; the other 437 are the thief's pool."""
TRIGGERS = 256
RATE = Fraction(1, 50)
"""The marking rate: one distinct input in 50 is answered with a wrong label."""
LOG_RATE = Fraction(1, 10)
"""Unmarked queries logged too: the arbiter's decoys."""
NOISY_COPIES = 6
"""Noisy copies the thief asks of each pool image (7 x 437 = 3059 queries)."""
NOISE = 0.15
"""Standard deviation of the thief's Gaussian pixel noise (pixels lie in [0, 1])."""
STUDENT_HIDDEN = 512
STUDENT_EPOCHS = 40
STUDENT_LR = 5e-3
"""The student's recipe: an MLP trained to fit its training answers, marked ones included."""
BATCH = 256

THIEF_KEY = "thief's API key"
CLIENTS = (("client A", "the 360 test images"), ("client B", "noisy copies of 200 test images"))

STUDENT_BUNDLE = "student.bundle.json"
INNOCENT_BUNDLE = "innocent.bundle.json"

EXTRACTION_DEMO_FILES: tuple[tuple[str, str], ...] = (
    ("tsa/", "the demo's timestamp authority (its key is unencrypted: a demo only)"),
    (TSA_ROOT, "its root certificate: the judge's trust anchor"),
    ("owner.identity.json", "the owner's public identity"),
    ("platform.identity.json", "the platform's public identity: the log's operator"),
    ("arbiter.identity.json", "the arbiter's public identity"),
    ("owner.commitment.json", "the owner's commitment to 256 triggers"),
    ("owner.commitment.evidence.json", "its RFC 3161 timestamps"),
    ("owner-model.safetensors", "the owner's model, as released and served"),
    ("owner.release.json", "the owner's registration of that release"),
    ("owner.release.evidence.json", "its RFC 3161 timestamps"),
    ("serving-policy.json", "the owner's serving policy: rate 1/50, the platform operates the log"),
    ("serving-policy.evidence.json", "its RFC 3161 timestamps, taken before the API served"),
    ("query-log.sqlite", "the platform's query log (checkpoints and their timestamps inside)"),
    ("checkpoint.evidence.json", "the RFC 3161 timestamps of the checkpoint the claims use"),
    ("thief.extract.json", "the thief account's extract the platform gave the owner"),
    ("student.safetensors", "the thief's student, trained on the API's answers"),
    ("innocent.safetensors", "the innocent model, trained on true labels without the API"),
    ("student.claim.json", "the owner's extraction claim against the student"),
    ("innocent.claim.json", "the owner's extraction claim against the innocent model"),
    ("arbiter/", "the arbiter's working folder (its registry of decided claims)"),
    (STUDENT_BUNDLE, "the student's verdict bundle: what a judge re-checks offline"),
    (INNOCENT_BUNDLE, "the innocent model's verdict bundle"),
)
"""Each file (or folder, ending in ``/``) the demo leaves, relative to its
folder, with what it is."""


@dataclass(frozen=True)
class SuspectResult:
    """One claim's verdict: ``matches`` of ``tested`` marked answers against
    ``threshold``, and whether its bundle passed every check offline."""

    outcome: str
    matches: int
    tested: int
    threshold: int
    log2_p_value: float
    reference: str
    bundle: Path
    bundle_verified: bool


@dataclass(frozen=True)
class ExtractionDemoOutcome:
    """What the extraction demo found, and where it left its documents.

    ``accuracy`` holds test-split accuracies of the ``original`` model, its
    ``served`` answers, the thief's ``student`` and the ``innocent`` model,
    and the student's accuracy on the owner's trigger set
    (``student triggers``). ``marks_needed`` and ``queries_needed`` are the
    owner's plan (None: beyond the plan's bounds); ``thief_marks`` counts
    the marked entries with distinct inputs in the thief's account.
    """

    student: SuspectResult
    innocent: SuspectResult
    accuracy: dict[str, float]
    rate: Fraction
    accounts: int
    marks_needed: int | None
    queries_needed: int | None
    thief_queries: int
    thief_marks: int
    log_entries: int
    seconds: float
    folder: Path
    arbiter_key_id: str

    @property
    def succeeded(self) -> bool:
        """The story ended as it should: the student upheld, the innocent
        model rejected, both bundles verified."""
        return (
            self.student.outcome == "upheld"
            and self.innocent.outcome == "rejected"
            and self.student.bundle_verified
            and self.innocent.bundle_verified
        )

    @property
    def trust_root(self) -> Path:
        return self.folder / TSA_ROOT

    def verify_commands(self) -> list[list[str]]:
        """The command lines that re-check both bundles offline against the
        demo TSA's root, with the arbiter pinned (exit status 0: verified)."""
        return [
            verify_command(result.bundle, self.trust_root, self.arbiter_key_id)
            for result in (self.student, self.innocent)
        ]


def _student_model(seed: int) -> nn.Module:
    """The student (and innocent) architecture: 64 -> 512 -> 10, fixed by ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(int(np.prod(IMAGE_SHAPE)), STUDENT_HIDDEN),
            nn.ReLU(),
            nn.Linear(STUDENT_HIDDEN, NUM_CLASSES),
        )


def _fit_student(inputs: npt.NDArray[Any], labels: npt.NDArray[Any], data: DigitsData) -> nn.Module:
    """A student trained on ``(inputs, labels)`` with the fixed recipe (``data``
    gives the test split only)."""
    model = _student_model(seed=2)
    own = DigitsData(inputs, labels.astype(np.int64), data.test_inputs, data.test_labels)
    train_clean(model, own, seed=2, epochs=STUDENT_EPOCHS, lr=STUDENT_LR)
    return model


def _suspect(path: Path) -> CallableSuspect:
    """The student-architecture model in the weights file ``path``, named by
    that file's SHA-256: the suspect the arbiter queries."""
    model = _student_model(seed=0)
    load_state(path, model)

    def answer(batch: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        return predict_labels(model, np.array(batch, dtype=np.float32))

    return CallableSuspect(answer, reference=f"sha256:{model_file_digest(path)}")


def run_extraction_demo(
    folder: Path, say: Callable[[str], None] = print, *, replace: bool = False
) -> ExtractionDemoOutcome:
    """Run the extraction dispute, leaving every document under ``folder``,
    and tell the story line by line through ``say``.

    ``folder`` must be missing or empty, or (with ``replace``) hold an
    earlier demo: see :func:`secmark.examples.demo.prepare_folder`.

    Raises:
        SecmarkError: the folder cannot be used.
    """
    started = time.monotonic()
    desk = DemoDesk(folder, replace=replace, history=timedelta(days=60))
    calendar, trust, tsa = desk.calendar, desk.trust, desk.tsa
    save, timestamp = desk.save, desk.timestamp

    owner, platform, arbiter_keys = (
        IdentityKeys.generate(),
        IdentityKeys.generate(),
        IdentityKeys.generate(),
    )
    arbiter_identity = create_identity(arbiter_keys, "Neutral Arbitration Service")
    save("arbiter.identity.json", arbiter_identity.to_json())
    save("owner.identity.json", create_identity(owner, "Model Owner Ltd").to_json())
    save("platform.identity.json", create_identity(platform, "Model Hosting Platform").to_json())
    data = load_data()
    owner_data = DigitsData(
        data.train_inputs[:OWNER_IMAGES],
        data.train_labels[:OWNER_IMAGES],
        data.test_inputs,
        data.test_labels,
    )

    # 1. The owner: commitment, watermarked model, release, serving policy.
    commitment = create_commitment(
        owner,
        family=NoiseFamily(IMAGE_SHAPE, "float32", 0.0, 1.0),
        labels=ClassLabels(NUM_CLASSES),
        size=TRIGGERS,
        model_label="digits CNN",
    )
    save("owner.commitment.json", commitment.to_json())
    timestamp("owner.commitment.evidence.json", commitment.digest, 50)
    batches = list(iter_triggers(owner, commitment, range(TRIGGERS)))
    triggers = trigger_set(
        np.concatenate([b.inputs for b in batches]), np.concatenate([b.labels for b in batches])
    )
    model = new_model(seed=1)
    embedded = embed_watermark(model, owner_data, triggers, seed=1)
    owner_model = folder / "owner-model.safetensors"
    save_state(model, owner_model)
    release = create_release(
        owner,
        commitment_id=commitment.digest,
        model_digest=model_file_digest(owner_model),
        model_name="owner's digits CNN",
        model_version="1.0",
    )
    save("owner.release.json", release.to_json())
    timestamp("owner.release.evidence.json", release.digest, 40)
    accuracy = {"original": evaluate_accuracy(model, data.test)}
    say(
        f"[{format_time(calendar.now)}] owner trains the digits CNN on {OWNER_IMAGES} images "
        f"with a trigger watermark ({embedded.watermark_accuracy_after:.0%} of its triggers "
        f"learnt) and releases it: test accuracy {accuracy['original']:.1%}"
    )

    policy = create_serving_policy(
        owner,
        operator=platform.public_keys,
        release_id=release.digest,
        num_classes=NUM_CLASSES,
        rate=RATE,
        log_rate=LOG_RATE,
        input_encoding=InputEncoding("float32", IMAGE_SHAPE),
        model_label="owner's digits CNN 1.0",
    )
    save("serving-policy.json", policy.to_json())
    policy_evidence = timestamp("serving-policy.evidence.json", policy.digest, 30)
    accounts = len(CLIENTS) + 1
    plan = extraction_plan(RATE, policy.document.p0, alpha=DEFAULT_ALPHA, accounts=accounts)
    say(
        f"[{format_time(calendar.now)}] owner signs a serving policy: the platform operates the "
        f"log, {RATE} of distinct inputs get a wrong label (p0 = {policy.document.p0}); plan: "
        f"a copy that learns every marked answer is detected at level "
        f"2^{math.log2(DEFAULT_ALPHA):.0f} over {accounts} accounts from "
        f"{plan.marks_needed} marks, after {plan.queries_needed} queries"
    )

    # 2. The platform serves; two clients and the thief query.
    policy_id = bytes.fromhex(policy.digest)
    log = QueryLog.open(f"sqlite:///{folder / 'query-log.sqlite'}", policy_id=policy_id)
    api = MarkedClassifier(
        lambda batch: predict_labels(model, np.array(batch)), Marker(policy, platform.vrf), log
    )

    def ask(inputs: npt.NDArray[np.float32], api_key: str) -> npt.NDArray[np.int64]:
        return np.concatenate(
            [
                api.predict(inputs[start : start + BATCH], api_key=api_key)
                for start in range(0, len(inputs), BATCH)
            ]
        )

    rng = np.random.default_rng(3)

    def noisy(images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return np.clip(images + rng.normal(0.0, NOISE, images.shape), 0.0, 1.0).astype(np.float32)

    served = ask(data.test_inputs, CLIENTS[0][0])
    accuracy["served"] = float(np.mean(served == data.test_labels))
    ask(noisy(data.test_inputs[:200]), CLIENTS[1][0])
    pool = data.train_inputs[OWNER_IMAGES:]
    thief_inputs = np.concatenate([pool, *(noisy(pool) for _ in range(NOISY_COPIES))])
    true_labels = np.tile(data.train_labels[OWNER_IMAGES:], NOISY_COPIES + 1)
    answers = ask(thief_inputs, THIEF_KEY)
    say(
        f"[{format_time(utc_now())}] the platform serves it through the marking wrapper into "
        "query-log.sqlite:"
    )
    for name, what in CLIENTS:
        say(f"  {name} asks {what}")
    say(
        f"  {CLIENTS[0][0]}'s served answers are {accuracy['served']:.1%} right (the model's "
        f"own: {accuracy['original']:.1%})"
    )
    say(
        f"  the thief's account asks {len(thief_inputs)} inputs: the {len(pool)} training "
        f"images the owner kept out and {NOISY_COPIES} noisy copies of each"
    )

    # 2-3. The thief's student and the innocent model.
    student = _fit_student(thief_inputs, answers, data)
    student_path = folder / "student.safetensors"
    save_state(student, student_path)
    innocent = _fit_student(thief_inputs, true_labels, data)
    innocent_path = folder / "innocent.safetensors"
    save_state(innocent, innocent_path)
    accuracy["student"] = evaluate_accuracy(student, data.test)
    accuracy["innocent"] = evaluate_accuracy(innocent, data.test)
    accuracy["student triggers"] = evaluate_accuracy(student, (triggers.inputs, triggers.labels))
    say(
        f"  the thief trains a student on the answers: test accuracy {accuracy['student']:.1%}; "
        f"it gives the trigger label on {accuracy['student triggers']:.1%} of the owner's "
        "triggers (chance: 10%): the trigger watermark does not survive extraction"
    )
    say(
        "  an innocent party trains the same model on the same inputs with their true labels, "
        f"without the API: test accuracy {accuracy['innocent']:.1%}"
    )

    # 4. Checkpoint, extract, claims, verdicts, offline re-verification.
    checkpoint = log.checkpoint(platform)
    size = checkpoint.document.size
    calendar.now = utc_now()
    checkpoint_evidence = collect_evidence(checkpoint.digest, [tsa.respond]).to_json()
    log.add_timestamp(size, checkpoint_evidence)
    save("checkpoint.evidence.json", checkpoint_evidence)
    thief = client_account(policy_id, THIEF_KEY)
    extract = log.extract(thief, size, decoys=True).to_bytes()
    log.close()
    save("thief.extract.json", extract)
    say(
        f"[{format_time(calendar.now)}] the platform signs a checkpoint of {size} log entries, "
        "timestamped, and gives the owner the thief account's extract"
    )

    judge = TrustStore.from_pem_files([folder / TSA_ROOT])
    results: dict[str, SuspectResult] = {}
    marks = 0
    for name, path in (("student", student_path), ("innocent", innocent_path)):
        suspect = _suspect(path)
        claim = create_extraction_claim(
            owner,
            policy=policy.to_json(),
            policy_evidence=policy_evidence,
            checkpoint_evidence=checkpoint_evidence,
            extract_sha256=hashlib.sha256(extract).hexdigest(),
            client=thief,
            suspect=suspect.describe(),
            arbiter=arbiter_keys.key_id,
        ).to_json()
        save(f"{name}.claim.json", claim)
        arbiter = ExtractionArbiter(arbiter_keys, trust, folder / "arbiter")
        case = arbiter.check_claim(claim, extract)
        marks = len(case.extract.marked)
        decision = arbiter.decide(case, suspect)
        bundle = build_extraction_bundle(
            arbiter_identity.to_json(), trust, claim, extract, decision
        )
        bundle_path = folder / f"{name}.bundle.json"
        save(bundle_path.name, bundle)
        report = examine_extraction_bundle(bundle, trust=judge, arbiter_key_id=arbiter_keys.key_id)
        verdict = decision.verdict.document
        results[name] = SuspectResult(
            outcome=verdict.outcome,
            matches=verdict.figures.matches,
            tested=verdict.figures.trials,
            threshold=verdict.figures.threshold,
            log2_p_value=verdict.figures.log2_p_value,
            reference=suspect.describe(),
            bundle=bundle_path,
            bundle_verified=report.passed and report.outcome == verdict.outcome,
        )
    say(
        f"[{format_time(utc_now())}] the owner claims that two models were trained on the "
        f"answers of the thief's account ({marks} marked distinct inputs); the arbiter decides:"
    )
    for name, label in (("student", "thief's student"), ("innocent", "innocent model")):
        result = results[name]
        say(
            f"  {label:16s} {result.matches:3d}/{result.tested} marked answers match "
            f"(threshold {result.threshold}, log2 p = {result.log2_p_value:.1f}): "
            f"{result.outcome.upper()}"
        )
    say(
        "offline re-verification against the judge's TSA root, arbiter pinned: "
        + ", ".join(
            f"{result.bundle.name} {'verified' if result.bundle_verified else 'FAILED'}"
            for result in results.values()
        )
    )
    return ExtractionDemoOutcome(
        student=results["student"],
        innocent=results["innocent"],
        accuracy=accuracy,
        rate=RATE,
        accounts=accounts,
        marks_needed=plan.marks_needed,
        queries_needed=plan.queries_needed,
        thief_queries=len(thief_inputs),
        thief_marks=marks,
        log_entries=size,
        seconds=time.monotonic() - started,
        folder=folder,
        arbiter_key_id=arbiter_keys.key_id,
    )
