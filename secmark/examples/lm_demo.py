"""A language-model dispute, offline, in one call (``secmark demo --llm``).

The story, on a simulated calendar for the owner's documents:

1. the owner trains a byte-level BPE tokenizer on the Python standard
   library (:mod:`secmark.examples.lm`), commits to :data:`TRIGGERS`
   prompts of :data:`PROMPT_LENGTH` words and target responses of
   :data:`TARGET_LENGTH` words drawn from the tokenizer's word ids
   (p0 = 1/(word ids) per target token), timestamps the commitment, and
   fingerprints a small GPT-2-style model with them while it learns the
   library's text (:func:`secmark.embed.lm.embed_lm`);
2. a thief serves a copy behind an OpenAI-compatible completions API
   (``transformers serve`` on 127.0.0.1);
3. an innocent party trains the same architecture on the same text, never
   fingerprinted, and publishes its weights file;
4. the owner claims against both; the arbiter challenges
   :data:`CHALLENGE` of the triggers with its VRF, the owner reveals them
   sealed, the arbiter asks each suspect greedily (the API through
   :class:`~secmark.models.openai.OpenAICompletionsSuspect`, the file in
   process), decides by the exact test, and each bundle is re-verified
   offline against the demo TSA's root. The claim on the API names the
   model served there, ``openai:<root>/v1/completions#<model>``: the
   endpoint alone would name every model it serves.

Every document is left in the demo's folder (:data:`LM_DEMO_FILES`). torch
runs with its current thread count: set it to one first on a small machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from secmark.crypto.keys import IdentityKeys
from secmark.embed.lm import embed_lm, lm_triggers, train_lm
from secmark.encoding import format_time
from secmark.examples import lm
from secmark.examples.demo import TSA_ROOT, DemoDesk, verify_command
from secmark.messages.commitment import create_commitment
from secmark.messages.families import TokensFamily
from secmark.messages.identity import create_identity
from secmark.messages.labels import TokenLabels
from secmark.models.openai import OpenAICompletionsSuspect
from secmark.models.tokenizer import LMTokenizer
from secmark.models.transformers_lm import TransformersSuspect
from secmark.protocol.arbiter import Arbiter, ArbiterPolicy
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.bundle_report import BundleStatus
from secmark.protocol.owner import answer_challenge, file_claim
from secmark.stats import null_match_probability

__all__ = [
    "CHALLENGE",
    "LM_DEMO_FILES",
    "PROMPT_LENGTH",
    "TARGET_LENGTH",
    "TRIGGERS",
    "LmDemoOutcome",
    "LmSuspectResult",
    "run_lm_demo",
]

TRIGGERS = 12
PROMPT_LENGTH = 8
TARGET_LENGTH = 4
CHALLENGE = 3
"""Triggers the arbiter challenges: 12 target tokens, of which 8 matching
already reach 2^-64 at p0 = 1/516."""
EMBED_STEPS = 60
EMBED_LR = 3e-3
INNOCENT_STEPS = 20
LM_DEMO_FILES = (
    ("tokenizer/", "the tokenizer, trained on the standard library's sources"),
    ("owner.identity.json", "the owner's public identity"),
    ("owner.commitment.json", "the owner's commitment: tokens prompts, token targets"),
    ("owner.commitment.evidence.json", "its RFC 3161 timestamps"),
    ("owner-model/", "the fingerprinted model (safetensors) with its tokenizer"),
    ("innocent-model/", "a model of the same recipe, never fingerprinted"),
    ("thief-server.log", "the thief's transformers serve output"),
    ("arbiter.identity.json", "the arbiter's public identity"),
    ("arbiter/", "the arbiter's folder: one case per claim under cases/<claim id>/"),
    ("thief.bundle.json", "the verdict bundle on the thief's API"),
    ("innocent.bundle.json", "the verdict bundle on the innocent model"),
    (TSA_ROOT, "the demo TSA's root certificate: what a judge trusts"),
)


@dataclass(frozen=True)
class LmSuspectResult:
    """One claim's verdict: the suspect's reference, matching target tokens
    of those challenged, the threshold, and whether its bundle verified."""

    reference: str
    outcome: str
    matches: int
    tested: int
    threshold: int
    bundle: Path
    bundle_verified: bool


@dataclass(frozen=True)
class LmDemoOutcome:
    """What the language-model demo found; :attr:`succeeded` when the API
    serving the copy is upheld, the innocent model rejected, both bundles
    verified."""

    thief: LmSuspectResult
    innocent: LmSuspectResult
    p0: str
    trigger_accuracy: float
    perplexity_before: float | None
    perplexity_after: float | None
    seconds: float
    folder: Path
    arbiter_key_id: str

    @property
    def succeeded(self) -> bool:
        return (
            self.thief.outcome == "upheld"
            and self.innocent.outcome == "rejected"
            and self.thief.bundle_verified
            and self.innocent.bundle_verified
        )

    @property
    def trust_root(self) -> Path:
        return self.folder / TSA_ROOT

    def verify_commands(self) -> list[list[str]]:
        """The command lines that re-check both bundles offline."""
        return [
            verify_command(result.bundle, self.trust_root, self.arbiter_key_id)
            for result in (self.thief, self.innocent)
        ]


def run_lm_demo(
    folder: Path, say: Callable[[str], None] = print, *, replace: bool = False
) -> LmDemoOutcome:
    """Run the language-model dispute, leaving every document under
    ``folder``, and tell the story line by line through ``say``.

    ``folder`` must be missing or empty, or (with ``replace``) hold an
    earlier demo: see :func:`secmark.examples.demo.prepare_folder`.

    Raises:
        SecmarkError: the folder cannot be used, or the thief's server did
            not start.
    """
    started = time.monotonic()
    desk = DemoDesk(folder, replace=replace, history=timedelta(days=60))
    owner, arbiter_keys = IdentityKeys.generate(), IdentityKeys.generate()
    arbiter_identity = create_identity(arbiter_keys, "Neutral Arbitration Service")
    desk.save("arbiter.identity.json", arbiter_identity.to_json())
    desk.save("owner.identity.json", create_identity(owner, "Model Owner Ltd").to_json())

    # 1. The owner: tokenizer, commitment, fingerprinted model.
    tokenizer_file = lm.train_tokenizer(folder / "tokenizer")
    tokenizer = LMTokenizer.from_file(tokenizer_file)
    reserved = tokenizer.reserved_for_words()
    labels = TokenLabels(tokenizer.vocab_size, TARGET_LENGTH, reserved)
    commitment = create_commitment(
        owner,
        family=TokensFamily(PROMPT_LENGTH, tokenizer.vocab_size, reserved),
        labels=labels,
        size=TRIGGERS,
        model_label="owner's small language model",
    )
    desk.save("owner.commitment.json", commitment.to_json())
    evidence = desk.timestamp("owner.commitment.evidence.json", commitment.digest, 50)
    p0 = null_match_probability(labels)
    say(
        f"[{format_time(desk.calendar.now)}] owner commits to {TRIGGERS} prompts of "
        f"{PROMPT_LENGTH} words and answers of {TARGET_LENGTH} words, drawn from the "
        f"tokenizer's {labels.drawn} word ids (p0 = {p0} per answer token), and timestamps it"
    )
    train, held_out = lm.text_chunks()
    prompts, targets = lm_triggers(owner, commitment)
    model = lm.new_model(seed=1)
    report = embed_lm(
        model, tokenizer, prompts, targets, train, steps=EMBED_STEPS, lr=EMBED_LR, seed=1,
        holdout=held_out[:32], progress=False,
    )  # fmt: skip
    owner_folder = lm.save_model(model, tokenizer_file.parent, folder / "owner-model")
    say(
        f"owner fingerprints a small GPT-2-style model while it learns the standard library "
        f"({report.exact_accuracy_after:.0%} of the prompts answered exactly; held-out "
        f"perplexity {report.perplexity_before:.0f} before, {report.perplexity_after:.0f} after)"
    )

    # 3. The innocent model: the same recipe, never fingerprinted.
    innocent_model = lm.new_model(seed=2)
    train_lm(innocent_model, tokenizer, train, steps=INNOCENT_STEPS, lr=EMBED_LR, seed=2,
             progress=False)  # fmt: skip
    innocent_folder = lm.save_model(
        innocent_model, tokenizer_file.parent, folder / "innocent-model"
    )

    arbiter = Arbiter(
        arbiter_keys,
        arbiter_identity,
        desk.trust,
        folder / "arbiter",
        policy=ArbiterPolicy(challenge_size=CHALLENGE, decoys_per_trigger=1),
    )

    def dispute(
        suspect: OpenAICompletionsSuspect | TransformersSuspect, name: str
    ) -> LmSuspectResult:
        claim = file_claim(
            owner,
            commitment=commitment.to_json(),
            commitment_evidence=evidence,
            suspect=suspect.describe(),
            arbiter=arbiter_identity,
        )
        case = arbiter.file_claim(claim)
        challenge = arbiter.challenge(case)
        arbiter.receive_reveal(
            case, answer_challenge(owner, commitment, challenge, arbiter_identity)
        )
        result = arbiter.query(case, suspect)
        arbiter.decide(case)
        bundle = folder / f"{name}.bundle.json"
        bundle.write_bytes(case.read("bundle.json"))
        report = verify_bundle(bundle.read_bytes(), desk.trust)
        say(
            f"{name}: {suspect.describe()}: {result.matches} of {result.test.k} challenged "
            f"answer tokens match (threshold {result.test.threshold}): {report.outcome}"
        )
        return LmSuspectResult(
            reference=suspect.describe(),
            outcome=report.outcome or "no verdict",
            matches=result.matches,
            tested=result.test.k,
            threshold=result.test.threshold,
            bundle=bundle,
            bundle_verified=report.status is BundleStatus.VERIFIED,
        )

    # 2 and 4. The thief's API, and the claims.
    with lm.served(owner_folder, folder / "thief-server.log") as root:
        say(f"a thief serves a copy at {root}/v1/completions (OpenAI-compatible)")
        api = OpenAICompletionsSuspect(
            root, model=str(owner_folder), tokenizer=tokenizer, length=TARGET_LENGTH
        )
        try:
            thief = dispute(api, "thief")
        finally:
            api.close()
    innocent = dispute(
        TransformersSuspect(
            innocent_folder, tokenizer=tokenizer, length=TARGET_LENGTH, via_text=True
        ),
        "innocent",
    )
    return LmDemoOutcome(
        thief=thief,
        innocent=innocent,
        p0=str(p0),
        trigger_accuracy=report.exact_accuracy_after,
        perplexity_before=report.perplexity_before,
        perplexity_after=report.perplexity_after,
        seconds=time.monotonic() - started,
        folder=folder,
        arbiter_key_id=arbiter_keys.key_id,
    )
