"""The owner's and the judge's commands: ``release``, ``claim``, ``reveal``,
``verify-bundle``."""

from __future__ import annotations

import argparse
from pathlib import Path

from secmark.cli.derive import open_pool
from secmark.cli.output import add_json_flag, emit
from secmark.cli.passphrase import open_key_file
from secmark.errors import SecmarkError
from secmark.files import PUBLIC_FILE_MODE, read_regular_file, write_atomic
from secmark.messages.commitment import open_commitment
from secmark.messages.identity import open_identity
from secmark.messages.release import create_release, model_file_digest
from secmark.protocol.bundle import TimeTrust, verify_bundle
from secmark.protocol.owner import answer_challenge, file_claim
from secmark.timestamp import MAX_CLOCK_SKEW, TrustStore

EXIT_SELF_ASSERTED = 10
"""``verify-bundle``'s status when every check passed but no ``--trust`` was
given: the times rest on TSA roots inside the bundle, so nothing was verified
against the judge's own trust."""

_VERIFY_DESCRIPTION = f"""\
Re-check a verdict bundle offline: every signature, timestamp, VRF proof,
derivation and figure. Without --trust the timestamps can only be checked
against the TSA roots inside the bundle, which its maker may have made: the
time is then SELF-ASSERTED, and the command says so and exits with status
{EXIT_SELF_ASSERTED}. Without --arbiter any arbiter's signature is accepted, and
the report says the arbiter is not pinned. A timestamp dated more than
{MAX_CLOCK_SKEW.total_seconds() / 60:g} minutes after this machine's clock does not verify.
"""

_VERIFY_EXIT_STATUSES = f"""\
exit status:
  0   verified: every check passed, timestamps against your --trust roots
      (if --arbiter is not given, the report says the arbiter is not pinned)
  {EXIT_SELF_ASSERTED}  every check passed, but the time is SELF-ASSERTED: no --trust was
      given, the timestamps verify only against roots inside the bundle
  3, 4, 5, 7, 8  refused: malformed bundle, bad signature or another arbiter
      than --arbiter, bad proof or figure, timestamp that does not verify
      (or is dated in the future), protocol mismatch
"""


def read_file(path: Path) -> bytes:
    """The bytes of a document the user named (a regular file, refused
    before reading when it is a FIFO, a device or over 1 GiB)."""
    return read_regular_file(path)


def write_new(path: Path, data: bytes) -> None:
    if path.exists():
        raise SecmarkError(f"{path} already exists; choose another path")
    write_atomic(path, data, mode=PUBLIC_FILE_MODE)


def _owner_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", required=True, type=Path, help="the owner's key file")
    parser.add_argument("--passphrase-file", help="read the key file's passphrase from here")
    parser.add_argument("--commitment", required=True, type=Path, help="the signed commitment")
    parser.add_argument("--out", required=True, type=Path, help="where to write the result")
    add_json_flag(parser)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    release = subparsers.add_parser(
        "release", help="register the watermarked model as released under a commitment"
    )
    _owner_options(release)
    release.add_argument("--model-file", required=True, type=Path, help="the released model file")
    release.add_argument("--name", required=True)
    release.add_argument("--version", required=True, dest="model_version")
    release.set_defaults(handler=_release)

    claim = subparsers.add_parser("claim", help="file a claim against a suspect with an arbiter")
    _owner_options(claim)
    claim.add_argument(
        "--evidence", required=True, type=Path, help="the commitment's timestamp evidence"
    )
    claim.add_argument("--release", type=Path, help="the registered release")
    claim.add_argument("--release-evidence", type=Path, help="the release's timestamp evidence")
    claim.add_argument(
        "--suspect",
        required=True,
        help="suspect reference: oip:URL (an endpoint) or sha256:HEX (its weights file)",
    )
    claim.add_argument(
        "--arbiter", required=True, type=Path, help="the arbiter's identity document"
    )
    claim.set_defaults(handler=_claim)

    reveal = subparsers.add_parser(
        "reveal", help="answer a challenge: check it, then reveal exactly its indices, sealed"
    )
    reveal.add_argument("challenge", type=Path)
    _owner_options(reveal)
    reveal.add_argument(
        "--arbiter", required=True, type=Path, help="the arbiter's identity document"
    )
    reveal.add_argument(
        "--pool", type=Path, help="the committed pool as one .npy array (pool and overlay families)"
    )
    reveal.set_defaults(handler=_reveal)

    verify = subparsers.add_parser(
        "verify-bundle",
        help="re-check a verdict bundle offline and print a report",
        description=_VERIFY_DESCRIPTION,
        epilog=_VERIFY_EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("bundle", type=Path)
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
    commitment = open_commitment(read_file(args.commitment))
    keys = open_key_file(args.key, args.passphrase_file)
    if keys.key_id != commitment.document.owner_key_id:
        raise SecmarkError("this key is not the commitment's owner")
    digest = model_file_digest(args.model_file)
    signed = create_release(
        keys,
        commitment_id=commitment.digest,
        model_digest=digest,
        model_name=args.name,
        model_version=args.model_version,
    )
    write_new(args.out, signed.to_json())
    emit(
        args,
        [
            f"release id:   {signed.digest}",
            f"model digest: {digest}",
            "next: timestamp it (secmark timestamp)",
        ],
        {"release_id": signed.digest, "model_digest": digest, "file": str(args.out)},
    )
    return 0


def _claim(args: argparse.Namespace) -> int:
    if (args.release is None) != (args.release_evidence is None):
        raise SecmarkError("give --release and --release-evidence together")
    keys = open_key_file(args.key, args.passphrase_file)
    arbiter = open_identity(read_file(args.arbiter))
    claim = file_claim(
        keys,
        commitment=read_file(args.commitment),
        commitment_evidence=read_file(args.evidence),
        suspect=args.suspect,
        arbiter=arbiter,
        release=None if args.release is None else read_file(args.release),
        release_evidence=None
        if args.release_evidence is None
        else read_file(args.release_evidence),
    )
    write_new(args.out, claim)
    emit(args, [f"claim written to {args.out}; send it to the arbiter"], {"file": str(args.out)})
    return 0


def _reveal(args: argparse.Namespace) -> int:
    keys = open_key_file(args.key, args.passphrase_file)
    commitment = open_commitment(read_file(args.commitment), owner_key_id=keys.key_id)
    arbiter = open_identity(read_file(args.arbiter))
    pool = open_pool(args.pool, commitment.document)
    reveal = answer_challenge(keys, commitment, read_file(args.challenge), arbiter, pool=pool)
    write_new(args.out, reveal)
    emit(
        args,
        [f"reveal written to {args.out} (sealed to arbiter {arbiter.document.key_id})"],
        {"file": str(args.out)},
    )
    return 0


def _verify_bundle(args: argparse.Namespace) -> int:
    trust = TrustStore.from_pem_files(args.trust) if args.trust else None
    report = verify_bundle(read_file(args.bundle), trust, arbiter_key_id=args.arbiter)
    trusted = report.time_trust is TimeTrust.JUDGE_ROOTS
    if trusted:
        summary = (
            "bundle verified: every signature, timestamp, proof and figure re-checked, "
            "the times against your TSA roots"
        )
    else:
        summary = (
            "bundle NOT verified against your roots: every check passed, but the time is "
            "SELF-ASSERTED: the verdict rests on TSA roots inside the bundle, which whoever "
            "made it may have made; give --trust with TSA roots you trust"
        )
    if report.arbiter_pinned:
        summary += f"; arbiter {report.arbiter_key_id} is the pinned one"
    else:
        summary += (
            f"; the arbiter {report.arbiter_key_id} is NOT pinned: the verdict is the word of "
            "whoever holds that key (give --arbiter KEY_ID to require the arbiter you trust)"
        )
    emit(
        args,
        [*report.lines, summary],
        {
            "arbiter": report.arbiter_key_id,
            "arbiter_pinned": report.arbiter_pinned,
            "checks_passed": True,
            "outcome": report.outcome,
            "report": list(report.lines),
            "time_trust": report.time_trust.value,
            "verified": trusted,
        },
    )
    return 0 if trusted else EXIT_SELF_ASSERTED
