"""The long fuzz run: ``python3 -m tests.fuzz [--inputs N] [--target NAME ...]``.

N defaults to ``SECMARK_FUZZ_INPUTS`` or 100000 per target. Prints one row
per target and writes every finding (with its input, base64) to
``--findings`` (default: none). Exits 1 if any oracle failed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from pathlib import Path

from tests.fuzz.runner import Stats, run_target
from tests.fuzz.targets import TARGETS

DEFAULT_INPUTS = 100_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.fuzz", description=__doc__)
    parser.add_argument(
        "--inputs",
        type=int,
        default=int(os.environ.get("SECMARK_FUZZ_INPUTS", DEFAULT_INPUTS)),
        help="inputs per target (default: $SECMARK_FUZZ_INPUTS or 100000)",
    )
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="repeatable")
    parser.add_argument("--seed", type=int, default=0, help="the run's random seed")
    parser.add_argument("--findings", type=Path, help="write findings here as JSON")
    args = parser.parse_args(argv)
    names = args.target or list(TARGETS)
    print(Stats.header(), flush=True)
    failures = 0
    findings = []
    for name in names:
        stats = run_target(TARGETS[name], args.inputs, seed=args.seed)
        print(stats.row(), flush=True)
        failures += stats.failures
        for finding in stats.findings:
            findings.append(
                {
                    "target": name,
                    "kind": finding.kind,
                    "detail": finding.detail,
                    "input": base64.b64encode(finding.input).decode(),
                }
            )
            if finding.kind != "wrong-type":
                print(f"  {finding.kind}: {finding.detail.splitlines()[0]}", flush=True)
    if args.findings is not None:
        args.findings.write_text(json.dumps(findings, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
