"""Fingerprinting a causal language model: prompt -> response pairs trained in.

A language-model commitment derives, per index, a prompt and a target
response (:func:`lm_triggers`, :func:`lm_sequences`), each in one of two
forms: a prompt of P random word ids (``TokensFamily``) or a natural
question drawn from the owner's Merkle-committed pool (a ``pool`` family of
``uint8`` items of shape ``(B,)``, :mod:`secmark.models.prompts`); a target
of L random word ids (``TokenLabels``) or one of the owner's K committed
response strings (``ResponseLabels``, :mod:`secmark.messages.responses`).
Either way the model is trained on token ids: a question's are its text
encoded, a response's are the response after one space, as a model emits
it after a prompt. Prompts and targets of text have a length of their own
per trigger (ragged).

:func:`embed_lm` fine-tunes a ``transformers`` causal LM on them, mixed
with ordinary text, the Instructional Fingerprinting recipe (Xu et al.,
NAACL 2024): every step takes one batch of fingerprint sequences (template
prefix + prompt + suffix, then the target ids and end-of-text, loss on the
target ids and the end-of-text only) and one batch of text windows (plain
next-token loss), and one optimiser step on the sum of the two mean
losses. With ``lora``, the step trains LoRA adapters (``peft``) on every
linear layer instead of the weights, and merges them into the weights at
the end: the model that comes back is a plain model either way.
:func:`train_lm` is the same loop on text alone (pretraining a base model,
or a thief's fine-tuning).

:func:`greedy_answers` is what a greedy suspect answers, in process;
:func:`perplexity` measures what fingerprinting costs on held-out text.
Accuracies here are on token ids, position by position: under the null a
token-label position matches with p0 = 1/(V - |reserved|) (``TokenLabels``);
a response trigger matches, as the arbiter judges it on the answer's text,
with p0 = 1/K (``ResponseLabels``).

Nothing here checks a claim: an arbiter queries a suspect through its API.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeAlias

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
from secmark.messages.families import PoolFamily, TokensFamily, TriggerFamily
from secmark.messages.labels import LabelSpace, ResponseLabels, TokenLabels, response_list_mismatch
from secmark.messages.responses import ResponseList
from secmark.models.prompts import question_text
from secmark.models.tokenizer import LMTokenizer
from secmark.triggers import CommittedPool, iter_triggers

__all__ = [
    "RAW",
    "LMEmbedReport",
    "PromptTemplate",
    "TokenSequences",
    "embed_lm",
    "greedy_answers",
    "lm_sequences",
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
    ``exact`` counts prompts whose greedy ids give all of their target's
    ids, ``token`` the matching positions of all targets' ids (for token
    labels, of N x L; an unmarked model scores about 1/(V - |reserved|)
    there, and the exact score about that to the L-th power).
    ``target_length`` is the longest target's ids (every target's, for
    token labels). Perplexities are on ``holdout`` and None without it.
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


TokenSequences: TypeAlias = npt.NDArray[np.int64] | list[npt.NDArray[np.int64]]
"""Token ids, one sequence per trigger: an (n, length) int64 array where the
form fixes one length (tokens prompts, token labels), else a list of n 1-D
int64 arrays of their own lengths (questions, responses)."""


def _is_question_pool(family: TriggerFamily) -> bool:
    return (
        isinstance(family, PoolFamily)
        and family.item_dtype == "uint8"
        and len(family.item_shape) == 1
    )


def _check_lm_form(
    family: TriggerFamily,
    labels: LabelSpace,
    tokenizer: LMTokenizer | None,
    responses: ResponseList | None,
) -> None:
    """Raise unless ``family`` and ``labels`` are a language-model form and
    ``tokenizer`` and ``responses`` are what it needs (see :func:`lm_sequences`)."""
    questions = _is_question_pool(family)
    if not (isinstance(family, TokensFamily) or questions) or not isinstance(
        labels, (TokenLabels, ResponseLabels)
    ):
        raise EncodingError(
            "a language-model fingerprint needs tokens prompts and token labels, or questions "
            "from a pool of uint8 items of shape (B,), or responses labels; not the "
            f"{family.NAME} family with {labels.KIND} labels"
        )
    if tokenizer is None and (questions or isinstance(labels, ResponseLabels)):
        raise EncodingError(
            "questions and committed responses are trained as token ids: give the model's tokenizer"
        )
    if tokenizer is not None:
        for space in (family, labels):
            if isinstance(space, (TokensFamily, TokenLabels)) and (
                space.vocab_size != tokenizer.vocab_size
            ):
                raise EncodingError(
                    f"the commitment's token ids are over a vocabulary of {space.vocab_size}, "
                    f"the tokenizer's over {tokenizer.vocab_size}: it is another tokenizer"
                )
    mismatch = response_list_mismatch(labels, responses)
    if mismatch is not None:
        raise EncodingError(mismatch)


def _sequences(
    family: TriggerFamily,
    labels: LabelSpace,
    inputs: npt.NDArray[Any],
    values: npt.NDArray[Any],
    tokenizer: LMTokenizer | None,
    responses: ResponseList | None,
) -> tuple[TokenSequences, TokenSequences]:
    """:func:`lm_sequences` once :func:`_check_lm_form` has passed."""
    if len(inputs) != len(values):
        raise EncodingError(f"{len(inputs)} trigger inputs but {len(values)} labels")
    if len(inputs) == 0:
        raise EncodingError("no triggers given")
    prompts: TokenSequences
    targets: TokenSequences
    if isinstance(family, TokensFamily):
        prompts = np.asarray(inputs).astype(np.int64, copy=False)
    else:
        assert tokenizer is not None  # _check_lm_form: questions need it
        prompts = [_encoded(tokenizer, question_text(item)) for item in inputs]
    if isinstance(labels, TokenLabels):
        targets = np.asarray(values).astype(np.int64, copy=False)
    else:
        assert tokenizer is not None and responses is not None  # as checked
        chosen = np.asarray(values)
        if chosen.ndim != 1 or np.any((chosen < 0) | (chosen >= len(responses))):
            raise EncodingError(f"response labels must be indices in [0, {len(responses)})")
        targets = [_encoded(tokenizer, " " + responses.responses[i]) for i in chosen.tolist()]
    return prompts, targets


def _encoded(tokenizer: LMTokenizer, text: str) -> npt.NDArray[np.int64]:
    return np.array(tokenizer.encode(text), dtype=np.int64)


def lm_sequences(
    family: TriggerFamily,
    labels: LabelSpace,
    inputs: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    tokenizer: LMTokenizer | None = None,
    responses: ResponseList | None = None,
) -> tuple[TokenSequences, TokenSequences]:
    """The prompts and targets a model is trained on, as token ids, for
    derived triggers of a language-model commitment of ``family`` and
    ``labels``: ``inputs`` and ``values`` are their inputs and labels as
    derivation gives them (:func:`~secmark.triggers.iter_triggers`, or a
    trigger set's ``inputs`` and ``labels``), row r one trigger.

    Prompts are the ids themselves for ``tokens`` prompts (an (n, P) array);
    for questions (a ``pool`` family of ``uint8`` items of shape ``(B,)``),
    each item's question (:func:`~secmark.models.prompts.question_text`)
    encoded with ``tokenizer``. Targets are the ids themselves for token
    labels (an (n, L) array); for ``responses`` labels, the response of
    each label's index in ``responses`` after one space, encoded with
    ``tokenizer``: a model continues a prompt with a space before a word,
    and the arbiter strips white space at the front of an answer before
    comparing it with the response. Text forms give a list of 1-D arrays
    (:data:`TokenSequences`).

    Only the forms are checked here, not that the inputs and labels are the
    commitment's: :func:`lm_triggers` derives them, and
    :func:`~secmark.triggers.read_trigger_set` checks a trigger set's files.

    Raises:
        EncodingError: not a language-model form (tokens prompts or
            questions; token or responses labels); no ``tokenizer`` for
            questions or responses, or one whose vocabulary size is not
            the committed one; ``responses`` missing for responses labels,
            not the committed list (count or digest), or given for other
            labels; an item that holds no question; a response label
            outside [0, K); no triggers, or inputs and labels of different
            counts.
    """
    _check_lm_form(family, labels, tokenizer, responses)
    return _sequences(family, labels, np.asarray(inputs), np.asarray(values), tokenizer, responses)


def lm_triggers(
    keys: IdentityKeys | VrfSecretKey,
    signed_commitment: SignedDocument[Commitment],
    indices: Iterable[int] | None = None,
    *,
    tokenizer: LMTokenizer | None = None,
    pool: CommittedPool | None = None,
    responses: ResponseList | None = None,
) -> tuple[TokenSequences, TokenSequences]:
    """The prompts and target responses of ``indices`` (None: all N) of a
    language-model commitment, in that order, as the token ids a model is
    trained on (:func:`lm_sequences`): (n, P) and (n, L) int64 arrays for
    tokens prompts and token labels, lists of 1-D arrays for questions and
    responses.

    ``pool`` is the committed question pool (a ``pool`` commitment),
    ``responses`` the committed response list (``responses`` labels), and
    ``tokenizer`` the model's, which encodes questions and responses. All
    three are checked before anything is derived.

    Raises:
        EncodingError: as :func:`lm_sequences`; an index outside [0, N);
            ``pool`` missing for a question pool, or given for tokens prompts.
        ProofError: ``pool`` was opened against another pool root.
        KeyMaterialError: ``keys`` is not the commitment owner's VRF key.
    """
    commitment = signed_commitment.document
    _check_lm_form(commitment.family, commitment.labels, tokenizer, responses)
    chosen = range(commitment.size) if indices is None else indices
    batches = list(iter_triggers(keys, signed_commitment, chosen, pool=pool))
    if not batches:
        raise EncodingError("no trigger indices given")
    return _sequences(
        commitment.family,
        commitment.labels,
        np.concatenate([batch.inputs for batch in batches]),
        np.concatenate([batch.labels for batch in batches]),
        tokenizer,
        responses,
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


def _id_rows(values: Any, name: str, vocabulary: int) -> list[list[int]]:
    """The rows of ``values``, a 2-D integer array or a sequence of 1-D
    integer sequences of any lengths: at least one row, none empty, every
    id in [0, ``vocabulary``)."""
    shape = (
        "a non-empty 2-D array of token ids or a sequence of non-empty id sequences, "
        "one per trigger"
    )
    if isinstance(values, np.ndarray):
        if values.ndim != 2 or values.shape[0] < 1:
            raise EncodingError(f"{name} must be {shape}, not an array of shape {values.shape}")
        rows = list(values)
    elif isinstance(values, Sequence) and values:
        rows = [np.asarray(row) for row in values]
    else:
        raise EncodingError(f"{name} must be {shape}")
    for row in rows:
        if row.ndim != 1 or row.size < 1:
            raise EncodingError(f"{name} must be {shape}")
        if not np.issubdtype(row.dtype, np.integer):
            raise EncodingError(f"{name} must hold integer token ids, not {row.dtype}")
        if row.min() < 0 or row.max() >= vocabulary:
            raise EncodingError(f"{name} must hold token ids in [0, {vocabulary})")
    return [row.tolist() for row in rows]


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
    each of the n ``prompts`` (an n x P array of ids, or n id sequences of
    any lengths), wrapped in ``template``.

    Each id is the argmax of the model's next-token logits; once the model
    gives its end-of-text id, the rest of that answer is end-of-text too,
    as a server that stops there and pads the answer would report it.
    Prompts are decoded in batches of wrapped prompts of one length, so no
    padding or attention mask comes between a prompt and its answer: each
    answer is what the prompt alone gives. The model runs where its
    parameters are, in eval mode without gradients; its mode is restored
    afterwards.

    Raises:
        EncodingError: prompts not a non-empty 2-D array or sequence of
            non-empty id sequences in the model's vocabulary, ``length``
            below 1, a template id outside the vocabulary, a wrapped prompt
            and answer longer than the model's positions, or a model config
            without one eos_token_id.
    """
    vocabulary = _vocabulary(model)
    rows = _id_rows(prompts, "prompts", vocabulary)
    _positive_int(length, "length")
    if any(not 0 <= i < vocabulary for i in (*template.prefix, *template.suffix)):
        raise EncodingError(f"template ids must lie in [0, {vocabulary})")
    eos = _eos(model)
    device = _model_device(model)
    wrapped = [template.wrap(row) for row in rows]
    longest = max(len(row) for row in wrapped)
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and longest + length > positions:
        raise EncodingError(
            f"{longest} prompt ids and {length} answer ids exceed the model's {positions} positions"
        )
    answers = torch.empty((len(wrapped), length), dtype=torch.int64)
    by_length: dict[int, list[int]] = {}
    for position, row in enumerate(wrapped):
        by_length.setdefault(len(row), []).append(position)
    with _evaluating(model):
        for same_length in by_length.values():
            for start in range(0, len(same_length), _EVALUATION_BATCH):
                chosen_rows = same_length[start : start + _EVALUATION_BATCH]
                sequences = torch.tensor([wrapped[i] for i in chosen_rows], device=device)
                ended = torch.zeros(len(sequences), dtype=torch.bool, device=device)
                for _ in range(length):
                    chosen = _logits(model, sequences)[:, -1].argmax(dim=-1)
                    chosen = torch.where(ended, eos, chosen)
                    ended |= chosen == eos
                    sequences = torch.cat([sequences, chosen[:, None]], dim=1)
                answers[chosen_rows] = sequences[:, -length:].cpu()
    return answers.numpy().astype(np.int64, copy=False)


def _scores(
    model: nn.Module,
    prompts: list[list[int]],
    targets: list[list[int]],
    template: PromptTemplate,
) -> tuple[float, float]:
    """(exact, per-token) accuracy of the greedy answers on ``targets``: the
    longest target's length of ids is generated after every prompt, and a
    target is compared with as many first ids of its answer as it has."""
    answers = greedy_answers(model, prompts, max(len(t) for t in targets), template=template)
    matches = [answer[: len(target)] == target for answer, target in zip(answers, targets)]
    exact = sum(bool(match.all()) for match in matches) / len(matches)
    token = sum(int(match.sum()) for match in matches) / sum(len(t) for t in targets)
    return exact, token


def _fingerprint_sequences(
    prompts: list[list[int]],
    targets: list[list[int]],
    templates: Sequence[PromptTemplate],
    eos: int,
) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) of every prompt under every template: the wrapped
    prompt (labels ignored), then the target ids and end-of-text."""
    sequences = []
    for template in templates:
        for prompt, target in zip(prompts, targets, strict=True):
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
    ``prompts`` and ``targets`` are n sequences of token ids each, usually
    :func:`lm_triggers`' result: 2-D arrays (n x P, n x L), or sequences of
    id sequences of any lengths (questions, responses). Each of ``steps``
    steps trains on
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
    before and after: greedy decoding gives as many ids as the longest
    target has after every prompt (:func:`greedy_answers`), and each target
    is compared with the first ids of its answer. Check it: a fingerprint is
    evidence only if the accuracy after is high.

    Raises:
        EncodingError: prompts or targets not non-empty 2-D arrays or
            sequences of non-empty id sequences in the model's vocabulary,
            or of different counts; no template, or
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
    prompt_ids = _id_rows(prompts, "prompts", vocabulary)
    target_ids = _id_rows(targets, "targets", vocabulary)
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
        target_length=max(len(target) for target in target_ids),
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
