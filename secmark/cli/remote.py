"""The commands that talk to an arbiter service (``--arbiter-url``), so an
owner never handles case folders.

``secmark claim --arbiter-url URL`` files the claim it signs there and
prints the case id; ``secmark reveal --arbiter-url URL --case ID`` fetches
the challenge, answers it as ``secmark reveal`` does and submits the
reveal (both in :mod:`secmark.cli.dispute`, through the helpers here).
``secmark case`` reads a case (``status``, ``fetch-bundle``,
``fetch-verdict``) and, for the arbiter's operator, takes its steps
(``query``, ``decide``) with requests signed by the arbiter's key.

A refusal by the service is one typed error, so the command exits with the
code of its kind (:mod:`secmark.service.client`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secmark.cli.output import add_json_flag, emit
from secmark.cli.passphrase import open_key_file
from secmark.cli.streams import add_output, write_new
from secmark.crypto.keys import IdentityKeys
from secmark.errors import SecmarkError, SuspectError

if TYPE_CHECKING:
    from secmark.service.client import ArbiterClient, CaseInfo, JobInfo

__all__ = ["add_arbiter_url", "file_claim_remotely", "open_client", "register", "reveal_remotely"]

_DEFAULT_TIMEOUT = 30.0


def add_arbiter_url(parser: argparse.ArgumentParser, *, required: bool = False, help: str) -> None:
    """Add ``--arbiter-url URL`` and ``--timeout SECONDS`` to ``parser``."""
    parser.add_argument(
        "--arbiter-url", metavar="URL", required=required, help=f"{help} (http:// or https://)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=_DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"with --arbiter-url: how long to wait for the service ({_DEFAULT_TIMEOUT:g})",
    )


def open_client(args: argparse.Namespace, keys: IdentityKeys | None = None) -> ArbiterClient:
    """The client of the service ``--arbiter-url`` names, signing with ``keys``."""
    try:
        from secmark.service.client import ArbiterClient
    except ImportError as error:
        raise SecmarkError(
            f"--arbiter-url needs the serving extra ({error.name} is missing): "
            "pip install 'secmark[serving]'"
        ) from None
    if not args.timeout > 0:
        raise SecmarkError("--timeout must be a positive number of seconds")
    return ArbiterClient(args.arbiter_url, keys=keys, timeout=args.timeout)


def _case_data(case: CaseInfo) -> dict[str, Any]:
    return {"case": case.case_id, "stage": case.stage, **dict(case.facts)}


def file_claim_remotely(args: argparse.Namespace, keys: IdentityKeys, claim: bytes) -> int:
    """File the signed ``claim`` at ``--arbiter-url``; prints the case id."""
    with open_client(args, keys) as client:
        case = client.file_claim(claim)
    written = [] if args.out is None else [f"claim written to {args.out}"]
    emit(
        args,
        [
            f"case: {case.case_id}",
            f"stage: {case.stage}",
            *written,
            f"next: secmark reveal --arbiter-url {args.arbiter_url} --case {case.case_id} ...",
        ],
        {**_case_data(case), "file": None if args.out is None else str(args.out)},
    )
    return 0


def reveal_remotely(
    args: argparse.Namespace, keys: IdentityKeys, answer: Callable[[bytes], bytes]
) -> int:
    """Fetch the challenge of ``--case``, answer it with ``answer`` (which
    checks it first), keep the reveal in ``--out`` if given, and submit it."""
    with open_client(args, keys) as client:
        challenge = client.challenge(args.case)
        reveal = answer(challenge)
        if args.out is not None:
            write_new(args.out, reveal)
        case = client.reveal(args.case, reveal)
    written = [] if args.out is None else [f"reveal written to {args.out}"]
    emit(
        args,
        [f"case: {case.case_id}", f"stage: {case.stage}", *written],
        {**_case_data(case), "file": None if args.out is None else str(args.out)},
    )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    case = subparsers.add_parser(
        "case", help="a case at an arbiter service: its state, bundle, and the arbiter's steps"
    )
    commands = case.add_subparsers(metavar="COMMAND", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=text, description=text)
        add_arbiter_url(parser, required=True, help="the arbiter service")
        parser.add_argument("case", metavar="ID", help="the case's id")
        add_json_flag(parser)
        return parser

    def signed(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--key", required=True, type=Path, help="the arbiter's key file (signs the request)"
        )
        parser.add_argument("--passphrase-file", help="read the key file's passphrase from here")

    status = command("status", "show a case's public state: stage, ids, outcome")
    status.set_defaults(handler=_status)

    bundle = command("fetch-bundle", "download a decided case's bundle (then: verify-bundle)")
    add_output(bundle, "--out", required=True, help="where to write the bundle")
    bundle.set_defaults(handler=lambda args: _fetch(args, "bundle"))

    verdict = command("fetch-verdict", "download a decided case's signed verdict")
    add_output(verdict, "--out", required=True, help="where to write the verdict")
    verdict.set_defaults(handler=lambda args: _fetch(args, "verdict"))

    query = command("query", "the arbiter: query the case's suspect (a job of the service)")
    signed(query)
    query.add_argument(
        "--no-wait", action="store_true", help="print the job and return without waiting for it"
    )
    query.add_argument(
        "--poll", type=float, default=0.5, metavar="SECONDS", help="ask for progress this often"
    )
    query.set_defaults(handler=_query)

    decide = command("decide", "the arbiter: sign the verdict of a queried case")
    signed(decide)
    add_output(decide, "--out", help="where to write the signed verdict")
    decide.set_defaults(handler=_decide)


def _status(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        case = client.case(args.case)
    lines = [f"case: {case.case_id}", f"stage: {case.stage}"]
    lines += [f"outcome: {case.outcome}"] if case.outcome is not None else []
    lines += [f"query job: {case.job}"] if case.job is not None else []
    emit(args, lines, _case_data(case))
    return 0


def _fetch(args: argparse.Namespace, what: str) -> int:
    with open_client(args) as client:
        data = client.bundle(args.case) if what == "bundle" else client.verdict(args.case)
    write_new(args.out, data)
    hint = ["next: secmark verify-bundle on it"] if what == "bundle" else []
    emit(
        args,
        [f"{what} of case {args.case} written to {args.out}", *hint],
        {"case": args.case, "file": str(args.out), what: str(args.out)},
    )
    return 0


def _job_data(job: JobInfo) -> dict[str, Any]:
    return {
        "job": job.job_id,
        "case": job.case_id,
        "state": job.state,
        "answered": job.answered,
        "total": job.total,
        "error": job.error,
    }


def _query(args: argparse.Namespace) -> int:
    if not args.poll > 0:
        raise SecmarkError("--poll must be a positive number of seconds")
    keys = open_key_file(args.key, args.passphrase_file)
    with open_client(args, keys) as client:
        job = client.start_query(args.case)
        if not args.no_wait:
            job = client.wait(job.job_id, poll=args.poll)
    if job.state == "failed":
        raise SuspectError(f"query job {job.job_id} of case {job.case_id} failed: {job.error}")
    emit(
        args,
        [f"query job {job.job_id}: {job.state}, {job.answered} of {job.total} inputs answered"],
        _job_data(job),
    )
    return 0


def _decide(args: argparse.Namespace) -> int:
    from secmark.messages.verdict import open_verdict

    keys = open_key_file(args.key, args.passphrase_file)
    with open_client(args, keys) as client:
        data = client.decide(args.case)
    # The service's verdict must be this arbiter's: checked before it is kept.
    verdict = open_verdict(data, keys.public_keys)
    if args.out is not None:
        write_new(args.out, data)
    written = [] if args.out is None else [f"verdict written to {args.out}"]
    emit(
        args,
        [f"case {args.case}: {verdict.document.outcome}", f"verdict: {verdict.digest}", *written],
        {
            "case": args.case,
            "outcome": verdict.document.outcome,
            "verdict_id": verdict.digest,
            "file": None if args.out is None else str(args.out),
        },
    )
    return 0
