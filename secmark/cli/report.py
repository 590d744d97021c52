"""The judge's exhibit: ``report`` writes a bundle's verification as one HTML page."""

from __future__ import annotations

import argparse

from secmark import __version__
from secmark.cli.dispute import bundle_exit_status, print_refusal
from secmark.cli.output import Output, Verbosity, printable
from secmark.cli.streams import add_input, add_output, describe, is_stdio, read_input, write_output
from secmark.cli.verification import EXIT_SELF_ASSERTED
from secmark.errors import SecmarkError
from secmark.protocol.bundle import examine_bundle
from secmark.report import render_exhibit
from secmark.report.words import status_sentence
from secmark.timestamp import TrustStore

_DESCRIPTION = """\
Re-check a verdict bundle offline, exactly as verify-bundle does, and write
the result as one self-contained HTML page a judge can read: the parties, a
timeline of trusted times, every check with its result and whose word it
rests on, what rests on the arbiter's word alone, the observed matches
against the null distribution with alpha marked, and alpha in plain words.
The page loads nothing and runs no script. A bundle that fails a check still
gets its page, showing the failing check and no outcome.
"""

_EXIT_STATUSES = f"""\
exit status (as verify-bundle's; the page is written whenever the bundle was read):
  0   verified: every check passed, timestamps against your --trust roots
  {EXIT_SELF_ASSERTED}  every check passed, but the time is SELF-ASSERTED (no --trust)
  3, 4, 5, 7, 8  the bundle failed a check (the page shows which)
  1   the page was not written (an existing --out without --force, ...)
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a bundle's verification as a self-contained HTML exhibit for a judge",
        description=_DESCRIPTION,
        epilog=_EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input(parser, "bundle", help="the verdict bundle")
    add_output(parser, "--out", required=True, metavar="HTML", help="where to write the exhibit")
    parser.add_argument(
        "--force", action="store_true", help="replace --out if it exists (written atomically)"
    )
    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="PEM",
        help="your own trusted TSA roots (without it the time is self-asserted)",
    )
    parser.add_argument(
        "--arbiter",
        metavar="KEY_ID",
        help="pin the arbiter: its key id (64 lower-case hex digits); a bundle signed by "
        "another arbiter fails the arbiter-pin check",
    )
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    # Refuse before the work, not after: checking a large bundle takes a while.
    if not is_stdio(args.out) and args.out.exists() and not args.force:
        raise SecmarkError(f"{args.out} already exists; give --force to replace it")
    trust = TrustStore.from_pem_files(args.trust) if args.trust else None
    report = examine_bundle(
        read_input(args.bundle, what="bundle"), trust, arbiter_key_id=args.arbiter
    )
    page = render_exhibit(report, generator=f"secmark {__version__}")
    write_output(args.out, page.encode("utf-8"), overwrite=args.force)
    output = Output.from_args(args)
    if output.verbosity > Verbosity.QUIET:
        print(
            printable(f"exhibit written to {describe(args.out, output=True)}: ")
            + printable(status_sentence(report)),
            file=output.summary,
        )
    print_refusal(report)
    return bundle_exit_status(report)
