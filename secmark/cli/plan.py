"""``secmark plan``: how many triggers to embed and challenge.

Prints, for each assumed retention rate, the smallest number k of challenges
per dispute whose exact threshold an honest owner reaches with the target
power, and the trigger-set size N that keeps the set mostly unrevealed over
the expected disputes (the model is in :mod:`secmark.stats.planning`).
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from secmark.cli.family_advice import FAMILY_ADVICE, advice_lines
from secmark.cli.output import add_json_flag, emit
from secmark.errors import EncodingError
from secmark.messages.challenge import MAX_ALPHA
from secmark.stats.extraction import ExtractionPlan, extraction_plan
from secmark.stats.null import classification_p0
from secmark.stats.planning import (
    DEFAULT_DISPUTES,
    DEFAULT_MAX_REVEALED_FRACTION,
    DEFAULT_RETENTIONS,
    MAX_CHALLENGES,
    Plan,
    plan_table,
)

__all__ = ["parse_number", "parse_probability", "register"]

_DEFAULT_ALPHA_LOG2 = -64
_DEFAULT_MISS_LOG2 = -20

MAX_NUMBER_LENGTH = 40
"""Longest number argument: "0.000001", "1/1000000" and "2^-64" are short,
and a longer one is refused before any of it is parsed."""

MIN_LOG2 = -1024
"""Smallest exponent of a level (``--alpha``, ``--alpha-log2``,
``--miss-log2``): 2^-1024 is far beyond any level in use, and the exact
tails slow down with the size of its denominator."""

MAX_DENOMINATOR = 10**6
"""Largest denominator of a rate (``--p0``, ``--retention``,
``--max-revealed``): six decimal places are more than any estimate of a
rate holds, and the exact tails raise the denominator to the power k."""

MAX_ACCOUNTS = 1 << 40
"""Bound of ``--accounts``: far beyond the clients of any API."""

DEFAULT_AGREEMENTS = (Fraction(1), Fraction(9, 10), Fraction(1, 2))
"""Agreements planned for by default: a copy that memorised every marked
answer it was trained on, one that kept 90 %, one that kept half."""

MIN_REVEALED = Fraction(1, 1 << 20)
MAX_CLASSES = 1 << 31
MAX_DISPUTES = 10_000
MAX_RETENTIONS = 16
"""Bounds of ``--max-revealed``, ``--classes`` (as a commitment's label
space), ``--disputes`` and the number of ``--retention`` rates. N grows with
disputes / max-revealed, and its search with the disputes."""

# Digits and the characters of the three spellings only (ASCII: Fraction
# itself also takes other scripts' digits and "_"), and an exponent of at
# most four digits, so that no spelling expands into a number of millions
# of digits ("1e-99999999").
_NUMBER = re.compile(
    r"(?P<numerator>[0-9]+)/(?P<denominator>[0-9]+)"
    r"|(?P<decimal>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?)"
    r"|2\^(?P<power>[+-]?[0-9]{1,4})"
)


def _shown(text: str) -> str:
    """The argument as an error message quotes it: escaped, and cut short."""
    return repr(text[:MAX_NUMBER_LENGTH]) + ("..." if len(text) > MAX_NUMBER_LENGTH else "")


def parse_number(text: str, *, what: str) -> Fraction:
    """A non-negative number written as a decimal (``0.1``, ``1e-20``), a
    fraction (``1/10``) or a power of two (``2^-64``), exactly.

    Raises:
        EncodingError: longer than :data:`MAX_NUMBER_LENGTH`, another
            spelling (signs, ``nan``, ``inf``, hex, white space inside, other
            scripts' digits), an exponent of more than four digits, or a zero
            denominator; the message names ``what``.
    """
    shown = _shown(text)
    if len(text) > MAX_NUMBER_LENGTH:
        raise EncodingError(f"{what} {shown} is longer than {MAX_NUMBER_LENGTH} characters")
    match = _NUMBER.fullmatch(text.strip())
    if match is None:
        raise EncodingError(f"{what} {shown} is not a number such as 0.1, 1e-20, 1/10 or 2^-64")
    if match["power"] is not None:
        return Fraction(2) ** int(match["power"])
    if match["decimal"] is not None:
        return Fraction(match["decimal"])
    if int(match["denominator"]) == 0:
        raise EncodingError(f"{what} {shown} divides by zero")
    return Fraction(int(match["numerator"]), int(match["denominator"]))


def parse_probability(text: str, *, what: str, allow_one: bool = False) -> Fraction:
    """A probability in (0, 1) (in (0, 1] with ``allow_one``) spelled as
    :func:`parse_number` takes it, and at least 2^:data:`MIN_LOG2`.

    Raises:
        EncodingError: see :func:`parse_number`, or a value out of range.
    """
    value = parse_number(text, what=what)
    interval = "(0, 1]" if allow_one else "(0, 1)"
    if not (0 < value < 1 or (allow_one and value == 1)):
        raise EncodingError(f"{what} {_shown(text)} must lie in {interval}")
    if value < Fraction(1, 1 << -MIN_LOG2):
        raise EncodingError(f"{what} {_shown(text)} is below 2^{MIN_LOG2}")
    return value


def _argument(
    parse: Callable[..., Fraction], what: str, **options: bool
) -> Callable[[str], Fraction]:
    """An argparse type: argparse shows the message of an ArgumentTypeError."""

    def convert(text: str) -> Fraction:
        try:
            return parse(text, what=what, **options)
        except EncodingError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def _rate(
    what: str, *, allow_one: bool = False, minimum: Fraction | None = None
) -> Callable[[str], Fraction]:
    def parse(text: str, *, what: str) -> Fraction:
        value = parse_probability(text, what=what, allow_one=allow_one)
        if value.denominator > MAX_DENOMINATOR:
            raise EncodingError(
                f"{what} {_shown(text)} has a denominator above 10^6: round it "
                "(six decimal places are plenty)"
            )
        if minimum is not None and value < minimum:
            raise EncodingError(f"{what} {_shown(text)} is below {minimum}")
        return value

    return _argument(parse, what)


def _integer_in(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        # A bounded length first: int() of a long digit string is quadratic.
        value = int(text) if len(text) <= 24 and re.fullmatch(r"\s*-?[0-9]+\s*", text) else None
        if value is None:
            raise argparse.ArgumentTypeError(
                f"{what} {text[:24]!r} is not an integer in [{low}, {high}]"
            )
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} {value} must lie in [{low}, {high}]")
        return value

    return parse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="recommend how many triggers to embed and to challenge per dispute",
        description=(
            "For each retention rate r (the chance that the attacked model still "
            "answers a trigger's label), print the smallest number k of challenges "
            "whose exact threshold is reached with the target power, the "
            "trigger-set size N, and the flags that put them to use: "
            "'secmark commit --size N' and 'secmark arbiter init --challenge-size k' "
            "with the level alpha. Numbers are written 0.1, 1e-20, 1/10 or 2^-64."
        ),
    )
    space = parser.add_mutually_exclusive_group(required=True)
    space.add_argument(
        "--classes",
        type=_integer_in(2, MAX_CLASSES, "--classes"),
        metavar="K",
        help="labels uniform over K classes",
    )
    space.add_argument(
        "--p0", type=_rate("--p0"), metavar="P", help="null match probability, e.g. 1/10"
    )
    level = parser.add_mutually_exclusive_group()
    level.add_argument(
        "--alpha-log2",
        type=_integer_in(MIN_LOG2, -1, "--alpha-log2"),
        metavar="X",
        help=f"significance level 2^X (default {_DEFAULT_ALPHA_LOG2})",
    )
    level.add_argument(
        "--alpha",
        metavar="P",
        help="significance level as a number, e.g. 1e-20 (instead of --alpha-log2)",
    )
    parser.add_argument(
        "--miss-log2",
        type=_integer_in(MIN_LOG2, -1, "--miss-log2"),
        default=_DEFAULT_MISS_LOG2,
        metavar="X",
        help=f"target power 1 - 2^X (default {_DEFAULT_MISS_LOG2})",
    )
    parser.add_argument(
        "--retention",
        type=_rate("--retention", allow_one=True),
        nargs="+",
        default=list(DEFAULT_RETENTIONS),
        metavar="R",
        help="retention rates to plan for (default 1 0.9 0.75 0.5 0.3)",
    )
    parser.add_argument(
        "--disputes",
        type=_integer_in(1, MAX_DISPUTES, "--disputes"),
        default=DEFAULT_DISPUTES,
        metavar="D",
        help=f"disputes the trigger set must serve (default {DEFAULT_DISPUTES})",
    )
    parser.add_argument(
        "--max-revealed",
        type=_rate("--max-revealed", minimum=MIN_REVEALED),
        default=DEFAULT_MAX_REVEALED_FRACTION,
        metavar="F",
        help=(
            "largest expected fraction of the set revealed before the last dispute "
            f"(default {DEFAULT_MAX_REVEALED_FRACTION})"
        ),
    )
    extraction = parser.add_argument_group(
        "model extraction",
        "with --marking-rate, the question is another: how many distinct queries must "
        "a thief make through an API whose serving policy marks answers at that rate "
        "before a copy trained on its answers is detected (specs/serving.md 6)? "
        "--classes K then means the other-label rule's p0 = 1/(K-1) (1/2 for K = 2).",
    )
    extraction.add_argument(
        "--marking-rate",
        type=_rate("--marking-rate"),
        nargs="+",
        metavar="R",
        help="the serving policy's marking rates to plan for, e.g. 1/100 1/50",
    )
    extraction.add_argument(
        "--agreement",
        type=_rate("--agreement", allow_one=True),
        nargs="+",
        default=list(DEFAULT_AGREEMENTS),
        metavar="Q",
        help="share of marked answers the copy reproduces (default 1 0.9 0.5)",
    )
    extraction.add_argument(
        "--accounts",
        type=_integer_in(1, MAX_ACCOUNTS, "--accounts"),
        default=1,
        metavar="A",
        help="client accounts in the log: the arbiter tests at alpha / A (default 1)",
    )
    add_json_flag(parser)
    parser.set_defaults(handler=_run)


def _finite_or_none(value: float) -> float | None:
    # JSON has no infinity; a miss probability of exactly 0 is reported as null.
    return value if math.isfinite(value) else None


def _level_flag(args: argparse.Namespace) -> str:
    """The arbiter's level as ``secmark arbiter init`` takes it, spelt as given
    here (``arbiter init`` parses ``--alpha`` as this command does)."""
    if args.alpha is not None:
        return f"--alpha {shlex.quote(args.alpha.strip())}"
    return f"--alpha-log2 {args.alpha_log2}"


def _flags(result: Plan, level: str) -> dict[str, str]:
    return {
        "commit": f"--size {result.trigger_set_size}",
        "arbiter_init": f"--challenge-size {result.k} {level}",
    }


def _row_data(retention: Fraction, result: Plan | None, level: str) -> dict[str, Any]:
    if result is None:
        return {"retention": str(retention), "feasible": False}
    return {
        "retention": str(retention),
        "feasible": True,
        "match_probability": str(result.match_probability),
        "k": result.k,
        "threshold": result.threshold,
        "trigger_set_size": result.trigger_set_size,
        "revealed_fraction": result.revealed_fraction,
        "power": result.power,
        "log2_miss": _finite_or_none(result.log2_miss),
        "false_claim": result.false_claim,
        "log2_false_claim": result.log2_false_claim,
        "flags": _flags(result, level),
    }


def _row_line(retention: Fraction, result: Plan | None) -> str:
    label = f"{float(retention):>9g}"
    if result is None:
        return f"{label}  no k <= {MAX_CHALLENGES} reaches the target power"
    miss = "1" if result.log2_miss == -math.inf else f"1 - 2^{result.log2_miss:.2f}"
    return (
        f"{label}  {result.k:>6}  {result.threshold:>9}  {result.trigger_set_size:>9}"
        f"  {miss:>14}  {'2^' + format(result.log2_false_claim, '.2f'):>11}"
    )


def _log2_text(value: Fraction) -> str:
    return f"{math.log2(value.numerator) - math.log2(value.denominator):.2f}"


def _extraction_row(plan: ExtractionPlan) -> tuple[str, dict[str, Any]]:
    label = f"{float(plan.rate):>8g}  {float(plan.agreement):>9g}"
    data: dict[str, Any] = {
        "rate": str(plan.rate),
        "agreement": str(plan.agreement),
        "marks_needed": plan.marks_needed,
        "queries_needed": plan.queries_needed,
        "detection_probability": plan.detection_probability,
    }
    if plan.marks_needed is None or plan.queries_needed is None:
        return f"{label}  no number of queries reaches the target power", data
    line = (
        f"{label}  {plan.marks_needed:>6}  {plan.queries_needed:>9}"
        f"  {plan.detection_probability:>12.10f}"
    )
    return line, data


def _run_extraction(
    args: argparse.Namespace, alpha: Fraction, alpha_text: str, power: Fraction
) -> int:
    if args.classes is not None:
        p0 = Fraction(1, 2) if args.classes == 2 else Fraction(1, args.classes - 1)
    else:
        p0 = args.p0
    if len(args.marking_rate) * len(args.agreement) > MAX_RETENTIONS:
        raise EncodingError(
            f"give at most {MAX_RETENTIONS} combinations of --marking-rate and --agreement"
        )
    if any(q <= p0 for q in args.agreement):
        raise EncodingError(f"every --agreement must exceed p0 = {p0}: below it nothing detects")
    plans = [
        extraction_plan(
            rate, p0, alpha=alpha, accounts=args.accounts, agreement=agreement, power=power
        )
        for rate in args.marking_rate
        for agreement in args.agreement
    ]
    rows = [_extraction_row(plan) for plan in plans]
    heading = (
        f"marked answer null p0 = {p0}, false-claim level alpha = {alpha_text} "
        f"over {args.accounts} client account(s)"
    )
    lines = [
        heading,
        f"target detection probability 1 - 2^{args.miss_log2}",
        "",
        f"{'rate':>8}  {'agreement':>9}  {'marks':>6}  {'queries':>9}  {'detection':>12}",
        *(line for line, _ in rows),
        "",
        "marks: marked answers of the account the copy must have been trained on;",
        "queries: distinct inputs the thief asks before that many are marked.",
    ]
    data = {
        "p0": str(p0),
        "alpha": str(alpha),
        "accounts": args.accounts,
        "target_power": str(power),
        "extraction": [row for _, row in rows],
    }
    emit(args, lines, data)
    return 0


def _run(args: argparse.Namespace) -> int:
    p0 = classification_p0(args.classes) if args.classes is not None else args.p0
    if args.alpha is None and args.alpha_log2 is None:
        args.alpha_log2 = _DEFAULT_ALPHA_LOG2
    if args.alpha is not None:
        alpha = parse_probability(args.alpha, what="--alpha")
        alpha_text = f"{alpha} (2^{_log2_text(alpha)})"
    else:
        alpha, alpha_text = Fraction(1, 1 << -args.alpha_log2), f"2^{args.alpha_log2}"
    target_power = 1 - Fraction(1, 1 << -args.miss_log2)
    if args.marking_rate is not None:
        return _run_extraction(args, alpha, alpha_text, target_power)
    if len(args.retention) > MAX_RETENTIONS:
        raise EncodingError(f"give at most {MAX_RETENTIONS} --retention rates")
    retentions = tuple(args.retention)
    results = plan_table(
        p0,
        retentions,
        alpha=alpha,
        target_power=target_power,
        disputes=args.disputes,
        max_revealed_fraction=args.max_revealed,
    )
    level = _level_flag(args)
    lines = [
        f"null match probability p0 = {p0}, false-claim level alpha = {alpha_text}",
        (
            f"target power 1 - 2^{args.miss_log2}, {args.disputes} disputes, "
            f"at most {args.max_revealed} of the set revealed before the last"
        ),
        "",
        f"{'retention':>9}  {'k':>6}  {'threshold':>9}  {'N':>9}  {'power':>14}  {'false claim':>11}",
    ]
    rows = list(zip(retentions, results, strict=True))
    lines.extend(_row_line(r, result) for r, result in rows)
    feasible = [(r, result) for r, result in rows if result is not None]
    if feasible:
        lines += ["", "the flags to use, for the retention you plan for:"]
        for retention, result in feasible:
            flags = _flags(result, level)
            lines.append(
                f"  retention {float(retention):g}: secmark commit {flags['commit']}; "
                f"secmark arbiter init {flags['arbiter_init']}"
            )
    if alpha > MAX_ALPHA:
        lines.append(f"(an arbiter refuses a level above 2^-20: alpha = {alpha_text} is too weak)")
    lines += ["", *advice_lines()]
    data = {
        "p0": str(p0),
        "alpha": str(alpha),
        "alpha_log2": args.alpha_log2,
        "target_power": str(target_power),
        "disputes": args.disputes,
        "max_revealed_fraction": str(args.max_revealed),
        "plans": [_row_data(r, result, level) for r, result in rows],
        "families": [advice.to_data() for advice in FAMILY_ADVICE],
    }
    emit(args, lines, data)
    return 0
