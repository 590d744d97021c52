"""``secmark demo``: a whole dispute on the digits example, offline."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from secmark.cli.evaluate import add_threads_argument, torch_threads
from secmark.cli.extras import require_lm_train, require_torch
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
            "and the command that re-checks the owner's bundle. With --extraction: a "
            "platform serves the model with marked answers into a query log, a thief "
            "trains a copy on its answers, and the arbiter upholds the owner's claim "
            "against the copy and rejects it against an innocent model. With --llm: an owner "
            "fingerprints a small language model, a thief serves a copy behind an "
            "OpenAI-compatible API (transformers serve), and the arbiter upholds the claim "
            "on the API and rejects it on an innocent model (needs secmark[lm-train])."
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
    story = demo.add_mutually_exclusive_group()
    story.add_argument(
        "--extraction",
        action="store_true",
        help="tell the model-extraction story instead: serving-side marks, a query log, "
        "a thief's copy and an innocent model",
    )
    story.add_argument(
        "--llm",
        action="store_true",
        help="tell a language-model story instead: a fingerprint, a copy behind an "
        "OpenAI-compatible API, an innocent model",
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


def _files_left(folder: Path, table: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    """The entries of ``table`` (name, what) that exist under ``folder``."""
    # A folder keeps its trailing "/" so that it reads as one.
    return [
        {"path": str(folder / name) + ("/" if name.endswith("/") else ""), "what": what}
        for name, what in table
        if (folder / name).exists()
    ]


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
    if args.extraction:
        return _extraction_demo(args, say)
    if args.llm:
        return _lm_demo(args, say)
    with torch_threads(args.threads):
        outcome = run_demo(args.out, say, replace=args.force)
    files = _files_left(args.out, DEMO_FILES)
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


def _two_bundle_lines(
    args: argparse.Namespace,
    seconds: float,
    files: list[dict[str, str]],
    commands: list[list[str]],
) -> list[str]:
    """The closing lines of a story with two bundles: the files it left and
    the commands that re-check both."""
    width = max(len(entry["path"]) for entry in files)
    return [
        "",
        f"files left in {args.out} ({seconds:.0f} s, {args.threads} torch thread(s)):",
        *(f"  {entry['path']:<{width}}  {entry['what']}" for entry in files),
        "",
        "re-check both bundles offline, as a judge would (exit status 0: verified):",
        *("  " + shlex.join(command) for command in commands),
    ]


def _lm_demo(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    """``secmark demo --llm``: exit status 0 when the story ended as it
    should (:attr:`LmDemoOutcome.succeeded`), else 1."""
    require_lm_train("the language-model demo")
    from secmark.examples.lm_demo import LM_DEMO_FILES, run_lm_demo

    with torch_threads(args.threads):
        outcome = run_lm_demo(args.out, say, replace=args.force)
    files = _files_left(args.out, LM_DEMO_FILES)
    lines = _two_bundle_lines(args, outcome.seconds, files, outcome.verify_commands())
    suspects = {"thief": outcome.thief, "innocent": outcome.innocent}
    data: dict[str, Any] = {
        "succeeded": outcome.succeeded,
        "outcomes": {name: result.outcome for name, result in suspects.items()},
        "suspects": {
            name: {
                "outcome": result.outcome,
                "matches": result.matches,
                "tested": result.tested,
                "threshold": result.threshold,
                "reference": result.reference,
                "bundle": str(result.bundle),
                "bundle_verified": result.bundle_verified,
            }
            for name, result in suspects.items()
        },
        "p0": outcome.p0,
        "trigger_accuracy": outcome.trigger_accuracy,
        "perplexity_before": outcome.perplexity_before,
        "perplexity_after": outcome.perplexity_after,
        "arbiter": outcome.arbiter_key_id,
        "folder": str(args.out),
        "files": files,
        "verify_commands": outcome.verify_commands(),
        "seconds": outcome.seconds,
        "threads": args.threads,
    }
    emit(args, lines, data)
    return 0 if outcome.succeeded else 1


def _extraction_demo(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    """``secmark demo --extraction``: exit status 0 when the story ended as it
    should (:attr:`ExtractionDemoOutcome.succeeded`), else 1."""
    from secmark.examples.extraction_demo import EXTRACTION_DEMO_FILES, run_extraction_demo

    with torch_threads(args.threads):
        outcome = run_extraction_demo(args.out, say, replace=args.force)
    files = _files_left(args.out, EXTRACTION_DEMO_FILES)
    commands = outcome.verify_commands()
    lines = _two_bundle_lines(args, outcome.seconds, files, commands)
    suspects = {"student": outcome.student, "innocent": outcome.innocent}
    data: dict[str, Any] = {
        "succeeded": outcome.succeeded,
        "outcomes": {name: result.outcome for name, result in suspects.items()},
        "suspects": {
            name: {
                "outcome": result.outcome,
                "matches": result.matches,
                "tested": result.tested,
                "threshold": result.threshold,
                "log2_p_value": result.log2_p_value,
                "reference": result.reference,
                "bundle": str(result.bundle),
                "bundle_verified": result.bundle_verified,
            }
            for name, result in suspects.items()
        },
        "accuracy": outcome.accuracy,
        "plan": {
            "rate": str(outcome.rate),
            "accounts": outcome.accounts,
            "marks_needed": outcome.marks_needed,
            "queries_needed": outcome.queries_needed,
        },
        "thief_queries": outcome.thief_queries,
        "thief_marks": outcome.thief_marks,
        "log_entries": outcome.log_entries,
        "arbiter": outcome.arbiter_key_id,
        "folder": str(args.out),
        "files": files,
        "verify_commands": commands,
        "seconds": outcome.seconds,
        "threads": args.threads,
    }
    emit(args, lines, data)
    return 0 if outcome.succeeded else 1
