"""``secmark arbiter``: the arbiter's steps, one command each, resumable.

``arbiter init DIR`` records the arbiter's key file, identity document,
trusted TSA roots and challenge policy in ``DIR/arbiter.json``; every other
step reads it and works on the case folders under ``DIR/cases``, or, with
``--database URL``, on the cases in that database (``arbiter migrate DIR
--database URL`` copies a folder's cases there).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy.typing as npt

from secmark.cli.arrays import read_array
from secmark.cli.extraction import add_arbiter_command
from secmark.cli.output import add_json_flag, emit
from secmark.cli.passphrase import open_key_file
from secmark.cli.plan import MIN_LOG2, parse_probability
from secmark.cli.service import add_serve_command
from secmark.cli.streams import (
    add_input,
    add_output,
    read_file,
    read_input,
    write_new,
    write_output,
)
from secmark.cli.suspects import (
    add_suspect_arguments,
    open_suspect,
    requests_sent,
    torch_model_loader,
)
from secmark.errors import EncodingError, SecmarkError
from secmark.messages.challenge import parse_alpha
from secmark.messages.identity import open_identity
from secmark.protocol.arbiter import Arbiter, ArbiterPolicy
from secmark.protocol.store import ArbiterStore
from secmark.stats import DEFAULT_ALPHA
from secmark.timestamp import TrustStore

if TYPE_CHECKING:
    from secmark.protocol.database_store import DatabaseStore

CONFIG_FILE = "arbiter.json"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    arbiter = subparsers.add_parser(
        "arbiter", help="the arbiter's steps: claims, challenges, verdicts"
    )
    commands = arbiter.add_subparsers(metavar="COMMAND", required=True)

    init = commands.add_parser("init", help="set up an arbiter's working folder")
    init.add_argument("folder", type=Path)
    init.add_argument("--key", required=True, type=Path, help="the arbiter's key file")
    init.add_argument(
        "--identity", required=True, type=Path, help="the arbiter's identity document"
    )
    init.add_argument(
        "--trust", action="append", required=True, metavar="PEM", help="trusted TSA roots"
    )
    init.add_argument(
        "--challenge-size", type=int, default=128, help="k, triggers per challenge (128)"
    )
    level = init.add_mutually_exclusive_group()
    level.add_argument(
        "--alpha-log2",
        type=int,
        metavar="X",
        help="false-claim level 2^X of a commitment's first challenge here (default -64; "
        "secmark plan prints the flags to use)",
    )
    level.add_argument(
        "--alpha", metavar="P", help="the level as a number, e.g. 1e-20 (instead of --alpha-log2)"
    )
    init.add_argument(
        "--decoys-per-trigger", type=int, default=2, help="decoys per challenged trigger (2)"
    )
    init.add_argument(
        "--challenge-days", type=int, default=7, help="days before a challenge expires (7)"
    )
    add_json_flag(init)
    init.set_defaults(handler=_init)

    steps = {
        "file-claim": "check a claim and open its case",
        "challenge": "issue the challenge of a case",
        "receive-reveal": "open and check the owner's reveal",
        "query": "query the suspect with triggers among decoys",
        "decide": "sign the verdict and write the bundle",
        "status": "show a case's stage",
    }
    for name, text in steps.items():
        step = commands.add_parser(name, help=text)
        step.add_argument("folder", type=Path, help="the arbiter's working folder")
        step.add_argument("--passphrase-file", help="read the key file's passphrase from here")
        _add_database(step, required=False)
        if name == "file-claim":
            add_input(step, "claim", help="the claim to file")
        else:
            step.add_argument(
                "--case",
                required=True,
                metavar="ID",
                help="the case: the id file-claim printed, or a unique prefix of it (4+ digits)",
            )
        if name == "challenge":
            add_output(step, "--out", required=True, help="where to write the challenge")
        if name == "receive-reveal":
            add_input(step, "reveal", help="the owner's reveal")
        if name == "query":
            add_suspect_arguments(step)
            step.add_argument(
                "--decoy-pool",
                type=Path,
                metavar="NPY",
                help="pool and overlay families: unrevealed items of the same distribution "
                "as one .npy array, to draw decoys from (never the triggers)",
            )
            step.add_argument(
                "--decoy-labels",
                type=Path,
                metavar="NPY",
                help="the known label of each --decoy-pool item, in its order, as one .npy "
                "array (integers for classes, floats for regression): the suspect's accuracy "
                "on the labelled decoys is recorded beside the test",
            )
        if name == "decide":
            step.add_argument(
                "--released",
                action="append",
                default=[],
                metavar="CASE_ID=PATH",
                help=(
                    "a claimant's deposited released model, by case id (or a unique prefix): "
                    "the file, or the folder of a folder release"
                ),
            )
            step.add_argument(
                "--torch-factory", metavar="MODULE:FUNCTION", help="builds the released models"
            )
        add_json_flag(step)
        step.set_defaults(handler=_step, step=name)
    migrate = commands.add_parser(
        "migrate", help="copy an arbiter folder's cases and registry into a database"
    )
    migrate.add_argument("folder", type=Path, help="the arbiter's working folder")
    _add_database(migrate, required=True)
    add_json_flag(migrate)
    migrate.set_defaults(handler=_migrate)
    add_arbiter_command(commands, _open_arbiter)
    _add_database(add_serve_command(commands, _open_for_service), required=False)


def _add_database(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--database",
        required=required,
        metavar="URL",
        help="keep the cases and the challenge registry in this database "
        "(sqlite:///PATH or postgresql+psycopg://...) instead of the folder; "
        "keys and configuration stay in the folder",
    )


def _policy(config: dict[str, Any]) -> ArbiterPolicy:
    # A folder set up before the level was configurable has no "alpha": the default.
    alpha = config.get("alpha")
    return ArbiterPolicy(
        challenge_size=config["challenge_size"],
        decoys_per_trigger=config["decoys_per_trigger"],
        challenge_lifetime=timedelta(days=config["challenge_days"]),
        alpha=DEFAULT_ALPHA if alpha is None else parse_alpha(alpha),
    )


def _init_alpha(args: argparse.Namespace) -> Fraction:
    """The level ``--alpha-log2`` or ``--alpha`` gives (spelt as ``secmark plan`` takes it).

    Raises:
        EncodingError: a spelling :func:`secmark.cli.plan.parse_probability`
            refuses, or an exponent outside [-1024, -1].
    """
    if args.alpha is not None:
        return parse_probability(args.alpha, what="--alpha")
    if args.alpha_log2 is None:
        return DEFAULT_ALPHA
    if not MIN_LOG2 <= args.alpha_log2 <= -1:
        raise EncodingError(f"--alpha-log2 must lie in [{MIN_LOG2}, -1], not {args.alpha_log2}")
    return Fraction(1, 1 << -args.alpha_log2)


def _decoy_pool(path: Path | None) -> list[npt.NDArray[Any]] | None:
    return None if path is None else list(read_array(path, what="decoy pool"))


def _decoy_labels(path: Path | None) -> npt.NDArray[Any] | None:
    return None if path is None else read_array(path, what="decoy labels")


def _init(args: argparse.Namespace) -> int:
    identity = open_identity(read_file(args.identity))
    TrustStore.from_pem_files(args.trust)
    args.folder.mkdir(parents=True, exist_ok=True)
    config = {
        "challenge_days": args.challenge_days,
        "challenge_size": args.challenge_size,
        "alpha": str(_init_alpha(args)),
        "decoys_per_trigger": args.decoys_per_trigger,
        "identity": str(args.identity.resolve()),
        "key_file": str(args.key.resolve()),
        "trust": [str(Path(p).resolve()) for p in args.trust],
    }
    _policy(config)  # refuse a policy outside the protocol's bounds before writing it
    write_new(args.folder / CONFIG_FILE, json.dumps(config, indent=2).encode())
    emit(
        args,
        [f"arbiter {identity.document.key_id} set up in {args.folder}"],
        {"arbiter": identity.document.key_id},
    )
    return 0


def _database(url: str) -> DatabaseStore:
    """The arbiter's database: SQLAlchemy is the serving extra's, so it is
    imported only when a command is given ``--database``."""
    if importlib.util.find_spec("sqlalchemy") is None:
        raise SecmarkError("--database needs SQLAlchemy: pip install 'secmark[serving]'")
    from secmark.protocol.database_store import DatabaseStore

    return DatabaseStore.open(url)


def _open_arbiter(
    folder: Path, passphrase_file: str | None, *, store: ArbiterStore | None = None
) -> Arbiter:
    try:
        config: dict[str, Any] = json.loads(read_file(folder / CONFIG_FILE))
    except json.JSONDecodeError:
        raise SecmarkError(f"{folder / CONFIG_FILE} is damaged") from None
    keys = open_key_file(config["key_file"], passphrase_file)
    policy = _policy(config)
    return Arbiter(
        keys,
        open_identity(read_file(Path(config["identity"]))),
        TrustStore.from_pem_files(config["trust"]),
        folder,
        policy=policy,
        store=store,
    )


def _migrate(args: argparse.Namespace) -> int:
    store = _database(args.database)
    try:
        from secmark.protocol.database_store import migrate_folder

        copied, present, added = migrate_folder(args.folder, store)
    finally:
        store.close()
    emit(
        args,
        [
            (
                f"{copied} case(s) copied, {present} already in the database; "
                f"{added} registry entr{'y' if added == 1 else 'ies'} added"
            )
        ],
        {"copied": copied, "present": present, "registry_added": added},
    )
    return 0


def _open_for_service(args: argparse.Namespace) -> Arbiter:
    """The arbiter ``arbiter serve`` serves: its cases stay in the database
    it names for as long as the service runs."""
    store = None if args.database is None else _database(args.database)
    return _open_arbiter(args.folder, args.passphrase_file, store=store)


def _step(args: argparse.Namespace) -> int:
    store = None if args.database is None else _database(args.database)
    try:
        return _run_step(args, _open_arbiter(args.folder, args.passphrase_file, store=store))
    finally:
        if store is not None:
            store.close()


def _run_step(args: argparse.Namespace, arbiter: Arbiter) -> int:
    if args.step == "file-claim":
        case = arbiter.file_claim(read_input(args.claim, what="claim"))
        emit(
            args,
            [f"case {case.name}: claim accepted (stage {case.stage})"],
            {"case": case.name, "stage": case.stage, **case.record},
        )
        return 0
    case = arbiter.find_case(args.case)
    if args.step == "status":
        emit(
            args,
            [f"case {case.name}: stage {case.stage}"],
            {"case": case.name, "stage": case.stage, **case.record},
        )
    elif args.step == "challenge":
        challenge = arbiter.challenge(case)
        write_output(args.out, challenge, overwrite=True)
        emit(
            args,
            [f"challenge written to {args.out}; send it to the claimant"],
            {"case": case.name, "file": str(args.out)},
        )
    elif args.step == "receive-reveal":
        triggers = arbiter.receive_reveal(case, read_input(args.reveal, what="reveal"))
        emit(
            args,
            [f"reveal accepted: {len(triggers)} triggers checked"],
            {"case": case.name, "triggers": len(triggers)},
        )
    elif args.step == "query":
        committed = arbiter.commitment_of(case).document
        pool, labels = _decoy_pool(args.decoy_pool), _decoy_labels(args.decoy_labels)
        responses = arbiter.responses_of(case)
        with open_suspect(args, committed.family, committed.labels, responses=responses) as suspect:
            result = arbiter.query(case, suspect, decoy_pool=pool, decoy_labels=labels)
        sent = requests_sent(suspect)
        accuracy = (
            f"{result.decoys_correct} of {result.decoys_labelled} labelled decoys answered "
            "with their label"
        )
        emit(
            args,
            [
                (
                    f"{result.matches} of {result.trials} trials matched "
                    f"(threshold {result.test.threshold}); "
                    f"{result.trigger_errors + result.decoy_errors} queries failed"
                ),
                *([accuracy] if result.decoys_labelled else []),
                *([] if sent is None else [f"requests: {sent} sent to {suspect.describe()}"]),
            ],
            {
                "requests_sent": sent,
                "case": case.name,
                "matches": result.matches,
                "trials": result.trials,
                "holds": result.test.decision,
                "trigger_errors": result.trigger_errors,
                "decoy_errors": result.decoy_errors,
                "decoys_labelled": result.decoys_labelled,
                "decoys_correct": result.decoys_correct,
            },
        )
    else:
        released = {}
        for entry in args.released:
            claim_id, separator, path = entry.partition("=")
            if not separator:
                raise SecmarkError(f"--released takes CLAIM_ID=FILE, not {entry!r}")
            released[arbiter.case_id(claim_id)] = Path(path)
        loader = torch_model_loader(args.torch_factory) if args.torch_factory else None
        arbiter.decide(case, released_models=released, load_model=loader)
        case = arbiter.case(case.name)
        # In a database the bundle is a document of the case, not a file.
        bundle = None if args.database is not None else str(case.folder / "bundle.json")
        emit(
            args,
            [
                f"verdict: {case.record['outcome']}",
                f"bundle: {bundle or f'bundle.json of case {case.name} in the database'}",
            ],
            {"case": case.name, "outcome": case.record["outcome"], "bundle": bundle},
        )
    return 0
