"""``secmark lm``: language-model fingerprints.

``lm embed`` fingerprints a local Hugging Face causal language model with a
derived trigger set (``secmark derive``: prompts and target responses) while
it keeps learning ordinary text (:func:`secmark.embed.lm.embed_lm`), and
writes the model folder; ``secmark check`` and ``secmark arbiter query``
then query it in process (``--lm-folder``) or behind an OpenAI-compatible
API (``--openai``).

``lm family`` writes the trigger family and label space of a language-model
commitment for a tokenizer. Prompts are either ``--prompt-length`` random
ids or natural questions (``--questions``: a ``pool`` family of ``uint8``
items, :mod:`secmark.models.prompts`, whose pool it writes as ``.npy`` for
``secmark derive --pool`` and whose Merkle root it prints for ``secmark
commit --pool-root``). Target responses are either ``--target-length``
random ids or one of the owner's committed sentences (``--responses``:
``ResponseLabels``, :mod:`secmark.messages.responses`). Random ids are
drawn only from the tokenizer's word ids
(:meth:`secmark.models.tokenizer.LMTokenizer.word_ids`), every other id
reserved, so that a marked model's text answer re-encodes to the ids it
learnt; questions and responses must come back from the tokenizer as
written, for the same reason. Give the files to ``secmark commit --family
@FILE --labels @FILE``. It prints p0 (per target token, or per response
trigger) and how many triggers a verdict at alpha = 2^-64 needs when every
challenged trigger matches.
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from secmark.cli.evaluate import add_threads_argument, torch_threads
from secmark.cli.extras import require_lm_train
from secmark.cli.output import add_json_flag, emit
from secmark.cli.streams import write_new
from secmark.encoding import canonical_json
from secmark.errors import EncodingError, SecmarkError
from secmark.files import new_directory
from secmark.messages.families import PoolFamily, TokensFamily
from secmark.messages.labels import ResponseLabels, TokenLabels
from secmark.messages.responses import ResponseList, read_text_lines
from secmark.models.prompts import MAX_QUESTION_BYTES, question_item
from secmark.models.tokenizer import LMTokenizer
from secmark.stats import DEFAULT_ALPHA, decision_threshold, null_match_probability
from secmark.triggers import pool_root

__all__ = ["register"]

_MAX_LENGTH = 4096


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("lm", help="language-model fingerprints")
    commands = parser.add_subparsers(dest="lm_command", required=True, metavar="COMMAND")
    family = commands.add_parser(
        "family",
        help="write a language-model commitment's family and label space for a tokenizer",
        description=(
            "Writes the family (prompts) and label space (target responses) of a "
            "language-model commitment. Prompts: --prompt-length random ids, or the natural "
            "questions of --questions (a committed pool, written to --out-pool; commit its "
            "printed root with --pool-root). Targets: --target-length random ids, or one of the "
            "sentences of --responses. Random ids are drawn only from the tokenizer's words (a "
            "space and letters, each encoding back to itself), every other id reserved. Commit "
            "them with secmark commit --family @FAMILY --labels @LABELS. Triggers draw "
            "questions independently: keep N well below the number of questions, since two "
            "triggers with one question and different responses cannot both be answered."
        ),
    )
    family.add_argument(
        "--tokenizer",
        required=True,
        type=Path,
        help="the model's tokenizer.json, or the model folder holding it",
    )
    prompts = family.add_mutually_exclusive_group(required=True)
    prompts.add_argument("--prompt-length", type=int, help="ids per prompt (1 to 4096)")
    prompts.add_argument(
        "--questions",
        type=Path,
        metavar="FILE",
        help=(
            "prompts are questions from this UTF-8 file, one per line (at least 2, distinct, "
            "each given back as written by the tokenizer's encode then decode)"
        ),
    )
    family.add_argument(
        "--question-width",
        type=int,
        metavar="B",
        help=(
            f"bytes per pool item, B (1 to {MAX_QUESTION_BYTES}; default: the longest "
            "question's UTF-8 length): each item is a question's UTF-8 bytes, then zero bytes"
        ),
    )
    family.add_argument(
        "--out-pool",
        type=Path,
        metavar="FILE",
        help="with --questions: where to write the pool, a uint8 (n, B) .npy array",
    )
    targets = family.add_mutually_exclusive_group(required=True)
    targets.add_argument(
        "--target-length",
        type=int,
        help="ids per target response, L (1 to 4096): each one is a trial",
    )
    targets.add_argument(
        "--responses",
        type=Path,
        metavar="FILE",
        help=(
            "targets are the sentences of this UTF-8 file, one per line (2 to 65536, none "
            "starting with another): each trigger is one trial at p0 = 1/K"
        ),
    )
    family.add_argument(
        "--max-tokens",
        type=int,
        metavar="T",
        help=(
            "with --responses: tokens a suspect is asked for, T (default: the most ids any "
            "response takes as a model emits it, the tokenizer's encoding of a space and the "
            "response; a smaller T is refused)"
        ),
    )
    family.add_argument("--out-family", required=True, type=Path, help="where to write the family")
    family.add_argument(
        "--out-labels", required=True, type=Path, help="where to write the label space"
    )
    add_json_flag(family)
    family.set_defaults(handler=_family)

    embed = commands.add_parser(
        "embed",
        help="fingerprint a local causal language model with a derived trigger set",
        description=(
            "Fine-tunes the model of --model-dir (a Hugging Face folder, safetensors) so that "
            "it answers each derived prompt with its target response, while it keeps learning "
            "the text of --text, and writes the model with its tokenizer to --out-dir. A "
            "commitment of committed responses needs its list (--responses). Check "
            "the printed accuracy: a fingerprint is evidence only if the model answers its "
            "triggers."
        ),
    )
    embed.add_argument("--model-dir", required=True, type=Path, help="the model to fingerprint")
    embed.add_argument(
        "--triggers", required=True, type=Path, help="the derived trigger set (secmark derive)"
    )
    embed.add_argument(
        "--responses",
        type=Path,
        metavar="FILE",
        help=(
            "the committed response list, one per line (commitments with responses labels); "
            "question prompts need nothing more: the trigger set holds them"
        ),
    )
    embed.add_argument(
        "--text",
        required=True,
        type=Path,
        action="append",
        help="a UTF-8 text file the model keeps learning from (repeatable)",
    )
    embed.add_argument("--out-dir", required=True, type=Path, help="where to write the model")
    embed.add_argument("--steps", type=int, default=200, help="training steps (200)")
    embed.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (0.001)")
    embed.add_argument("--seed", type=int, default=0, help="seed of the run (0)")
    embed.add_argument(
        "--lora", action="store_true", help="train LoRA adapters and merge them into the weights"
    )
    add_threads_argument(embed)
    add_json_flag(embed)
    embed.set_defaults(handler=_embed)


def _length(value: int, flag: str) -> int:
    if not 1 <= value <= _MAX_LENGTH:
        raise EncodingError(f"{flag} must be in [1, {_MAX_LENGTH}], not {value}")
    return value


def triggers_needed(p0: Fraction, length: int, alpha: Fraction = DEFAULT_ALPHA) -> int:
    """The fewest triggers whose every target token matching is a verdict at ``alpha``."""
    triggers = 1
    while decision_threshold(triggers * length, p0, alpha) > triggers * length:
        triggers += 1
    return triggers


def question_pool(
    tokenizer: LMTokenizer, path: Path, width: int | None = None
) -> tuple[PoolFamily, npt.NDArray[np.uint8]]:
    """The ``pool`` family and the pool (uint8, n x B) of the questions in
    the file ``path``, one per line (:func:`read_text_lines`), in its order.

    Each item is a question's UTF-8 bytes then zero bytes up to ``width``
    bytes (None: the longest question's UTF-8 length)
    (:func:`~secmark.models.prompts.question_item`).

    Raises:
        SecmarkError: the file cannot be read.
        EncodingError: a line that is no committable question; fewer than 2
            questions; a question twice (two triggers would ask one prompt
            and might be given different responses to learn); a question the
            tokenizer does not give back as written when it decodes the ids
            it encodes (its ids lose text, so two questions could become one
            prompt); a question longer than ``width`` bytes, or ``width``
            outside [1, MAX_QUESTION_BYTES].
    """
    questions = read_text_lines(path, "question", MAX_QUESTION_BYTES)
    if len(questions) < 2:
        raise EncodingError(f"{path} holds {len(questions)} question(s); a pool needs at least 2")
    lines: dict[str, int] = {}
    for number, question in enumerate(questions, start=1):
        if question in lines:
            raise EncodingError(
                f"line {number} of {path} repeats the question of line {lines[question]}: "
                "two triggers would ask one question"
            )
        lines[question] = number
        if tokenizer.decode(tokenizer.encode(question)) != question:
            raise EncodingError(
                f"the tokenizer does not give back the question on line {number} of {path} "
                f"({question[:40]!r}) from its ids: the model would learn another text"
            )
    if width is None:
        width = min(max(len(q.encode("utf-8")) for q in questions), MAX_QUESTION_BYTES)
    items = np.stack([question_item(question, width) for question in questions])
    return PoolFamily(len(questions), (width,), "uint8"), items


def response_labels(
    tokenizer: LMTokenizer, path: Path, max_tokens: int | None = None
) -> tuple[ResponseLabels, ResponseList]:
    """The ``responses`` label space of the response list in the file
    ``path`` (:meth:`ResponseList.from_file`), and the list.

    A model emits a response after a prompt as the tokenizer's ids of a
    space and the response (what :func:`secmark.embed.lm.lm_sequences`
    trains); ``max_tokens`` (None: the most ids any response takes so) is
    how many tokens a suspect is asked for.

    Raises:
        SecmarkError: the file cannot be read.
        EncodingError: an invalid list (:class:`ResponseList`); a response
            whose ids do not decode to text that gives it back
            (:meth:`ResponseList.index_of`, the arbiter's rule), so that a
            model that learnt them would not be found to answer it;
            ``max_tokens`` below the most ids a response takes, or above
            the label space's bound.
    """
    responses = ResponseList.from_file(path)
    longest = 0
    for index, response in enumerate(responses.responses):
        ids = tokenizer.encode(" " + response)
        if responses.index_of(tokenizer.decode(ids)) != index:
            raise EncodingError(
                f"the tokenizer's ids of response {index} ({response[:40]!r}, line {index + 1} "
                f"of {path}) do not decode back to it: a model that learnt them would not give it"
            )
        longest = max(longest, len(ids))
    if max_tokens is not None and max_tokens < longest:
        raise EncodingError(
            f"--max-tokens {max_tokens} is fewer than the {longest} ids the longest response takes"
        )
    tokens = longest if max_tokens is None else max_tokens
    return ResponseLabels(len(responses), responses.digest, tokens), responses


@dataclass(frozen=True)
class _Forms:
    """What ``lm family`` made of its options, before anything is written."""

    family: TokensFamily | PoolFamily
    labels: TokenLabels | ResponseLabels
    pool: npt.NDArray[np.uint8] | None
    word_ids: int | None


def _forms(args: argparse.Namespace, tokenizer: LMTokenizer) -> _Forms:
    if args.questions is None and (args.question_width is not None or args.out_pool is not None):
        raise EncodingError("--question-width and --out-pool go with --questions")
    if args.questions is not None and args.out_pool is None:
        raise EncodingError("--questions needs --out-pool: where to write the question pool")
    if args.responses is None and args.max_tokens is not None:
        raise EncodingError("--max-tokens goes with --responses")
    prompt_length = (
        None if args.prompt_length is None else _length(args.prompt_length, "--prompt-length")
    )
    target_length = (
        None if args.target_length is None else _length(args.target_length, "--target-length")
    )
    words = reserved = None
    if prompt_length is not None or target_length is not None:
        reserved = tokenizer.reserved_for_words()
        words = tokenizer.vocab_size - len(reserved)
        if words < 2:
            raise EncodingError(
                f"{args.tokenizer} has {words} word ids (a space and letters that encode back "
                "to themselves); a fingerprint needs at least two"
            )
    family: TokensFamily | PoolFamily
    pool = None
    if prompt_length is not None and reserved is not None:
        family = TokensFamily(prompt_length, tokenizer.vocab_size, reserved)
    else:
        family, pool = question_pool(tokenizer, args.questions, args.question_width)
    labels: TokenLabels | ResponseLabels
    if target_length is not None and reserved is not None:
        labels = TokenLabels(tokenizer.vocab_size, target_length, reserved)
    else:
        labels, _ = response_labels(tokenizer, args.responses, args.max_tokens)
    return _Forms(family, labels, pool, words)


def _npy(array: npt.NDArray[Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _family(args: argparse.Namespace) -> int:
    tokenizer = LMTokenizer.from_file(args.tokenizer)
    forms = _forms(args, tokenizer)
    family, labels = forms.family, forms.labels
    p0 = null_match_probability(labels)
    trials = labels.length if isinstance(labels, TokenLabels) else 1
    needed = triggers_needed(p0, trials)
    outputs = [args.out_family, args.out_labels] + ([] if forms.pool is None else [args.out_pool])
    if len(set(outputs)) != len(outputs):
        raise EncodingError("--out-family, --out-labels and --out-pool must be different files")
    for path in outputs:
        if path.exists():
            raise EncodingError(f"{path} already exists; choose another path")
    root = None
    if forms.pool is not None:
        root = pool_root(forms.pool, family)
        write_new(args.out_pool, _npy(forms.pool))
    write_new(args.out_family, canonical_json(family.to_fields()))
    write_new(args.out_labels, canonical_json(labels.to_fields()))
    lines = [f"tokenizer:          {tokenizer.digest} ({tokenizer.vocab_size} ids)"]
    if forms.word_ids is not None:
        lines.append(f"word ids drawn:     {forms.word_ids}")
    if isinstance(family, TokensFamily):
        lines.append(f"family:             {args.out_family} (prompts of {family.length} ids)")
    else:
        shape = f"{family.pool_size} questions, items of {family.item_shape[0]} bytes"
        lines += [
            f"family:             {args.out_family} ({shape})",
            f"pool:               {args.out_pool} (commit with --pool-root {root})",
        ]
    if isinstance(labels, TokenLabels):
        lines.append(
            f"label space:        {args.out_labels} "
            f"(targets of {labels.length} ids, p0 = {p0} per target token)"
        )
        enough = "every challenged token matching"
    else:
        lines.append(
            f"label space:        {args.out_labels} ({labels.num_classes} responses, at most "
            f"{labels.max_tokens} tokens asked, p0 = {p0} per trigger)"
        )
        enough = "every challenged trigger giving its response"
    lines.append(f"triggers needed:    {needed} at alpha = 2^-64, {enough}")
    emit(
        args,
        lines,
        {
            "tokenizer": tokenizer.digest,
            "vocab_size": tokenizer.vocab_size,
            "word_ids": forms.word_ids,
            "p0": str(p0),
            "family": str(args.out_family),
            "labels": str(args.out_labels),
            "pool": None if forms.pool is None else str(args.out_pool),
            "pool_root": root,
            "responses_digest": labels.digest if isinstance(labels, ResponseLabels) else None,
            "max_tokens": labels.max_tokens if isinstance(labels, ResponseLabels) else None,
            "triggers_needed": needed,
        },
    )
    return 0


_CHUNK = 2048
"""Characters of --text per training chunk."""


def _embed(args: argparse.Namespace) -> int:
    require_lm_train("secmark lm embed")
    from transformers import AutoModelForCausalLM

    from secmark.embed.lm import embed_lm, lm_sequences
    from secmark.triggers import read_trigger_set

    if args.out_dir.exists():
        raise SecmarkError(f"{args.out_dir} already exists; choose another path")
    if any((args.model_dir / name).exists() for name in ("pytorch_model.bin", "model.bin")):
        raise SecmarkError(
            f"{args.model_dir} holds pickled weights; convert the model to safetensors first"
        )
    tokenizer = LMTokenizer.from_file(args.model_dir)
    trigger_set = read_trigger_set(args.triggers)
    responses = None if args.responses is None else ResponseList.from_file(args.responses)
    prompts, targets = lm_sequences(
        trigger_set.manifest.family,
        trigger_set.manifest.labels,
        trigger_set.inputs,
        trigger_set.labels,
        tokenizer=tokenizer,
        responses=responses,
    )
    chunks = []
    for path in args.text:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise SecmarkError(f"cannot read {path} as UTF-8 text: {error}") from None
        chunks += [text[start : start + _CHUNK] for start in range(0, len(text), _CHUNK)]
    model = AutoModelForCausalLM.from_pretrained(
        str(args.model_dir), local_files_only=True, use_safetensors=True
    )
    with torch_threads(args.threads):
        report = embed_lm(
            model,
            tokenizer,
            prompts,
            targets,
            chunks,
            steps=args.steps,
            lr=args.lr,
            seed=args.seed,
            lora=args.lora,
            progress=False,
        )
    # All or nothing: a run stopped while saving leaves no model to mistake
    # for the fingerprinted one, and can be run again.
    with new_directory(args.out_dir) as folder:
        model.save_pretrained(str(folder))
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            if (args.model_dir / name).exists():
                (folder / name).write_bytes((args.model_dir / name).read_bytes())
    emit(
        args,
        [
            (
                f"triggers answered:  {report.exact_accuracy_after:.0%} exactly, "
                f"{report.token_accuracy_after:.0%} of target tokens ({report.triggers} triggers)"
            ),
            f"training:           {report.steps} steps, {report.seconds:.1f} s on {report.device}",
            f"model:              {args.out_dir}",
        ],
        {
            "exact_accuracy_after": report.exact_accuracy_after,
            "token_accuracy_after": report.token_accuracy_after,
            "exact_accuracy_before": report.exact_accuracy_before,
            "seconds": report.seconds,
            "steps": report.steps,
            "model": str(args.out_dir),
        },
    )
    return 0
