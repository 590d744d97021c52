"""``secmark keygen`` and ``secmark identity show``."""

from __future__ import annotations

import argparse
from pathlib import Path

from secmark.cli.output import add_json_flag, emit
from secmark.cli.passphrase import read_passphrase
from secmark.cli.streams import add_input, read_input
from secmark.crypto import IdentityKeys, write_key_file
from secmark.encoding import format_time
from secmark.errors import SecmarkError
from secmark.files import PUBLIC_FILE_MODE, write_atomic
from secmark.messages import create_identity, open_identity
from secmark.messages.identity import MAX_IDENTITY_SIZE


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keygen = subparsers.add_parser(
        "keygen",
        help="create an identity: a private key file and a public identity document",
        description=(
            "Creates NAME.key (secret, mode 0600, encrypted with a passphrase unless "
            "--unencrypted) and NAME.identity.json (public, self-signed) in --out-dir."
        ),
    )
    keygen.add_argument("name", help="a label for the identity, e.g. your organisation")
    keygen.add_argument("--out-dir", type=Path, default=Path("."), help="where to write (.)")
    keygen.add_argument("--passphrase-file", help="read the passphrase from this file")
    keygen.add_argument(
        "--unencrypted",
        action="store_true",
        help="write the key file without encryption (only if it is protected otherwise)",
    )
    add_json_flag(keygen)
    keygen.set_defaults(handler=_keygen)

    identity = subparsers.add_parser("identity", help="inspect identity documents")
    identity_commands = identity.add_subparsers(metavar="COMMAND", required=True)
    show = identity_commands.add_parser(
        "show", help="verify an identity document's self-signature and print it"
    )
    add_input(show, "file", help="the identity document")
    add_json_flag(show)
    show.set_defaults(handler=_identity_show)


def _file_stem(name: str) -> str:
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    if not stem:
        raise SecmarkError("the name must contain at least one letter or digit")
    return stem


def _keygen(args: argparse.Namespace) -> int:
    stem = _file_stem(args.name)
    key_path = args.out_dir / f"{stem}.key"
    identity_path = args.out_dir / f"{stem}.identity.json"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for path in (key_path, identity_path):
        if path.exists():
            raise SecmarkError(f"{path} already exists; remove it or choose another name")
    passphrase = None if args.unencrypted else read_passphrase(args.passphrase_file, confirm=True)
    keys = IdentityKeys.generate()
    identity = create_identity(keys, args.name)
    write_key_file(key_path, keys, passphrase, unencrypted=args.unencrypted)
    write_atomic(identity_path, identity.to_json(), mode=PUBLIC_FILE_MODE)
    emit(
        args,
        [
            f"key id:   {keys.key_id}",
            f"secret:   {key_path} ({'UNENCRYPTED' if args.unencrypted else 'encrypted'})",
            f"identity: {identity_path}",
        ],
        {
            "key_id": keys.key_id,
            "key_file": str(key_path),
            "identity_file": str(identity_path),
            "encrypted": not args.unencrypted,
        },
    )
    return 0


def _identity_show(args: argparse.Namespace) -> int:
    signed = open_identity(
        read_input(args.file, max_size=MAX_IDENTITY_SIZE, what="identity document")
    )
    identity = signed.document
    fields = identity.public_keys.canonical_fields()
    emit(
        args,
        [
            f"name:           {identity.name}",
            f"key id:         {identity.key_id}",
            f"created:        {format_time(identity.created)} (the holder's own clock)",
            f"suite:          {fields['suite']}",
            f"signing key:    {identity.public_keys.signing_key.hex()}",
            f"VRF key:        {identity.public_keys.vrf_key.public_bytes_raw().hex()}",
            f"encryption key: {identity.public_keys.encryption_key.hex()}",
            "self-signature: valid",
        ],
        {
            "name": identity.name,
            "key_id": identity.key_id,
            "created": format_time(identity.created),
            "keys": fields,
            "self_signature": "valid",
        },
    )
    return 0
