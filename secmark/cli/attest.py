"""``secmark attest``: secmark documents as signed in-toto Statements."""

from __future__ import annotations

import argparse
from pathlib import Path

from secmark.cli.output import add_json_flag, emit
from secmark.cli.passphrase import open_key_file
from secmark.cli.streams import add_input, add_output, read_file, read_input, write_new
from secmark.messages.identity import open_identity
from secmark.provenance import attest, open_statement


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "attest", help="export a commitment, release or verdict as a signed in-toto Statement"
    )
    steps = parser.add_subparsers(title="steps", metavar="STEP", required=True)

    export = steps.add_parser(
        "export", help="sign a statement of a document you signed (specs/provenance.md)"
    )
    add_input(export, "document", help="the signed commitment, release or verdict")
    export.add_argument("--key", required=True, type=Path, help="the signer's key file")
    export.add_argument("--passphrase-file", help="read the key file's passphrase from here")
    add_output(export, "--out", required=True, help="where to write the statement")
    add_json_flag(export)
    export.set_defaults(handler=_export)

    verify = steps.add_parser(
        "verify", help="verify a statement's signer and structure, and read its document back"
    )
    add_input(verify, "statement", help="the signed statement")
    verify.add_argument(
        "--identity", required=True, type=Path, help="the signer's identity document"
    )
    add_json_flag(verify)
    verify.set_defaults(handler=_verify)


def _export(args: argparse.Namespace) -> int:
    document = read_input(args.document, what="document")
    keys = open_key_file(args.key, args.passphrase_file)
    statement = attest(document, keys)
    write_new(args.out, statement)
    emit(args, [f"statement written to {args.out}"], {"file": str(args.out)})
    return 0


def _verify(args: argparse.Namespace) -> int:
    identity = open_identity(read_file(args.identity))
    attestation = open_statement(
        read_input(args.statement, what="statement"), identity.document.public_keys
    )
    emit(
        args,
        [
            f"verified: {attestation.document.TYPE} {attestation.document_id}",
            f"signed by: {attestation.signer_key_id}",
            f"subject:   {attestation.subject_name} sha256:{attestation.subject_digest}",
        ],
        {
            "document_type": attestation.document.TYPE,
            "document_id": attestation.document_id,
            "predicate_type": attestation.predicate_type,
            "signer": attestation.signer_key_id,
            "subject_name": attestation.subject_name,
            "subject_sha256": attestation.subject_digest,
        },
    )
    return 0
