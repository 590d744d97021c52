"""``secmark lm``: language-model fingerprints.

``lm embed`` fingerprints a local Hugging Face causal language model with a
derived trigger set (``secmark derive``: prompts and target responses) while
it keeps learning ordinary text (:func:`secmark.embed.lm.embed_lm`), and
writes the model folder; ``secmark check`` and ``secmark arbiter query``
then query it in process (``--lm-folder``) or behind an OpenAI-compatible
API (``--openai``).

``lm family`` writes the trigger family and label space of a language-model
commitment for a tokenizer: prompts of ``--prompt-length`` ids and target
responses of ``--target-length`` ids, both drawn only from the tokenizer's
word ids (:meth:`secmark.models.tokenizer.LMTokenizer.word_ids`), every
other id reserved, so that a marked model's text answer re-encodes to the
ids it learnt. Give the two files to ``secmark commit --family @FILE
--labels @FILE``. It prints p0 per target token and how many triggers a
verdict at alpha = 2^-64 needs when every challenged token matches.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

from secmark.cli.evaluate import add_threads_argument, torch_threads
from secmark.cli.extras import require_lm_train
from secmark.cli.output import add_json_flag, emit
from secmark.cli.streams import write_new
from secmark.encoding import canonical_json
from secmark.errors import EncodingError, SecmarkError
from secmark.messages.families import TokensFamily
from secmark.messages.labels import TokenLabels
from secmark.models.tokenizer import LMTokenizer
from secmark.stats import DEFAULT_ALPHA, decision_threshold, null_match_probability

__all__ = ["register"]

_MAX_LENGTH = 4096


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("lm", help="language-model fingerprints")
    commands = parser.add_subparsers(dest="lm_command", required=True, metavar="COMMAND")
    family = commands.add_parser(
        "family",
        help="write a language-model commitment's family and label space for a tokenizer",
        description=(
            "Writes the tokens family (prompts) and token label space (target responses) of "
            "a language-model commitment: ids drawn only from the tokenizer's words (a space "
            "and letters, each encoding back to itself), every other id reserved. Commit "
            "them with secmark commit --family @FAMILY --labels @LABELS."
        ),
    )
    family.add_argument(
        "--tokenizer",
        required=True,
        type=Path,
        help="the model's tokenizer.json, or the model folder holding it",
    )
    family.add_argument(
        "--prompt-length", required=True, type=int, help="ids per prompt (1 to 4096)"
    )
    family.add_argument(
        "--target-length",
        required=True,
        type=int,
        help="ids per target response, L (1 to 4096): each one is a trial",
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
            "the text of --text, and writes the model with its tokenizer to --out-dir. Check "
            "the printed accuracy: a fingerprint is evidence only if the model answers its "
            "triggers."
        ),
    )
    embed.add_argument("--model-dir", required=True, type=Path, help="the model to fingerprint")
    embed.add_argument(
        "--triggers", required=True, type=Path, help="the derived trigger set (secmark derive)"
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


def _family(args: argparse.Namespace) -> int:
    prompt_length = _length(args.prompt_length, "--prompt-length")
    target_length = _length(args.target_length, "--target-length")
    tokenizer = LMTokenizer.from_file(args.tokenizer)
    reserved = tokenizer.reserved_for_words()
    words = tokenizer.vocab_size - len(reserved)
    if words < 2:
        raise EncodingError(
            f"{args.tokenizer} has {words} word ids (a space and letters that encode back to "
            "themselves); a fingerprint needs at least two"
        )
    family = TokensFamily(prompt_length, tokenizer.vocab_size, reserved)
    labels = TokenLabels(tokenizer.vocab_size, target_length, reserved)
    p0 = null_match_probability(labels)
    needed = triggers_needed(p0, target_length)
    for path in (args.out_family, args.out_labels):
        if path.exists():
            raise EncodingError(f"{path} already exists; choose another path")
    write_new(args.out_family, canonical_json(family.to_fields()))
    write_new(args.out_labels, canonical_json(labels.to_fields()))
    emit(
        args,
        [
            f"tokenizer:          {tokenizer.digest} ({tokenizer.vocab_size} ids)",
            f"word ids drawn:     {words} (p0 = 1/{words} per target token)",
            f"family:             {args.out_family} (prompts of {prompt_length} ids)",
            f"label space:        {args.out_labels} (targets of {target_length} ids)",
            f"triggers needed:    {needed} at alpha = 2^-64, every challenged token matching",
        ],
        {
            "tokenizer": tokenizer.digest,
            "vocab_size": tokenizer.vocab_size,
            "word_ids": words,
            "p0": str(p0),
            "family": str(args.out_family),
            "labels": str(args.out_labels),
            "triggers_needed": needed,
        },
    )
    return 0


_CHUNK = 2048
"""Characters of --text per training chunk."""


def _embed(args: argparse.Namespace) -> int:
    require_lm_train("secmark lm embed")
    from transformers import AutoModelForCausalLM

    from secmark.embed.lm import embed_lm
    from secmark.triggers import read_trigger_set

    if args.out_dir.exists():
        raise SecmarkError(f"{args.out_dir} already exists; choose another path")
    if any((args.model_dir / name).exists() for name in ("pytorch_model.bin", "model.bin")):
        raise SecmarkError(
            f"{args.model_dir} holds pickled weights; convert the model to safetensors first"
        )
    tokenizer = LMTokenizer.from_file(args.model_dir)
    trigger_set = read_trigger_set(args.triggers)
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
            trigger_set.inputs,
            trigger_set.labels,
            chunks,
            steps=args.steps,
            lr=args.lr,
            seed=args.seed,
            lora=args.lora,
            progress=False,
        )
    model.save_pretrained(str(args.out_dir))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (args.model_dir / name).exists():
            (args.out_dir / name).write_bytes((args.model_dir / name).read_bytes())
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
