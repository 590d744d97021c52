"""Which trigger family to commit, against which suspect: the advice
``secmark plan`` and ``secmark demo`` print.

It restates what ``secmark evaluate`` measures (the README's robustness
figures, worst of three seeds on digits and breast cancer): each line names
a suspect's behaviour and the family that keeps the verdict against it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAMILY_ADVICE", "FamilyAdvice", "advice_lines"]


@dataclass(frozen=True)
class FamilyAdvice:
    """Against a suspect that ``suspect``, commit ``family`` (None: no
    family keeps the verdict), because ``reason``."""

    suspect: str
    family: str | None
    reason: str

    def to_data(self) -> dict[str, str | None]:
        return {"suspect": self.suspect, "family": self.family, "reason": self.reason}


FAMILY_ADVICE = (
    FamilyAdvice(
        "serves a modified copy (fine-tuned, pruned, quantised)",
        "noise",
        "kept through pruning, quantisation and most fine-tuning",
    ),
    FamilyAdvice(
        "may screen odd-looking queries",
        "pool",
        "a filter answers noise at random and keeps about 1/K of it; held-out task inputs "
        "pass as real ones; labelled decoys from outside the pool: arbiter query "
        "--decoy-pool --decoy-labels",
    ),
    FamilyAdvice(
        "answers with a clean model of its own where the stolen one disagrees",
        None,
        "that is a model made without your secret; the labelled decoys record what it serves",
    ),
)


def advice_lines() -> list[str]:
    """The advice as text lines."""
    lines = ["which trigger family, against which suspect (figures: README, Robustness):"]
    for advice in FAMILY_ADVICE:
        lines.append(f"  a suspect that {advice.suspect}: {advice.family or 'none holds'}")
        lines.append(f"    ({advice.reason})")
    return lines
