"""``secmark commit``: make and sign a commitment."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from secmark.cli.output import add_json_flag, emit
from secmark.cli.passphrase import open_key_file
from secmark.cli.streams import add_output, is_stdio, write_output
from secmark.errors import EncodingError, SecmarkError
from secmark.files import read_regular_file
from secmark.messages.commitment import create_commitment
from secmark.messages.document import Fields
from secmark.messages.families import family_from_fields
from secmark.messages.labels import ClassLabels, label_space_from_fields

_EXAMPLE_FAMILY = '{"name":"noise","shape":[1,8,8],"dtype":"float32","low":0,"high":1}'


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "commit",
        help="fix a trigger family, label space and set size in a signed commitment",
        description=(
            "Writes a commitment signed by the owner's key. Timestamp it (secmark "
            "timestamp) before releasing the model: the trusted time is what counts."
        ),
    )
    parser.add_argument("--key", required=True, type=Path, help="the owner's key file")
    parser.add_argument("--passphrase-file", help="read the key file's passphrase from here")
    parser.add_argument(
        "--family",
        required=True,
        help=f"the trigger family as a JSON object or @FILE, e.g. '{_EXAMPLE_FAMILY}'",
    )
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--classes", type=int, help="K: labels are one of K classes")
    labels.add_argument(
        "--labels",
        help='the label space as JSON or @FILE, e.g. \'{"kind":"regression","lo":0,"hi":1,"tolerance":0.01}\'',
    )
    parser.add_argument("--size", required=True, type=int, help="N, the number of triggers")
    parser.add_argument("--model-label", default="", help="free text naming the model")
    parser.add_argument("--pool-root", help="hex Merkle root of the candidate pool (pool families)")
    add_output(parser, "--out", required=True, help="where to write the commitment")
    add_json_flag(parser)
    parser.set_defaults(handler=_commit)


def _integer(text: str) -> int | float:
    """An integer of a JSON argument: an int below 2^53 in magnitude, as in
    canonical JSON, else the float nearest it (1e20 may be typed in full)."""
    if len(text.lstrip("-")) > 309:
        raise EncodingError(f"the number {text[:24]}... is beyond the float64 range")
    value = int(text)
    if abs(value) < 1 << 53:
        return value
    if abs(value) > sys.float_info.max:
        raise EncodingError(f"the number {text[:24]}... is beyond the float64 range")
    return float(value)


# A label space or family is a few hundred bytes; a megabyte is far beyond.
_MAX_ARGUMENT_FILE = 1 << 20


def _json_argument(text: str, what: str) -> Fields:
    if text.startswith("@"):
        data = read_regular_file(text[1:], max_size=_MAX_ARGUMENT_FILE, what=f"--{what} file")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise EncodingError(f"--{what} file {text[1:]} is not UTF-8 text") from None
    try:
        value: Any = json.loads(text, parse_int=_integer)
    except json.JSONDecodeError as error:
        raise EncodingError(f"--{what} is not valid JSON: {error.msg}") from None
    if not isinstance(value, dict):
        raise EncodingError(f"--{what} must be a JSON object")
    return Fields(value, context=what)


def _parsed(fields: Fields, build: Any) -> Any:
    result = build(fields)
    fields.finish()
    return result


def _commit(args: argparse.Namespace) -> int:
    family = _parsed(_json_argument(args.family, "family"), family_from_fields)
    if args.classes is not None:
        labels = ClassLabels(args.classes)
    else:
        labels = _parsed(_json_argument(args.labels, "labels"), label_space_from_fields)
    if not is_stdio(args.out) and args.out.exists():
        raise SecmarkError(f"{args.out} already exists; choose another path")
    keys = open_key_file(args.key, args.passphrase_file)
    signed = create_commitment(
        keys,
        family=family,
        labels=labels,
        size=args.size,
        model_label=args.model_label,
        pool_root=args.pool_root,
    )
    write_output(args.out, signed.to_json())
    emit(
        args,
        [
            f"commitment id: {signed.digest}",
            f"written to:    {args.out}",
            "next: timestamp it with 'secmark timestamp' before releasing the model",
        ],
        {"commitment_id": signed.digest, "file": str(args.out), "owner": keys.key_id},
    )
    return 0
