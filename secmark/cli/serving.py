"""``secmark serving-policy``: fix, before an API serves, which answers it marks."""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

from secmark.cli.output import add_json_flag, emit, printable
from secmark.cli.passphrase import open_key_file
from secmark.cli.plan import parse_probability
from secmark.cli.streams import read_file, write_new
from secmark.errors import EncodingError, SecmarkError
from secmark.messages.identity import open_identity
from secmark.messages.release import open_release
from secmark.messages.serving_policy import (
    ANSWER_RULES,
    INPUT_DTYPES,
    MAX_RATE_DENOMINATOR,
    InputEncoding,
    create_serving_policy,
)

_MAX_SHAPE_TEXT = 128


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serving-policy",
        help="fix which answers a prediction API marks, in a signed serving policy",
        description=(
            "Writes a serving policy signed by the owner: the release whose answers are "
            "marked, the marking rate, the label space, the input encoding and the log "
            "operator, whose VRF key marks answers and who signs the query log. Timestamp "
            "it (secmark timestamp) before the API serves: marks logged before the policy's "
            "trusted time prove nothing. Numbers are written 0.01, 1/100 or 2^-7."
        ),
    )
    parser.add_argument("--key", required=True, type=Path, help="the owner's key file")
    parser.add_argument("--passphrase-file", help="read the key file's passphrase from here")
    parser.add_argument(
        "--release", required=True, type=Path, help="the owner's signed release the API serves"
    )
    operator = parser.add_mutually_exclusive_group(required=True)
    operator.add_argument(
        "--operator",
        type=Path,
        help="the log operator's identity document (a platform serving the model)",
    )
    operator.add_argument(
        "--operator-self",
        action="store_true",
        help="the owner operates the log himself (verdicts then say the log is only his word)",
    )
    parser.add_argument(
        "--classes", required=True, type=int, help="K: answers are one of K classes"
    )
    parser.add_argument(
        "--rate", required=True, help="the marking rate r, e.g. 1/100 (a fraction of inputs)"
    )
    parser.add_argument(
        "--log-rate",
        default="0",
        help="the rate at which unmarked queries are logged too, as decoys and a "
        "fidelity control (default 0)",
    )
    parser.add_argument(
        "--answer-rule",
        choices=ANSWER_RULES,
        help="other-label (p0 = 1/(K-1), the default for K >= 3) or any-label "
        "(p0 = 1/K, the only rule for K = 2)",
    )
    parser.add_argument(
        "--input-dtype", required=True, choices=INPUT_DTYPES, help="the element type of one input"
    )
    parser.add_argument(
        "--input-shape", required=True, help="the shape of one input, e.g. 64 or 1,28,28"
    )
    parser.add_argument("--model-label", default="", help="free text naming the served model")
    parser.add_argument("--out", required=True, type=Path, help="where to write the policy")
    add_json_flag(parser)
    parser.set_defaults(handler=_serving_policy)


def _shape(text: str) -> tuple[int, ...]:
    parts = text.split(",")
    if len(text) > _MAX_SHAPE_TEXT or not all(p.strip().isdigit() for p in parts):
        raise EncodingError(
            f"--input-shape {printable(text[:_MAX_SHAPE_TEXT])} is not a list of positive "
            "integers such as 64 or 1,28,28"
        )
    return tuple(int(p) for p in parts)


def _rate(text: str, what: str, *, allow_zero: bool) -> Fraction:
    if allow_zero and text.strip() in ("0", "0.0"):
        return Fraction(0)
    rate = parse_probability(text, what=what, allow_one=allow_zero)
    if rate.denominator > MAX_RATE_DENOMINATOR:
        raise EncodingError(f"{what} {text!r} has a denominator above 2^32")
    return rate


def _serving_policy(args: argparse.Namespace) -> int:
    if args.out.exists():
        raise SecmarkError(f"{args.out} already exists; choose another path")
    keys = open_key_file(args.key, args.passphrase_file)
    release = open_release(read_file(args.release), keys.public_keys)
    operator = (
        keys.public_keys
        if args.operator_self
        else open_identity(read_file(args.operator)).document.public_keys
    )
    signed = create_serving_policy(
        keys,
        operator=operator,
        release_id=release.digest,
        num_classes=args.classes,
        rate=_rate(args.rate, "--rate", allow_zero=False),
        log_rate=_rate(args.log_rate, "--log-rate", allow_zero=True),
        answer_rule=args.answer_rule,
        input_encoding=InputEncoding(args.input_dtype, _shape(args.input_shape)),
        model_label=args.model_label,
    )
    policy = signed.document
    write_new(args.out, signed.to_json())
    operator_line = (
        "operator:       the owner (a verdict will say the log is only the owner's word)"
        if policy.owner_is_operator
        else f"operator:       {operator.key_id}"
    )
    emit(
        args,
        [
            f"policy id:      {signed.digest}",
            f"marks:          {policy.rate} of inputs, {policy.answer_rule} (p0 = {policy.p0})",
            operator_line,
            f"written to:     {args.out}",
            "next: timestamp it (secmark timestamp) before the API serves",
        ],
        {
            "policy_id": signed.digest,
            "release_id": release.digest,
            "rate": str(policy.rate),
            "log_rate": str(policy.log_rate),
            "answer_rule": policy.answer_rule,
            "p0": str(policy.p0),
            "operator": operator.key_id,
            "owner_is_operator": policy.owner_is_operator,
            "file": str(args.out),
        },
    )
    return 0
