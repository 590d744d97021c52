"""``secmark evaluate``: how well watermarks survive removal attacks (torch extra).

Runs the robustness evaluation of :mod:`secmark.evaluate` on data sets that
ship with scikit-learn and writes ``report.html`` (plots inline),
``summary.md`` and ``summary.json`` into ``--out``. torch, scikit-learn and
matplotlib are imported only when the command runs, so the rest of the
command line works without them. ``--language-model`` adds the
language-model section (:mod:`secmark.evaluate.language`; the ``lm-train``
extra), ``--datasets none`` leaves the data sets out.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secmark.cli.extras import require_torch
from secmark.cli.output import add_json_flag, emit, show_progress
from secmark.errors import EncodingError

if TYPE_CHECKING:
    from secmark.evaluate.language import LanguageModelResult

_DEFAULT_DATASETS = "digits,breast_cancer,diabetes"
_NO_DATASETS = "none"
_DEFAULT_SEEDS = 3
_QUICK_SEEDS = 1


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` (default 1) for a command that trains or runs torch models."""
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: more is slower beside any other busy process)",
    )


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's CPU threads set to ``count`` inside the block, then put back.

    Set explicitly because torch's default, one thread per core, is what
    makes small models slow on a small shared machine: two threads on two
    busy cores wait on each other (the demo took 87-195 s with two threads,
    18 s with one).

    Raises:
        EncodingError: ``count`` is below 1.
    """
    if count < 1:
        raise EncodingError(f"--threads must be at least 1, not {count}")
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = subparsers.add_parser(
        "evaluate",
        help="measure how well watermarks survive removal attacks (needs the torch extra and matplotlib)",
        description=(
            "Embeds a secmark watermark derived from a signed commitment into a model for each "
            "data set and seed, attacks it (fine-tuning, pruning, fine-pruning, quantisation, "
            "input noise, distillation, overwriting) or puts a filter in front of it (an "
            "out-of-distribution detector that answers odd queries at random, or a clean model "
            "of the thief's whose answer wins where the two disagree) over a grid of strengths, "
            "and judges each attacked model with the exact binomial test on an arbiter's "
            "challenge. Writes report.html, summary.md and summary.json. The full grid (432 runs) "
            "takes about three and a half minutes of CPU time on one thread, several times that "
            "in wall time on a busy two-core machine (--family pool: about twice that); --quick runs "
            "a reduced grid on one seed. --language-model adds a language-model fingerprint's "
            "survival of fine-tuning (all weights and LoRA), int8 weights and other templates, "
            "its null, perplexity cost and the triggers a dispute needs (the lm-train extra; "
            "about 15 minutes of CPU time on one thread for 3 seeds, with --quick about 2)."
        ),
    )
    evaluate.add_argument(
        "--datasets",
        default=_DEFAULT_DATASETS,
        help=(
            f"comma-separated data sets (default {_DEFAULT_DATASETS}); {_NO_DATASETS}: only "
            "the language-model section"
        ),
    )
    evaluate.add_argument(
        "--seeds",
        type=int,
        help=f"seeds 1..N (default {_DEFAULT_SEEDS}, or {_QUICK_SEEDS} with --quick)",
    )
    evaluate.add_argument("--quick", action="store_true", help="a reduced attack grid")
    evaluate.add_argument(
        "--language-model",
        action="store_true",
        help="add the language-model fingerprint section (needs the lm-train extra)",
    )
    evaluate.add_argument(
        "--family",
        default="noise",
        help=(
            "the owner's trigger family: noise (default), pool (in-distribution candidates: "
            "perturbed copies of a few training inputs held out of all training, with random "
            "committed labels) or overlay (a tenth of a candidate's values replaced)"
        ),
    )
    add_threads_argument(evaluate)
    evaluate.add_argument("--out", required=True, type=Path, help="folder for the report")
    evaluate.add_argument(
        "--overwrite", action="store_true", help="replace an earlier report there"
    )
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_json_flag(evaluate)
    evaluate.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    require_torch("secmark evaluate")
    from secmark.evaluate import (
        FAMILY_NAMES,
        default_config,
        quick_config,
        run_evaluation,
        write_report,
    )

    names = tuple(name.strip() for name in args.datasets.split(",") if name.strip())
    datasets = () if names == (_NO_DATASETS,) else names
    seeds = (
        args.seeds if args.seeds is not None else (_QUICK_SEEDS if args.quick else _DEFAULT_SEEDS)
    )
    if seeds < 1:
        raise EncodingError(f"--seeds must be at least 1, not {seeds}")
    if args.family not in FAMILY_NAMES:
        # Checked here, not by argparse's choices, so that a bad name is the
        # typed error every other bad argument of this command raises.
        raise EncodingError(
            f"unknown trigger family {args.family!r} (known: {', '.join(FAMILY_NAMES)})"
        )
    config = (quick_config if args.quick else default_config)(
        datasets, seeds, family=args.family, language_model=args.language_model
    )
    with torch_threads(args.threads):
        result = run_evaluation(config, progress=not args.no_progress and show_progress(args))
    files = write_report(result, args.out, overwrite=args.overwrite)
    rows = result.summary()
    failing = [row for row in rows if not row.survives]
    lines = []
    if datasets:
        lines.append(
            f"evaluated {len(rows)} attack settings on {', '.join(datasets)} "
            f"({len(config.seeds)} seed(s), {config.family} triggers) in {result.seconds:.0f} s"
        )
    for task in result.tasks:
        own = [row for row in rows if row.dataset == task.name]
        removed = [row for row in own if not row.survives]
        lines.append(
            f"  {task.name}: watermark survives {len(own) - len(removed)} of {len(own)} settings"
            + (
                f"; removed by {', '.join(sorted({f'{r.attack} {r.strength:g}' for r in removed}))}"
                if removed
                else ""
            )
        )
    language = result.language_model
    if language is not None:
        lines += _language_lines(language)
    lines += [f"report:  {files.html}", f"summary: {files.markdown}, {files.json}"]
    data: dict[str, Any] = {
        "report": str(files.html),
        "summary_markdown": str(files.markdown),
        "summary_json": str(files.json),
        "seconds": result.seconds,
        "family": config.family,
        "settings": len(rows),
        "not_surviving": [
            {
                "dataset": r.dataset,
                "attack": r.attack,
                "strength": r.strength,
                "data_fraction": r.data_fraction,
                "removed_seeds": r.removed,
                "seeds": r.seeds,
            }
            for r in failing
        ],
        "language_model": None if language is None else _language_data(language),
    }
    emit(args, lines, data)
    return 0


def _language_lines(language: LanguageModelResult) -> list[str]:
    """The language-model section in a few lines: where the dispute held in
    every seed, where it failed, and what the null did."""
    from secmark.evaluate.report import condition_title

    rows = language.rows()
    kept = [row for row in rows if not row.null and row.holds == row.seeds]
    lost = [row for row in rows if not row.null and row.holds < row.seeds]
    null = [row for row in rows if row.null]
    lines = [
        (
            f"language model: the fingerprint's dispute holds under {len(kept)} of "
            f"{len(kept) + len(lost)} conditions in every one of {len(language.seeds)} seed(s) "
            f"(k = {language.config.challenges}, {language.threshold} matching tokens of "
            f"{language.config.challenges * language.config.target_length} needed) "
            f"in {language.seconds:.0f} s"
        )
    ]
    if lost:
        lines.append(
            "  lost under: "
            + "; ".join(
                f"{condition_title(row.condition, row.lr)} ({row.challenged_matches} matching)"
                for row in lost
            )
        )
    lines += [
        f"  null (never fingerprinted): at most {row.challenged_matches} matching, "
        f"claimed in {row.holds} of {row.seeds} seed(s)"
        for row in null
    ]
    return lines


def _language_data(language: LanguageModelResult) -> dict[str, Any]:
    from secmark.evaluate.report import condition_title

    return {
        "seconds": language.seconds,
        "seeds": len(language.seeds),
        "threshold": language.threshold,
        "conditions": [
            {
                "condition": row.condition,
                "title": condition_title(row.condition, row.lr),
                "lr": row.lr,
                "worst_challenged_matches": row.challenged_matches,
                "held_seeds": row.holds,
                "seeds": row.seeds,
                "null": row.null,
            }
            for row in language.rows()
        ],
    }
