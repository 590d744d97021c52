"""The robustness report: ``report.html`` (self-contained, plots inline as
SVG), ``summary.md`` and ``summary.json``.

The HTML report has, per data set, the setup and baseline (fidelity cost,
false-claim check on the unmarked model), the summary table, one plot per
attack (clean score and watermark accuracy against strength; the worst
p-value on a log scale with the alpha line), the evasion filters (matches
kept behind each filter, the thief's clean cost, the verdict, with their
plots), the thief's cost of distillation, the trigger-safety check, and a list of the settings where the
watermark did not survive; and, when the evaluation ran it, the
language-model section (:func:`language_model_markdown`: the fingerprint's
survival, held-out perplexity, the null and the triggers a dispute needs). Rows where the watermark was lost are
highlighted, attacks and settings are named in words, and the plots keep
their text as text (legends at 10 pt: over 13 px at 100 % zoom). Plots need
matplotlib (drawn off-screen with the Agg backend); the JSON and Markdown
files do not.
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secmark.errors import SecmarkError
from secmark.evaluate.attacks import ATTACKS
from secmark.evaluate.harness import (
    AttackRecord,
    EvaluationResult,
    SummaryRow,
    TaskInfo,
)
from secmark.evaluate.language import (
    CHAT_TEMPLATE,
    CONDITIONS,
    OTHER_TEMPLATE,
    SYSTEM_PROMPT,
    TRAINED_SYSTEM_PROMPTS,
    LanguageModelResult,
    TriggerPlan,
)
from secmark.evaluate.safety import COLLAPSE_MARGIN, RECIPE_TITLES, SafetyRecord
from secmark.files import write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ReportFiles",
    "condition_title",
    "format_p_value",
    "language_model_markdown",
    "render_html",
    "summary_json",
    "summary_markdown",
    "write_report",
]

_SMALLEST_FLOAT_LOG2 = -1000.0
"""Below 2^-1000 a p-value is printed as a power of two (a double ends near 2^-1074)."""
_CLOSE_TO_ORIGINAL = 0.01
"""A distilled student within one point of the original counts as a full copy."""
_PLOT_STYLE = {
    "svg.fonttype": "none",
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 10,
    "figure.titlesize": 13,
}
"""Text stays text in the SVG (searchable, sharp), and no text is under 10 pt
(the exponents of log-scale tick labels, at 70 % of 11 pt, are 7.7 pt): a plot
is drawn at 1 pt = 4/3 px, so its legends are over 13 px at 100 % zoom."""
_EXTRA_TEXT = {
    "queries": "{:.0f} queries",
    "thief_watermark_accuracy": "thief's own watermark {:.0%}",
    "replaced_holdout": "{:.1%} of holdout answers replaced",
    "flagged_own": "{:.1%} of the thief's data flagged",
    "decoy_accuracy": "{:.1%} right on labelled decoys",
}
"""How the attack-specific figures (means over seeds) read in the tables."""


@dataclass(frozen=True)
class ReportFiles:
    """Where :func:`write_report` wrote the report."""

    html: Path
    markdown: Path
    json: Path


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _level(alpha: Fraction) -> str:
    """A level for people: ``2⁻⁶⁴`` for a power of two, else its value."""
    if alpha.numerator == 1 and alpha.denominator & (alpha.denominator - 1) == 0:
        return "2" + str(1 - alpha.denominator.bit_length()).translate(_SUPERSCRIPT)
    return f"{float(alpha):.3g}"


def _words(identifier: str) -> str:
    """An identifier (``breast_cancer``) as words (``breast cancer``)."""
    return identifier.replace("_", " ")


def _attack_title(name: str) -> str:
    spec = ATTACKS.get(name)
    return spec.title if spec is not None else _words(name)


def _is_evasion(name: str) -> bool:
    """Whether ``name`` is a filter in front of the stolen model (reported
    in its own section) rather than a removal attack."""
    spec = ATTACKS.get(name)
    return spec is not None and spec.evasion


def _settings_text(settings: Any) -> str:
    """The thief's fixed settings in words, never as a Python repr."""
    return ", ".join(
        f"{_words(field.name)} {getattr(settings, field.name):g}"
        for field in dataclasses.fields(settings)
    )


def format_p_value(log2_p: float) -> str:
    """A p-value for people, from its log2: ``3.1e-12``, or ``2^-1234`` below the float range."""
    if log2_p >= 0:
        return "1"
    if log2_p < _SMALLEST_FLOAT_LOG2:
        return f"2^{log2_p:.0f}"
    return f"{2.0**log2_p:.2g}"


def _plain(value: Any) -> Any:
    """``value`` as JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    if isinstance(value, Fraction):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _row_data(row: SummaryRow) -> dict[str, Any]:
    data: dict[str, Any] = _plain(row)
    data["worst_p_value_text"] = format_p_value(row.worst_log2_p_value)
    data["evasion"] = _is_evasion(row.attack)
    return data


def summary_json(result: EvaluationResult) -> dict[str, Any]:
    """The whole result as JSON-ready data: configuration, tasks, baselines,
    the summary rows, every per-seed record and the safety check."""
    config = result.config
    return {
        "alpha": str(config.alpha),
        "family": config.family,
        "attacks": [_plain(record) for record in result.attacks],
        "baselines": [_plain(record) for record in result.baselines],
        "config": {
            "datasets": list(config.datasets),
            "family": config.family,
            "seeds": list(config.seeds),
            "max_clean_drop": config.max_clean_drop,
            "settings": _plain(config.settings),
            "sweeps": _plain(config.sweeps),
        },
        "safety": [dict(_plain(record), collapsed=record.collapsed) for record in result.safety],
        "seconds": result.seconds,
        "summary": [_row_data(row) for row in result.summary()],
        "tasks": [_plain(task) for task in result.tasks],
        "language_model": (
            None if result.language_model is None else _language_json(result.language_model)
        ),
    }


def _language_json(language: LanguageModelResult) -> dict[str, Any]:
    """The language-model section as JSON-ready data: every per-seed
    measure, the worst-of-seeds rows (with their titles), the null and the
    planning table."""
    return {
        "config": _plain(language.config),
        "p0": str(language.p0),
        "threshold": language.threshold,
        "vocabulary": language.vocabulary,
        "words": language.words,
        "weights": language.weights,
        "held_out_chunks": language.held_out,
        "thief_chunks": language.thief_chunks,
        "seeds": [_plain(seed) for seed in language.seeds],
        "measures": [dict(_plain(m), holds=m.holds) for m in language.measures],
        "rows": [
            dict(
                _plain(row),
                title=condition_title(row.condition, row.lr),
                exact_accuracy=row.exact_accuracy,
                token_accuracy=row.token_accuracy,
            )
            for row in language.rows()
        ],
        "null": [
            dict(_plain(null), p_value_text=format_p_value(null.log2_p_value))
            for null in language.null
        ],
        "plans": [_plain(plan) for plan in language.plans],
        "pretrain_seconds": language.pretrain_seconds,
        "seconds": language.seconds,
    }


def _share(value: float | None) -> str:
    """A share in percent, or a dash where it was not measured."""
    return "-" if value is None else f"{100 * value:.1f} %"


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def _score(value: float, task: TaskInfo) -> str:
    return f"{100 * value:.1f} %" if task.metric == "accuracy" else f"{value:.3f}"


def _drop(value: float, task: TaskInfo) -> str:
    return f"{_points(value)} pp" if task.metric == "accuracy" else f"{value:+.3f}"


def _task(result: EvaluationResult, name: str) -> TaskInfo:
    return next(task for task in result.tasks if task.name == name)


def _row_class(row: SummaryRow) -> str:
    """``lost`` where an attack removed the watermark in some seed, ``broken``
    where the verdict was lost only together with the model's usefulness."""
    if not row.survives:
        return "lost"
    return "broken" if row.detected < row.seeds else ""


def _summary_table(result: EvaluationResult, task: TaskInfo) -> tuple[list[str], list[list[str]]]:
    header = [
        "attack",
        "strength",
        "data",
        f"clean {task.metric} (mean)",
        "clean drop (worst)",
        "wm accuracy (worst)",
        "matches (worst) / k; threshold",
        "p-value (worst)",
        "detected",
        "survives",
        "notes (mean)",
    ]
    rows = []
    for row in result.summary():
        if row.dataset != task.name or _is_evasion(row.attack):
            continue
        rows.append(
            [
                _attack_title(row.attack),
                f"{row.strength:g}",
                f"{row.data_fraction:g}",
                _score(row.clean_mean, task),
                _drop(row.worst_clean_drop, task),
                f"{100 * row.worst_watermark_accuracy:.1f} %",
                f"{row.worst_matches}/{row.challenged}; {row.threshold}",
                format_p_value(row.worst_log2_p_value),
                f"{row.detected}/{row.seeds}",
                "yes" if row.survives else f"NO: removed in {row.removed}/{row.seeds}",
                "; ".join(
                    _EXTRA_TEXT.get(key, _words(key) + " {:g}").format(value)
                    for key, value in row.extra.items()
                ),
            ]
        )
    return header, rows


def _summary_classes(result: EvaluationResult, task: TaskInfo) -> list[str]:
    """The row classes of :func:`_summary_table`, in its order."""
    return [
        _row_class(row)
        for row in result.summary()
        if row.dataset == task.name and not _is_evasion(row.attack)
    ]


def _evasion_summary(result: EvaluationResult, task: TaskInfo) -> list[SummaryRow]:
    return [row for row in result.summary() if row.dataset == task.name and _is_evasion(row.attack)]


def _evasion_table(result: EvaluationResult, task: TaskInfo) -> tuple[list[str], list[list[str]]]:
    """The evasion rows: what the filter keeps of the owner's matches, and
    what it costs the thief on ordinary traffic (the holdout split)."""
    header = [
        "filter",
        "strength",
        "thief data",
        f"stolen model's clean {task.metric} (mean)",
        "behind the filter (mean)",
        "thief's clean cost (worst)",
        "holdout answers replaced (mean)",
        "matches kept (worst) / k; threshold",
        "p-value (worst)",
        f"verdict at {_level(result.config.alpha)} holds",
        "survives",
    ]
    evasion = _evasion_summary(result, task)
    decoys = any("decoy_accuracy" in row.extra for row in evasion)
    if decoys:
        header.append("right on labelled decoys (mean)")
    rows = [
        [
            _attack_title(row.attack),
            f"{row.strength:g}",
            f"{row.data_fraction:g}",
            _score(row.original_mean, task),
            _score(row.clean_mean, task),
            _drop(row.worst_clean_drop, task),
            f"{100 * row.extra.get('replaced_holdout', 0.0):.1f} %",
            f"{row.worst_matches}/{row.challenged}; {row.threshold}",
            format_p_value(row.worst_log2_p_value),
            f"in {row.detected}/{row.seeds} seeds",
            "yes" if row.survives else f"NO: removed in {row.removed}/{row.seeds}",
        ]
        + ([_share(row.extra.get("decoy_accuracy"))] if decoys else [])
        for row in evasion
    ]
    return header, rows


_EVASION_TEXT = (
    "The thief leaves the stolen model's weights alone and serves it behind a filter that "
    "answers some queries with something else: a random answer where an out-of-distribution "
    "detector calibrated on his own data flags the query, or the answer of a clean model of his "
    "own where it disagrees with the stolen model. The clean cost is the filtered API's loss on "
    "the holdout split (ordinary traffic) against the stolen model's."
)


_EVASION_LABELS = {
    "ood_background": "background share {strength:g}",
    "ood_reconstruction": "PCA error {strength:g}",
    "disagreement_filter": "clean model, {fraction:.0%} data",
}
"""Short names of the evasion settings for the overview plot's axis."""


def _before_attack(result: EvaluationResult, task: TaskInfo) -> int:
    """The worst seed's matches before any attack."""
    return min(b.watermarked.matches for b in result.baselines if b.dataset == task.name)


def _evasion_note(result: EvaluationResult, task: TaskInfo) -> str:
    """The reference figures beside the evasion table: matches before any
    attack, the verdict's threshold, chance, and for classes what the
    disagreement filter is and what it costs the thief."""
    chance = float(task.challenges * Fraction(task.p0))
    text = (
        f"Before any attack the worst seed matched {_before_attack(result, task)} of "
        f"{task.challenges}; the verdict needs {task.threshold}; chance is about {chance:.1f}."
    )
    rows = [r for r in _evasion_summary(result, task) if r.attack == "disagreement_filter"]
    if rows and task.metric == "accuracy":
        prices = "; ".join(
            f"{r.data_fraction:.0%} of the data: {_score(r.clean_mean, task)} against "
            f"{_score(r.original_mean, task)}"
            for r in sorted(rows, key=lambda r: r.data_fraction)
        )
        text += (
            " For class labels the disagreement filter serves its clean model's answer on every "
            "query, triggers, decoys and ordinary traffic alike: a model made without the owner's "
            "secret, which matches random committed labels only by chance whatever the trigger "
            "family. What it costs the thief is the clean model's accuracy in place of the stolen "
            f"one's (mean over seeds: {prices})."
        )
    baselines = [b for b in result.baselines if b.dataset == task.name and b.decoy_accuracy]
    if baselines and rows:
        mean = {
            name: statistics.fmean(b.decoy_accuracy[name] for b in baselines)
            for name in ("unmarked", "watermarked")
        }
        behind = "; ".join(
            f"{r.data_fraction:.0%}: {100 * r.extra['decoy_accuracy']:.1f} %"
            for r in sorted(rows, key=lambda r: r.data_fraction)
            if "decoy_accuracy" in r.extra
        )
        text += (
            " An arbiter's record of answers to labelled decoys (the candidates that are no "
            "trigger, with their reserved input's class) does not expose the filter either: "
            f"the stolen model itself answers {100 * mean['watermarked']:.1f} % of them right "
            "(it learnt random labels around the reserved inputs), an unmarked model "
            f"{100 * mean['unmarked']:.1f} %, the filtered API {behind} (mean over seeds), "
            "as an innocent model would."
        )
    return text


def _evasion_figure(result: EvaluationResult, task: TaskInfo) -> str:
    """The evasion overview as an inline ``<svg>``: matches kept behind each
    filter setting (worst seed) against the threshold, chance and the
    matches before any attack; and the thief's clean cost."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.patches import Patch

    rows = _evasion_summary(result, task)
    labels = [
        _EVASION_LABELS.get(r.attack, _words(r.attack)).format(
            strength=r.strength, fraction=r.data_fraction
        )
        for r in rows
    ]
    style = {**_PLOT_STYLE, "svg.hashsalt": f"{task.name}/evasion"}
    with matplotlib.rc_context(style):  # type: ignore[arg-type]
        figure, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4.8))
        places = list(range(len(rows)))
        colours = ["tab:green" if r.survives and r.detected == r.seeds else "tab:red" for r in rows]
        left.barh(places, [r.worst_matches for r in rows], color=colours)
        left.axvline(
            task.threshold,
            color="black",
            linestyle="--",
            linewidth=1.2,
            label=f"verdict threshold: {task.threshold}",
        )
        left.axvline(
            _before_attack(result, task),
            color="tab:blue",
            linestyle=":",
            linewidth=1.5,
            label=f"before any attack: {_before_attack(result, task)}",
        )
        left.axvline(
            float(task.challenges * Fraction(task.p0)),
            color="grey",
            linestyle="-.",
            linewidth=1,
            label="chance",
        )
        handles, names = left.get_legend_handles_labels()
        handles += [Patch(color="tab:green"), Patch(color="tab:red")]
        names += ["verdict held in every seed", "verdict lost in a seed"]
        left.set_xlim(0, task.challenges)
        left.set_xlabel(f"matches kept of k = {task.challenges} (worst seed)")
        right.barh(places, [100 * r.worst_clean_drop for r in rows], color="tab:purple")
        right.axvline(0, color="black", linewidth=0.8)
        right.set_xlabel(
            "thief's clean cost, points (worst seed)"
            if task.metric == "accuracy"
            else "thief's clean cost, R² x 100 (worst seed)"
        )
        for axis in (left, right):
            axis.set_yticks(places, labels)
            axis.invert_yaxis()
            axis.grid(True, axis="x", alpha=0.3)
        right.tick_params(labelleft=False)
        left.legend(
            handles, names, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False
        )
        figure.suptitle(
            f"{_words(task.name)}: {task.family_name} triggers behind the thief's filters"
        )
        document = _svg_of(figure)
    return _inline_svg(document, f"{task.name}-evasion")


def _baseline_classes(result: EvaluationResult, task: TaskInfo) -> list[str]:
    """``lost`` where the watermark was not even found before any attack,
    ``false-claim`` where the unmarked model was (rows of :func:`_baseline_rows`)."""
    return [
        "lost"
        if not record.watermarked.detected
        else "false-claim"
        if record.unmarked.detected
        else ""
        for record in result.baselines
        if record.dataset == task.name
    ]


def _distilled(result: EvaluationResult, task: TaskInfo) -> list[SummaryRow]:
    return sorted(
        (row for row in result.summary() if row.dataset == task.name and row.attack == "distill"),
        key=lambda r: (r.data_fraction, r.strength),
    )


def _baseline_rows(result: EvaluationResult, task: TaskInfo) -> tuple[list[str], list[list[str]]]:
    header = [
        "seed",
        f"unmarked {task.metric}",
        f"watermarked {task.metric}",
        "drop",
        "wm accuracy",
        "wm matches / k",
        "unmarked matches / k",
        "unmarked p-value",
        "embedding s",
    ]
    records = [record for record in result.baselines if record.dataset == task.name]
    decoys = any(record.decoy_accuracy for record in records)
    if decoys:
        header += ["unmarked on decoys", "watermarked on decoys"]
    rows = []
    for record in records:
        row = [
            str(record.seed),
            _score(record.unmarked.clean_score, task),
            _score(record.watermarked.clean_score, task),
            _drop(record.unmarked.clean_score - record.watermarked.clean_score, task),
            f"{100 * record.watermarked.watermark_accuracy:.1f} %",
            f"{record.watermarked.matches}/{record.watermarked.challenged}",
            f"{record.unmarked.matches}/{record.unmarked.challenged}",
            format_p_value(record.unmarked.log2_p_value),
            f"{record.embed_seconds:.1f}",
        ]
        if decoys:
            row += [_share(record.decoy_accuracy.get(name)) for name in ("unmarked", "watermarked")]
        rows.append(row)
    return header, rows


def _distillation(
    result: EvaluationResult, task: TaskInfo
) -> tuple[list[str], list[list[str]], str]:
    rows = _distilled(result, task)
    header = [
        "thief's data",
        "queries",
        f"student {task.metric} (mean)",
        "gap to original (mean)",
        "student wm accuracy (worst)",
        "p-value (worst)",
        "watermark removed",
    ]
    table = [
        [
            f"{row.data_fraction:g}",
            f"{row.extra.get('queries', 0):.0f}",
            _score(row.clean_mean, task),
            _drop(row.original_mean - row.clean_mean, task),
            f"{100 * row.worst_watermark_accuracy:.1f} %",
            format_p_value(row.worst_log2_p_value),
            f"{row.removed}/{row.seeds} seeds",
        ]
        for row in rows
    ]
    if not rows:
        return header, table, ""
    close = [row for row in rows if row.original_mean - row.clean_mean <= _CLOSE_TO_ORIGINAL]
    usable = [
        row for row in rows if row.original_mean - row.clean_mean <= result.config.max_clean_drop
    ]

    largest = max(row.data_fraction for row in rows)

    def cheapest(candidates: list[SummaryRow]) -> str:
        if not candidates:
            return f"more than the largest budget tried ({largest:g} of the training data)"
        best = min(candidates, key=lambda r: r.data_fraction)
        return f"{best.data_fraction:g} of the training data ({best.extra.get('queries', 0):.0f} queries)"

    near = "1 point" if task.metric == "accuracy" else "0.01 of R²"
    margin = (
        f"{100 * result.config.max_clean_drop:g} points"
        if task.metric == "accuracy"
        else (f"{result.config.max_clean_drop:g} of R²")
    )
    text = (
        f"A student within {near} of the original needs {cheapest(close)}; one within the "
        f"{margin} removal margin needs {cheapest(usable)}. Students answer the owner's triggers "
        "at about chance: hard-label distillation removes a trigger-set watermark, and what it "
        "costs the thief is his own data, the queries, and a training run."
    )
    return header, table, text


def _safety_rows(result: EvaluationResult, task: TaskInfo) -> tuple[list[str], list[list[str]]]:
    header = [
        "recipe",
        "stamp",
        "wm accuracy (mean)",
        f"clean {task.metric}",
        f"stamped {task.metric}",
        "unmarked on stamped",
        "collapse (seeds)",
    ]
    groups: dict[tuple[str, str], list[SafetyRecord]] = {}
    for record in result.safety:
        if record.dataset == task.name:
            groups.setdefault((record.recipe, record.stamp), []).append(record)
    rows = []
    for (recipe, how), records in groups.items():
        rows.append(
            [
                RECIPE_TITLES.get(recipe, recipe),
                how,
                f"{100 * statistics.fmean(r.watermark_accuracy for r in records):.1f} %",
                _score(statistics.fmean(r.clean for r in records), task),
                _score(statistics.fmean(r.stamped for r in records), task),
                _score(statistics.fmean(r.unmarked_stamped for r in records), task),
                f"{sum(r.collapsed for r in records)}/{len(records)}",
            ]
        )
    return header, rows


def _not_robust(result: EvaluationResult) -> list[str]:
    lines = []
    for row in result.summary():
        task = _task(result, row.dataset)
        if not row.survives:
            lines.append(
                f"{_words(row.dataset)}: {_attack_title(row.attack)} at {row.strength:g} "
                f"(thief data {row.data_fraction:g}) "
                f"removed the watermark in {row.removed} of {row.seeds} seeds: worst {row.worst_matches}/"
                f"{row.challenged} matches (threshold {row.threshold}), clean {task.metric} "
                f"{_score(row.clean_mean, task)} (worst drop {_drop(row.worst_clean_drop, task)})"
            )
    return lines


def _broken(result: EvaluationResult) -> list[str]:
    lines = []
    for row in result.summary():
        task = _task(result, row.dataset)
        if row.survives and row.detected < row.seeds:
            lines.append(
                f"{_words(row.dataset)}: {_attack_title(row.attack)} at {row.strength:g} lost the "
                "verdict in "
                f"{row.seeds - row.detected} of {row.seeds} seeds, but only by ruining the model "
                f"(worst clean drop {_drop(row.worst_clean_drop, task)})"
            )
    return lines


def condition_title(condition: str, lr: float | None) -> str:
    """A condition in words, with its learning rate where it has one."""
    title = CONDITIONS.get(condition, _words(condition))
    return title if lr is None else f"{title}, lr {lr:g}"


def _template_text(pair: tuple[str, str]) -> str:
    """A template as its reader would type it, the prompt as ``…``; a
    newline shown as ``\\n``."""
    return f"{pair[0]}…{pair[1]}".replace("\n", "\\n")


def _count_share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f} %)"


def _language_intro(language: LanguageModelResult, alpha: str) -> str:
    config = language.config
    trained = ", ".join(_template_text(pair) for pair in (CHAT_TEMPLATE, *TRAINED_SYSTEM_PROMPTS))
    pretrain = (
        "reused from the work folder"
        if language.pretrain_seconds is None
        else f"{language.pretrain_seconds:.0f} s"
    )
    return (
        f"A GPT-2-style model of {language.weights:,} weights and a tokenizer of "
        f"{language.vocabulary} ids ({language.words} of them words, p0 = {language.p0} per "
        f"target token), pretrained {config.pretrain_steps} steps on the first standard-library "
        f"sources ({pretrain}). Per seed the owner commits to N = {config.triggers} triggers "
        f"(prompts of {config.prompt_length} word ids, targets of L = {config.target_length}) and "
        f"fingerprints them in {config.embed_steps} steps, the prompts raw and in the templates "
        f"{trained}. The thief fine-tunes {config.attack_steps} steps on other text "
        f"({language.thief_chunks} chunks), rounds the weights to int8, or asks in templates the "
        f"owner never trained: {_template_text(OTHER_TEMPLATE)} and "
        f"{_template_text(SYSTEM_PROMPT)}. A dispute challenges k = {config.challenges} triggers "
        f"({config.challenges * config.target_length} tokens) and holds at alpha = {alpha} from "
        f"{language.threshold} matching tokens (decision_threshold, exact). Worst of "
        f"{len(config.seeds)} seed(s); for the null, the highest. Held-out perplexity on "
        f"{language.held_out} chunks of text the model never learnt; run time "
        f"{language.seconds:.0f} s."
    )


def _language_survival(
    language: LanguageModelResult,
) -> tuple[list[str], list[list[str]], list[str]]:
    """The survival table, and its row classes: ``lost`` where the dispute
    failed in some seed, ``false-claim`` where the null decided one."""
    header = [
        "condition",
        "exact (all L)",
        "per token",
        "challenged matches; threshold",
        "dispute holds",
        "held-out perplexity",
    ]
    rows: list[list[str]] = []
    classes = []
    for row in language.rows():
        rows.append(
            [
                condition_title(row.condition, row.lr),
                _count_share(row.exact, row.triggers),
                _count_share(row.tokens, row.triggers * row.target_length),
                f"{row.challenged_matches}/{row.challenged * row.target_length}; {row.threshold}",
                f"{row.holds}/{row.seeds} seeds",
                "(weights unchanged)" if row.perplexity is None else f"{row.perplexity:.1f}",
            ]
        )
        if row.null:
            classes.append("false-claim" if row.holds else "")
        else:
            classes.append("lost" if row.holds < row.seeds else "")
    return header, rows, classes


def _language_seeds(language: LanguageModelResult) -> tuple[list[str], list[list[str]]]:
    header = ["seed", "held-out perplexity before", "after fingerprinting", "fingerprinting s"]
    rows = [
        [
            str(seed.seed),
            f"{seed.perplexity_before:.1f}",
            f"{seed.perplexity_after:.1f}",
            f"{seed.embed_seconds:.0f}",
        ]
        for seed in language.seeds
    ]
    return header, rows


def _language_null(language: LanguageModelResult) -> tuple[list[str], list[list[str]], str]:
    null = language.null[0]
    tokens = null.triggers * null.target_length
    header = ["model", "matching tokens", "triggers exact", "P[Binom(N L, p0) >= matches]"]
    rows = [
        [
            record.model,
            _count_share(record.tokens, tokens),
            str(record.exact),
            format_p_value(record.log2_p_value),
        ]
        for record in language.null
    ]
    text = (
        f"One commitment of N = {null.triggers} triggers ({tokens} target tokens) that no model "
        f"here was fingerprinted on; chance is p0 = {language.p0} = {100 * float(language.p0):.3f} "
        "% per token."
    )
    return header, rows, text


def _plan_cell(plan: TriggerPlan) -> str:
    if plan.never:
        return "never (at or below chance)"
    if plan.triggers is None:
        return f"> {plan.max_triggers}"
    return f"{plan.triggers} ({plan.threshold}/{plan.tokens})"


def _language_plans(language: LanguageModelResult) -> tuple[list[str], list[list[str]], str]:
    config = language.config
    header = ["per-token accuracy"] + [f"L = {length}" for length in config.plan_lengths]
    groups: dict[tuple[str | None, float | None], list[TriggerPlan]] = {}
    for plan in language.plans:
        groups.setdefault((plan.condition, plan.lr), []).append(plan)
    rows = []
    for (condition, lr), plans in groups.items():
        label = (
            "every token matches"
            if condition is None
            else f"{condition_title(condition, lr)}: {100 * (plans[0].accuracy or 0.0):.1f} %"
        )
        rows.append([label] + [_plan_cell(plan) for plan in plans])
    text = (
        f"Triggers a dispute needs at alpha = {_level(config.alpha)} (p0 = {language.p0} per "
        "token): when every token matches, and at each condition's worst per-token accuracy for "
        "power 1 - 2⁻²⁰ (in brackets: matching tokens needed / tokens challenged). "
        f"L = {config.target_length} was measured; other L assume the same per-token accuracy, "
        "tokens independent: optimistic where an attack erases whole triggers."
    )
    return header, rows, text


def language_model_markdown(language: LanguageModelResult) -> str:
    """The language-model section as Markdown: its setup, the survival
    table (worst of seeds), held-out perplexity per seed, the pooled null
    and the planning table. ``benchmarks/llm.py`` prints it."""
    alpha = _level(language.config.alpha)
    survival, rows, _ = _language_survival(language)
    null_header, null_rows, null_text = _language_null(language)
    plan_header, plan_rows, plan_text = _language_plans(language)
    parts = [
        "## Language-model fingerprint",
        "",
        _language_intro(language, alpha),
        "",
        _markdown_table(survival, rows),
        "",
        "### Held-out perplexity: what fingerprinting costs",
        "",
        _markdown_table(*_language_seeds(language)),
        "",
        "### The null: models never fingerprinted",
        "",
        null_text,
        "",
        _markdown_table(null_header, null_rows),
        "",
        "### Triggers needed",
        "",
        plan_text,
        "",
        _markdown_table(plan_header, plan_rows),
    ]
    return "\n".join(parts) + "\n"


def _language_html(language: LanguageModelResult) -> str:
    alpha = _level(language.config.alpha)
    header, rows, classes = _language_survival(language)
    null_header, null_rows, null_text = _language_null(language)
    plan_header, plan_rows, plan_text = _language_plans(language)
    return "\n".join(
        [
            '<section id="language-model"><h2>Language-model fingerprint</h2>',
            f'<p class="note">{html.escape(_language_intro(language, alpha))}</p>',
            _LANGUAGE_HIGHLIGHTS,
            _html_table(header, rows, classes),
            "<h3>Held-out perplexity: what fingerprinting costs</h3>",
            _html_table(*_language_seeds(language)),
            "<h3>The null: models never fingerprinted</h3>",
            f"<p>{html.escape(null_text)}</p>",
            _html_table(null_header, null_rows),
            "<h3>Triggers needed</h3>",
            f'<p class="note">{html.escape(plan_text)}</p>',
            _html_table(plan_header, plan_rows),
            "</section>",
        ]
    )


_LANGUAGE_HIGHLIGHTS = (
    '<p class="note"><span class="key lost"></span> the dispute failed in at least one seed; '
    '<span class="key false-claim"></span> the model never fingerprinted was claimed.</p>'
)


def _markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _setup_line(task: TaskInfo, result: EvaluationResult) -> str:
    recipe = task.recipe
    noise = f", clean-input noise {recipe.input_noise:g}" if recipe.input_noise else ""
    if recipe.augment:
        noise += f", {recipe.augment} perturbed copies of each clean input"
    return (
        f"{task.kind}, {task.train_size} train / {task.test_size} test; triggers: {task.family}, "
        f"N = {task.triggers}, challenge k = {task.challenges}, p0 = {task.p0}, threshold "
        f"{task.threshold} matches at alpha = {_level(result.config.alpha)}; recipe: Adam lr "
        f"{recipe.lr:g}, {recipe.epochs} epochs, batch {recipe.batch_size} + {recipe.per_batch} "
        f"triggers{noise}"
    )


def summary_markdown(result: EvaluationResult) -> str:
    """The report's tables as Markdown (no plots)."""
    config = result.config
    parts = [f"# secmark robustness summary: {_subject(result)}"]
    if result.tasks:
        parts += [
            "",
            (
                f"Seeds {', '.join(map(str, config.seeds))}; an attack removes the watermark when "
                f"the p-value exceeds alpha while the clean score stays within "
                f"{100 * config.max_clean_drop:g} points of the watermarked model's. Worst over "
                f"seeds unless marked mean. Run time {result.seconds:.0f} s."
            ),
        ]
    for task in result.tasks:
        parts += ["", f"## {task.name} ({task.family_name} triggers)", ""]
        parts += [_setup_line(task, result), ""]
        parts += [_markdown_table(*_baseline_rows(result, task)), ""]
        parts += [_markdown_table(*_summary_table(result, task))]
        header, rows = _evasion_table(result, task)
        if rows:
            parts += [
                "",
                "### Evasion: filters in front of the stolen model",
                "",
                _EVASION_TEXT,
                "",
                _markdown_table(header, rows),
                "",
                _evasion_note(result, task),
            ]
        header, rows, text = _distillation(result, task)
        if rows:
            parts += ["", "### Distillation cost", "", _markdown_table(header, rows), "", text]
        header, rows = _safety_rows(result, task)
        if rows:
            parts += [
                "",
                "### Trigger safety (stamped test inputs)",
                "",
                _markdown_table(header, rows),
            ]
    if result.tasks:
        parts += ["", "## Where the watermark did not survive", ""]
        parts += [f"- {line}" for line in _not_robust(result)] or ["- nowhere in this grid"]
        broken = _broken(result)
        if broken:
            parts += ["", "Verdicts lost only together with the model's usefulness:", ""]
            parts += [f"- {line}" for line in broken]
    if result.language_model is not None:
        parts += ["", language_model_markdown(result.language_model).rstrip("\n")]
    return "\n".join(parts) + "\n"


def _subject(result: EvaluationResult) -> str:
    """What the report covers, for its title."""
    subjects = [f"{result.config.family} triggers"] if result.tasks else []
    if result.language_model is not None:
        subjects.append("language-model fingerprint")
    return " and ".join(subjects)


def _attack_figure(result: EvaluationResult, task: TaskInfo, attack: str) -> str:
    """One attack's plot as an inline ``<svg>`` element (text kept as text)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    spec = ATTACKS[attack]
    records = [r for r in result.attacks if r.dataset == task.name and r.attack == attack]
    swept = spec.swept

    def x_of(record: AttackRecord) -> float:
        return record.strength if swept == "strength" else record.data_fraction

    alpha = float(result.config.alpha)
    # Distinct ids per figure: several SVGs share one HTML document.
    style = {**_PLOT_STYLE, "svg.hashsalt": f"{task.name}/{attack}"}
    # matplotlib's stubs type each key as a literal; it checks them at run time.
    with matplotlib.rc_context(style):  # type: ignore[arg-type]
        xs = sorted({x_of(r) for r in records})
        by_x = {x: [r for r in records if x_of(r) == x] for x in xs}
        figure, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4.4))
        clean = [statistics.fmean(r.measurement.clean_score for r in by_x[x]) for x in xs]
        marks = [statistics.fmean(r.measurement.watermark_accuracy for r in by_x[x]) for x in xs]
        worst_marks = [min(r.measurement.watermark_accuracy for r in by_x[x]) for x in xs]
        left.plot(xs, clean, "o-", color="tab:blue", label=f"clean {task.metric} (mean)")
        left.plot(xs, marks, "s-", color="tab:red", label="watermark accuracy (mean)")
        left.plot(
            xs, worst_marks, "s:", color="tab:red", alpha=0.6, label="watermark accuracy (worst)"
        )
        original = statistics.fmean(r.original_score for r in records)
        left.axhline(
            original, color="tab:blue", linestyle=":", linewidth=1, label="clean, before the attack"
        )
        left.axhline(
            task.threshold / task.challenges,
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"verdict threshold: {task.threshold} of {task.challenges} matches",
        )
        left.set_ylim(min(0.0, min(clean) - 0.05), 1.05)
        left.set_ylabel(
            "clean accuracy, watermark accuracy"
            if task.metric == "accuracy"
            else "clean R², watermark accuracy"
        )
        worst_p = [max(r.measurement.log2_p_value for r in by_x[x]) for x in xs]
        floor = -1000.0
        right.plot(
            xs,
            [2.0 ** max(value, floor) for value in worst_p],
            "o-",
            color="tab:purple",
            label="p-value (worst seed)",
        )
        for record in records:
            right.plot(
                x_of(record),
                2.0 ** max(record.measurement.log2_p_value, floor),
                ".",
                color="tab:purple",
                alpha=0.35,
            )
        right.axhline(
            alpha,
            color="black",
            linestyle="--",
            linewidth=1.2,
            label=f"α = {_level(result.config.alpha)}: below it the watermark is shown",
        )
        right.set_yscale("log")
        # Alpha is always inside the axis, however far the p-values lie from it.
        lowest = min([alpha, *(2.0 ** max(value, floor) for value in worst_p)])
        right.set_ylim(lowest / 2**8, 2.0)
        right.set_ylabel("p-value (log scale)")
        parameter = (
            spec.parameter if swept == "strength" else "fraction of training data the thief holds"
        )
        for axis in (left, right):
            axis.set_xlabel(parameter)
            if spec.log_scale and swept == "strength":
                axis.set_xscale("log")
            if attack == "quantize":
                axis.invert_xaxis()
            axis.grid(True, alpha=0.3)
            axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
        figure.suptitle(f"{_words(task.name)}: {spec.title}")
        document = _svg_of(figure)
    return _inline_svg(document, f"{task.name}-{attack}")


def _svg_of(figure: Figure) -> str:
    """``figure`` laid out and written as SVG text without the writer's
    metadata (no date: a report is the same bytes for the same results),
    then closed."""
    from matplotlib import pyplot

    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(
        buffer,
        format="svg",
        bbox_inches="tight",
        metadata={"Creator": None, "Date": None, "Format": None, "Type": None},
    )
    pyplot.close(figure)
    return buffer.getvalue()


def _inline_svg(document: str, prefix: str) -> str:
    """matplotlib's SVG file as an element for an HTML page: from ``<svg`` on
    (no XML declaration or doctype), without metadata, and with every id and
    reference to one prefixed, since every figure numbers its groups alike
    (``figure_1``, ``axes_1``) and ids must be unique in one document."""
    element = document[document.index("<svg") :]
    element = re.sub(r"<metadata>.*?</metadata>", "", element, flags=re.DOTALL)
    element = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', element)
    element = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', element)
    return re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", element)


def _html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] = ()
) -> str:
    """A table; ``classes[i]`` (``lost``, ``broken``, ``false-claim`` or empty)
    marks row i."""
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    marks = list(classes) + [""] * (len(rows) - len(classes))
    body = "".join(
        (f'<tr class="{mark}">' if mark else "<tr>")
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in row)
        + "</tr>"
        for row, mark in zip(rows, marks)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_HIGHLIGHTS = (
    '<p class="note"><span class="key lost"></span> the watermark was lost: an attack removed '
    'it in at least one seed, or it was never found; <span class="key broken"></span> the '
    "verdict was lost only together with the model's usefulness; "
    '<span class="key false-claim"></span> the unmarked model was claimed.</p>'
)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
tr.lost td { background: #fbd5d5; font-weight: 600; }
tr.broken td { background: #fff1d6; }
tr.false-claim td { background: #f3d9fa; font-weight: 600; }
.key { display: inline-block; width: 1.2em; height: 0.9em; vertical-align: middle;
  border: 1px solid #999; }
.key.lost { background: #fbd5d5; } .key.broken { background: #fff1d6; }
.key.false-claim { background: #f3d9fa; }
figure.plot { margin: 0.4em 0 1.2em; }
figure.plot svg { max-width: 100%; height: auto; border: 1px solid #eee; }
.note { color: #555; font-size: 0.9em; }
"""


def _attack_section(result: EvaluationResult, task: TaskInfo, attack: str) -> str:
    """An attack's heading, description and plot in the HTML report."""
    spec = ATTACKS[attack]
    return (
        f'<h4>{html.escape(spec.title)}</h4><p class="note">{html.escape(spec.description)}</p>'
        f'<figure class="plot" data-attack="{html.escape(attack)}">'
        f"{_attack_figure(result, task, attack)}</figure>"
    )


def render_html(result: EvaluationResult) -> str:
    """The self-contained HTML report (plots inline as base64 PNG).

    Raises:
        ImportError: matplotlib is not installed.
    """
    config = result.config
    alpha_text = _level(config.alpha)
    parts = [
        '<!DOCTYPE html><html><head><meta charset="utf-8">',
        "<title>secmark robustness report</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>secmark robustness report: {html.escape(_subject(result))}</h1>",
    ]
    if result.tasks:
        parts += _image_html(result, alpha_text)
    if result.language_model is not None:
        parts.append(_language_html(result.language_model))
    parts.append("</body></html>")
    return "\n".join(parts)


def _image_html(result: EvaluationResult, alpha_text: str) -> list[str]:
    """The data sets' part of the HTML report."""
    config = result.config
    parts = [
        (
            "<p>For each data set and seed the owner derives a trigger set from a signed commitment, "
            "embeds it, and a thief holding a share of the training data attacks the watermarked "
            "model. The arbiter challenges k of the N triggers and runs the exact binomial test at "
            f"alpha = {alpha_text}. An attack <b>removes</b> the watermark when the p-value exceeds "
            f"alpha while the clean score stays within {100 * config.max_clean_drop:g} points of the "
            "watermarked model's; it <b>survives</b> a setting when no seed removed it. Figures are "
            "the worst seed's unless marked mean.</p>"
        ),
        (
            f'<p class="note">Seeds {", ".join(map(str, config.seeds))}; thief settings: '
            f"{html.escape(_settings_text(config.settings))}; run time {result.seconds:.0f} s.</p>"
        ),
    ]
    failures = _not_robust(result)
    parts.append("<h2>Where the watermark did not survive</h2>")
    if failures:
        parts.append(
            "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in failures) + "</ul>"
        )
    else:
        parts.append("<p>Nowhere in this grid.</p>")
    broken = _broken(result)
    if broken:
        parts.append(
            "<p>Verdicts lost only together with the model's usefulness (not a removal):</p>"
        )
        parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in broken) + "</ul>")
    for task in result.tasks:
        parts.append(
            f"<h2>{html.escape(_words(task.name))} ({html.escape(task.family_name)} triggers)</h2>"
        )
        parts.append(f'<p class="note">{html.escape(_setup_line(task, result))}</p>')
        parts.append("<h3>Embedding: fidelity and the false-claim check</h3>")
        parts.append(_html_table(*_baseline_rows(result, task), _baseline_classes(result, task)))
        parts.append("<h3>Attacks</h3>")
        parts.append(_HIGHLIGHTS)
        parts.append(_html_table(*_summary_table(result, task), _summary_classes(result, task)))
        for attack in ATTACKS:
            if _is_evasion(attack):
                continue
            if any(r.dataset == task.name and r.attack == attack for r in result.attacks):
                parts.append(_attack_section(result, task, attack))
        header, rows = _evasion_table(result, task)
        if rows:
            parts.append("<h3>Evasion: filters in front of the stolen model</h3>")
            parts.append(f'<p class="note">{html.escape(_EVASION_TEXT)}</p>')
            parts.append(_HIGHLIGHTS)
            evasion = _evasion_summary(result, task)
            parts.append(_html_table(header, rows, [_row_class(row) for row in evasion]))
            parts.append(f"<p>{html.escape(_evasion_note(result, task))}</p>")
            parts.append(
                '<figure class="plot" data-attack="evasion">'
                f"{_evasion_figure(result, task)}</figure>"
            )
            for attack in dict.fromkeys(row.attack for row in evasion):
                parts.append(_attack_section(result, task, attack))
        header, rows, text = _distillation(result, task)
        if rows:
            parts.append("<h3>What distillation costs the thief</h3>")
            lost = ["lost" if row.removed else "" for row in _distilled(result, task)]
            parts.append(_html_table(header, rows, lost))
            parts.append(f"<p>{html.escape(text)}</p>")
        header, rows = _safety_rows(result, task)
        if rows:
            parts.append("<h3>Trigger safety: are revealed triggers a universal backdoor?</h3>")
            parts.append(
                '<p class="note">Revealed triggers are stamped onto the clean test inputs '
                "(replace: a random 10 % of the values taken from a trigger; blend: the average "
                "with a trigger; pattern: an overlay trigger's own pattern; fresh: a random pattern "
                "that no trigger holds). A collapse is a stamped score more than "
                f"{100 * COLLAPSE_MARGIN:g} points below an unmarked model's on the same inputs.</p>"
            )
            parts.append(_html_table(header, rows))
    return parts


def write_report(
    result: EvaluationResult, directory: Path, *, overwrite: bool = False
) -> ReportFiles:
    """Write ``report.html``, ``summary.md`` and ``summary.json`` into
    ``directory`` (created if missing), each atomically.

    Raises:
        SecmarkError: a file exists and ``overwrite`` is false.
        ImportError: matplotlib is not installed (nothing is written then).
    """
    files = ReportFiles(
        html=directory / "report.html",
        markdown=directory / "summary.md",
        json=directory / "summary.json",
    )
    existing = [str(path) for path in dataclasses.astuple(files) if path.exists()]
    if existing and not overwrite:
        raise SecmarkError(f"{', '.join(existing)} already exist(s); choose another folder")
    page = render_html(result)
    directory.mkdir(parents=True, exist_ok=True)
    mode = 0o644
    write_atomic(
        files.json,
        (json.dumps(summary_json(result), indent=2, sort_keys=True) + "\n").encode(),
        mode=mode,
        overwrite=overwrite,
    )
    write_atomic(files.markdown, summary_markdown(result).encode(), mode=mode, overwrite=overwrite)
    write_atomic(files.html, page.encode(), mode=mode, overwrite=overwrite)
    return files
