"""``secmark demo``: a whole dispute on the digits example, offline."""

from __future__ import annotations

import argparse
from pathlib import Path

from secmark.cli.evaluate import add_threads_argument, torch_threads
from secmark.cli.extras import require_torch


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run a whole dispute on the digits example, offline (needs the torch extra)",
        description=(
            "An owner commits, embeds a watermark and releases a model; a thief who "
            "committed earlier steals it, re-marks it and claims it; the arbiter judges "
            "both and the verdict bundle is re-verified offline."
        ),
    )
    demo.add_argument(
        "--out", type=Path, default=Path("secmark-demo"), help="folder for the documents"
    )
    add_threads_argument(demo)
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    require_torch("the demo")
    from secmark.examples.demo import run_demo

    with torch_threads(args.threads):
        outcome = run_demo(args.out)
    success = (
        outcome.owner_outcome == "upheld"
        and outcome.thief_outcome == "rejected"
        and outcome.chosen_inputs_outcome == "rejected"
        and outcome.bundle_verified
    )
    return 0 if success else 1
