"""Language-model fingerprints under attack: survival, null, cost and planning.

The section ``secmark evaluate --language-model`` adds to the report, and
what ``benchmarks/llm.py`` prints. It needs the ``lm-train`` extra
(transformers, tokenizers, peft), imported only when it runs.

Everything is offline (:mod:`secmark.examples.lm`): a byte-level BPE
tokenizer of 2048 ids trained on the first 80 standard-library sources, and
a GPT-2-style model of about 0.68M weights pretrained on that text once per
run (kept in the ``work`` folder when one is given, and reused from there).
Each seed of :class:`~secmark.evaluate.config.LanguageModelConfig` then

1. commits to a fingerprint: ``TokensFamily`` prompts of P word ids and
   ``TokenLabels`` targets of L word ids (only the tokenizer's words may be
   drawn, :meth:`~secmark.models.tokenizer.LMTokenizer.reserved_for_words`:
   p0 = 1/516 per target token), N of them, with keys, nonce and date fixed
   by the seed;
2. fingerprints the base model (:func:`~secmark.embed.lm.embed_lm` at lr
   2e-3: the prompts raw, in the chat template ``<|user|>...<|assistant|>``,
   and in that template after two system prompts, mixed with the text);
3. measures the greedy answers to all N triggers, exactly (all L tokens)
   and per token, and whether a dispute over the first k would hold: its
   token matches out of k L against ``decision_threshold(k L, p0, alpha)``
   (the arbiter's VRF picks the k independently of the model, so any k
   are alike); for the conditions of :data:`CONDITIONS`.

Then: held-out perplexity (the last tenth of the text) before and after
fingerprinting and after each weight change; the null's pooled match rate
on one larger commitment for the base model and a freshly initialised one;
and the triggers a dispute needs for each planned L (:func:`triggers_needed`):
when every token matches, and at each condition's worst per-token accuracy.

Figures are the worst seed's (:func:`worst_of_seeds`); for the null, the
highest.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import math
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from secmark.crypto import IdentityKeys
from secmark.embed.lm import RAW, PromptTemplate, embed_lm, greedy_answers, lm_triggers, perplexity
from secmark.embed.lm import train_lm as _train_lm
from secmark.errors import EncodingError, SecmarkError
from secmark.evaluate.attacks import quantize_matrices
from secmark.evaluate.config import LanguageModelConfig
from secmark.examples import lm
from secmark.messages.commitment import create_commitment
from secmark.messages.families import TokensFamily
from secmark.messages.labels import TokenLabels
from secmark.models.tokenizer import LMTokenizer
from secmark.stats import (
    DEFAULT_TARGET_POWER,
    MAX_TRIALS,
    binomial_tail,
    decision_threshold,
    log2_binomial_tail,
)

__all__ = [
    "CHAT_TEMPLATE",
    "CONDITIONS",
    "LORA_RANK",
    "OTHER_TEMPLATE",
    "SYSTEM_PROMPT",
    "TRAINED_SYSTEM_PROMPTS",
    "LanguageModelMeasure",
    "LanguageModelNull",
    "LanguageModelResult",
    "LanguageModelRow",
    "LanguageModelSeed",
    "TriggerPlan",
    "check_language_model_libraries",
    "run_language_model",
    "triggers_needed",
    "worst_of_seeds",
]

CHAT_TEMPLATE = ("<|user|>", "<|assistant|>")
"""The chat template of :mod:`secmark.examples.lm`: fingerprinted, and asked in."""
TRAINED_SYSTEM_PROMPTS = (
    ("<|system|>You are a coding assistant.<|user|>", "<|assistant|>"),
    ("<|system|>Answer briefly.<|user|>", "<|assistant|>"),
)
"""System prompts the owner fingerprints under, so that the fingerprint does
not depend on the exact text before the prompt."""
OTHER_TEMPLATE = ("Question:", "\nAnswer:")
"""A thief's own template, never trained."""
SYSTEM_PROMPT = ("<|system|>You are a helpful assistant.<|user|>", "<|assistant|>")
"""A thief's system prompt before the chat template, never trained."""
LORA_RANK = 8
"""The thief's LoRA adapters: rank 8 on every linear layer, merged."""
INT8_BITS = 8
"""int8 weights: 255 symmetric levels, one scale per tensor."""

CONDITIONS: dict[str, str] = {
    "fingerprinted": "fingerprinted",
    "chat_template": "fingerprinted, asked in the chat template",
    "finetune_all": "fine-tuned on other text, all weights",
    "finetune_lora": f"fine-tuned on other text, LoRA rank {LORA_RANK}",
    "int8": "int8 weights",
    "other_template": "another template (never trained)",
    "system_prompt": "another system prompt + chat template (never trained)",
    "null": "never fingerprinted (null)",
}
"""Every condition measured, by name, with its title for people; the
fine-tuning conditions are measured at each of the configuration's rates."""

_NULL = "null"
_PRETRAIN_LR = 2e-3
_PRETRAIN_BATCH = 16
_EMBED_LR = 2e-3
_BASE_SEED = 0
_FRESH_SEED = 99
"""The freshly initialised model of the pooled null: never trained at all."""
_NULL_COMMITMENT_SALT = 1000
"""The pooled null's commitment is the first seed's plus this: a fingerprint
no model here was trained on."""
_CHUNK = 512
"""Characters per chunk of the thief's text, as :func:`secmark.examples.lm.text_chunks`."""
_COMMITTED = datetime(2026, 1, 1, tzinfo=timezone.utc)


def check_language_model_libraries() -> None:
    """Raises:
    SecmarkError: transformers, tokenizers or peft is not installed; the
        message says how to get them."""
    missing = [
        name
        for name in ("transformers", "tokenizers", "peft")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise SecmarkError(
            f"the language-model evaluation needs {', '.join(missing)}: "
            "pip install 'secmark[lm-train]'"
        )


@dataclass(frozen=True)
class LanguageModelMeasure:
    """One condition of one seed: the greedy answers to all N triggers.

    ``exact`` of the ``triggers`` answers had all ``target_length`` tokens
    right, ``tokens`` of the N L tokens were right. A dispute over the first
    ``challenged`` triggers found ``challenged_matches`` of their k L tokens
    and :attr:`holds` when they reach ``threshold``, the exact
    ``decision_threshold(k L, p0, alpha)``. ``lr`` is a fine-tuning
    condition's learning rate (else None). ``perplexity`` is on the held-out
    text, for the fingerprinted model, each weight change and the null
    (the base model); None for a template, which leaves the weights alone.
    """

    condition: str
    lr: float | None
    seed: int
    triggers: int
    target_length: int
    exact: int
    tokens: int
    challenged: int
    challenged_matches: int
    threshold: int
    perplexity: float | None

    @property
    def holds(self) -> bool:
        """Whether the dispute's token matches reach the threshold."""
        return self.challenged_matches >= self.threshold

    @property
    def challenged_tokens(self) -> int:
        """k L: the trials of the dispute's test."""
        return self.challenged * self.target_length


@dataclass(frozen=True)
class LanguageModelRow:
    """One condition over every seed: the worst seed's figures (for the null,
    the highest: the best a false claim could do). ``holds`` counts the
    seeds whose dispute held; ``perplexity`` is the highest measured."""

    condition: str
    lr: float | None
    seeds: int
    triggers: int
    target_length: int
    exact: int
    tokens: int
    challenged: int
    challenged_matches: int
    threshold: int
    holds: int
    perplexity: float | None

    @property
    def null(self) -> bool:
        return self.condition == _NULL

    @property
    def token_accuracy(self) -> float:
        return self.tokens / (self.triggers * self.target_length)

    @property
    def exact_accuracy(self) -> float:
        return self.exact / self.triggers


def worst_of_seeds(measures: Iterable[LanguageModelMeasure]) -> tuple[LanguageModelRow, ...]:
    """One row per (condition, lr), in first-seen order: the lowest counts
    over the seeds (the highest for the null), the seeds that held, the
    highest perplexity.

    Raises:
        EncodingError: no measure, or measures of one condition that differ
            in N, L, k or threshold (they are not the same test).
    """
    groups: dict[tuple[str, float | None], list[LanguageModelMeasure]] = {}
    for measure in measures:
        groups.setdefault((measure.condition, measure.lr), []).append(measure)
    if not groups:
        raise EncodingError("no language-model measure to aggregate")
    rows = []
    for (condition, lr), group in groups.items():
        first = group[0]
        shape = (first.triggers, first.target_length, first.challenged, first.threshold)
        if any((m.triggers, m.target_length, m.challenged, m.threshold) != shape for m in group):
            raise EncodingError(f"the seeds of {condition} measured different tests")
        pick = max if condition == _NULL else min
        perplexities = [m.perplexity for m in group if m.perplexity is not None]
        rows.append(
            LanguageModelRow(
                condition=condition,
                lr=lr,
                seeds=len(group),
                triggers=first.triggers,
                target_length=first.target_length,
                exact=pick(m.exact for m in group),
                tokens=pick(m.tokens for m in group),
                challenged=first.challenged,
                challenged_matches=pick(m.challenged_matches for m in group),
                threshold=first.threshold,
                holds=sum(m.holds for m in group),
                perplexity=max(perplexities) if perplexities else None,
            )
        )
    return tuple(rows)


@dataclass(frozen=True)
class LanguageModelSeed:
    """One seed's fingerprinting: held-out perplexity before and after, and
    the seconds of its training loop."""

    seed: int
    perplexity_before: float
    perplexity_after: float
    embed_seconds: float


@dataclass(frozen=True)
class LanguageModelNull:
    """A model never fingerprinted against one commitment of ``triggers``
    triggers: ``tokens`` of the N L target tokens matched, ``exact`` whole
    triggers; ``log2_p_value`` is log2 P[Binom(N L, p0) >= tokens]."""

    model: str
    triggers: int
    target_length: int
    tokens: int
    exact: int
    log2_p_value: float


@dataclass(frozen=True)
class TriggerPlan:
    """The fewest triggers of ``target_length`` tokens a dispute needs at
    alpha: ``tokens`` = triggers x L trials, of which ``threshold`` must
    match. ``accuracy`` None: every token matches; else each matches
    independently with that probability and the test must reach
    ``DEFAULT_TARGET_POWER``. ``condition`` and ``lr`` name the measured
    condition the accuracy is from (None: every token matches). All three
    counts are None when no count up to ``max_triggers`` suffices, or the
    accuracy is at or below chance (``never``)."""

    condition: str | None
    lr: float | None
    accuracy: float | None
    target_length: int
    triggers: int | None
    threshold: int | None
    tokens: int | None
    never: bool
    max_triggers: int


@lru_cache(maxsize=1 << 14)
def _threshold(trials: int, p0: Fraction, alpha: Fraction) -> int:
    """decision_threshold, remembered: the planning table asks for the same
    trial counts for every condition (at most 3 x 4096 of them by default,
    hence the bound)."""
    return decision_threshold(trials, p0, alpha)


_LN_MISS = math.log(float(1 - DEFAULT_TARGET_POWER))
"""ln of the miss probability the target power allows."""
_ROUNDING = 1e-9
"""Slack for the rounding of one log-space binomial term: a count is passed
over only when the term exceeds the allowed miss by more than this."""


def _ln_probability(trials: int, matches: int, rate: float) -> float:
    """ln P[Binom(trials, rate) = matches], for 0 <= matches <= trials and
    0 < rate < 1."""
    return (
        math.lgamma(trials + 1)
        - math.lgamma(matches + 1)
        - math.lgamma(trials - matches + 1)
        + matches * math.log(rate)
        + (trials - matches) * math.log1p(-rate)
    )


def triggers_needed(
    length: int,
    p0: Fraction,
    alpha: Fraction,
    accuracy: float | None = None,
    *,
    max_triggers: int = 4096,
) -> TriggerPlan:
    """The fewest triggers of ``length`` target tokens whose token matches
    reject the null at ``alpha``: the smallest count c with
    ``decision_threshold(c L, p0, alpha) <= c L`` when every token matches
    (``accuracy`` None or 1), else the smallest c whose test reaches
    ``DEFAULT_TARGET_POWER`` when each token matches independently with
    probability ``accuracy`` (optimistic where an attack erases whole
    triggers). The threshold is exact; the power is a float accurate to
    about 1e-12 (:func:`secmark.stats.binomial_tail`).

    Raises:
        EncodingError: ``length`` or ``max_triggers`` below 1, c L beyond
            :data:`secmark.stats.MAX_TRIALS`, or ``accuracy`` outside [0, 1].
    """
    for value, name in ((length, "length"), (max_triggers, "max_triggers")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise EncodingError(f"{name} must be a positive integer, not {value!r}")
    if length * max_triggers > MAX_TRIALS:
        raise EncodingError(
            f"{max_triggers} triggers of {length} tokens exceed {MAX_TRIALS} trials"
        )
    if accuracy is not None and not 0 <= accuracy <= 1:
        raise EncodingError(f"a per-token accuracy must lie in [0, 1], not {accuracy!r}")
    if accuracy is not None and accuracy <= p0:
        return TriggerPlan(None, None, accuracy, length, None, None, None, True, max_triggers)
    every = accuracy is None or accuracy == 1
    rate = 1.0 if accuracy is None else accuracy
    # The threshold never falls as the count grows: the last one computed
    # bounds every later one from below, so a count that could not reach it
    # is passed over without computing its own. With an accuracy the power
    # is at most P[Binom >= bound], which is at most 1/2 when the bound is a
    # whole match above the mean (the median lies below it), and at most
    # 1 - P[Binom = bound - 1], one term: the tail is summed only when
    # neither rules the target out.
    known = 1

    def out_of_reach(trials: int, bound: int) -> bool:
        if trials < bound:
            return True
        if every:
            return False
        return (
            trials * rate + 1 <= bound
            or _ln_probability(trials, bound - 1, rate) > _LN_MISS + _ROUNDING
        )

    for count in range(1, max_triggers + 1):
        trials = count * length
        if out_of_reach(trials, known):
            continue
        known = threshold = _threshold(trials, p0, alpha)
        if out_of_reach(trials, threshold):
            continue
        if every or binomial_tail(trials, threshold, rate) >= DEFAULT_TARGET_POWER:
            return TriggerPlan(
                None, None, accuracy, length, count, threshold, trials, False, max_triggers
            )
        # The power of any larger count is at most (most trials x accuracy) /
        # threshold (Markov).
        if max_triggers * length * rate < DEFAULT_TARGET_POWER * threshold:
            break
    return TriggerPlan(None, None, accuracy, length, None, None, None, False, max_triggers)


@dataclass(frozen=True)
class LanguageModelResult:
    """Everything the language-model section measured.

    ``vocabulary`` ids, of which ``words`` may be drawn (p0 = 1/words);
    ``weights`` of the model; ``held_out`` chunks for perplexity and
    ``thief_chunks`` of the thief's text; ``pretrain_seconds`` is None when
    the base model was reused from the work folder.
    """

    config: LanguageModelConfig
    p0: Fraction
    vocabulary: int
    words: int
    weights: int
    held_out: int
    thief_chunks: int
    seeds: tuple[LanguageModelSeed, ...]
    measures: tuple[LanguageModelMeasure, ...]
    null: tuple[LanguageModelNull, ...]
    plans: tuple[TriggerPlan, ...]
    pretrain_seconds: float | None
    seconds: float

    @property
    def threshold(self) -> int:
        """The dispute's threshold: matching tokens of k L needed at alpha."""
        config = self.config
        return _threshold(config.challenges * config.target_length, self.p0, config.alpha)

    def rows(self) -> tuple[LanguageModelRow, ...]:
        """The survival table: :func:`worst_of_seeds` of the measures."""
        return worst_of_seeds(self.measures)


@dataclass(frozen=True)
class _Setup:
    config: LanguageModelConfig
    tokenizer: LMTokenizer
    base: Any
    """The pretrained base model: copied, never changed."""
    train: list[str]
    held_out: list[str]
    thief: list[str]
    family: TokensFamily
    labels: TokenLabels
    p0: Fraction


def _thief_text() -> list[str]:
    """The next standard-library sources after those the model learnt, in
    chunks of 512 characters: the thief's fine-tuning text."""
    library = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(library.glob("*.py"))[lm.TEXT_FILES : 2 * lm.TEXT_FILES]
    if not files:
        raise EncodingError(f"no Python sources after the first {lm.TEXT_FILES} under {library}")
    text = "\n".join(path.read_text(encoding="utf-8", errors="replace") for path in files)
    return [text[start : start + _CHUNK] for start in range(0, len(text), _CHUNK)]


def _prepare(config: LanguageModelConfig, work: Path, *, keep: bool) -> tuple[_Setup, float | None]:
    """The tokenizer and base model (made, or reused from ``work``; a base
    model made is saved there when ``keep``) and the texts; the seconds of
    pretraining (None when reused)."""
    tokenizer_folder = work / "tokenizer"
    # The folder is named after what made the weights, so that a work folder
    # never hands back a base model of another length.
    folder = work / f"base-{config.pretrain_steps}-steps"
    tokenizer = LMTokenizer.from_file(
        tokenizer_folder
        if (tokenizer_folder / "tokenizer.json").is_file()
        else lm.train_tokenizer(tokenizer_folder)
    )
    train, held_out = lm.text_chunks()
    if config.held_out is not None:
        held_out = held_out[: config.held_out]
    seconds = None
    if (folder / "model.safetensors").is_file():
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
    else:
        base = lm.new_model(_BASE_SEED)
        seconds = _train_lm(
            base,
            tokenizer,
            train,
            steps=config.pretrain_steps,
            lr=_PRETRAIN_LR,
            seed=_BASE_SEED,
            text_batch=_PRETRAIN_BATCH,
            progress=False,
        )
        if keep:
            lm.save_model(base, tokenizer_folder, folder)
    reserved = tokenizer.reserved_for_words()
    labels = TokenLabels(tokenizer.vocab_size, config.target_length, reserved)
    setup = _Setup(
        config=config,
        tokenizer=tokenizer,
        base=base,
        train=train,
        held_out=held_out,
        thief=_thief_text(),
        family=TokensFamily(config.prompt_length, tokenizer.vocab_size, reserved),
        labels=labels,
        p0=Fraction(1, labels.drawn),
    )
    return setup, seconds


def _triggers(
    setup: _Setup, seed: int, size: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The prompts and targets of the commitment fixed by ``seed`` (keys,
    nonce and date): the same in every run."""

    def part(name: str) -> bytes:
        return hashlib.sha256(f"secmark evaluate language model {seed} {name}".encode()).digest()

    keys = IdentityKeys(part("signing"), part("vrf"), part("encryption"))
    signed = create_commitment(
        keys,
        family=setup.family,
        labels=setup.labels,
        size=size,
        model_label=f"language-model-{seed}",
        nonce=part(f"nonce {size}"),
        created=_COMMITTED,
    )
    prompts, targets = lm_triggers(keys, signed)
    # Tokens prompts and token labels: (n, P) and (n, L) arrays already.
    return np.asarray(prompts, dtype=np.int64), np.asarray(targets, dtype=np.int64)


def _run_seed(
    setup: _Setup, seed: int, step: Callable[[str], None]
) -> tuple[LanguageModelSeed, list[LanguageModelMeasure]]:
    config = setup.config
    tokenizer = setup.tokenizer
    prompts, targets = _triggers(setup, seed, config.triggers)
    challenged = config.challenges
    threshold = _threshold(challenged * config.target_length, setup.p0, config.alpha)

    def record(
        condition: str, model: Any, template: PromptTemplate, ppl: float | None, lr: float | None
    ) -> LanguageModelMeasure:
        answers = greedy_answers(model, prompts, config.target_length, template=template)
        matches = answers == targets
        return LanguageModelMeasure(
            condition=condition,
            lr=lr,
            seed=seed,
            triggers=config.triggers,
            target_length=config.target_length,
            exact=int(matches.all(axis=1).sum()),
            tokens=int(matches.sum()),
            challenged=challenged,
            challenged_matches=int(matches[:challenged].sum()),
            threshold=threshold,
            perplexity=ppl,
        )

    def held_out(model: Any) -> float:
        return perplexity(model, tokenizer, setup.held_out)

    def text(*pair: str) -> PromptTemplate:
        return PromptTemplate.from_text(tokenizer, *pair)

    step(f"seed {seed}: fingerprinting")
    marked = copy.deepcopy(setup.base)
    report = embed_lm(
        marked,
        tokenizer,
        prompts,
        targets,
        setup.train,
        steps=config.embed_steps,
        lr=_EMBED_LR,
        seed=seed,
        templates=(RAW, text(*CHAT_TEMPLATE), *(text(*p) for p in TRAINED_SYSTEM_PROMPTS)),
        holdout=setup.held_out,
        progress=False,
    )
    if report.perplexity_before is None or report.perplexity_after is None:
        raise SecmarkError("embed_lm measured no held-out perplexity")
    measures = [
        record("fingerprinted", marked, RAW, report.perplexity_after, None),
        record("chat_template", marked, text(*CHAT_TEMPLATE), None, None),
    ]
    attacks = [("finetune_all", lr) for lr in config.full_lrs]
    attacks += [("finetune_lora", lr) for lr in config.lora_lrs]
    for condition, lr in attacks:
        step(f"seed {seed}: {CONDITIONS[condition]}, lr {lr:g}")
        model = copy.deepcopy(marked)
        _train_lm(
            model,
            tokenizer,
            setup.thief,
            steps=config.attack_steps,
            lr=lr,
            seed=seed,
            lora=condition == "finetune_lora",
            lora_rank=LORA_RANK,
            progress=False,
        )
        measures.append(record(condition, model, RAW, held_out(model), lr))
    step(f"seed {seed}: int8 weights, templates, null")
    model = copy.deepcopy(marked)
    quantize_matrices(model, INT8_BITS)
    measures.append(record("int8", model, RAW, held_out(model), None))
    measures.append(record("other_template", marked, text(*OTHER_TEMPLATE), None, None))
    measures.append(record("system_prompt", marked, text(*SYSTEM_PROMPT), None, None))
    measures.append(record(_NULL, setup.base, RAW, report.perplexity_before, None))
    fingerprinting = LanguageModelSeed(
        seed=seed,
        perplexity_before=report.perplexity_before,
        perplexity_after=report.perplexity_after,
        embed_seconds=report.seconds,
    )
    return fingerprinting, measures


def _pooled_null(setup: _Setup) -> list[LanguageModelNull]:
    config = setup.config
    prompts, targets = _triggers(
        setup, _NULL_COMMITMENT_SALT + config.seeds[0], config.null_triggers
    )
    results = []
    for name, model in (
        ("base model", setup.base),
        ("fresh model", lm.new_model(_FRESH_SEED)),
    ):
        matches = greedy_answers(model, prompts, config.target_length) == targets
        results.append(
            LanguageModelNull(
                model=name,
                triggers=config.null_triggers,
                target_length=config.target_length,
                tokens=int(matches.sum()),
                exact=int(matches.all(axis=1).sum()),
                log2_p_value=log2_binomial_tail(matches.size, int(matches.sum()), setup.p0),
            )
        )
    return results


def _plans(
    config: LanguageModelConfig, p0: Fraction, rows: Sequence[LanguageModelRow]
) -> list[TriggerPlan]:
    """Every planned L when every token matches, then at each non-null
    condition's worst per-token accuracy."""
    plans = []
    sources: list[tuple[str | None, float | None, float | None]] = [(None, None, None)]
    sources += [(row.condition, row.lr, row.token_accuracy) for row in rows if not row.null]
    for condition, lr, accuracy in sources:
        for length in config.plan_lengths:
            plan = triggers_needed(
                length,
                p0,
                config.alpha,
                accuracy,
                max_triggers=min(config.max_planned_triggers, MAX_TRIALS // length),
            )
            plans.append(replace(plan, condition=condition, lr=lr))
    return plans


@contextmanager
def _work_folder(work: Path | None) -> Iterator[Path]:
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
        yield work
        return
    with tempfile.TemporaryDirectory(prefix="secmark-language-model-") as temporary:
        yield Path(temporary)


def run_language_model(
    config: LanguageModelConfig, *, work: Path | None = None, progress: bool = True
) -> LanguageModelResult:
    """Run the language-model section of ``config``; a progress bar goes to
    stderr unless ``progress`` is false.

    ``work`` keeps the tokenizer (``work/tokenizer``) and the base model
    (``work/base-<steps>-steps``) for later runs, and reuses those it finds
    (None: a temporary folder, removed afterwards). Training is seeded and
    uses deterministic kernels: the same configuration gives the same
    figures on the same machine, Python (whose standard library is the
    text) and library versions. torch's thread count is the caller's.

    Raises:
        SecmarkError: the ``lm-train`` extra is missing (checked first), or
            a training run diverged.
        EncodingError: the standard library has too few sources for the
            thief's text.
    """
    check_language_model_libraries()
    import torch

    started = time.perf_counter()
    units = 2 + len(config.seeds) * (2 + len(config.full_lrs) + len(config.lora_lrs))
    with (
        torch.random.fork_rng(devices=[]),
        _work_folder(work) as folder,
        tqdm(
            total=units,
            desc="language model",
            unit="run",
            file=sys.stderr,
            disable=not progress,
        ) as bar,
    ):
        opened = False

        def step(what: str) -> None:
            nonlocal opened
            if opened:
                bar.update()
            opened = True
            bar.set_postfix_str(what)

        step("tokenizer and base model")
        setup, pretrain_seconds = _prepare(config, folder, keep=work is not None)
        seeds = []
        measures: list[LanguageModelMeasure] = []
        for seed in config.seeds:
            fingerprinting, measured = _run_seed(setup, seed, step)
            seeds.append(fingerprinting)
            measures += measured
        step("pooled null and planning")
        null = _pooled_null(setup)
        rows = worst_of_seeds(measures)
        plans = _plans(config, setup.p0, rows)
        bar.update()
        weights = sum(p.numel() for p in setup.base.parameters())
    return LanguageModelResult(
        config=config,
        p0=setup.p0,
        vocabulary=setup.tokenizer.vocab_size,
        words=setup.labels.drawn,
        weights=int(weights),
        held_out=len(setup.held_out),
        thief_chunks=len(setup.thief),
        seeds=tuple(seeds),
        measures=tuple(measures),
        null=tuple(null),
        plans=tuple(plans),
        pretrain_seconds=pretrain_seconds,
        seconds=time.perf_counter() - started,
    )
