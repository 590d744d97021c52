"""``secmark plan``: how many triggers to embed and challenge.

Prints, for each assumed retention rate, the smallest number k of challenges
per dispute whose exact threshold an honest owner reaches with the target
power, and the trigger-set size N that keeps the set mostly unrevealed over
the expected disputes (the model is in :mod:`secmark.stats.planning`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from secmark.cli.output import add_json_flag, emit
from secmark.stats.null import classification_p0
from secmark.stats.planning import (
    DEFAULT_DISPUTES,
    DEFAULT_MAX_REVEALED_FRACTION,
    DEFAULT_RETENTIONS,
    MAX_CHALLENGES,
    Plan,
    plan_table,
)

__all__ = ["register"]

_DEFAULT_ALPHA_LOG2 = -64
_DEFAULT_MISS_LOG2 = -20


def _fraction(text: str) -> Fraction:
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number such as 0.1 or 1/10") from None


def _probability(text: str) -> Fraction:
    value = _fraction(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} must lie strictly between 0 and 1")
    return value


def _retention(text: str) -> Fraction:
    value = _fraction(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"retention {text} must lie in (0, 1]")
    return value


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be at least {minimum}")
        return value

    return parse


def _negative_exponent(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value >= 0:
        raise argparse.ArgumentTypeError(f"the exponent {text} must be negative")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="recommend how many triggers to embed and to challenge per dispute",
        description=(
            "For each retention rate r (the chance that the attacked model still "
            "answers a trigger's label), print the smallest number k of challenges "
            "whose exact threshold is reached with the target power, and the "
            "trigger-set size N."
        ),
    )
    space = parser.add_mutually_exclusive_group(required=True)
    space.add_argument(
        "--classes", type=_at_least(2), metavar="K", help="labels uniform over K classes"
    )
    space.add_argument(
        "--p0", type=_probability, metavar="P", help="null match probability, e.g. 1/10"
    )
    parser.add_argument(
        "--alpha-log2",
        type=_negative_exponent,
        default=_DEFAULT_ALPHA_LOG2,
        metavar="X",
        help=f"significance level 2^X (default {_DEFAULT_ALPHA_LOG2})",
    )
    parser.add_argument(
        "--miss-log2",
        type=_negative_exponent,
        default=_DEFAULT_MISS_LOG2,
        metavar="X",
        help=f"target power 1 - 2^X (default {_DEFAULT_MISS_LOG2})",
    )
    parser.add_argument(
        "--retention",
        type=_retention,
        nargs="+",
        default=list(DEFAULT_RETENTIONS),
        metavar="R",
        help="retention rates to plan for (default 1 0.9 0.75 0.5 0.3)",
    )
    parser.add_argument(
        "--disputes",
        type=_at_least(1),
        default=DEFAULT_DISPUTES,
        metavar="D",
        help=f"disputes the trigger set must serve (default {DEFAULT_DISPUTES})",
    )
    parser.add_argument(
        "--max-revealed",
        type=_probability,
        default=DEFAULT_MAX_REVEALED_FRACTION,
        metavar="F",
        help=(
            "largest expected fraction of the set revealed before the last dispute "
            f"(default {DEFAULT_MAX_REVEALED_FRACTION})"
        ),
    )
    add_json_flag(parser)
    parser.set_defaults(handler=_run)


def _finite_or_none(value: float) -> float | None:
    # JSON has no infinity; a miss probability of exactly 0 is reported as null.
    return value if math.isfinite(value) else None


def _row_data(retention: Fraction, result: Plan | None) -> dict[str, Any]:
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


def _run(args: argparse.Namespace) -> int:
    p0 = classification_p0(args.classes) if args.classes is not None else args.p0
    alpha = Fraction(1, 2**-args.alpha_log2)
    target_power = 1 - Fraction(1, 2**-args.miss_log2)
    retentions = tuple(args.retention)
    results = plan_table(
        p0,
        retentions,
        alpha=alpha,
        target_power=target_power,
        disputes=args.disputes,
        max_revealed_fraction=args.max_revealed,
    )
    lines = [
        f"null match probability p0 = {p0}, false-claim level alpha = 2^{args.alpha_log2}",
        (
            f"target power 1 - 2^{args.miss_log2}, {args.disputes} disputes, "
            f"at most {args.max_revealed} of the set revealed before the last"
        ),
        "",
        f"{'retention':>9}  {'k':>6}  {'threshold':>9}  {'N':>9}  {'power':>14}  {'false claim':>11}",
    ]
    lines.extend(_row_line(r, result) for r, result in zip(retentions, results, strict=True))
    data = {
        "p0": str(p0),
        "alpha_log2": args.alpha_log2,
        "target_power": str(target_power),
        "disputes": args.disputes,
        "max_revealed_fraction": str(args.max_revealed),
        "plans": [_row_data(r, result) for r, result in zip(retentions, results, strict=True)],
    }
    emit(args, lines, data)
    return 0
