"""``secmark tsa init`` and ``secmark tsa serve``: run a timestamp authority."""

from __future__ import annotations

import argparse
import datetime
import hashlib
import sys
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.serialization import Encoding

from secmark.cli.output import add_json_flag, emit
from secmark.cli.passphrase import read_passphrase
from secmark.cli.signals import StopRequested, stop_on_signals
from secmark.errors import SecmarkError
from secmark.timestamp import TimestampAuthority, TimestampServer
from secmark.timestamp.authority import ROOT_CERTIFICATE_FILE, TSA_CERTIFICATE_FILE
from secmark.timestamp.server import DEFAULT_PORT

__all__ = ["PASSPHRASE_ENV", "register"]

PASSPHRASE_ENV: Final = "SECMARK_TSA_PASSPHRASE"
"""Environment variable holding the TSA key passphrase (apart from identity
keys' ``SECMARK_PASSPHRASE``, so that one never unlocks the other by mistake)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tsa = subparsers.add_parser("tsa", help="run an RFC 3161 timestamp authority")
    commands = tsa.add_subparsers(metavar="COMMAND", required=True)

    init = commands.add_parser(
        "init",
        help="create a timestamp authority in a directory",
        description=(
            "Creates in DIR a self-signed root certificate (root.pem, to give to "
            "verifiers), a TSA certificate (tsa.pem), the TSA key (tsa-key.json, mode "
            "0600, encrypted unless --unencrypted) and the serial-number state."
        ),
    )
    init.add_argument("directory", type=Path, metavar="DIR")
    secret = init.add_mutually_exclusive_group()
    secret.add_argument(
        "--passphrase-file", help=f"read the key passphrase from this file (else ${PASSPHRASE_ENV})"
    )
    secret.add_argument(
        "--unencrypted",
        action="store_true",
        help="write the key without encryption (only if the disk is protected otherwise)",
    )
    init.add_argument(
        "--common-name", default="secmark timestamp authority", help="the TSA certificate's CN"
    )
    init.add_argument(
        "--validity-days", type=int, default=3 * 365, help="certificate lifetime (1095 days)"
    )
    add_json_flag(init)
    init.set_defaults(handler=_init)

    serve = commands.add_parser(
        "serve",
        help="answer timestamp requests over HTTP",
        description="Serves RFC 3161 over HTTP (POST application/timestamp-query) until interrupted.",
    )
    serve.add_argument("directory", type=Path, metavar="DIR")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT})")
    serve.add_argument(
        "--passphrase-file", help=f"read the key passphrase from this file (else ${PASSPHRASE_ENV})"
    )
    add_json_flag(serve)
    serve.set_defaults(handler=_serve)


def _passphrase(passphrase_file: str | None, *, confirm: bool) -> bytes:
    return read_passphrase(
        passphrase_file, confirm=confirm, variable=PASSPHRASE_ENV, what="TSA key passphrase"
    )


def _fingerprint(authority: TimestampAuthority) -> str:
    return hashlib.sha256(authority.root_certificate.public_bytes(Encoding.DER)).hexdigest()


def _init(args: argparse.Namespace) -> int:
    if args.validity_days <= 0:
        raise SecmarkError("--validity-days must be positive")
    passphrase = None if args.unencrypted else _passphrase(args.passphrase_file, confirm=True)
    authority = TimestampAuthority.initialize(
        args.directory,
        passphrase=passphrase,
        allow_unencrypted=args.unencrypted,
        common_name=args.common_name,
        validity=datetime.timedelta(days=args.validity_days),
    )
    root_path = args.directory / ROOT_CERTIFICATE_FILE
    emit(
        args,
        [
            f"authority:        {args.directory}",
            f"root certificate: {root_path} (give this file to verifiers)",
            f"root SHA-256:     {_fingerprint(authority)}",
            f"TSA certificate:  {args.directory / TSA_CERTIFICATE_FILE}",
            f"policy:           {authority.policy_oid}",
            f"key:              {'UNENCRYPTED' if args.unencrypted else 'encrypted'}",
        ],
        {
            "directory": str(args.directory),
            "root_certificate": str(root_path),
            "root_sha256": _fingerprint(authority),
            "tsa_certificate": str(args.directory / TSA_CERTIFICATE_FILE),
            "policy_oid": authority.policy_oid,
            "encrypted": not args.unencrypted,
        },
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    passphrase = (
        _passphrase(args.passphrase_file, confirm=False)
        if TimestampAuthority.needs_passphrase(args.directory)
        else None
    )
    authority = TimestampAuthority.open(args.directory, passphrase=passphrase)
    try:
        server = TimestampServer(authority.respond, host=args.host, port=args.port)
    except OSError as error:
        raise SecmarkError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    emit(
        args,
        [f"serving {server.url} (root SHA-256 {_fingerprint(authority)}); Ctrl-C stops"],
        {"url": server.url, "root_sha256": _fingerprint(authority)},
    )
    sys.stdout.flush()
    try:
        with stop_on_signals():
            server.serve_forever()
    except (KeyboardInterrupt, StopRequested):
        # Ctrl-C, or a supervisor's SIGTERM, is how a foreground server stops.
        pass
    return 0
