"""``secmark demo``: a whole dispute on the digits example, offline."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from secmark.cli.evaluate import add_threads_argument, torch_threads
from secmark.cli.extras import require_torch
from secmark.cli.output import Output, Verbosity, add_json_flag, emit, printable

_DEFAULT_FOLDER = Path("secmark-demo")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run a whole dispute on the digits example, offline (needs the torch extra)",
        description=(
            "An owner commits, embeds a watermark and releases a model; a thief who "
            "committed earlier steals it, re-marks it and claims it; the arbiter judges "
            "both and the verdict bundle is re-verified offline. Prints the files it left "
            "and the command that re-checks the owner's bundle."
        ),
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=_DEFAULT_FOLDER,
        help=f"folder for the documents, missing or empty ({_DEFAULT_FOLDER})",
    )
    demo.add_argument(
        "--force",
        action="store_true",
        help="replace an earlier demo's documents in --out (nothing else is deleted)",
    )
    add_threads_argument(demo)
    add_json_flag(demo)
    demo.set_defaults(handler=_demo)


def _silent(line: str) -> None:
    pass


def _say_on_stderr(line: str) -> None:
    print(printable(line), file=sys.stderr)


def _say(line: str) -> None:
    print(printable(line))


def _demo(args: argparse.Namespace) -> int:
    require_torch("the demo")
    from secmark.examples.demo import DEMO_FILES, run_demo

    # The story is told as it happens: on standard output, or on standard
    # error with --json (standard output then carries the one JSON object),
    # or not at all with the global --quiet.
    if Output.from_args(args).verbosity <= Verbosity.QUIET:
        say = _silent
    else:
        say = _say_on_stderr if args.json else _say
    with torch_threads(args.threads):
        outcome = run_demo(args.out, say, replace=args.force)
    # A folder keeps its trailing "/" so that it reads as one.
    files = [
        {"path": str(args.out / name) + ("/" if name.endswith("/") else ""), "what": what}
        for name, what in DEMO_FILES
        if (args.out / name).exists()
    ]
    command = outcome.verify_command()
    width = max(len(entry["path"]) for entry in files)
    lines = [
        "",
        f"files left in {args.out} ({outcome.seconds:.0f} s, {args.threads} torch thread(s)):",
        *(f"  {entry['path']:<{width}}  {entry['what']}" for entry in files),
        "",
        (
            "this suspect served a modified copy, which noise triggers are for; "
            "'secmark plan --classes 10' says which family to commit against other suspects"
        ),
        "",
        "re-check the owner's bundle offline, as a judge would (exit status 0: verified):",
        "  " + shlex.join(command),
    ]
    data: dict[str, Any] = {
        "succeeded": outcome.succeeded,
        "outcomes": {
            "owner": outcome.owner_outcome,
            "thief": outcome.thief_outcome,
            "chosen_inputs": outcome.chosen_inputs_outcome,
        },
        "cases": outcome.cases,
        "arbiter": outcome.arbiter_key_id,
        "bundle_verified": outcome.bundle_verified,
        "folder": str(args.out),
        "files": files,
        "verify_command": command,
        "seconds": outcome.seconds,
        "threads": args.threads,
    }
    emit(args, lines, data)
    return 0 if outcome.succeeded else 1
