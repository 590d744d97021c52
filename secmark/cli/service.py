"""``secmark arbiter serve``: the arbiter's working folder as an HTTP service.

Registered under ``secmark arbiter`` by :func:`add_serve_command`, with the
function that opens the arbiter its parsed arguments name (the folder, and
the database when one holds the cases). The
service (:mod:`secmark.service`) runs under uvicorn until interrupted; its
query jobs stop after their batch in flight and resume at the next start.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from secmark.cli.arrays import read_array
from secmark.errors import EncodingError, SecmarkError
from secmark.protocol.arbiter import Arbiter

__all__ = ["add_serve_command", "parse_listen"]

DEFAULT_LISTEN = "127.0.0.1:8080"

ArbiterFromArguments = Callable[[argparse.Namespace], Arbiter]
"""Opens the arbiter the parsed arguments name."""


def add_serve_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    open_arbiter: ArbiterFromArguments,
) -> argparse.ArgumentParser:
    """Add ``serve`` to the sub-commands of ``secmark arbiter``; it opens the
    arbiter with ``open_arbiter``. Returns the sub-command's parser, for the
    caller's own options (where the cases are kept)."""
    serve = commands.add_parser(
        "serve",
        help="serve the arbiter's disputes as an HTTP API",
        description=(
            "Serves the arbiter of FOLDER over HTTP: claims, challenges, reveals, query jobs, "
            "verdicts, bundles and the judge's page (GET /openapi.json lists them). Query jobs "
            "build the suspect from the claim's oip:, json: or openai: reference and "
            "--suspect-defaults. "
            "The service keeps its jobs and audit log beside the cases: in the --database "
            "given, else in FOLDER/service.sqlite3. Challenge, query and decide need a request "
            "signed by a party of the case. "
            "Put it behind a TLS-terminating proxy to serve it beyond this machine."
        ),
    )
    serve.add_argument("folder", type=Path, help="the arbiter's working folder")
    serve.add_argument("--passphrase-file", help="read the key file's passphrase from here")
    serve.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address to listen on ({DEFAULT_LISTEN}; [::1]:PORT for IPv6)",
    )
    serve.add_argument(
        "--suspect-defaults",
        type=Path,
        metavar="FILE",
        help="settings of the suspects queried, per kind of reference: "
        '{"oip": {...}, "json": {...}, "openai": {"tokenizer": FILE, ...}}, each a suspect '
        "config without url, model, model_version and protocol (specs/suspects.md); paths "
        "are read from the file's folder",
    )
    serve.add_argument(
        "--allow-suspect-network",
        action="append",
        default=[],
        metavar="CIDR",
        help="also query suspects at addresses of this network (repeatable; 127.0.0.0/8, "
        "10.1.0.0/16, ::1/128): by default only globally routable addresses are queried, "
        "since claimants choose the URLs",
    )
    serve.add_argument(
        "--decoy-pool",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="items decoys of pool and overlay commitments are drawn from: one .npy array of "
        "one item per row, unrevealed items of the owners' distribution (natural questions "
        "for a question pool); repeatable, one per item shape and dtype",
    )
    serve.set_defaults(handler=lambda args: _serve(args, open_arbiter))
    return serve


def parse_listen(text: str) -> tuple[str, int]:
    """(host, port) of ``HOST:PORT`` (``[v6]:PORT`` for an IPv6 address).

    Raises:
        EncodingError: no port, or one outside [0, 65535].
    """
    host, separator, port = text.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise EncodingError(f"--listen takes HOST:PORT, e.g. {DEFAULT_LISTEN}, not {text!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _serve(args: argparse.Namespace, open_arbiter: ArbiterFromArguments) -> int:
    try:
        import uvicorn

        from secmark.models.egress import EgressPolicy
        from secmark.service.app import create_app
        from secmark.service.decoys import DecoyPools
        from secmark.service.suspects import ReferenceSuspects
    except ImportError as error:
        raise SecmarkError(
            f"secmark arbiter serve needs the serving extra ({error.name} is missing): "
            "pip install 'secmark[serving]'"
        ) from None
    host, port = parse_listen(args.listen)
    egress = EgressPolicy.from_cidrs(args.allow_suspect_network)
    decoys = DecoyPools(read_array(path, what="decoy pool") for path in args.decoy_pool)
    arbiter = open_arbiter(args)
    suspects = (
        ReferenceSuspects.from_file(args.suspect_defaults, egress=egress)
        if args.suspect_defaults is not None
        else ReferenceSuspects(base=args.folder, egress=egress)
    )
    app = create_app(arbiter, suspects=suspects, decoys=decoys)
    uvicorn.run(app, host=host, port=port, log_level="info")
    return 0
