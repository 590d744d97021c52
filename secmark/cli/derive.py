"""``secmark derive``: the owner derives a commitment's trigger set to disk."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from tqdm import tqdm

from secmark.cli.arrays import read_array
from secmark.cli.output import add_json_flag, emit, show_progress
from secmark.cli.passphrase import open_key_file
from secmark.cli.streams import add_input, read_input
from secmark.errors import EncodingError, KeyMaterialError, SecmarkError
from secmark.messages.commitment import MAX_COMMITMENT_SIZE, Commitment, open_commitment
from secmark.messages.families import OverlayFamily, PoolFamily
from secmark.messages.labels import ResponseLabels
from secmark.messages.responses import ResponseList
from secmark.protocol.reveals import check_response_list
from secmark.triggers import (
    CommittedPool,
    TriggerBatch,
    iter_triggers,
    write_trigger_set,
)

__all__ = ["open_pool", "parse_indices", "register"]

# An index list like "0-9,17" is short; the bound keeps a hostile argument
# from being parsed at length.
_MAX_SPEC_LENGTH = 1 << 16
_RANGE = re.compile(r"([0-9]{1,10})(?:-([0-9]{1,10}))?")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    derive = subparsers.add_parser(
        "derive",
        help="derive a commitment's trigger set (owner only; the result is secret)",
        description=(
            "Checks the commitment's signature, opens the owner's key file, derives the "
            "triggers of --indices (default: all N) and writes them to the new directory "
            "--out: inputs.npy, labels.npy, proofs.npy, indices.npy and manifest.json."
        ),
    )
    add_input(derive, "commitment", help="the signed commitment (JSON envelope)")
    derive.add_argument("--key", type=Path, required=True, help="the owner's key file")
    derive.add_argument("--out", type=Path, required=True, help="directory to create")
    derive.add_argument(
        "--indices", help="indices to derive, e.g. 0-9,17 (ranges inclusive; default all)"
    )
    derive.add_argument(
        "--pool", type=Path, help="the committed pool as one .npy array (pool and overlay families)"
    )
    derive.add_argument("--passphrase-file", help="read the key file's passphrase from this file")
    add_json_flag(derive)
    derive.set_defaults(handler=_derive)


def parse_indices(spec: str, size: int) -> list[range]:
    """Disjoint ascending ranges covering the indices of ``spec``.

    ``spec`` is a comma-separated list of indices ``i`` and inclusive ranges
    ``i-j``; repeats and overlaps are merged.

    Raises:
        EncodingError: malformed, empty, or an index outside ``[0, size)``.
    """
    if len(spec) > _MAX_SPEC_LENGTH:
        raise EncodingError("the index list is too long")
    parts: list[range] = []
    for part in spec.split(","):
        match = _RANGE.fullmatch(part.strip())
        if match is None:
            raise EncodingError(f"bad index range {part.strip()!r}: use i or i-j, e.g. 0-9,17")
        start = int(match[1])
        stop = int(match[2]) if match[2] is not None else start
        if start > stop or stop >= size:
            raise EncodingError(f"index range {part.strip()!r} is not within [0, {size})")
        parts.append(range(start, stop + 1))
    merged: list[range] = []
    for indices in sorted(parts, key=lambda r: r.start):
        if merged and indices.start <= merged[-1].stop:
            merged[-1] = range(merged[-1].start, max(merged[-1].stop, indices.stop))
        else:
            merged.append(indices)
    return merged


def _describe(ranges: list[range]) -> str:
    text = ",".join(f"{r.start}" if len(r) == 1 else f"{r.start}-{r[-1]}" for r in ranges)
    return text if len(text) <= 60 else text[:57] + "..."


def _with_progress(
    batches: Iterable[TriggerBatch], total: int, *, shown: bool
) -> Iterator[TriggerBatch]:
    # tqdm writes to stderr and stays silent when stderr is not a terminal.
    with tqdm(total=total, unit="trigger", file=sys.stderr, disable=None if shown else True) as bar:
        for batch in batches:
            yield batch
            bar.update(len(batch))


def open_pool(path: Path | None, commitment: Commitment) -> CommittedPool | None:
    """The committed pool from a .npy file, for the families that draw from one.

    Raises:
        SecmarkError: a pool family without ``path``, or a path for another family.
        EncodingError: an unreadable file, or items not matching the pool root.
    """
    if not isinstance(commitment.family, (PoolFamily, OverlayFamily)):
        if path is not None:
            raise SecmarkError(
                f"the {commitment.family.NAME} family draws from no pool: omit --pool"
            )
        return None
    if path is None:
        raise SecmarkError(f"the {commitment.family.NAME} family needs its pool: add --pool")
    return CommittedPool.open(read_array(path, what="pool", memory_map=True), commitment)


def open_responses(path: Path | None, commitment: Commitment) -> ResponseList | None:
    """The committed response list from a file of lines, for a commitment
    with responses labels (checked against the committed digest).

    Raises:
        SecmarkError: responses labels without ``path``, or a path for other
            labels; the file cannot be read.
        EncodingError: a line that is no committable response, or a list
            that is not prefix-free.
        ProtocolError: another list than the committed one.
    """
    if not isinstance(commitment.labels, ResponseLabels):
        if path is not None:
            raise SecmarkError(
                f"the commitment's labels are {commitment.labels.KIND}: omit --responses"
            )
        return None
    if path is None:
        raise SecmarkError("the commitment's labels are committed responses: add --responses")
    responses = ResponseList.from_file(path)
    check_response_list(commitment, responses)
    return responses


def _derive(args: argparse.Namespace) -> int:
    data = read_input(args.commitment, max_size=MAX_COMMITMENT_SIZE, what="commitment")
    signed = open_commitment(data)
    commitment = signed.document
    if args.out.exists():
        raise SecmarkError(f"{args.out} already exists; remove it or choose another path")
    ranges = (
        [range(commitment.size)]
        if args.indices is None
        else parse_indices(args.indices, commitment.size)
    )
    pool = open_pool(args.pool, commitment)
    keys = open_key_file(args.key, args.passphrase_file)
    if keys.key_id != commitment.owner_key_id:
        raise KeyMaterialError(
            f"the key file holds identity {keys.key_id}, "
            f"but the commitment belongs to {commitment.owner_key_id}"
        )
    count = sum(len(r) for r in ranges)
    indices = (index for r in ranges for index in r)
    batches = iter_triggers(keys, signed, indices, pool=pool)
    manifest = write_trigger_set(
        args.out, signed, _with_progress(batches, count, shown=show_progress(args)), count
    )
    family_fields = commitment.family.to_fields()
    emit(
        args,
        [
            f"commitment: {signed.digest}",
            f"family:     {', '.join(f'{k}={v}' for k, v in family_fields.items())}",
            f"labels:     {', '.join(f'{k}={v}' for k, v in commitment.labels.to_fields().items())}",
            f"triggers:   {count} of N = {commitment.size} (indices {_describe(ranges)})",
            f"written:    {args.out}/ (secret: keep it private; mode 0700)",
        ],
        {
            "commitment_id": signed.digest,
            "count": count,
            "directory": str(args.out),
            "family": family_fields,
            "files": manifest.digests,
            "labels": commitment.labels.to_fields(),
            "size": commitment.size,
        },
    )
    return 0
