"""``secmark log``: the query log operator's steps.

``log account`` names the client account of an API key; ``log checkpoint``
signs the log's current size and root with the operator's keys and writes
the signed checkpoint, for ``secmark timestamp`` to date; ``log
add-timestamp`` stores that evidence beside the checkpoint; ``log extract``
writes what an arbiter needs about one client account up to a checkpoint
(:meth:`~secmark.serving.log.QueryLog.extract`, with decoys). The log is the
one ``secmark gateway`` keeps for the same policy and ``--log``.

Every command but ``log account`` needs the ``serving`` extra (sqlalchemy).
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from secmark.cli.gateway import default_log_url
from secmark.cli.output import add_json_flag, emit
from secmark.cli.passphrase import open_key_file
from secmark.cli.streams import add_output, read_file, write_new
from secmark.encoding import is_hex_digest
from secmark.errors import EncodingError, ProtocolError, SecmarkError, SignatureError
from secmark.files import read_regular_file
from secmark.messages.checkpoint import (
    MAX_CHECKPOINT_SIZE,
    LogCheckpoint,
    open_checkpoint,
)
from secmark.messages.document import SignedDocument
from secmark.messages.serving_policy import MAX_POLICY_SIZE, ServingPolicy, open_serving_policy
from secmark.serving.entry import LogEntry, client_account
from secmark.timestamp.evidence import TimestampEvidence

if TYPE_CHECKING:
    from secmark.serving.log import QueryLog

__all__ = ["parse_account", "read_policy", "register"]

_MAX_API_KEY_FILE = 64 * 1024


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    log = subparsers.add_parser(
        "log", help="the query log operator's steps: accounts, checkpoints, extracts"
    )
    commands = log.add_subparsers(metavar="COMMAND", required=True)

    account = commands.add_parser(
        "account",
        help="print the client account of an API key under a serving policy",
        description=(
            "Prints the client account (hex) the log records for queries sent with the API "
            "key in --api-key-file: a digest of the key and the policy id, never the key."
        ),
    )
    _policy_option(account)
    account.add_argument(
        "--api-key-file",
        required=True,
        type=Path,
        metavar="FILE",
        help="the API key, as the first line of this file (never on the command line)",
    )
    add_json_flag(account)
    account.set_defaults(handler=_account)

    checkpoint = commands.add_parser(
        "checkpoint",
        help="sign the log's current size and root as the policy's operator",
        description=(
            "Signs a checkpoint of every entry logged so far with the operator's keys (the "
            "policy's operator), stores it in the log and writes it to --out. If the log holds "
            "a checkpoint of the same size already, that one is written. Date it with "
            "'secmark timestamp CHECKPOINT --tsa URL --out EVIDENCE', then store the evidence "
            "with 'secmark log add-timestamp'."
        ),
    )
    _log_options(checkpoint)
    checkpoint.add_argument(
        "--operator-key", required=True, type=Path, help="the log operator's key file"
    )
    checkpoint.add_argument("--passphrase-file", help="read the key file's passphrase from here")
    add_output(checkpoint, "--out", required=True, help="where to write the signed checkpoint")
    add_json_flag(checkpoint)
    checkpoint.set_defaults(handler=_checkpoint)

    add_timestamp = commands.add_parser(
        "add-timestamp",
        help="store a checkpoint's timestamp evidence in the log",
        description=(
            "Stores the evidence 'secmark timestamp' wrote for a checkpoint of this log beside "
            "it (replacing any stored before). The evidence must date that checkpoint."
        ),
    )
    _log_options(add_timestamp)
    _checkpoint_option(add_timestamp)
    add_timestamp.add_argument(
        "--evidence", required=True, type=Path, help="the checkpoint's timestamp evidence"
    )
    add_json_flag(add_timestamp)
    add_timestamp.set_defaults(handler=_add_timestamp)

    extract = commands.add_parser(
        "extract",
        help="write one client account's log extract up to a checkpoint",
        description=(
            "Writes what an arbiter needs about one client account up to a stored checkpoint: "
            "the checkpoint, every leaf of the log, and the account's entries, marked and "
            "unmarked (the unmarked ones are the decoys of the arbiter's test). The owner "
            "files it with 'secmark extraction-claim'."
        ),
    )
    _log_options(extract)
    extract.add_argument(
        "--client",
        required=True,
        metavar="ACCOUNT",
        help="the client account (64 hex digits, as 'secmark log account' prints it)",
    )
    _checkpoint_option(extract)
    add_output(extract, "--out", required=True, help="where to write the extract")
    add_json_flag(extract)
    extract.set_defaults(handler=_extract)


def _policy_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, type=Path, help="the signed serving policy")


def _log_options(parser: argparse.ArgumentParser) -> None:
    _policy_option(parser)
    parser.add_argument(
        "--log",
        metavar="URL",
        help="the query log's database, as 'secmark gateway --log' names it (default: "
        "sqlite:///POLICY_DIR/query-log.sqlite, the gateway's default)",
    )


def _checkpoint_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        help="a signed checkpoint of this log ('secmark log checkpoint' wrote it)",
    )


def read_policy(path: Path) -> tuple[bytes, SignedDocument[ServingPolicy]]:
    """The bytes of the serving policy in the file ``path``, and the policy, opened.

    Raises:
        SecmarkError, EncodingError, SignatureError: an unreadable file, or
            as :func:`~secmark.messages.serving_policy.open_serving_policy`.
    """
    data = read_regular_file(path, max_size=MAX_POLICY_SIZE, what="serving policy")
    return data, open_serving_policy(data)


def parse_account(text: str) -> str:
    """``text`` if it is a client account (64 lower-case hex digits).

    Raises:
        EncodingError: it is not.
    """
    if not is_hex_digest(text):
        raise EncodingError(
            "a client account is 64 lower-case hex digits, as 'secmark log account' prints it"
        )
    return text


@contextmanager
def _open_log(
    args: argparse.Namespace, policy: SignedDocument[ServingPolicy]
) -> Iterator[QueryLog]:
    """The query log of ``policy`` at ``--log`` (or the gateway's default), closed on exit.

    Raises:
        SecmarkError: sqlalchemy is not installed, or as
            :meth:`~secmark.serving.log.QueryLog.open`.
    """
    if importlib.util.find_spec("sqlalchemy") is None:
        raise SecmarkError("secmark log needs sqlalchemy: pip install 'secmark[serving]'")
    # Imported here: the serving extra is optional for every other command.
    from secmark.serving.log import QueryLog

    url = args.log or default_log_url(args.policy)
    log = QueryLog.open(url, policy_id=bytes.fromhex(policy.digest), create=False)
    try:
        yield log
    finally:
        log.close()


def _stored_checkpoint(
    log: QueryLog, path: Path, policy: SignedDocument[ServingPolicy]
) -> SignedDocument[LogCheckpoint]:
    """The checkpoint in the file ``path``, signed by the policy's operator and stored in ``log``.

    Raises:
        EncodingError, SignatureError: as :func:`open_checkpoint`.
        ProtocolError: a checkpoint of another policy, or not the one ``log``
            stores for its size.
    """
    data = read_regular_file(path, max_size=MAX_CHECKPOINT_SIZE, what="log checkpoint")
    checkpoint = open_checkpoint(data, policy.document.operator)
    if checkpoint.document.policy_id.hex() != policy.digest:
        raise ProtocolError(f"{path} is a checkpoint of another serving policy's log")
    stored, _ = log.stored_checkpoint(checkpoint.document.size)
    if stored != data:
        raise ProtocolError(
            f"{path} is not the checkpoint this log stores for {checkpoint.document.size} "
            "entries: give the one 'secmark log checkpoint' wrote for this log"
        )
    return checkpoint


def _account(args: argparse.Namespace) -> int:
    _, policy = read_policy(args.policy)
    data = read_regular_file(args.api_key_file, max_size=_MAX_API_KEY_FILE, what="API key file")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise EncodingError(f"{args.api_key_file} is not UTF-8 text") from None
    api_key = lines[0].strip() if lines else ""
    if not api_key:
        raise EncodingError(f"{args.api_key_file} holds no API key on its first line")
    account = client_account(bytes.fromhex(policy.digest), api_key)
    emit(
        args,
        [f"client account: {account}"],
        {"client": account, "policy_id": policy.digest},
    )
    return 0


def _checkpoint(args: argparse.Namespace) -> int:
    _, policy = read_policy(args.policy)
    operator = open_key_file(args.operator_key, args.passphrase_file)
    if operator.key_id != policy.document.operator.key_id:
        raise SignatureError(
            f"this key ({operator.key_id}) is not the log operator the policy names "
            f"({policy.document.operator.key_id}); sign with the operator's key file"
        )
    with _open_log(args, policy) as log:
        signed = log.checkpoint(operator)
    write_new(args.out, signed.to_json())
    checkpoint = signed.document
    emit(
        args,
        [
            f"checkpoint id: {signed.digest}",
            f"entries:       {checkpoint.size}",
            f"root:          {checkpoint.root.hex()}",
            f"written to:    {args.out}",
            (
                "next: timestamp it (secmark timestamp), then store the evidence "
                "(secmark log add-timestamp)"
            ),
        ],
        {
            "checkpoint_id": signed.digest,
            "size": checkpoint.size,
            "root": checkpoint.root.hex(),
            "file": str(args.out),
        },
    )
    return 0


def _add_timestamp(args: argparse.Namespace) -> int:
    _, policy = read_policy(args.policy)
    data = read_file(args.evidence)
    evidence = TimestampEvidence.from_json(data)
    with _open_log(args, policy) as log:
        checkpoint = _stored_checkpoint(log, args.checkpoint, policy)
        if evidence.subject != checkpoint.digest:
            raise ProtocolError(
                f"{args.evidence} dates document {evidence.subject}, not the checkpoint "
                f"{checkpoint.digest}: timestamp {args.checkpoint} itself (secmark timestamp)"
            )
        log.add_timestamp(checkpoint.document.size, data)
    emit(
        args,
        [f"timestamp evidence of checkpoint {checkpoint.digest} stored in the log"],
        {"checkpoint_id": checkpoint.digest, "size": checkpoint.document.size},
    )
    return 0


def _extract(args: argparse.Namespace) -> int:
    client = parse_account(args.client)
    _, policy = read_policy(args.policy)
    with _open_log(args, policy) as log:
        checkpoint = _stored_checkpoint(log, args.checkpoint, policy)
        extract = log.extract(client, checkpoint.document.size, decoys=True)
    write_new(args.out, extract.to_bytes())
    marked = sum(LogEntry.from_bytes(entry).marked for entry in extract.entries)
    emit(
        args,
        [
            (
                f"account {client}: {marked} marked and {len(extract.entries) - marked} unmarked "
                f"entries up to checkpoint {checkpoint.digest} ({checkpoint.document.size} entries)"
            ),
            f"written to: {args.out}",
        ],
        {
            "client": client,
            "checkpoint_id": checkpoint.digest,
            "size": checkpoint.document.size,
            "marked": marked,
            "unmarked": len(extract.entries) - marked,
            "file": str(args.out),
        },
    )
    return 0
