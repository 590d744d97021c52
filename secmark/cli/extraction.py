"""Extraction disputes from the command line: ``extraction-claim`` and
``arbiter extraction``.

The owner claims that a suspect was trained on the marked answers one client
account received (``extraction-claim``, with the extract ``secmark log
extract`` wrote); the arbiter checks the claim, queries the suspect, decides
and writes the bundle (``arbiter extraction``, registered under ``secmark
arbiter`` by :func:`add_arbiter_command`); a judge re-checks the bundle
offline with ``verify-bundle``, which recognises an extraction bundle and
reports it with :func:`report_extraction_bundle`.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path

from secmark.cli.output import add_json_flag, emit, printable
from secmark.cli.passphrase import open_key_file
from secmark.cli.querylog import parse_account, read_policy
from secmark.cli.streams import add_output, is_stdio, read_file, write_new
from secmark.cli.suspects import add_suspect_arguments, open_suspect, requests_sent
from secmark.cli.verification import EXIT_SELF_ASSERTED
from secmark.errors import EncodingError, ProtocolError, SecmarkError, SignatureError
from secmark.files import read_regular_file
from secmark.messages.checkpoint import open_checkpoint
from secmark.messages.extraction import MAX_EXTRACTION_CLAIM_SIZE, create_extraction_claim
from secmark.messages.identity import open_identity
from secmark.protocol.arbiter import Arbiter
from secmark.protocol.bundle_report import TimeTrust
from secmark.protocol.extraction import ExtractionArbiter
from secmark.protocol.extraction_bundle import (
    ExtractionReport,
    build_extraction_bundle,
    examine_extraction_bundle,
)
from secmark.protocol.suspects import canonical_suspect
from secmark.report import render_extraction_text
from secmark.serving.extract import MAX_EXTRACT_SIZE, ClientExtract
from secmark.timestamp import TrustStore
from secmark.timestamp.evidence import TimestampEvidence

__all__ = [
    "add_arbiter_command",
    "extraction_exit_status",
    "register",
    "report_extraction_bundle",
]

ArbiterOpener = Callable[[Path, str | None], Arbiter]
"""Opens the arbiter of a working folder, with a passphrase file or None."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    claim = subparsers.add_parser(
        "extraction-claim",
        help="claim that a suspect was trained on the marked answers of one client account",
        description=(
            "Signs an extraction claim as the serving policy's owner: the policy and its "
            "timestamp evidence, the log extract ('secmark log extract') by digest with its "
            "checkpoint's timestamp evidence, the client account, the suspect and the "
            "arbiter. Send the claim and the extract to the arbiter."
        ),
    )
    claim.add_argument("--key", required=True, type=Path, help="the owner's key file")
    claim.add_argument("--passphrase-file", help="read the key file's passphrase from here")
    claim.add_argument("--policy", required=True, type=Path, help="the signed serving policy")
    claim.add_argument(
        "--policy-evidence", required=True, type=Path, help="the policy's timestamp evidence"
    )
    claim.add_argument(
        "--extract", required=True, type=Path, help="the client account's log extract"
    )
    claim.add_argument(
        "--checkpoint-evidence",
        required=True,
        type=Path,
        help="the timestamp evidence of the extract's checkpoint",
    )
    claim.add_argument(
        "--client", required=True, metavar="ACCOUNT", help="the client account (64 hex digits)"
    )
    claim.add_argument(
        "--suspect",
        required=True,
        help="suspect reference, canonical: oip:URL (an inference endpoint), json:URL (another "
        "JSON API) or sha256:HEX (its weights file)",
    )
    claim.add_argument(
        "--arbiter", required=True, type=Path, help="the arbiter's identity document"
    )
    add_output(claim, "--out", required=True, help="where to write the claim")
    add_json_flag(claim)
    claim.set_defaults(handler=_claim)


def add_arbiter_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], open_arbiter: ArbiterOpener
) -> None:
    """Add ``extraction`` to the sub-commands of ``secmark arbiter``; it opens
    the arbiter's working folder with ``open_arbiter``."""
    step = commands.add_parser(
        "extraction",
        help="decide an extraction claim: check it, query the suspect, write the bundle",
        description=(
            "Checks an extraction claim and its log extract against the arbiter's trusted "
            "TSA roots, tests the suspect on the account's marked inputs among its logged "
            "unmarked ones, signs the verdict and writes the bundle to --out. One claim per "
            "policy, account and suspect is decided in a working folder. Nothing is written "
            "when a check or the query fails."
        ),
    )
    step.add_argument("folder", type=Path, help="the arbiter's working folder")
    step.add_argument("--passphrase-file", help="read the key file's passphrase from here")
    step.add_argument("--claim", required=True, type=Path, help="the extraction claim")
    step.add_argument("--extract", required=True, type=Path, help="the claim's log extract")
    add_output(step, "--out", required=True, help="where to write the extraction bundle")
    add_suspect_arguments(step)
    add_json_flag(step)
    step.set_defaults(handler=lambda args: _decide(args, open_arbiter))


def _read_extract(path: Path) -> bytes:
    """The bytes of the log extract in the file ``path`` (at most
    :data:`~secmark.serving.extract.MAX_EXTRACT_SIZE`)."""
    return read_regular_file(path, max_size=MAX_EXTRACT_SIZE, what="log extract")


def _evidence_of(path: Path, subject: str, what: str) -> bytes:
    """The timestamp evidence in ``path``, which must date the document ``subject``.

    Raises:
        EncodingError: not timestamp evidence.
        ProtocolError: evidence of another document.
    """
    data = read_file(path)
    dated = TimestampEvidence.from_json(data).subject
    if dated != subject:
        raise ProtocolError(
            f"{path} dates document {dated}, not the {what} {subject}: give the evidence "
            f"'secmark timestamp' wrote for the {what}"
        )
    return data


def _claim(args: argparse.Namespace) -> int:
    client = parse_account(args.client)
    suspect = canonical_suspect(args.suspect)
    if suspect != args.suspect:
        raise EncodingError(
            f"the suspect reference {printable(args.suspect)} is not canonical: write it as "
            f"{suspect} (the arbiter compares references character for character)"
        )
    policy_bytes, policy = read_policy(args.policy)
    extract_bytes = _read_extract(args.extract)
    extract = ClientExtract.from_bytes(extract_bytes)
    if extract.client != client:
        raise ProtocolError(
            f"{args.extract} is the extract of client account {extract.client}, not of "
            f"{client}: ask the log operator for the extract of {client}"
        )
    checkpoint = open_checkpoint(extract.checkpoint, policy.document.operator)
    policy_evidence = _evidence_of(args.policy_evidence, policy.digest, "serving policy")
    checkpoint_evidence = _evidence_of(
        args.checkpoint_evidence, checkpoint.digest, "extract's checkpoint"
    )
    arbiter = open_identity(read_file(args.arbiter)).document
    keys = open_key_file(args.key, args.passphrase_file)
    if keys.key_id != policy.document.owner.key_id:
        raise SignatureError(
            f"this key ({keys.key_id}) is not the serving policy's owner "
            f"({policy.document.owner.key_id}); sign with the owner's key file"
        )
    signed = create_extraction_claim(
        keys,
        policy=policy_bytes,
        policy_evidence=policy_evidence,
        checkpoint_evidence=checkpoint_evidence,
        extract_sha256=hashlib.sha256(extract_bytes).hexdigest(),
        client=client,
        suspect=suspect,
        arbiter=arbiter.key_id,
    )
    write_new(args.out, signed.to_json())
    emit(
        args,
        [
            f"claim id:   {signed.digest}",
            f"written to: {args.out}; send it with {args.extract} to arbiter {arbiter.key_id}",
        ],
        {"claim_id": signed.digest, "arbiter": arbiter.key_id, "file": str(args.out)},
    )
    return 0


def _decide(args: argparse.Namespace, open_arbiter: ArbiterOpener) -> int:
    if args.weights_file is not None:
        raise SecmarkError(
            "an extraction claim is tested by querying the suspect: name it with "
            "--suspect-config (or --url and --model) or --torch-factory and --weights"
        )
    # The decision is recorded in the folder: refuse now rather than lose its bundle.
    if not is_stdio(args.out) and args.out.exists():
        raise SecmarkError(f"{args.out} already exists; choose another path")
    arbiter = open_arbiter(args.folder, args.passphrase_file)
    extraction = ExtractionArbiter(
        arbiter.keys, arbiter.trust, args.folder, alpha=arbiter.policy.alpha
    )
    claim = read_regular_file(
        args.claim, max_size=MAX_EXTRACTION_CLAIM_SIZE, what="extraction claim"
    )
    extract = _read_extract(args.extract)
    case = extraction.check_claim(claim, extract)
    queries = min(len(case.extract.marked), extraction.max_tested) + len(case.extract.unmarked)
    with open_suspect(args, None, total=queries) as suspect:
        decision = extraction.decide(case, suspect)
    sent = requests_sent(suspect)
    bundle = build_extraction_bundle(
        arbiter.identity.to_json(), arbiter.trust, claim, extract, decision
    )
    write_new(args.out, bundle)
    verdict = decision.verdict.document
    figures = verdict.figures
    emit(
        args,
        [
            f"verdict: {verdict.outcome}",
            (
                f"{figures.matches} of {figures.trials} marked answers given "
                f"(threshold {figures.threshold})"
            ),
            *([] if sent is None else [f"requests: {sent} sent to {suspect.describe()}"]),
            f"bundle: {args.out}",
        ],
        {
            "claim_id": case.claim.digest,
            "outcome": verdict.outcome,
            "matches": figures.matches,
            "trials": figures.trials,
            "threshold": figures.threshold,
            "requests_sent": sent,
            "bundle": str(args.out),
        },
    )
    return 0


def extraction_exit_status(report: ExtractionReport) -> int:
    """The status ``verify-bundle`` exits with for an extraction bundle, as for any bundle:
    0 when every check passed against the judge's roots,
    :data:`~secmark.cli.verification.EXIT_SELF_ASSERTED` when they passed on the
    bundle's own roots, the failed check's error code otherwise."""
    if report.error is not None:
        return report.error.exit_code
    return EXIT_SELF_ASSERTED if report.time_trust is TimeTrust.SELF_ASSERTED else 0


def report_extraction_bundle(args: argparse.Namespace, bundle: bytes) -> int:
    """Examine an extraction bundle with the ``--trust`` and ``--arbiter`` of
    ``args``, print the report (text or ``--json``), and return the exit status
    (:func:`extraction_exit_status`)."""
    trust = TrustStore.from_pem_files(args.trust) if args.trust else None
    report = examine_extraction_bundle(bundle, trust=trust, arbiter_key_id=args.arbiter)
    status = extraction_exit_status(report)
    # A refused bundle is reported too, with its failed check, never as a pass.
    emit(args, render_extraction_text(report), {**report.to_data(), "exit_code": status})
    if report.error is not None:
        print(f"secmark: error: {printable(str(report.error))}", file=sys.stderr)
    return status
