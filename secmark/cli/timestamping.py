"""``secmark timestamp`` and ``secmark commitment show``."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from secmark.cli.output import add_json_flag, emit
from secmark.encoding import format_time
from secmark.errors import EncodingError, SecmarkError
from secmark.files import PUBLIC_FILE_MODE, write_atomic
from secmark.messages import PAYLOAD_TYPE, Envelope
from secmark.messages.commitment import open_commitment
from secmark.timestamp import DEFAULT_TIMEOUT, TrustStore
from secmark.timestamp.evidence import TimestampEvidence, collect_evidence


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    timestamp = subparsers.add_parser(
        "timestamp",
        help="obtain RFC 3161 timestamps of a document (a commitment, a release) from TSAs",
        description=(
            "Asks every --tsa to timestamp the document's id (the SHA-256 of its payload) "
            "and writes the tokens as evidence. Nothing is written unless every TSA "
            "answered correctly. The document is not verified here: timestamp only your own."
        ),
    )
    timestamp.add_argument("document", type=Path, help="a secmark document (DSSE envelope)")
    timestamp.add_argument(
        "--tsa", action="append", required=True, metavar="URL", help="a TSA URL (repeatable)"
    )
    timestamp.add_argument(
        "--hash", choices=("sha256", "sha512"), default="sha256", help="imprint algorithm"
    )
    timestamp.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per TSA")
    timestamp.add_argument("--out", required=True, type=Path, help="where to write the evidence")
    add_json_flag(timestamp)
    timestamp.set_defaults(handler=_timestamp)

    commitment = subparsers.add_parser("commitment", help="inspect commitments")
    commands = commitment.add_subparsers(metavar="COMMAND", required=True)
    show = commands.add_parser(
        "show", help="verify a commitment's signature (and timestamps) and print it"
    )
    show.add_argument("commitment", type=Path)
    show.add_argument("--evidence", type=Path, help="timestamp evidence to verify")
    show.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="PEM",
        help="trusted TSA root certificates (repeatable)",
    )
    show.add_argument(
        "--intermediate",
        action="append",
        default=[],
        metavar="PEM",
        help="intermediate certificates",
    )
    add_json_flag(show)
    show.set_defaults(handler=_show)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise SecmarkError(f"cannot read {path}: {error.strerror}") from None


def _timestamp(args: argparse.Namespace) -> int:
    envelope = Envelope.from_json(_read(args.document))
    if envelope.payload_type != PAYLOAD_TYPE:
        raise EncodingError(f"{args.document} is not a secmark document")
    subject = hashlib.sha256(envelope.payload).hexdigest()
    if args.out.exists():
        raise SecmarkError(f"{args.out} already exists; choose another path")
    evidence = collect_evidence(subject, args.tsa, hash_algorithm=args.hash, timeout=args.timeout)
    write_atomic(args.out, evidence.to_json(), mode=PUBLIC_FILE_MODE)
    emit(
        args,
        [f"timestamped {subject} by {len(args.tsa)} TSA(s)", f"evidence: {args.out}"],
        {"subject": subject, "evidence": str(args.out), "tokens": len(args.tsa)},
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    signed = open_commitment(_read(args.commitment))
    commitment = signed.document
    data: dict[str, Any] = {
        "commitment_id": signed.digest,
        "owner": commitment.owner_key_id,
        "family": commitment.family.to_fields(),
        "labels": commitment.labels.to_fields(),
        "size": commitment.size,
        "pool_root": commitment.pool_root,
        "model_label": commitment.model_label,
        "created_by_owner_clock": format_time(commitment.created),
        "signature": "valid",
    }
    lines = [
        f"commitment id: {signed.digest}",
        f"owner:         {commitment.owner_key_id} (signature valid)",
        f"family:        {json.dumps(commitment.family.to_fields(), sort_keys=True)}",
        f"labels:        {json.dumps(commitment.labels.to_fields(), sort_keys=True)}",
        f"triggers:      N = {commitment.size}",
        f"model label:   {commitment.model_label}",
        f"created:       {format_time(commitment.created)} (the owner's own clock: not evidence)",
    ]
    if args.evidence is not None:
        if not args.trust:
            raise SecmarkError("--evidence needs at least one --trust root certificate")
        evidence = TimestampEvidence.from_json(_read(args.evidence))
        if evidence.subject != signed.digest:
            raise SecmarkError(f"{args.evidence} dates {evidence.subject}, not this commitment")
        trust = TrustStore.from_pem_files(args.trust, args.intermediate)
        check = evidence.check(trust)
        trusted = check.trusted_time
        lines.append("timestamps:")
        lines.extend(f"  {line}" for line in evidence.describe(check))
        lines.append(
            f"trusted time:  {format_time(trusted)} (earliest verified token)"
            if trusted
            else "trusted time:  NONE: no token verifies against the given roots"
        )
        data["timestamps"] = [
            {
                "source": result.source,
                "gen_time": format_time(result.verified.gen_time) if result.verified else None,
                "tsa": result.verified.tsa_subject if result.verified else None,
                "error": result.error,
            }
            for result in check.tokens
        ]
        data["trusted_time"] = format_time(trusted) if trusted else None
        emit(args, lines, data)
        return 0 if trusted else 7
    emit(args, lines, data)
    return 0
