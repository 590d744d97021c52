"""The owner's and the judge's commands: ``release``, ``claim``, ``reveal``,
``verify-bundle``. With ``--arbiter-url``, ``claim`` and ``reveal`` talk to
the arbiter service (:mod:`secmark.cli.remote`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from secmark.cli.derive import open_pool, open_responses
from secmark.cli.extraction import report_extraction_bundle
from secmark.cli.output import add_json_flag, emit, printable
from secmark.cli.passphrase import open_key_file
from secmark.cli.remote import add_arbiter_url, file_claim_remotely, reveal_remotely
from secmark.cli.streams import (
    UsageError,
    add_input,
    add_output,
    read_file,
    read_input,
    write_new,
)
from secmark.cli.verification import EXIT_SELF_ASSERTED, VERIFY_EXIT_STATUSES
from secmark.errors import SecmarkError
from secmark.messages.commitment import open_commitment
from secmark.messages.identity import open_identity
from secmark.messages.release import (
    MODEL_SIGNING_FILES_SHA256,
    SHA256_FILE,
    create_release,
    model_file_digest,
)
from secmark.protocol.bundle import BundleReport, examine_bundle
from secmark.protocol.bundle_report import BundleStatus
from secmark.protocol.extraction_bundle import is_extraction_bundle
from secmark.protocol.owner import answer_challenge, file_claim
from secmark.provenance import model_folder_digest, verify_model_signature
from secmark.report import render_text, report_data
from secmark.timestamp import MAX_CLOCK_SKEW, TrustStore

_VERIFY_DESCRIPTION = f"""\
Re-check a verdict bundle offline: every signature, timestamp, VRF proof,
derivation and figure. Without --trust the timestamps can only be checked
against the TSA roots inside the bundle, which its maker may have made: the
time is then SELF-ASSERTED, and the command says so and exits with status
{EXIT_SELF_ASSERTED}. Without --arbiter any arbiter's signature is accepted, and
the report says the arbiter is not pinned. A timestamp dated more than
{MAX_CLOCK_SKEW.total_seconds() / 60:g} minutes after this machine's clock does not verify.

The report lists every named check with its result (passed, FAILED, not
checked) and whose word it rests on; a refused bundle is reported up to its
failing check, with no outcome. --json prints the same report as one
secmark.bundle-report object (specs/report.md; schema bundle-report).
"""


def _owner_options(parser: argparse.ArgumentParser, *, remote: bool = False) -> None:
    parser.add_argument("--key", required=True, type=Path, help="the owner's key file")
    parser.add_argument("--passphrase-file", help="read the key file's passphrase from here")
    add_input(parser, "--commitment", required=True, help="the signed commitment")
    add_output(
        parser,
        "--out",
        required=not remote,
        help="where to write the result" + (" (optional with --arbiter-url)" if remote else ""),
    )
    add_json_flag(parser)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    release = subparsers.add_parser(
        "release", help="register the watermarked model as released under a commitment"
    )
    _owner_options(release)
    model = release.add_mutually_exclusive_group(required=True)
    model.add_argument("--model-file", type=Path, help="the released model file")
    model.add_argument(
        "--model-dir",
        type=Path,
        help="the released model folder, digested as OpenSSF model-signing does "
        "(needs the provenance extra)",
    )
    release.add_argument(
        "--sigstore-bundle",
        type=Path,
        metavar="FILE",
        help="with --model-dir: a model-signing signature over the folder, checked before "
        "registering (it may lie inside the folder; it is then left out of the model)",
    )
    release.add_argument(
        "--sigstore-public-key",
        type=Path,
        metavar="PEM",
        help="the elliptic-curve public key the --sigstore-bundle must verify under",
    )
    release.add_argument("--name", required=True)
    release.add_argument("--version", required=True, dest="model_version")
    release.set_defaults(handler=_release)

    claim = subparsers.add_parser("claim", help="file a claim against a suspect with an arbiter")
    _owner_options(claim, remote=True)
    add_input(claim, "--evidence", required=True, help="the commitment's timestamp evidence")
    add_input(claim, "--release", help="the registered release")
    add_input(claim, "--release-evidence", help="the release's timestamp evidence")
    claim.add_argument(
        "--suspect",
        required=True,
        help="suspect reference: oip:URL (an inference endpoint), openai:URL#MODEL (a language "
        "model behind an OpenAI-compatible API), json:URL (another JSON API) or sha256:HEX "
        "(its weights file)",
    )
    claim.add_argument(
        "--arbiter", required=True, type=Path, help="the arbiter's identity document"
    )
    add_arbiter_url(claim, help="file the claim at the arbiter service there and print its case id")
    claim.set_defaults(handler=_claim)

    reveal = subparsers.add_parser(
        "reveal", help="answer a challenge: check it, then reveal exactly its indices, sealed"
    )
    add_input(
        reveal, "challenge", nargs="?", help="the arbiter's challenge (not with --arbiter-url)"
    )
    _owner_options(reveal, remote=True)
    reveal.add_argument(
        "--arbiter", required=True, type=Path, help="the arbiter's identity document"
    )
    reveal.add_argument(
        "--pool", type=Path, help="the committed pool as one .npy array (pool and overlay families)"
    )
    reveal.add_argument(
        "--responses",
        type=Path,
        help="the committed response list, one per line (responses labels): revealed whole",
    )
    add_arbiter_url(
        reveal,
        help="fetch the challenge of --case from the arbiter service there, and submit the reveal",
    )
    reveal.add_argument("--case", metavar="ID", help="with --arbiter-url: the case's id")
    reveal.set_defaults(handler=_reveal)

    verify = subparsers.add_parser(
        "verify-bundle",
        help="re-check a verdict bundle offline and print a report",
        description=_VERIFY_DESCRIPTION,
        epilog=VERIFY_EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input(verify, "bundle", help="the verdict bundle")
    verify.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="PEM",
        help="your own trusted TSA roots (without it the time is self-asserted)",
    )
    verify.add_argument(
        "--arbiter",
        metavar="KEY_ID",
        help="pin the arbiter: its key id (64 lower-case hex digits, as its identity "
        "document states it); a bundle signed by another arbiter is refused",
    )
    add_json_flag(verify)
    verify.set_defaults(handler=_verify_bundle)


def _release(args: argparse.Namespace) -> int:
    commitment = open_commitment(read_input(args.commitment, what="commitment"))
    keys = open_key_file(args.key, args.passphrase_file)
    if keys.key_id != commitment.document.owner_key_id:
        raise SecmarkError("this key is not the commitment's owner")
    if (args.sigstore_bundle is None) != (args.sigstore_public_key is None):
        raise SecmarkError("give --sigstore-bundle and --sigstore-public-key together")
    if args.model_file is not None:
        if args.sigstore_bundle is not None:
            raise SecmarkError("--sigstore-bundle checks a folder: register it with --model-dir")
        algorithm, digest = SHA256_FILE, model_file_digest(args.model_file)
    elif args.sigstore_bundle is not None:
        algorithm = MODEL_SIGNING_FILES_SHA256
        digest = verify_model_signature(
            args.model_dir, bundle=args.sigstore_bundle, public_key=args.sigstore_public_key
        )
    else:
        algorithm, digest = MODEL_SIGNING_FILES_SHA256, model_folder_digest(args.model_dir)
    signed = create_release(
        keys,
        commitment_id=commitment.digest,
        model_digest=digest,
        model_digest_algorithm=algorithm,
        model_name=args.name,
        model_version=args.model_version,
    )
    write_new(args.out, signed.to_json())
    emit(
        args,
        [
            f"release id:   {signed.digest}",
            f"model digest: {digest} ({algorithm})",
            *(
                []
                if args.sigstore_bundle is None
                else [f"model-signing signature {args.sigstore_bundle}: verified, same digest"]
            ),
            "next: timestamp it (secmark timestamp)",
        ],
        {
            "release_id": signed.digest,
            "model_digest": digest,
            "model_digest_algorithm": algorithm,
            "file": str(args.out),
        },
    )
    return 0


def _claim(args: argparse.Namespace) -> int:
    if (args.release is None) != (args.release_evidence is None):
        raise SecmarkError("give --release and --release-evidence together")
    if args.out is None and args.arbiter_url is None:
        raise UsageError("give --out (where to write the claim), --arbiter-url, or both")
    keys = open_key_file(args.key, args.passphrase_file)
    arbiter = open_identity(read_file(args.arbiter))
    claim = file_claim(
        keys,
        commitment=read_input(args.commitment, what="commitment"),
        commitment_evidence=read_input(args.evidence, what="evidence"),
        suspect=args.suspect,
        arbiter=arbiter,
        release=None if args.release is None else read_input(args.release, what="release"),
        release_evidence=None
        if args.release_evidence is None
        else read_input(args.release_evidence, what="release evidence"),
    )
    if args.out is not None:
        write_new(args.out, claim)
    if args.arbiter_url is not None:
        return file_claim_remotely(args, keys, claim)
    emit(args, [f"claim written to {args.out}; send it to the arbiter"], {"file": str(args.out)})
    return 0


def _check_reveal_usage(args: argparse.Namespace) -> None:
    if args.arbiter_url is not None:
        if args.case is None or args.challenge is not None:
            raise UsageError("with --arbiter-url give --case (the challenge is fetched), no file")
    elif args.challenge is None or args.out is None or args.case is not None:
        raise UsageError("give the challenge and --out, or --arbiter-url and --case")


def _reveal(args: argparse.Namespace) -> int:
    _check_reveal_usage(args)
    keys = open_key_file(args.key, args.passphrase_file)
    commitment = open_commitment(
        read_input(args.commitment, what="commitment"), owner_key_id=keys.key_id
    )
    arbiter = open_identity(read_file(args.arbiter))
    pool = open_pool(args.pool, commitment.document)
    responses = open_responses(args.responses, commitment.document)

    def answer(challenge: bytes) -> bytes:
        return answer_challenge(
            keys, commitment, challenge, arbiter, pool=pool, responses=responses
        )

    if args.arbiter_url is not None:
        return reveal_remotely(args, keys, answer)
    reveal = answer(read_input(args.challenge, what="challenge"))
    write_new(args.out, reveal)
    emit(
        args,
        [f"reveal written to {args.out} (sealed to arbiter {arbiter.document.key_id})"],
        {"file": str(args.out)},
    )
    return 0


def bundle_exit_status(report: BundleReport) -> int:
    """The status ``verify-bundle`` (and ``report``) exits with for ``report``:
    0 verified, :data:`EXIT_SELF_ASSERTED` when every check passed on the
    bundle's own TSA roots, the failed check's error code otherwise."""
    if report.failure is not None:
        return report.failure.exit_code
    return 0 if report.status is BundleStatus.VERIFIED else EXIT_SELF_ASSERTED


def print_refusal(report: BundleReport) -> None:
    """The one error line on standard error for a bundle that failed a check."""
    if report.failure is not None:
        print(f"secmark: error: {printable(report.failure.message)}", file=sys.stderr)


def _verify_bundle(args: argparse.Namespace) -> int:
    bundle = read_input(args.bundle, what="bundle")
    if is_extraction_bundle(bundle):
        return report_extraction_bundle(args, bundle)
    trust = TrustStore.from_pem_files(args.trust) if args.trust else None
    report = examine_bundle(bundle, trust, arbiter_key_id=args.arbiter)
    status = bundle_exit_status(report)
    # A refused bundle is reported too, with its failed check, never as a pass.
    emit(args, render_text(report), report_data(report, exit_code=status))
    print_refusal(report)
    return status
