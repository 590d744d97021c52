"""Verification as a sequence of named checks whose results are records.

A verifier (:func:`secmark.protocol.bundle.examine_bundle`) declares the
checks it runs, in order, as :class:`CheckSpec` values and runs each inside
:meth:`Checklist.check`. Every check ends as one :class:`Check`: its stable
``name``, what it is about (``subject``), its :class:`CheckResult`, the
``evidence`` found (or why it failed), and whose word the result rests on
(:class:`Basis`). Reports are rendered from these records alone
(``secmark.report``), so the text, the JSON and the HTML exhibit say the
same thing.

A failing check records the error's message and lets the error propagate:
the checks after it are recorded as not checked, never as passed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

from secmark.errors import SecmarkError

__all__ = [
    "NOT_REACHED",
    "Basis",
    "Check",
    "CheckResult",
    "CheckSpec",
    "Checklist",
]

NOT_REACHED = "not reached: an earlier check failed"
"""The evidence of a check that did not run because one before it failed."""


class CheckResult(str, Enum):
    """How a check ended."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_CHECKED = "not-checked"
    """Not re-checked by the verifier: not reached after a failure, not
    applicable, or a fact that only the arbiter's signature attests."""


class Basis(str, Enum):
    """Whose word a check's result rests on."""

    CRYPTOGRAPHY = "cryptography"
    RECOMPUTATION = "recomputation"
    JUDGE_ROOTS = "judge-tsa-roots"
    BUNDLE_ROOTS = "bundle-tsa-roots"
    JUDGE_PIN = "judge-pinned-arbiter"
    BUNDLE_ARBITER = "bundle-arbiter"
    ARBITER = "arbiter-signature"

    @property
    def description(self) -> str:
        """The basis in words, for people."""
        return _BASIS_WORDS[self][1]

    @property
    def label(self) -> str:
        """The basis in two or three words, for a column or a bracket."""
        return _BASIS_WORDS[self][0]


_BASIS_WORDS = {
    Basis.CRYPTOGRAPHY: (
        "cryptography",
        "signatures and proofs re-checked by the verifier",
    ),
    Basis.RECOMPUTATION: ("recomputation", "the verifier's own recomputation from the bundle"),
    Basis.JUDGE_ROOTS: ("judge's TSA roots", "the judge's trusted TSA roots"),
    Basis.BUNDLE_ROOTS: (
        "bundle's TSA roots (self-asserted)",
        "the bundle's own TSA roots (self-asserted)",
    ),
    Basis.JUDGE_PIN: ("judge's pin", "the arbiter key id the judge pinned"),
    Basis.BUNDLE_ARBITER: ("bundle's word", "the bundle's own word: no arbiter was pinned"),
    Basis.ARBITER: ("arbiter's word", "the arbiter's signature alone"),
}


@dataclass(frozen=True)
class CheckSpec:
    """A check a verifier declares before running it.

    ``name`` is stable (lower-case words joined by hyphens): scripts and the
    JSON Schema key on it. ``title`` says in words what passing means;
    ``subject`` is the document or fact checked; ``rests_on`` the usual basis
    (a run may state another, e.g. whose TSA roots).
    """

    name: str
    title: str
    subject: str
    rests_on: Basis


@dataclass(frozen=True)
class Check:
    """One check's result.

    ``evidence`` says what was found for a passed check, the error message
    for a failed one, and why nothing was checked for the others.
    """

    name: str
    title: str
    subject: str
    result: CheckResult
    evidence: str
    rests_on: Basis

    def to_data(self) -> dict[str, str]:
        """The record as the JSON reports carry it."""
        return {
            "name": self.name,
            "title": self.title,
            "subject": self.subject,
            "result": self.result.value,
            "evidence": self.evidence,
            "rests_on": self.rests_on.value,
        }


class Finding:
    """What the body of a running check writes: its evidence, and the basis
    when it differs from the declared one."""

    def __init__(self, rests_on: Basis) -> None:
        self.evidence = ""
        self.rests_on = rests_on


class Checklist:
    """The records of one verification run, in the declared order.

    Raises (from its methods):
        ValueError: a name that was not declared, or a check recorded twice
            (programming errors of the verifier, not of the input).
    """

    def __init__(self, plan: Sequence[CheckSpec]) -> None:
        self._plan = {spec.name: spec for spec in plan}
        if len(self._plan) != len(plan):
            raise ValueError("check names must be distinct")
        self._records: dict[str, Check] = {}

    def _spec(self, name: str) -> CheckSpec:
        if name not in self._plan:
            raise ValueError(f"no check named {name!r} was declared")
        if name in self._records:
            raise ValueError(f"check {name!r} was already recorded")
        return self._plan[name]

    @contextmanager
    def check(self, name: str, *, rests_on: Basis | None = None) -> Iterator[Finding]:
        """Run the check ``name``: it passes when the body returns, and
        fails, with the error's message as evidence, when the body raises a
        :class:`~secmark.errors.SecmarkError` (which then propagates)."""
        spec = self._spec(name)
        finding = Finding(rests_on or spec.rests_on)
        try:
            yield finding
        except SecmarkError as error:
            self._record(spec, CheckResult.FAILED, str(error), finding.rests_on)
            raise
        self._record(spec, CheckResult.PASSED, finding.evidence or spec.title, finding.rests_on)

    def not_checked(self, name: str, evidence: str, *, rests_on: Basis | None = None) -> None:
        """Record that ``name`` was not re-checked, and why (``evidence``)."""
        spec = self._spec(name)
        self._record(spec, CheckResult.NOT_CHECKED, evidence, rests_on or spec.rests_on)

    def _record(self, spec: CheckSpec, result: CheckResult, evidence: str, basis: Basis) -> None:
        self._records[spec.name] = Check(
            spec.name, spec.title, spec.subject, result, evidence, basis
        )

    def records(self) -> tuple[Check, ...]:
        """Every declared check in order; one that never ran is not checked
        (:data:`NOT_REACHED`)."""
        return tuple(
            self._records.get(name)
            or Check(
                name, spec.title, spec.subject, CheckResult.NOT_CHECKED, NOT_REACHED, spec.rests_on
            )
            for name, spec in self._plan.items()
        )
