"""Fingerprinting a causal language model: prompt -> response pairs trained in.

A language-model commitment (``TokensFamily`` prompts, ``TokenLabels``
responses) derives, per index, a prompt of P token ids and a target response
of L token ids (:func:`lm_triggers`). :func:`embed_lm` fine-tunes a
``transformers`` causal LM on them, mixed with ordinary text, the
Instructional Fingerprinting recipe (Xu et al., NAACL 2024): every step
takes one batch of fingerprint sequences (template prefix + prompt + suffix,
then the target ids and end-of-text, loss on the target ids and the
end-of-text only) and one batch of text windows (plain next-token loss), and
one optimiser step on the sum of the two mean losses. With ``lora``, the
step trains LoRA adapters (``peft``) on every linear layer instead of the
weights, and merges them into the weights at the end: the model that comes
back is a plain model either way. :func:`train_lm` is the same loop on text
alone (pretraining a base model, or a thief's fine-tuning).

:func:`greedy_answers` is what a greedy suspect answers, in process;
:func:`perplexity` measures what fingerprinting costs on held-out text.
Matching is on token ids, position by position: under the null each target
position matches with p0 = 1/(V - |reserved|) (``TokenLabels``).

Nothing here checks a claim: an arbiter queries a suspect through its API.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from tqdm import tqdm

from secmark.crypto.ecvrf import VrfSecretKey
from secmark.crypto.keys import IdentityKeys
from secmark.embed.train import reproducible, resolve_device
from secmark.errors import EncodingError, SecmarkError
from secmark.messages.commitment import Commitment
from secmark.messages.document import SignedDocument
from secmark.messages.families import TokensFamily
from secmark.messages.labels import TokenLabels
from secmark.models.tokenizer import LMTokenizer
from secmark.triggers import iter_triggers

__all__ = [
    "RAW",
    "LMEmbedReport",
    "PromptTemplate",
    "embed_lm",
    "greedy_answers",
    "lm_triggers",
    "perplexity",
    "train_lm",
]

DEFAULT_CONTEXT = 128
"""Tokens per text window: the context of ``secmark.examples.lm``'s model."""
DEFAULT_TRIGGER_BATCH = 32
"""Fingerprint sequences per step (all of them when there are fewer)."""
DEFAULT_TEXT_BATCH = 8
"""Text windows per step."""
DEFAULT_LORA_RANK = 8
_LORA_ALPHA_PER_RANK = 2
"""lora_alpha = 2 r, the usual scaling: adapters learn at a rate independent of r."""
_EVALUATION_BATCH = 64
"""Sequences per forward pass when evaluating: bounds memory, not results."""
_LOSS_CHECK_STEPS = 50
"""Steps between checks that the loss is finite: each check syncs a GPU."""
_MAX_SEED = 2**63 - 1
_IGNORE = -100
"""The label cross-entropy skips: prompt and padding positions."""


@dataclass(frozen=True)
class PromptTemplate:
    """Token ids placed around a prompt: ``prefix + prompt + suffix``.

    The owner trains the fingerprint under the templates a suspect is
    likely to apply (none for a completion API, the chat template for a
    chat API); a thief who serves the model behind another template or
    system prompt changes what precedes and follows the prompt.
    """

    prefix: tuple[int, ...] = ()
    suffix: tuple[int, ...] = ()

    @classmethod
    def from_text(cls, tokenizer: LMTokenizer, prefix: str, suffix: str) -> PromptTemplate:
        """The template of the texts ``prefix`` and ``suffix``; special tokens
        written in them (``<|user|>``) become their ids."""
        return cls(tuple(tokenizer.encode(prefix)), tuple(tokenizer.encode(suffix)))

    def wrap(self, prompt: Sequence[int]) -> list[int]:
        """``prefix + prompt + suffix``."""
        return [*self.prefix, *prompt, *self.suffix]


RAW = PromptTemplate()
"""No template: the prompt as it is, as a completion API receives it."""


@dataclass(frozen=True)
class LMEmbedReport:
    """What :func:`embed_lm` did and achieved.

    Trigger accuracies are over all N prompts under the first template:
    ``exact`` counts prompts whose L greedy ids all match, ``token`` the
    matching positions of all N x L (an unmarked model scores about
    1/(V - |reserved|) there, and the exact score about that to the L-th
    power). Perplexities are on ``holdout`` and None without it.
    ``seconds`` is the training loop alone, without the evaluations.
    """

    triggers: int
    target_length: int
    templates: int
    steps: int
    lora: bool
    seconds: float
    device: str
    exact_accuracy_before: float
    exact_accuracy_after: float
    token_accuracy_before: float
    token_accuracy_after: float
    perplexity_before: float | None
    perplexity_after: float | None


def lm_triggers(
    keys: IdentityKeys | VrfSecretKey,
    signed_commitment: SignedDocument[Commitment],
    indices: Iterable[int] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The prompts (int64, n x P) and target responses (int64, n x L) of
    ``indices`` (None: all N) of a language-model commitment, in that order.

    Raises:
        EncodingError: the commitment's family is not ``tokens`` or its labels
            are not token labels; an index outside [0, N).
        KeyMaterialError: ``keys`` is not the commitment owner's VRF key.
    """
    commitment = signed_commitment.document
    if not isinstance(commitment.family, TokensFamily) or not isinstance(
        commitment.labels, TokenLabels
    ):
        raise EncodingError(
            f"a language-model fingerprint needs tokens prompts and token labels, not the "
            f"{commitment.family.NAME} family with {commitment.labels.KIND} labels"
        )
    chosen = range(commitment.size) if indices is None else indices
    batches = list(iter_triggers(keys, signed_commitment, chosen))
    if not batches:
        raise EncodingError("no trigger indices given")
    return (
        np.concatenate([batch.inputs for batch in batches]).astype(np.int64, copy=False),
        np.concatenate([batch.labels for batch in batches]).astype(np.int64, copy=False),
    )


def _model_device(model: nn.Module) -> torch.device:
    return next(iter(model.parameters())).device


def _vocabulary(model: nn.Module) -> int:
    embeddings = model.get_input_embeddings()  # type: ignore[operator]
    return int(embeddings.num_embeddings)


def _eos(model: nn.Module) -> int:
    eos = getattr(model.config, "eos_token_id", None)
    if isinstance(eos, bool) or not isinstance(eos, int):
        raise EncodingError(f"the model's config has no single eos_token_id (it has {eos!r})")
    return eos


def _id_array(values: Any, name: str, vocabulary: int) -> npt.NDArray[np.int64]:
    array = np.asarray(values)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise EncodingError(f"{name} must be a non-empty 2-D array of token ids, not {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise EncodingError(f"{name} must hold integer token ids, not {array.dtype}")
    if array.min() < 0 or array.max() >= vocabulary:
        raise EncodingError(f"{name} must hold token ids in [0, {vocabulary})")
    return array.astype(np.int64, copy=False)


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EncodingError(f"{name} must be a positive integer, not {value!r}")
    return value


def _check_recipe(steps: int, lr: float, seed: int) -> None:
    _positive_int(steps, "steps")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise EncodingError(f"lr must be a positive finite number, not {lr!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MAX_SEED:
        raise EncodingError(f"seed must be an integer in [0, 2^63), not {seed!r}")


def _check_context(model: nn.Module, context: int) -> int:
    _positive_int(context, "context")
    if context < 2:
        raise EncodingError("context must be at least 2 tokens")
    limit = getattr(model.config, "max_position_embeddings", None)
    if isinstance(limit, int) and context > limit:
        raise EncodingError(f"context {context} exceeds the model's {limit} positions")
    return context


def _token_stream(tokenizer: LMTokenizer, chunks: Iterable[str], vocabulary: int) -> list[int]:
    stream: list[int] = []
    for chunk in chunks:
        if not isinstance(chunk, str):
            raise EncodingError(f"text chunks must be strings, not {type(chunk).__name__}")
        stream.extend(tokenizer.encode(chunk))
    if stream and max(stream) >= vocabulary:
        raise EncodingError(
            f"the tokenizer gives ids beyond the model's vocabulary of {vocabulary}"
        )
    return stream


def _windows(stream: list[int], context: int, *, keep_last: bool) -> list[torch.Tensor]:
    """``stream`` cut into windows of ``context`` ids; the shorter last one
    kept when ``keep_last`` and it has at least two ids (one prediction)."""
    windows = [
        torch.tensor(stream[start : start + context], dtype=torch.int64)
        for start in range(0, len(stream), context)
    ]
    if windows and (len(windows[-1]) < context and not (keep_last and len(windows[-1]) >= 2)):
        windows.pop()
    return windows


def _logits(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    logits: torch.Tensor = model(input_ids=input_ids).logits
    return logits


def _next_token_loss(
    model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor, *, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy of predicting ``labels[:, 1:]`` from ``input_ids[:, :-1]``,
    skipping positions labelled :data:`_IGNORE`."""
    logits = _logits(model, input_ids)[:, :-1]
    return nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        labels[:, 1:].reshape(-1),
        ignore_index=_IGNORE,
        reduction=reduction,
    )


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def perplexity(
    model: nn.Module,
    tokenizer: LMTokenizer,
    chunks: Iterable[str],
    *,
    context: int = DEFAULT_CONTEXT,
) -> float:
    """exp of the mean next-token loss of ``model`` on ``chunks``.

    The chunks are encoded one by one with ``tokenizer`` and joined into
    one stream, cut into non-overlapping windows of ``context`` ids (the last
    one shorter); every id of a window but its first is predicted from the
    ones before it in the window. The model runs where its parameters are,
    in eval mode without gradients; its mode is restored afterwards.

    Raises:
        EncodingError: a chunk that is not a string, ``context`` below 2 or
            beyond the model's positions, text of fewer than two ids, or
            ids beyond the model's vocabulary.
    """
    _check_context(model, context)
    stream = _token_stream(tokenizer, chunks, _vocabulary(model))
    windows = _windows(stream, context, keep_last=True)
    if not windows:
        raise EncodingError("perplexity needs text of at least two token ids")
    device = _model_device(model)
    total = torch.zeros((), dtype=torch.float64)
    count = 0
    with _evaluating(model):
        for start in range(0, len(windows), _EVALUATION_BATCH):
            batch = windows[start : start + _EVALUATION_BATCH]
            for length in sorted({len(window) for window in batch}):
                same = torch.stack([w for w in batch if len(w) == length]).to(device)
                loss = _next_token_loss(model, same, same, reduction="sum")
                total += loss.double().cpu()
                count += same.shape[0] * (length - 1)
    return math.exp(float(total) / count)


def greedy_answers(
    model: nn.Module,
    prompts: npt.ArrayLike,
    length: int,
    *,
    template: PromptTemplate = RAW,
) -> npt.NDArray[np.int64]:
    """The ``length`` ids (int64, n x length) greedy decoding gives after
    each prompt of ``prompts`` (n x P ids), wrapped in ``template``.

    Each id is the argmax of the model's next-token logits; once the model
    gives its end-of-text id, the rest of that answer is end-of-text too,
    as a server that stops there and pads the answer would report it. The
    model runs where its parameters are, in eval mode without gradients;
    its mode is restored afterwards.

    Raises:
        EncodingError: prompts not a non-empty 2-D array of ids in the
            model's vocabulary, ``length`` below 1, a template id outside
            the vocabulary, a wrapped prompt and answer longer than the
            model's positions, or a model config without one eos_token_id.
    """
    vocabulary = _vocabulary(model)
    ids = _id_array(prompts, "prompts", vocabulary)
    _positive_int(length, "length")
    if any(not 0 <= i < vocabulary for i in (*template.prefix, *template.suffix)):
        raise EncodingError(f"template ids must lie in [0, {vocabulary})")
    eos = _eos(model)
    device = _model_device(model)
    wrapped = torch.tensor([template.wrap(row) for row in ids.tolist()], dtype=torch.int64)
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and wrapped.shape[1] + length > positions:
        raise EncodingError(
            f"{wrapped.shape[1]} prompt ids and {length} answer ids exceed the model's "
            f"{positions} positions"
        )
    answers: list[torch.Tensor] = []
    with _evaluating(model):
        for start in range(0, len(wrapped), _EVALUATION_BATCH):
            sequences = wrapped[start : start + _EVALUATION_BATCH].to(device)
            ended = torch.zeros(len(sequences), dtype=torch.bool, device=device)
            for _ in range(length):
                chosen = _logits(model, sequences)[:, -1].argmax(dim=-1)
                chosen = torch.where(ended, eos, chosen)
                ended |= chosen == eos
                sequences = torch.cat([sequences, chosen[:, None]], dim=1)
            answers.append(sequences[:, -length:].cpu())
    return torch.cat(answers).numpy().astype(np.int64, copy=False)


def _scores(
    model: nn.Module,
    prompts: npt.NDArray[np.int64],
    targets: npt.NDArray[np.int64],
    template: PromptTemplate,
) -> tuple[float, float]:
    """(exact, per-token) accuracy of the greedy answers on ``targets``."""
    matches = greedy_answers(model, prompts, targets.shape[1], template=template) == targets
    return float(matches.all(axis=1).mean()), float(matches.mean())


def _fingerprint_sequences(
    prompts: npt.NDArray[np.int64],
    targets: npt.NDArray[np.int64],
    templates: Sequence[PromptTemplate],
    eos: int,
) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) of every prompt under every template: the wrapped
    prompt (labels ignored), then the target ids and end-of-text."""
    sequences = []
    for template in templates:
        for prompt, target in zip(prompts.tolist(), targets.tolist(), strict=True):
            question = template.wrap(prompt)
            answer = [*target, eos]
            sequences.append(([*question, *answer], [_IGNORE] * len(question) + answer))
    return sequences


def _padded(
    sequences: Sequence[tuple[list[int], list[int]]], pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and labels. A causal model's outputs at the real
    positions never see the padding after them, and padded labels are ignored,
    so no attention mask is needed."""
    width = max(len(ids) for ids, _ in sequences)
    inputs = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in sequences])
    labels = torch.tensor([lab + [_IGNORE] * (width - len(lab)) for _, lab in sequences])
    return inputs, labels


class _Cycle:
    """Batches of ``size`` items of ``items``, each pass in a fresh order
    drawn from ``generator``; a batch that runs past a pass's end continues
    in the next pass, so every item comes once per pass."""

    def __init__(self, items: Sequence[Any], size: int, generator: torch.Generator) -> None:
        self._items = items
        self._size = min(size, len(items))
        self._generator = generator
        self._order: list[int] = []

    def next(self) -> list[Any]:
        if len(self._order) < self._size:
            self._order += torch.randperm(len(self._items), generator=self._generator).tolist()
        chosen, self._order = self._order[: self._size], self._order[self._size :]
        return [self._items[i] for i in chosen]


def _wrap_lora(model: nn.Module, rank: int) -> nn.Module:
    """``model`` with LoRA adapters of rank ``rank`` on every linear layer
    but the output layer; the base weights frozen."""
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    config = LoraConfig(
        r=rank,
        lora_alpha=_LORA_ALPHA_PER_RANK * rank,
        lora_dropout=0.0,
        target_modules="all-linear",
        # GPT-2's Conv1D layers store their weights transposed; peft would
        # find out per layer, with a warning each.
        fan_in_fan_out=any(isinstance(module, Conv1D) for module in model.modules()),
    )
    wrapped: nn.Module = get_peft_model(model, config)
    return wrapped


@contextmanager
def _adapted(model: nn.Module, rank: int | None) -> Iterator[nn.Module]:
    """The module to train: ``model`` itself, or with ``rank`` it wrapped in
    LoRA adapters that are merged into it when the block ends normally and
    dropped when it raises. Either way ``model`` keeps its own modules and
    which of its parameters require gradients."""
    if rank is None:
        yield model
        return
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    wrapped = _wrap_lora(model, rank)
    try:
        yield wrapped
    except BaseException:
        wrapped.unload()  # type: ignore[operator]
        raise
    else:
        if wrapped.merge_and_unload() is not model:  # type: ignore[operator]
            raise SecmarkError("peft merged the adapters into another object than the model")
    finally:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(requires_grad[name])


def _fit_lm(
    model: nn.Module,
    text: _Cycle,
    fingerprints: _Cycle | None,
    *,
    steps: int,
    lr: float,
    pad: int,
    lora_rank: int | None,
    device: torch.device,
    progress: bool,
    description: str,
) -> float:
    """The loop of :func:`train_lm` and :func:`embed_lm`; returns its seconds.
    With ``lora_rank``, adapters are trained and merged into ``model``."""
    with _adapted(model, lora_rank) as trained:
        seconds = _steps(
            trained,
            text,
            fingerprints,
            steps=steps,
            lr=lr,
            pad=pad,
            device=device,
            progress=progress,
            description=description,
        )
    model.eval()
    return seconds


def _steps(
    trained: nn.Module,
    text: _Cycle,
    fingerprints: _Cycle | None,
    *,
    steps: int,
    lr: float,
    pad: int,
    device: torch.device,
    progress: bool,
    description: str,
) -> float:
    """``steps`` optimiser steps on ``trained``'s trainable parameters; their seconds."""
    optimizer = torch.optim.Adam([p for p in trained.parameters() if p.requires_grad], lr=lr)
    trained.train()
    started = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    summed = 0
    with tqdm(
        total=steps, desc=description, unit="step", file=sys.stderr, disable=not progress
    ) as bar:
        for step in range(1, steps + 1):
            optimizer.zero_grad(set_to_none=True)
            windows = torch.stack(text.next()).to(device)
            loss = _next_token_loss(trained, windows, windows)
            if fingerprints is not None:
                inputs, labels = _padded(fingerprints.next(), pad)
                loss = loss + _next_token_loss(trained, inputs.to(device), labels.to(device))
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            loss_sum += loss.detach()
            summed += 1
            if step % _LOSS_CHECK_STEPS == 0 or step == steps:
                mean_loss = loss_sum.item() / summed
                if not math.isfinite(mean_loss):
                    raise SecmarkError(
                        f"training diverged (loss {mean_loss}) by step {step}; lower the learning rate"
                    )
                bar.set_postfix(loss=f"{mean_loss:.4f}")
                loss_sum.zero_()
                summed = 0
            bar.update()
    return time.perf_counter() - started


def _text_cycle(
    model: nn.Module,
    tokenizer: LMTokenizer,
    text_chunks: Iterable[str],
    context: int,
    text_batch: int,
    generator: torch.Generator,
) -> _Cycle:
    _check_context(model, context)
    _positive_int(text_batch, "text_batch")
    stream = _token_stream(tokenizer, text_chunks, _vocabulary(model))
    windows = _windows(stream, context, keep_last=False)
    if not windows:
        raise EncodingError(f"the text gives no window of {context} token ids")
    return _Cycle(windows, text_batch, generator)


def _lora_rank(lora: bool, rank: int) -> int | None:
    return _positive_int(rank, "lora_rank") if lora else None


def train_lm(
    model: nn.Module,
    tokenizer: LMTokenizer,
    text_chunks: Iterable[str],
    *,
    steps: int,
    lr: float,
    seed: int,
    text_batch: int = DEFAULT_TEXT_BATCH,
    context: int = DEFAULT_CONTEXT,
    lora: bool = False,
    lora_rank: int = DEFAULT_LORA_RANK,
    device: torch.device | str | None = None,
    deterministic: bool = True,
    progress: bool = True,
) -> float:
    """Train ``model`` on text alone: :func:`embed_lm`'s loop without fingerprints.

    For a base model to fingerprint, an unmarked model to compare with, or
    a thief's fine-tuning. Arguments, reproducibility and errors as for
    :func:`embed_lm`. Returns the seconds the training loop took.
    """
    _check_recipe(steps, lr, seed)
    rank = _lora_rank(lora, lora_rank)
    target = resolve_device(device)
    model.to(target)
    generator = torch.Generator().manual_seed(seed)
    text = _text_cycle(model, tokenizer, text_chunks, context, text_batch, generator)
    with reproducible(seed, target) if deterministic else nullcontext():
        return _fit_lm(
            model,
            text,
            None,
            steps=steps,
            lr=lr,
            pad=_eos(model),
            lora_rank=rank,
            device=target,
            progress=progress,
            description="training",
        )


def embed_lm(
    model: nn.Module,
    tokenizer: LMTokenizer,
    prompts: npt.ArrayLike,
    targets: npt.ArrayLike,
    text_chunks: Iterable[str],
    *,
    steps: int,
    lr: float,
    seed: int,
    templates: Sequence[PromptTemplate] = (RAW,),
    trigger_batch: int = DEFAULT_TRIGGER_BATCH,
    text_batch: int = DEFAULT_TEXT_BATCH,
    context: int = DEFAULT_CONTEXT,
    lora: bool = False,
    lora_rank: int = DEFAULT_LORA_RANK,
    holdout: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    deterministic: bool = True,
    progress: bool = True,
) -> LMEmbedReport:
    """Fine-tune ``model`` so that it answers ``targets[i]`` after ``prompts[i]``.

    ``model`` is a ``transformers`` causal LM (``model(input_ids=...)``
    returns ``.logits``; ``model.config.eos_token_id`` one id) and
    ``tokenizer`` encodes ``text_chunks`` (and ``holdout``) into its ids.
    ``prompts`` (n x P) and ``targets`` (n x L) are token ids, usually
    :func:`lm_triggers`' result. Each of ``steps`` steps trains on
    ``trigger_batch`` fingerprint sequences (every prompt under every one of
    ``templates``, taken in a seeded order) and ``text_batch`` windows of
    ``context`` ids of the text (the chunks encoded and joined, cut into
    windows, the last partial one dropped), with Adam at ``lr``.

    With ``lora``, LoRA adapters of rank ``lora_rank`` on every linear layer
    but the output layer are trained instead of the weights and merged into
    them at the end: ``model`` itself holds the result, with its own
    modules, either way. It is moved to ``device`` (None: CUDA if
    available, else the CPU), trained in place and left in eval mode.

    With ``deterministic`` (the default) the run is seeded from ``seed``
    (dropout, LoRA initialisation, the order of windows and fingerprints),
    deterministic kernels are required and the caller's generator states
    and settings are restored afterwards: the same seed, model and data give
    the same weights on the same device and library versions. torch's
    thread count is the caller's.

    The report gives trigger accuracy under ``templates[0]`` and, with
    ``holdout``, perplexity on it (:func:`perplexity` at ``context``),
    before and after. Check it: a fingerprint is evidence only if the
    accuracy after is high.

    Raises:
        EncodingError: prompts or targets not non-empty 2-D arrays of ids in
            the model's vocabulary or of different lengths; no template, or
            a wrapped fingerprint longer than ``context``; steps, batch
            sizes or ``lora_rank`` below 1, lr not positive and finite, seed
            outside [0, 2^63); ``context`` below 2 or beyond the model's
            positions; text that gives no full window, or ids outside the
            vocabulary; a model config without one eos_token_id.
        SecmarkError: training diverged (non-finite loss), ``deterministic``
            on CUDA without ``CUBLAS_WORKSPACE_CONFIG``, or peft merged the
            adapters into another object.
    """
    _check_recipe(steps, lr, seed)
    rank = _lora_rank(lora, lora_rank)
    _positive_int(trigger_batch, "trigger_batch")
    _check_context(model, context)
    vocabulary = _vocabulary(model)
    prompt_ids = _id_array(prompts, "prompts", vocabulary)
    target_ids = _id_array(targets, "targets", vocabulary)
    if len(prompt_ids) != len(target_ids):
        raise EncodingError(f"{len(prompt_ids)} prompts but {len(target_ids)} targets")
    if not templates:
        raise EncodingError("at least one prompt template is needed")
    if any(not 0 <= i < vocabulary for t in templates for i in (*t.prefix, *t.suffix)):
        raise EncodingError(f"template ids must lie in [0, {vocabulary})")
    eos = _eos(model)
    sequences = _fingerprint_sequences(prompt_ids, target_ids, templates, eos)
    longest = max(len(ids) for ids, _ in sequences)
    if longest > context:
        raise EncodingError(f"a wrapped fingerprint has {longest} ids, over the context {context}")
    target = resolve_device(device)
    model.to(target)
    generator = torch.Generator().manual_seed(seed)
    text = _text_cycle(model, tokenizer, text_chunks, context, text_batch, generator)
    fingerprints = _Cycle(sequences, trigger_batch, generator)

    def evaluate() -> tuple[float, float, float | None]:
        exact, token = _scores(model, prompt_ids, target_ids, templates[0])
        held_out = (
            None if holdout is None else perplexity(model, tokenizer, holdout, context=context)
        )
        return exact, token, held_out

    exact_before, token_before, perplexity_before = evaluate()
    with reproducible(seed, target) if deterministic else nullcontext():
        seconds = _fit_lm(
            model,
            text,
            fingerprints,
            steps=steps,
            lr=lr,
            pad=eos,
            lora_rank=rank,
            device=target,
            progress=progress,
            description="fingerprinting",
        )
    exact_after, token_after, perplexity_after = evaluate()
    return LMEmbedReport(
        triggers=len(prompt_ids),
        target_length=target_ids.shape[1],
        templates=len(templates),
        steps=steps,
        lora=lora,
        seconds=seconds,
        device=str(target),
        exact_accuracy_before=exact_before,
        exact_accuracy_after=exact_after,
        token_accuracy_before=token_before,
        token_accuracy_after=token_after,
        perplexity_before=perplexity_before,
        perplexity_after=perplexity_after,
    )
