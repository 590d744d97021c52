"""Language-model fingerprints: survival, null and cost, worst of three seeds.

Everything is offline (``secmark.examples.lm``): a byte-level BPE tokenizer
of 2048 ids trained on the first 80 standard-library sources, and a
0.68M-weight GPT-2-style model pretrained on that text once per run
(``train_lm``; saved in a temporary folder, or in ``--work DIR`` and reused
from there). Each seed then

1. commits to a fingerprint: ``TokensFamily`` prompts of 8 word ids and
   ``TokenLabels`` targets of L = 4 word ids (``reserved_for_words``: 516
   of the 2048 ids may be drawn, p0 = 1/516 per target token), N = 32,
   with keys, nonce and date of its own (the same in every run);
2. fingerprints the base model (``embed_lm``, 300 steps at lr 2e-3: the
   prompts raw, in the chat template ``<|user|>...<|assistant|>``, and in
   that template after two system prompts, mixed with the text);
3. measures the greedy answers on all N triggers, exactly (all L tokens)
   and per token, and whether a dispute over k = 16 challenged triggers
   (the first 16: the arbiter's VRF picks them independently of the model)
   would hold at alpha = 2^-64: token matches out of k L against
   ``decision_threshold(k L, 1/516, 2^-64)``; for

   - the fingerprinted model;
   - further fine-tuning on other text (the next 80 standard-library
     sources), 300 steps of 8 windows of 128 ids: all weights at lr 3e-4
     and 1e-3 (pretraining used 2e-3), and LoRA (rank 8 on every linear
     layer, merged) at lr 1e-3 and 3e-3;
   - int8 weights: every weight matrix (embeddings included) rounded to
     255 levels with one symmetric scale per tensor, and back;
   - another template: the prompt after ``Question:`` and before
     ``\\nAnswer:``; and a system prompt before the chat template
     (``<|system|>You are a helpful assistant.<|user|>...<|assistant|>``):
     neither was trained (two other system prompts were);
   - the base model, never fingerprinted (the null: it matches each token
     with probability 1/516 whatever it answers).

Then: held-out perplexity (the last tenth of the text) before and after
fingerprinting and after each weight change; the null's pooled match rate
on a larger commitment (1024 triggers) for the base model and a fresh one;
and the triggers a dispute needs at alpha = 2^-64 for L = 1, 4, 16: when
every token matches (``decision_threshold``), and at each condition's
worst measured per-token accuracy, for power 1 - 2^-20 (tokens taken as
independent trials at that accuracy: optimistic where an attack erases
whole triggers).

Run: python3 benchmarks/llm.py [--threads N] [--seeds N] [--work DIR]
[--pretrain-steps N] [--embed-steps N] [--attack-steps N] [--held-out N]
(about 14 minutes on one thread of a busy 2-core machine; shrink with the flags).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForCausalLM

from secmark.crypto import IdentityKeys
from secmark.embed.lm import (
    RAW,
    PromptTemplate,
    embed_lm,
    greedy_answers,
    lm_triggers,
    perplexity,
    train_lm,
)
from secmark.examples import lm
from secmark.messages.commitment import create_commitment
from secmark.messages.families import TokensFamily
from secmark.messages.labels import TokenLabels
from secmark.models.tokenizer import LMTokenizer
from secmark.stats import DEFAULT_TARGET_POWER, binomial_tail, decision_threshold

ALPHA = Fraction(1, 2**64)
COMMITTED = datetime(2026, 1, 1, tzinfo=timezone.utc)
PROMPT_LENGTH = 8
TARGET_LENGTH = 4
TRIGGERS = 32
CHALLENGED = 16
NULL_TRIGGERS = 1024
PLAN_LENGTHS = (1, 4, 16)
MAX_PLANNED_TRIGGERS = 4096
PRETRAIN_LR = 2e-3
PRETRAIN_BATCH = 16
EMBED_LR = 2e-3
FULL_LRS = (3e-4, 1e-3)
LORA_LRS = (1e-3, 3e-3)
LORA_RANK = 8
INT8_LEVELS = 127
CHAT = ("<|user|>", "<|assistant|>")
TRAINED_SYSTEM_PROMPTS = (
    ("<|system|>You are a coding assistant.<|user|>", "<|assistant|>"),
    ("<|system|>Answer briefly.<|user|>", "<|assistant|>"),
)
OTHER_TEMPLATE = ("Question:", "\nAnswer:")
SYSTEM_PROMPT = ("<|system|>You are a helpful assistant.<|user|>", "<|assistant|>")


@dataclass(frozen=True)
class Setup:
    tokenizer: LMTokenizer
    base: Path
    train: list[str]
    held_out: list[str]
    other: list[str]
    p0: Fraction
    family: TokensFamily
    labels: TokenLabels
    embed_steps: int
    attack_steps: int


@dataclass(frozen=True)
class Measure:
    """One condition of one seed: token matches on all N, and on the k challenged."""

    matches: np.ndarray  # bool, N x L
    perplexity: float | None

    @property
    def exact(self) -> float:
        return float(self.matches.all(axis=1).mean())

    @property
    def per_token(self) -> float:
        return float(self.matches.mean())

    @property
    def challenged_matches(self) -> int:
        return int(self.matches[:CHALLENGED].sum())


def keys_for(seed: int) -> IdentityKeys:
    return IdentityKeys(
        *(hashlib.sha256(f"benchmark llm {seed} {part}".encode()).digest() for part in "svx")
    )


def other_text() -> list[str]:
    """The next 80 standard-library sources after those the model learnt, in
    chunks of 512 characters: the thief's fine-tuning text."""
    library = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(library.glob("*.py"))[lm.TEXT_FILES : 2 * lm.TEXT_FILES]
    text = "\n".join(path.read_text(encoding="utf-8", errors="replace") for path in files)
    return [text[start : start + 512] for start in range(0, len(text), 512)]


def quantize_int8(model: torch.nn.Module) -> None:
    """Every weight matrix (2-D or more) to 255 symmetric levels per tensor, and back."""
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim < 2:
                continue
            scale = float(parameter.abs().max()) / INT8_LEVELS
            if scale > 0:
                parameter.copy_(
                    torch.round(parameter / scale).clamp(-INT8_LEVELS, INT8_LEVELS) * scale
                )


def load_base(setup: Setup) -> Any:
    return AutoModelForCausalLM.from_pretrained(str(setup.base))


def prepare(arguments: argparse.Namespace, work: Path) -> Setup:
    tokenizer_folder = work / "tokenizer"
    base = work / "base"
    tokenizer = LMTokenizer.from_file(
        tokenizer_folder
        if (tokenizer_folder / "tokenizer.json").is_file()
        else lm.train_tokenizer(tokenizer_folder)
    )
    train, held_out = lm.text_chunks()
    held_out = held_out[: arguments.held_out]
    if (base / "model.safetensors").is_file():
        print(f"base model: reused from {base}")
    else:
        model = lm.new_model(0)
        seconds = train_lm(
            model,
            tokenizer,
            train,
            steps=arguments.pretrain_steps,
            lr=PRETRAIN_LR,
            seed=0,
            text_batch=PRETRAIN_BATCH,
            progress=False,
        )
        lm.save_model(model, tokenizer_folder, base)
        print(
            f"base model: pretrained {arguments.pretrain_steps} steps of {PRETRAIN_BATCH} x 128 "
            f"ids at lr {PRETRAIN_LR:g} in {seconds:.0f} s",
            flush=True,
        )
    reserved = tokenizer.reserved_for_words()
    family = TokensFamily(PROMPT_LENGTH, tokenizer.vocab_size, reserved)
    labels = TokenLabels(tokenizer.vocab_size, TARGET_LENGTH, reserved)
    return Setup(
        tokenizer=tokenizer,
        base=base,
        train=train,
        held_out=held_out,
        other=other_text(),
        p0=Fraction(1, labels.drawn),
        family=family,
        labels=labels,
        embed_steps=arguments.embed_steps,
        attack_steps=arguments.attack_steps,
    )


def commitment_triggers(setup: Setup, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The triggers of a commitment fixed by ``seed`` (keys, nonce and date):
    the same in every run."""
    keys = keys_for(seed)
    signed = create_commitment(
        keys,
        family=setup.family,
        labels=setup.labels,
        size=size,
        model_label=f"llm-{seed}",
        nonce=hashlib.sha256(f"benchmark llm {seed} nonce {size}".encode()).digest(),
        created=COMMITTED,
    )
    return lm_triggers(keys, signed)


def run_seed(setup: Setup, seed: int) -> tuple[dict[str, Measure], float, float]:
    """Every condition's measure for ``seed``; and the perplexity before and
    the seconds of fingerprinting."""
    tokenizer = setup.tokenizer
    prompts, targets = commitment_triggers(setup, seed, TRIGGERS)
    chat = PromptTemplate.from_text(tokenizer, *CHAT)

    def measure(model: Any, template: PromptTemplate = RAW, *, held_out: bool = True) -> Measure:
        answers = greedy_answers(model, prompts, TARGET_LENGTH, template=template)
        ppl = perplexity(model, tokenizer, setup.held_out) if held_out else None
        return Measure(answers == targets, ppl)

    marked = load_base(setup)
    report = embed_lm(
        marked,
        tokenizer,
        prompts,
        targets,
        setup.train,
        steps=setup.embed_steps,
        lr=EMBED_LR,
        seed=seed,
        templates=(
            RAW,
            chat,
            *(PromptTemplate.from_text(tokenizer, *pair) for pair in TRAINED_SYSTEM_PROMPTS),
        ),
        holdout=setup.held_out,
        progress=False,
    )
    assert report.perplexity_before is not None
    results = {
        "fingerprinted": Measure(
            greedy_answers(marked, prompts, TARGET_LENGTH) == targets, report.perplexity_after
        ),
        "fingerprinted, chat template": measure(marked, chat, held_out=False),
    }

    def attacked(change: Callable[[Any], object]) -> Measure:
        model = copy.deepcopy(marked)
        change(model)
        return measure(model)

    def fine_tune(lr: float, lora: bool) -> Callable[[Any], object]:
        def change(model: Any) -> object:
            return train_lm(
                model,
                tokenizer,
                setup.other,
                steps=setup.attack_steps,
                lr=lr,
                seed=seed,
                lora=lora,
                lora_rank=LORA_RANK,
                progress=False,
            )

        return change

    for lr in FULL_LRS:
        results[f"fine-tuned, all weights, lr {lr:g}"] = attacked(fine_tune(lr, False))
    for lr in LORA_LRS:
        results[f"fine-tuned, LoRA r{LORA_RANK}, lr {lr:g}"] = attacked(fine_tune(lr, True))
    results["int8 weights"] = attacked(quantize_int8)
    results["another template"] = measure(
        marked, PromptTemplate.from_text(tokenizer, *OTHER_TEMPLATE), held_out=False
    )
    results["system prompt + chat template"] = measure(
        marked, PromptTemplate.from_text(tokenizer, *SYSTEM_PROMPT), held_out=False
    )
    results["never fingerprinted (null)"] = measure(load_base(setup))
    return results, report.perplexity_before, report.seconds


def triggers_needed(length: int, p0: Fraction, accuracy: float | None) -> str:
    """The fewest triggers of ``length`` target tokens whose token matches
    reject at ALPHA: with every token matching (accuracy None), or with
    probability DEFAULT_TARGET_POWER when each matches with ``accuracy``."""
    if accuracy is not None and accuracy <= p0:
        return "never"
    if accuracy == 1:
        accuracy = None  # every token matches: the power is 1 once the threshold is reachable
    for count in range(1, MAX_PLANNED_TRIGGERS + 1):
        trials = count * length
        threshold = decision_threshold(trials, p0, ALPHA)
        if threshold > trials:
            continue
        if accuracy is None:
            return f"{count} ({threshold}/{trials})"
        if binomial_tail(trials, threshold, accuracy) >= DEFAULT_TARGET_POWER:
            return f"{count} ({threshold}/{trials})"
    return f"> {MAX_PLANNED_TRIGGERS}"


def print_survival(per_seed: list[dict[str, Measure]], p0: Fraction) -> dict[str, float]:
    """The survival table; returns each condition's worst per-token accuracy."""
    trials = CHALLENGED * TARGET_LENGTH
    threshold = decision_threshold(trials, p0, ALPHA)
    seeds = len(per_seed)
    print(
        f"\nSurvival: N = {TRIGGERS} triggers of L = {TARGET_LENGTH} tokens; a dispute challenges "
        f"k = {CHALLENGED} ({trials} tokens), and holds at alpha = 2^-64 from {threshold} matching "
        f"tokens (p0 = 1/{p0.denominator}). Worst of {seeds} seeds (the null: its highest)."
    )
    print(
        "| condition | exact (all L) | per token | challenged matches | dispute holds | "
        "held-out perplexity |"
    )
    print("|---|---|---|---|---|---|")
    worst: dict[str, float] = {}
    for condition in per_seed[0]:
        measures = [results[condition] for results in per_seed]
        null = "null" in condition
        pick = max if null else min
        exact = pick(m.exact for m in measures)
        token = pick(m.per_token for m in measures)
        matches = pick(m.challenged_matches for m in measures)
        holds = sum(m.challenged_matches >= threshold for m in measures)
        perplexities = [m.perplexity for m in measures if m.perplexity is not None]
        ppl = f"{max(perplexities):.1f}" if perplexities else "(weights unchanged)"
        worst[condition] = token
        print(
            f"| {condition} | {exact:.1%} | {token:.1%} | {matches}/{trials} | {holds}/{seeds} | "
            f"{ppl} |"
        )
    return worst


def print_null(setup: Setup, seeds: Sequence[int]) -> None:
    prompts, targets = commitment_triggers(setup, 1000 + seeds[0], NULL_TRIGGERS)
    print(
        f"\nNull on one commitment of {NULL_TRIGGERS} triggers ({NULL_TRIGGERS * TARGET_LENGTH} "
        f"target tokens; expected rate 1/{setup.p0.denominator} = {float(setup.p0):.3%}):"
    )
    for name, model in (("base model", load_base(setup)), ("fresh model", lm.new_model(99))):
        matches = greedy_answers(model, prompts, TARGET_LENGTH) == targets
        tail = binomial_tail(matches.size, int(matches.sum()), setup.p0)
        print(
            f"- {name}: {int(matches.sum())}/{matches.size} tokens = {matches.mean():.3%}, "
            f"{int(matches.all(axis=1).sum())} triggers exact; P[Binom >= m] = {tail:.3g}"
        )


def print_planning(worst: dict[str, float], p0: Fraction) -> None:
    print(
        f"\nTriggers needed at alpha = 2^-64 (p0 = 1/{p0.denominator} per token): when every "
        f"token matches, and at each condition's worst per-token accuracy for power 1 - 2^-20 "
        f"(in brackets: matching tokens needed / tokens challenged; L = {TARGET_LENGTH} measured, "
        f"other L assume the same per-token accuracy, tokens independent)."
    )
    print("| per-token accuracy | " + " | ".join(f"L = {n}" for n in PLAN_LENGTHS) + " |")
    print("|---" * (len(PLAN_LENGTHS) + 1) + "|")
    print(
        "| every token matches | "
        + " | ".join(triggers_needed(n, p0, None) for n in PLAN_LENGTHS)
        + " |"
    )
    for condition, accuracy in worst.items():
        if "null" in condition:
            continue
        cells = [triggers_needed(n, p0, accuracy) for n in PLAN_LENGTHS]
        print(f"| {condition}: {accuracy:.1%} | " + " | ".join(cells) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N (default 3)")
    parser.add_argument("--work", type=Path, help="keep the tokenizer and base model here")
    parser.add_argument("--pretrain-steps", type=int, default=600, help="default 600")
    parser.add_argument("--embed-steps", type=int, default=300, help="default 300")
    parser.add_argument("--attack-steps", type=int, default=300, help="default 300")
    parser.add_argument(
        "--held-out", type=int, default=441, help="held-out chunks for perplexity (default all)"
    )
    arguments = parser.parse_args()
    if arguments.seeds < 1:
        parser.error("--seeds must be at least 1")
    torch.set_num_threads(arguments.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="secmark-llm-") as temporary:
        work = arguments.work or Path(temporary)
        setup = prepare(arguments, work)
        seeds = list(range(1, arguments.seeds + 1))
        per_seed = []
        for seed in seeds:
            results, before, seconds = run_seed(setup, seed)
            per_seed.append(results)
            print(
                f"seed {seed}: fingerprinted in {seconds:.0f} s ({setup.embed_steps} steps at lr "
                f"{EMBED_LR:g}); held-out perplexity {before:.1f} before, "
                f"{results['fingerprinted'].perplexity:.1f} after",
                flush=True,
            )
        worst = print_survival(per_seed, setup.p0)
        print_null(setup, seeds)
        print_planning(worst, setup.p0)
    minutes = (time.perf_counter() - started) / 60
    print(
        f"\n{arguments.threads} torch thread(s); fine-tuning attacks {setup.attack_steps} steps "
        f"of 8 x 128 ids of other text; total {minutes:.1f} min"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
