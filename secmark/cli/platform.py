"""Deposits with a platform from the command line: the owner's ``deposit``
and the platform's ``platform init|deposit|reveal|deposits``.

An owner deposits a commitment with a platform as he would claim against a
suspect (``secmark deposit``: a claim naming ``platform:<key id>``, signed
for the platform), the platform files it and issues its challenge
(``platform deposit``), the owner answers with the ordinary ``secmark
reveal`` sealed to the platform's identity, and the platform keeps that
reveal sealed (``platform reveal``). ``secmark scan`` then checks the
platform's hosted models against every deposit.

``platform init DIR`` creates the platform's keys and identity in ``DIR``
and records them, its trusted TSA roots and the deposit size in
``DIR/platform.json``; every other step reads it and keeps the deposits
under ``DIR/cases``, or, with ``--database URL``, in that database (the
arbiter's tables: a platform runs the arbiter's steps in deposit mode).
The platform steps need the ``scan`` extra (SQLAlchemy): the platform's
code lives in :mod:`secmark.scan`, imported only when a step runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secmark.cli.output import add_json_flag, emit
from secmark.cli.passphrase import open_key_file, read_passphrase
from secmark.cli.streams import (
    add_input,
    add_output,
    describe,
    is_stdio,
    read_file,
    read_input,
    write_new,
    write_output,
)
from secmark.crypto import IdentityKeys, write_key_file
from secmark.errors import EncodingError, ProtocolError, SecmarkError
from secmark.files import PUBLIC_FILE_MODE, read_regular_file, write_atomic
from secmark.messages import create_identity
from secmark.messages.challenge import MAX_CHALLENGED
from secmark.messages.document import SignedDocument
from secmark.messages.identity import Identity, open_identity
from secmark.protocol.case import Case
from secmark.protocol.owner import file_claim
from secmark.protocol.store import ArbiterStore, FolderStore
from secmark.report.scan import DepositFacts, PlatformFacts
from secmark.timestamp import TrustStore

if TYPE_CHECKING:
    from secmark.scan.platform import Platform

__all__ = [
    "CONFIG_FILE",
    "PlatformFolder",
    "add_database_option",
    "add_platform_options",
    "deposit_facts",
    "opened_platform",
    "register",
    "require_scan_extra",
]

CONFIG_FILE = "platform.json"
KEY_FILE = "platform.key"
IDENTITY_FILE = "platform.identity.json"
DEFAULT_DEPOSIT_SIZE = 64
"""As :data:`secmark.scan.platform.DEFAULT_DEPOSIT_SIZE` (kept here so that
``--help`` needs no SQLAlchemy; a test pins the two together)."""

_CONFIG_KEYS = frozenset({"deposit_size", "identity", "key_file", "trust"})
_MAX_CONFIG = 1 << 20
"""A platform's configuration is a few hundred bytes."""


def require_scan_extra(feature: str) -> None:
    """Raises:
    SecmarkError: SQLAlchemy is missing; the message says how to get it."""
    if importlib.util.find_spec("sqlalchemy") is None:
        raise SecmarkError(f"{feature} needs SQLAlchemy: pip install 'secmark[scan]'")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    deposit = subparsers.add_parser(
        "deposit",
        help="deposit a commitment with a platform, to have its hosted models scanned for it",
        description=(
            "Signs a deposit: a claim whose suspect is the platform itself "
            "(platform:<its key id>), addressed to the platform's identity. Send it to the "
            "platform ('secmark platform deposit'); answer the challenge it returns with "
            "'secmark reveal CHALLENGE --arbiter PLATFORM_IDENTITY', which seals the "
            "revealed triggers to the platform."
        ),
    )
    deposit.add_argument("--key", required=True, type=Path, help="the owner's key file")
    deposit.add_argument("--passphrase-file", help="read the key file's passphrase from here")
    add_input(deposit, "--commitment", required=True, help="the signed commitment")
    add_input(deposit, "--evidence", required=True, help="the commitment's timestamp evidence")
    deposit.add_argument(
        "--platform", required=True, type=Path, help="the platform's identity document"
    )
    add_output(
        deposit, "--out", default="-", help="where to write the deposit; standard output by default"
    )
    add_json_flag(deposit)
    deposit.set_defaults(handler=_deposit)

    platform = subparsers.add_parser(
        "platform", help="a platform's steps: deposits of owners' trigger subsets"
    )
    commands = platform.add_subparsers(metavar="COMMAND", required=True)

    init = commands.add_parser(
        "init",
        help="set up a platform's working folder, with new keys and identity",
        description=(
            f"Creates the platform's keys in FOLDER/{KEY_FILE} (secret, mode 0600, encrypted "
            "with a passphrase unless --unencrypted), its identity document in "
            f"FOLDER/{IDENTITY_FILE} (public: owners deposit with it) and its "
            f"configuration in FOLDER/{CONFIG_FILE}. Nothing is written unless all of it "
            "can be, and an existing platform is never replaced."
        ),
    )
    init.add_argument("folder", type=Path, help="the platform's working folder")
    init.add_argument("--name", required=True, help="the platform's name in its identity")
    init.add_argument(
        "--trust",
        action="append",
        required=True,
        metavar="PEM",
        help="trusted TSA roots: a deposit's commitment must be timestamped under one",
    )
    init.add_argument(
        "--deposit-size",
        type=int,
        default=DEFAULT_DEPOSIT_SIZE,
        metavar="N",
        help=f"triggers each deposit reveals to the platform ({DEFAULT_DEPOSIT_SIZE})",
    )
    init.add_argument("--passphrase-file", help="read the new key file's passphrase from here")
    init.add_argument(
        "--unencrypted",
        action="store_true",
        help="write the key file without encryption (only if it is protected otherwise)",
    )
    add_json_flag(init)
    init.set_defaults(handler=_init)

    step = commands.add_parser(
        "deposit",
        help="file an owner's deposit and write its challenge",
        description=(
            "Checks the deposit (signatures, the commitment's timestamp against the "
            "platform's TSA roots, that it names this platform) and writes its challenge, "
            "drawn by the platform's VRF, to --out; prints the deposit's case id. A "
            "commitment is deposited once. Filing the same deposit again before its reveal "
            "writes the same challenge."
        ),
    )
    add_platform_options(step)
    add_input(step, "deposit", help="the owner's deposit")
    add_output(step, "--out", required=True, help="where to write the challenge")
    add_json_flag(step)
    step.set_defaults(handler=_file_deposit)

    reveal = commands.add_parser(
        "reveal",
        help="receive the owner's sealed reveal of a deposit",
        description=(
            "Opens and checks the owner's reveal (exactly the challenged triggers, each "
            "proven), and keeps it as it came, sealed to the platform's key."
        ),
    )
    add_platform_options(reveal)
    reveal.add_argument(
        "--case",
        required=True,
        metavar="ID",
        help="the deposit's case id, as 'platform deposit' printed it, or a unique prefix "
        "of it (4+ digits)",
    )
    add_input(reveal, "reveal", help="the owner's reveal")
    add_json_flag(reveal)
    reveal.set_defaults(handler=_receive_reveal)

    listing = commands.add_parser(
        "deposits",
        help="list the deposits whose reveal came in",
        description=(
            "Lists each deposit a scan checks: its case id, commitment, owner and the "
            "trigger indices of the commitment it exposed to the platform."
        ),
    )
    add_platform_options(listing)
    add_json_flag(listing)
    listing.set_defaults(handler=_list_deposits)


def add_platform_options(parser: argparse.ArgumentParser) -> None:
    """FOLDER, ``--passphrase-file`` and ``--database``: what
    :func:`opened_platform` reads."""
    parser.add_argument("folder", type=Path, help="the platform's working folder")
    parser.add_argument("--passphrase-file", help="read the key file's passphrase from here")
    add_database_option(parser)


def add_database_option(parser: argparse.ArgumentParser) -> None:
    """``--database URL``: where the platform keeps its deposits."""
    parser.add_argument(
        "--database",
        metavar="URL",
        help="the platform's deposits are kept in this database (sqlite:///PATH or "
        "postgresql+psycopg://...) instead of its folder; keys and configuration stay in "
        "the folder",
    )


@dataclass(frozen=True)
class PlatformFolder:
    """A platform's working folder, as ``platform init`` recorded it:
    paths in the configuration are relative to the folder."""

    folder: Path
    key_file: Path
    identity: SignedDocument[Identity]
    trust: TrustStore
    deposit_size: int

    @classmethod
    def read(cls, folder: Path) -> PlatformFolder:
        """The configuration in ``folder``, its identity and trust store loaded.

        Raises:
            SecmarkError: no platform there, or a damaged configuration.
            EncodingError, SignatureError: an identity document that does
                not open.
        """
        path = folder / CONFIG_FILE
        if not path.is_file():
            raise SecmarkError(f"{folder} is no platform folder: set one up with 'platform init'")
        try:
            config: Any = json.loads(
                read_regular_file(path, max_size=_MAX_CONFIG, what="platform configuration")
            )
        except (json.JSONDecodeError, UnicodeDecodeError):
            config = None
        if (
            not isinstance(config, dict)
            or set(config) != _CONFIG_KEYS
            or not all(isinstance(config[key], str) for key in ("identity", "key_file"))
            or not isinstance(config["trust"], list)
            or not all(isinstance(root, str) for root in config["trust"])
            or type(config["deposit_size"]) is not int
        ):
            raise SecmarkError(f"{path} is damaged")
        return cls(
            folder=folder,
            key_file=folder / config["key_file"],
            identity=open_identity(read_file(folder / config["identity"])),
            trust=TrustStore.from_pem_files(config["trust"]),
            deposit_size=config["deposit_size"],
        )

    def store(self, database: str | None) -> ArbiterStore:
        """Where the deposits are: the folder's cases, or the database at ``database``.

        Raises:
            SecmarkError: SQLAlchemy is missing, or the database cannot be
                opened.
            EncodingError: an unusable URL.
        """
        if database is None:
            return FolderStore(self.folder)
        require_scan_extra("--database")
        from secmark.protocol.database_store import DatabaseStore

        return DatabaseStore.open(database)


def _close(store: ArbiterStore) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        close()


@contextmanager
def opened_platform(args: argparse.Namespace) -> Iterator[Platform]:
    """The platform of ``args.folder`` with its keys (``args.passphrase_file``)
    and deposits (``args.database``); its database is closed on exit.

    Raises:
        SecmarkError: SQLAlchemy is missing, no platform there, a damaged
            configuration, a key file that does not open, or a database that
            cannot be opened.
    """
    require_scan_extra("a platform")
    from secmark.scan.platform import Platform

    folder = PlatformFolder.read(args.folder)
    keys = open_key_file(folder.key_file, args.passphrase_file)
    store = folder.store(args.database)
    try:
        yield Platform(
            keys,
            folder.identity,
            folder.trust,
            folder.folder,
            deposit_size=folder.deposit_size,
            store=store,
        )
    finally:
        _close(store)


def deposit_facts(folder: Path, database: str | None) -> PlatformFacts:
    """The platform's identity and the facts of each of its revealed
    deposits, by case id, read without the platform's key (for
    ``secmark scan report``).

    Raises:
        SecmarkError: as :meth:`PlatformFolder.read` and
            :meth:`PlatformFolder.store`, or a damaged case.
    """
    platform = PlatformFolder.read(folder)
    store = platform.store(database)
    try:
        cases = [Case.load(store.case_storage(name)) for name in sorted(store.case_names())]
    finally:
        _close(store)
    identity = platform.identity.document
    return PlatformFacts(
        name=identity.name,
        key_id=identity.key_id,
        deposits={
            case.name: DepositFacts(case.record["commitment_id"], case.record["owner"])
            for case in cases
            if case.at_least("revealed")
        },
    )


def _deposit(args: argparse.Namespace) -> int:
    if not is_stdio(args.out) and args.out.exists():
        raise SecmarkError(f"{args.out} already exists; choose another path")
    keys = open_key_file(args.key, args.passphrase_file)
    platform = open_identity(read_file(args.platform))
    reference = f"platform:{platform.document.key_id}"
    deposit = file_claim(
        keys,
        commitment=read_input(args.commitment, what="commitment"),
        commitment_evidence=read_input(args.evidence, what="evidence"),
        suspect=reference,
        arbiter=platform,
    )
    write_new(args.out, deposit)
    emit(
        args,
        [
            (
                f"deposit written to {describe(args.out, output=True)}; send it to platform "
                f"{platform.document.name} ({platform.document.key_id})"
            ),
            f"next: answer its challenge with 'secmark reveal CHALLENGE --arbiter {args.platform}'",
        ],
        {"file": str(args.out), "platform": platform.document.key_id, "suspect": reference},
    )
    return 0


def _init(args: argparse.Namespace) -> int:
    # Every check before the first write: a failed init leaves nothing behind.
    trust = [str(Path(root).resolve()) for root in args.trust]
    TrustStore.from_pem_files(trust)
    if not 1 <= args.deposit_size <= MAX_CHALLENGED:
        raise EncodingError(
            f"--deposit-size must lie in [1, {MAX_CHALLENGED}] (a challenge's bound), "
            f"not {args.deposit_size}"
        )
    paths = [args.folder / name for name in (KEY_FILE, IDENTITY_FILE, CONFIG_FILE)]
    for path in paths:
        if path.exists():
            raise SecmarkError(f"{path} already exists: {args.folder} holds a platform already")
    keys = IdentityKeys.generate()
    identity = create_identity(keys, args.name)
    passphrase = None if args.unencrypted else read_passphrase(args.passphrase_file, confirm=True)
    config = {
        "deposit_size": args.deposit_size,
        "identity": IDENTITY_FILE,
        "key_file": KEY_FILE,
        "trust": trust,
    }
    args.folder.mkdir(parents=True, exist_ok=True)
    key_path, identity_path, config_path = paths
    write_key_file(key_path, keys, passphrase, unencrypted=args.unencrypted)
    write_atomic(identity_path, identity.to_json(), mode=PUBLIC_FILE_MODE)
    # The configuration last: a folder without it is no platform yet.
    write_atomic(config_path, json.dumps(config, indent=2).encode(), mode=PUBLIC_FILE_MODE)
    emit(
        args,
        [
            f"platform {keys.key_id} set up in {args.folder}",
            f"identity: {identity_path} (owners deposit with it: secmark deposit --platform)",
            f"secret:   {key_path} ({'UNENCRYPTED' if args.unencrypted else 'encrypted'})",
        ],
        {
            "platform": keys.key_id,
            "identity_file": str(identity_path),
            "key_file": str(key_path),
            "deposit_size": args.deposit_size,
            "encrypted": not args.unencrypted,
        },
    )
    return 0


def _file_deposit(args: argparse.Namespace) -> int:
    if not is_stdio(args.out) and args.out.exists():
        raise SecmarkError(f"{args.out} already exists; choose another path")
    data = read_input(args.deposit, what="deposit")
    with opened_platform(args) as platform:
        case = platform.file_deposit(data)
        if case.stage == "claimed":
            challenge = platform.challenge(case)
        elif case.stage == "challenged":
            # Filed before and challenged, its reveal still to come: the same challenge.
            challenge = case.read("challenge.json")
        else:
            raise ProtocolError(f"deposit {case.name} was revealed already: nothing to challenge")
    write_output(args.out, challenge)
    emit(
        args,
        [
            f"deposit {case.name}: filed",
            f"commitment {case.record['commitment_id']} of owner {case.record['owner']}",
            (
                f"challenge written to {describe(args.out, output=True)}; send it to the owner, "
                "who answers with 'secmark reveal'"
            ),
        ],
        {
            "case": case.name,
            "commitment_id": case.record["commitment_id"],
            "owner": case.record["owner"],
            "file": str(args.out),
        },
    )
    return 0


def _receive_reveal(args: argparse.Namespace) -> int:
    data = read_input(args.reveal, what="reveal")
    with opened_platform(args) as platform:
        case = platform.arbiter.find_case(args.case)
        triggers = platform.receive_reveal(case, data)
    emit(
        args,
        [f"deposit {case.name}: reveal accepted, {triggers} triggers checked and kept sealed"],
        {"case": case.name, "triggers": triggers},
    )
    return 0


def _list_deposits(args: argparse.Namespace) -> int:
    with opened_platform(args) as platform:
        listed = [
            {
                "case": case.name,
                "commitment_id": case.record["commitment_id"],
                "owner": case.record["owner"],
                "exposed_indices": list(platform.exposed_indices(case.record["commitment_id"])),
            }
            for case in platform.deposits()
        ]
    lines = [f"{len(listed)} deposit(s)"]
    for entry in listed:
        lines += [
            f"deposit {entry['case']}",
            f"  commitment: {entry['commitment_id']}",
            f"  owner:      {entry['owner']}",
            f"  exposed:    {len(entry['exposed_indices'])} trigger indices",
        ]
    emit(args, lines, {"deposits": listed})
    return 0
