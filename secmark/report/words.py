"""The words every rendering of a bundle report shares.

The text, the JSON and the HTML exhibit say the same thing in the same
words: the one-line status, what an outcome means, how a level or a
p-value is written, and the plain-language account of alpha. Text from
documents is never formatted here with Python's ``repr``; where it is
quoted it is put between quotation marks, and each renderer escapes it for
its medium (:func:`visible` for a terminal, HTML escaping for the exhibit).
"""

from __future__ import annotations

import math
from fractions import Fraction

from secmark.encoding.visible import visible
from secmark.messages.verdict import CrossCheck
from secmark.protocol.bundle_report import BundleReport, BundleStatus, Figures, TimeTrust
from secmark.protocol.checks import CheckResult

__all__ = [
    "OUTCOME_WORDS",
    "RESULT_WORDS",
    "alpha_explanation",
    "arbiter_sentence",
    "cross_check_sentence",
    "decoy_accuracy_sentence",
    "format_level",
    "format_p_value",
    "headline",
    "quoted",
    "status_sentence",
    "time_sentence",
    "visible",
]


def quoted(text: str) -> str:
    """Text from a document, between quotation marks, with :func:`visible` escapes."""
    return f"“{visible(text)}”"


RESULT_WORDS = {
    CheckResult.PASSED: "passed",
    CheckResult.FAILED: "FAILED",
    CheckResult.NOT_CHECKED: "not checked",
}

OUTCOME_WORDS = {
    "upheld": "the suspect carries the owner's watermark",
    "rejected": "the test does not show the owner's watermark in the suspect",
    "ambiguous": (
        "another claim also holds on this suspect, and the cross-checks do not show whose "
        "watermark it carries by origin"
    ),
}
"""What each outcome means, in words."""


def format_level(alpha: str) -> str:
    """A level alpha (an exact fraction ``"n/d"``) for people: ``2^-64`` when it
    is a power of two, else the fraction and its log2."""
    level = Fraction(alpha)
    if level.numerator == 1 and level.denominator & (level.denominator - 1) == 0:
        return f"2^-{level.denominator.bit_length() - 1}"
    log2 = math.log2(level.numerator) - math.log2(level.denominator)
    return f"{level} (about 2^{log2:.2f})"


def format_p_value(log2_p: float) -> str:
    """A p-value for people, from its log2: ``2^-159.45 (1.0e-48)``; the
    decimal is left out below the float range, where only the power of two
    means anything."""
    if log2_p >= 0:
        return "1"
    if log2_p < -1000:
        return f"2^{log2_p:.2f}"
    return f"2^{log2_p:.2f} ({2.0**log2_p:.2g})"


def headline(report: BundleReport) -> str:
    """The exhibit's title and the first thing a reader sees."""
    if report.status is BundleStatus.FAILED:
        return "REFUSED: this bundle proves nothing"
    outcome = (report.outcome or "").upper()
    if report.status is BundleStatus.SELF_ASSERTED:
        return f"{outcome}, but NOT verified against the judge's TSA roots (self-asserted)"
    return f"{outcome}: verified against the judge's TSA roots"


def status_sentence(report: BundleReport) -> str:
    """What the run concluded, in one sentence (the last line ``verify-bundle`` prints)."""
    failure = report.failure
    if failure is not None:
        return (
            f"bundle REFUSED: the check {failure.check} failed ({failure.error}: "
            f"{failure.message}); it proves nothing, and no outcome is reported"
        )
    if report.status is BundleStatus.VERIFIED:
        summary = (
            "bundle verified: every signature, timestamp, proof and figure re-checked, "
            "the times against your TSA roots"
        )
    else:
        summary = (
            "bundle NOT verified against your roots: every check passed, but the time is "
            "SELF-ASSERTED: the verdict rests on TSA roots inside the bundle, which whoever "
            "made it may have made; give --trust with TSA roots you trust"
        )
    return f"{summary}; {arbiter_sentence(report)}"


def arbiter_sentence(report: BundleReport) -> str:
    """Whether the arbiter is the one the judge pinned."""
    if report.arbiter_pinned:
        return f"arbiter {report.arbiter_key_id} is the pinned one"
    return (
        f"the arbiter {report.arbiter_key_id} is NOT pinned: the verdict is the word of "
        "whoever holds that key (give --arbiter KEY_ID to require the arbiter you trust)"
    )


def time_sentence(trust: TimeTrust) -> str:
    """Whose TSA roots the trusted times rest on."""
    if trust is TimeTrust.JUDGE_ROOTS:
        return "the timestamps were verified against the judge's own TSA roots"
    return (
        "SELF-ASSERTED: the timestamps verify only against TSA roots inside the bundle, "
        "which whoever made the bundle may have made, and with them every time in it; the "
        "verdict rests on those roots. Compare their fingerprints with roots you trust, or "
        "verify with your own TSA roots."
    )


def cross_check_sentence(check: CrossCheck) -> str:
    """One cross-check of a verdict, as the arbiter attests it."""
    proves = (
        "proves a copy"
        if check.proves_copy
        else "proves absence"
        if check.proves_absence
        else "proves nothing"
    )
    return (
        f"the release of claim {check.model_of[:16]} "
        + ("carries" if check.carries else "does not carry")
        + f" the watermark of claim {check.watermark_of[:16]} ({check.matches} of "
        f"{check.trials}, threshold {check.threshold}; control {check.control_matches} of "
        f"{check.control_trials}, fires at {check.control_threshold}; "
        f"{check.trigger_errors + check.decoy_errors} queries failed): {proves}"
    )


def decoy_accuracy_sentence(figures: Figures) -> str:
    """The suspect's accuracy on decoys of known label, with its exact 95 %
    interval (rounded outward to a tenth of a percent), or that no decoy had
    a label. Evidence beside the test, never part of it."""
    labelled, correct = figures.decoys_labelled, figures.decoys_correct
    if not labelled:
        return "decoys with known labels: none (no labelled decoys)"
    share = f"{100 * correct / labelled:.1f} %"
    if figures.decoy_ci_low is not None and figures.decoy_ci_high is not None:
        low = math.floor(figures.decoy_ci_low * 1000) / 10
        high = math.ceil(figures.decoy_ci_high * 1000) / 10
        share += f", 95 % interval {low:.1f}–{high:.1f} %"
    return f"decoys with known labels: {correct} of {labelled} answered correctly ({share})"


def alpha_explanation(figures: Figures) -> list[str]:
    """Alpha and the p-value in plain language, as paragraphs."""
    level = format_level(figures.alpha)
    threshold = figures.threshold
    k = figures.trials
    paragraphs = [
        (
            f"The level alpha = {level} is the largest chance the test accepts of upholding "
            "a claim against a model that was never trained on the owner's triggers. Such a "
            f"model matches each committed label with probability at most p0 = {figures.p0}, "
            "by guessing: the triggers and their labels are derived from the owner's secret "
            "key under a commitment timestamped before the dispute, and cannot be predicted "
            "without that key."
        ),
        (
            f"Out of {k} trials, {threshold} or more matches happen to such a model with "
            f"probability at most alpha; so the test upholds the watermark from {threshold} "
            "matches on (the threshold), and an innocent model reaches it less often than "
            f"once in 1/alpha = {_reciprocal(figures.alpha)} disputes."
            if threshold <= k
            else f"Even {k} matches out of {k} would not reach alpha: this challenge is too "
            "small to ever uphold a claim."
        ),
        (
            f"The suspect matched {figures.matches}. The p-value, "
            f"{format_p_value(figures.log2_p_value)}, is the chance that a model that never "
            f"saw the triggers matches {figures.matches} or more by guessing: "
            + (
                "it is at most alpha, so the watermark is shown."
                if figures.decision
                else "it is above alpha, so the watermark is not shown."
            )
        ),
        (
            "Alpha bounds the chance of a false verdict in one dispute; it is not the "
            "probability that the claim is false, and a rejected claim does not prove that "
            "nothing was copied (a watermark can be removed). Each earlier challenge of the "
            "same commitment halves alpha, so all the challenges of one commitment together "
            "stay below twice the first one's alpha."
        ),
    ]
    return paragraphs


def _reciprocal(alpha: str) -> str:
    level = Fraction(alpha)
    if level.numerator == 1 and level.denominator & (level.denominator - 1) == 0:
        return f"2^{level.denominator.bit_length() - 1}"
    return f"about {float(1 / level):.3g}"
