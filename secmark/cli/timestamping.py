"""``secmark timestamp`` and ``secmark commitment show``."""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
from pathlib import Path
from typing import Any, Final

from secmark.cli.output import add_json_flag, emit
from secmark.cli.streams import (
    UsageError,
    add_input,
    add_output,
    describe,
    is_stdio,
    read_input,
    write_output,
)
from secmark.encoding import format_time
from secmark.errors import EncodingError, SecmarkError, TimestampError
from secmark.files import PUBLIC_FILE_MODE, write_atomic
from secmark.messages import PAYLOAD_TYPE, Envelope
from secmark.messages.commitment import open_commitment
from secmark.timestamp import (
    DEFAULT_TIMEOUT,
    MAX_TOKEN_SIZE,
    TrustStore,
    normalize_token,
    verify_timestamp,
    verify_timestamp_unanchored,
)
from secmark.timestamp.evidence import (
    MAX_EVIDENCE_TOKENS,
    EvidenceToken,
    TimestampEvidence,
    collect_evidence,
)

_MAX_SOURCE_LENGTH: Final = 512
_EXPORT_SUFFIX: Final = ".tsr"
_EXPORT_MESSAGE: Final = "message"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    timestamp = subparsers.add_parser(
        "timestamp",
        help="obtain RFC 3161 timestamps of a document (a commitment, a release) from TSAs",
        description=(
            "Asks every --tsa to timestamp the document's id (the SHA-256 of its payload), "
            "adds every --import token file, verifies every token, and writes them as "
            "evidence. Nothing is written unless every TSA answered and every token "
            "verifies: against the --trust roots when given; without --trust only the "
            "token's own signature and the certificate chain it embeds are checked, which "
            "anyone can produce, and the output says so. With --export, writes the tokens "
            "of existing evidence as DER files for other tools (openssl ts -verify). "
            "The document is not verified here: timestamp only your own."
        ),
    )
    add_input(timestamp, "document", help="a secmark document (DSSE envelope)")
    timestamp.add_argument(
        "--tsa", action="append", default=[], metavar="URL", help="a TSA URL (repeatable)"
    )
    add_input(
        timestamp,
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="TOKEN",
        help=(
            "a token another tool obtained for the document (a DER TimeStampResp such as "
            "`openssl ts -reply` writes, or a bare TimeStampToken); repeatable"
        ),
    )
    add_input(
        timestamp,
        "--export",
        metavar="EVIDENCE",
        help="write the tokens of this evidence (of the document) as DER files into --out DIR",
    )
    timestamp.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="PEM",
        help="trusted TSA root certificates to verify the tokens against (repeatable)",
    )
    timestamp.add_argument(
        "--intermediate",
        action="append",
        default=[],
        metavar="PEM",
        help="intermediate certificates (with --trust)",
    )
    timestamp.add_argument(
        "--hash", choices=("sha256", "sha512"), default="sha256", help="imprint algorithm"
    )
    timestamp.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds the whole exchange with each TSA may take ({DEFAULT_TIMEOUT:g})",
    )
    add_output(
        timestamp,
        "--out",
        required=True,
        help="where to write the evidence (with --export: a directory for the token files)",
    )
    add_json_flag(timestamp)
    timestamp.set_defaults(handler=_timestamp)

    commitment = subparsers.add_parser("commitment", help="inspect commitments")
    commands = commitment.add_subparsers(metavar="COMMAND", required=True)
    show = commands.add_parser(
        "show", help="verify a commitment's signature (and timestamps) and print it"
    )
    add_input(show, "commitment", help="the signed commitment")
    add_input(show, "--evidence", help="timestamp evidence to verify")
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
    return read_input(path)


def _timestamp(args: argparse.Namespace) -> int:
    envelope = Envelope.from_json(_read(args.document))
    if envelope.payload_type != PAYLOAD_TYPE:
        raise EncodingError(f"{args.document} is not a secmark document")
    subject = hashlib.sha256(envelope.payload).hexdigest()
    if args.export is not None:
        if args.tsa or args.imports:
            raise SecmarkError("--export writes existing evidence out; give no --tsa or --import")
        return _export(args, subject)
    if not args.tsa and not args.imports:
        raise SecmarkError("give at least one --tsa URL or --import TOKEN file")
    if args.intermediate and not args.trust:
        raise SecmarkError("--intermediate helps only with --trust roots")
    if not 1 <= len(args.tsa) + len(args.imports) <= MAX_EVIDENCE_TOKENS:
        raise SecmarkError(f"evidence holds at most {MAX_EVIDENCE_TOKENS} tokens")
    if not is_stdio(args.out) and args.out.exists():
        raise SecmarkError(f"{args.out} already exists; choose another path")
    trust = TrustStore.from_pem_files(args.trust, args.intermediate) if args.trust else None
    imported = [_import_token(path) for path in args.imports]
    tokens: list[EvidenceToken] = []
    if args.tsa:
        obtained = collect_evidence(
            subject, args.tsa, hash_algorithm=args.hash, timeout=args.timeout
        )
        tokens.extend(obtained.tokens)
    evidence = TimestampEvidence(subject, (*tokens, *imported))
    checks = _check_before_storing(evidence, trust)
    write_output(args.out, evidence.to_json())
    lines = [f"timestamped {subject} by {len(evidence.tokens)} token(s)"]
    lines.extend(f"  {check['line']}" for check in checks)
    if trust is None:
        lines.append(
            "NOT verified against trusted roots (no --trust): only each token's signature "
            "and the certificates it embeds were checked, which anyone can produce; "
            "give --trust ROOT.pem to check who issued it"
        )
    lines.append(f"evidence: {args.out}")
    emit(
        args,
        lines,
        {
            "subject": subject,
            "evidence": str(args.out),
            "tokens": len(evidence.tokens),
            "verified_against_trust": trust is not None,
            "checks": [{k: v for k, v in check.items() if k != "line"} for check in checks],
        },
    )
    return 0


def _import_token(path: Path) -> EvidenceToken:
    """A token file as evidence: a TimeStampResp (or bare token), unsigned SETs in DER order."""
    if not is_stdio(path):
        try:
            size = path.stat().st_size
        except OSError as error:
            raise SecmarkError(f"cannot read {path}: {error.strerror}") from None
        if size > MAX_TOKEN_SIZE:
            raise TimestampError(f"{path} is {size} bytes, more than the {MAX_TOKEN_SIZE} allowed")
    data = read_input(path, max_size=MAX_TOKEN_SIZE, what="token")
    token = normalize_token(data, what=f"the token file {describe(path)}")
    name = "standard input" if is_stdio(path) else path.name
    return EvidenceToken(f"imported from {name}"[:_MAX_SOURCE_LENGTH], token)


def _check_before_storing(
    evidence: TimestampEvidence, trust: TrustStore | None
) -> list[dict[str, Any]]:
    """Verify every token as it will be stored; TimestampError for the first that fails.

    Against ``trust`` when given (the full check of specs/timestamp.md 5.3);
    otherwise the token's own signature and its embedded chain
    (:func:`verify_timestamp_unanchored`).
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    checks: list[dict[str, Any]] = []
    for entry in evidence.tokens:
        try:
            if trust is not None:
                verified = verify_timestamp(entry.token, evidence.message, trust, now=now)
                checks.append(
                    {
                        "source": entry.source,
                        "gen_time": format_time(verified.gen_time),
                        "tsa": verified.tsa_subject,
                        "root_sha256": verified.root_certificate_sha256,
                        "line": f"{format_time(verified.gen_time)}  verified  {entry.source} "
                        f"({verified.tsa_subject}, root SHA-256 "
                        f"{verified.root_certificate_sha256})",
                    }
                )
            else:
                intact = verify_timestamp_unanchored(entry.token, evidence.message, now=now)
                checks.append(
                    {
                        "source": entry.source,
                        "gen_time": format_time(intact.gen_time),
                        "tsa": intact.tsa_subject,
                        "chain": list(intact.chain),
                        "self_signed_top": intact.self_signed_top,
                        "line": f"{format_time(intact.gen_time)}  intact, NOT anchored  "
                        f"{entry.source}: chain {intact.describe_chain()}",
                    }
                )
        except TimestampError as error:
            against = "against the --trust roots" if trust is not None else "(signature, chain)"
            raise TimestampError(
                f"nothing written: the token of {entry.source} does not verify {against}: {error}"
            ) from None
    return checks


def _export(args: argparse.Namespace, subject: str) -> int:
    """Write the message and each token of the evidence (``N.tsr``) into ``--out``."""
    if is_stdio(args.out):
        raise UsageError("--export writes several files: give --out a directory, not -")
    evidence = TimestampEvidence.from_json(_read(args.export))
    if evidence.subject != subject:
        raise SecmarkError(f"{args.export} dates {evidence.subject}, not {args.document}")
    directory: Path = args.out
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SecmarkError(f"cannot create {directory}: {error.strerror}") from None
    message_path = directory / _EXPORT_MESSAGE
    write_atomic(message_path, evidence.message, mode=PUBLIC_FILE_MODE)
    written = []
    lines = [f"{message_path}  the message every token dates (the 32 bytes of {subject})"]
    for number, entry in enumerate(evidence.tokens, start=1):
        path = directory / f"{number}{_EXPORT_SUFFIX}"
        write_atomic(path, entry.token, mode=PUBLIC_FILE_MODE)
        written.append({"file": str(path), "source": entry.source})
        lines.append(f"{path}  {entry.source}")
    lines.append(
        "written as stored, not verified here; with OpenSSL: openssl ts -verify "
        f"-data {message_path} -in {directory / ('N' + _EXPORT_SUFFIX)} -CAfile ROOT.pem"
    )
    emit(args, lines, {"subject": subject, "message": str(message_path), "tokens": written})
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
