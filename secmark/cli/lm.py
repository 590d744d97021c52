"""``secmark lm``: language-model fingerprints.

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

from secmark.cli.output import add_json_flag, emit
from secmark.cli.streams import write_new
from secmark.encoding import canonical_json
from secmark.errors import EncodingError
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
