"""The scan engine: every deposit's probe against one hosted model, counted exactly.

:func:`scan_model` opens a :class:`HostedModel` once and answers all the
probes of a :class:`ProbeSet` with it:

- black-box probes whose inputs share a shape and dtype are concatenated and
  sent together, in slices of at most ``batch_size`` rows: one pass over the
  model per input shape, however many deposits there are;
- white-box probes (:class:`~secmark.messages.families.WeightsFamily`) are
  answered from the model's weights file, one
  :class:`~secmark.models.WeightsSuspect` per distinct family (parameter,
  shape, reduction), by projection.

Answers are counted as the arbiter counts them
(:func:`secmark.protocol.querying.answer_matches`, ``trials_per_trigger``
trials per trigger): an answer that is no label of the space (a class
outside [0, K), a token id outside [0, V), a non-finite value) matches
nothing, and a probe with more such answers than the arbiter's
:func:`~secmark.protocol.querying.failure_budget` tolerates is not counted at
all. The p-value is the exact binomial tail (reported as its float log2) and
the decision the exact threshold (:func:`secmark.stats.decision_threshold`).

Multiple testing: a scan makes ``n_models * n_deposits`` tests, so each pair
is tested at ``alpha / (n_models * n_deposits)`` (Bonferroni), which bounds
the chance of *any* false hit in the whole scan by ``alpha``. The
:class:`ScanPlan` states these figures and every :class:`PairResult` refers
to it.

A model that cannot be opened, or fails or answers malformed data for a
batch, gives a :class:`PairResult` with an ``error`` and no count, p-value
or hit for every probe concerned: a failure is never a verdict. A hit is not
a verdict either: it is a reason to open an ordinary dispute.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from secmark.errors import EncodingError, SecmarkError, SuspectError
from secmark.messages.families import WeightsFamily
from secmark.messages.labels import ClassLabels, RegressionLabels
from secmark.messages.transcript import MAX_ERROR_TEXT
from secmark.models import OUTPUTS, Output, Suspect, WeightsSuspect
from secmark.protocol.querying import answer_matches, failure_budget
from secmark.scan.probes import ScanProbe, checked_id
from secmark.stats import DEFAULT_ALPHA, decision_threshold, log2_binomial_tail

__all__ = [
    "DEFAULT_SCAN_BATCH",
    "HostedModel",
    "PairResult",
    "ProbeSet",
    "ScanPlan",
    "scan_model",
]

DEFAULT_SCAN_BATCH = 512
"""Rows per call to a model: bounds the memory of one forward pass."""


def _check_count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EncodingError(f"{what} must be a positive integer, not {value!r:.40}")
    return value


def _exact_alpha(alpha: object) -> Fraction:
    """``alpha`` as the exact Fraction it equals, if it is one in (0, 1).

    Raises:
        EncodingError: not a Fraction or a float, or not in (0, 1).
    """
    if not isinstance(alpha, (Fraction, float)):
        raise EncodingError(f"alpha must be a Fraction or a float, not {alpha!r:.40}")
    exact = Fraction(alpha)
    if not 0 < exact < 1:
        raise EncodingError(f"alpha must lie strictly between 0 and 1, not {alpha!r:.40}")
    return exact


@dataclass(frozen=True)
class ScanPlan:
    """The multiple-testing figures of one scan.

    ``alpha`` bounds the probability that the scan reports any false hit;
    each of the ``n_models * n_deposits`` pairs is tested at
    :attr:`per_pair_alpha` = ``alpha / (n_models * n_deposits)``. ``alpha``
    may be given as a float; it is kept as the exact Fraction it equals.

    Raises:
        EncodingError: ``alpha`` not strictly between 0 and 1, or a count
            below 1.
    """

    alpha: Fraction
    n_models: int
    n_deposits: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", _exact_alpha(self.alpha))
        _check_count(self.n_models, "the number of models")
        _check_count(self.n_deposits, "the number of deposits")

    @property
    def pairs(self) -> int:
        """The tests the scan makes: ``n_models * n_deposits``."""
        return self.n_models * self.n_deposits

    @property
    def per_pair_alpha(self) -> Fraction:
        """The level each pair is tested at (Bonferroni)."""
        return self.alpha / self.pairs


@dataclass(frozen=True)
class PairResult:
    """One model checked against one deposit.

    ``trials`` and ``threshold`` describe the test (``threshold`` matches or
    more is a hit at the plan's per-pair level; ``trials + 1`` means no count
    can be one). When the pair was counted, ``matches`` is the number of
    matching trials, ``failures`` the answers that were no label (counted as
    non-matches, within the arbiter's budget), ``log2_p_value`` the log2 of
    the exact tail ``P[Binom(trials, p0) >= matches]`` and ``hit`` whether
    ``matches >= threshold``; ``error`` is None. When it was not (the model
    could not be opened or answered badly), ``error`` says why, ``matches``,
    ``failures`` and ``log2_p_value`` are None and ``hit`` is False: nothing
    was decided about the pair, in either direction.

    Raises:
        EncodingError: figures that contradict one another (a hit below the
            threshold, a count beside an error, ...).
    """

    model_id: str
    deposit_id: str
    plan: ScanPlan
    trials: int
    threshold: int
    matches: int | None
    failures: int | None
    log2_p_value: float | None
    hit: bool
    error: str | None

    def __post_init__(self) -> None:
        checked_id(self.model_id, "a model id")
        checked_id(self.deposit_id, "a deposit id")
        where = f"the result of model {self.model_id!r} on deposit {self.deposit_id!r}"
        _check_count(self.trials, f"{where}: trials")
        if not 1 <= self.threshold <= self.trials + 1:
            raise EncodingError(f"{where}: the threshold must be in [1, trials + 1]")
        counted = (self.matches, self.failures, self.log2_p_value)
        if self.error is not None:
            if any(value is not None for value in counted) or self.hit:
                raise EncodingError(f"{where}: a pair with an error has no count and no hit")
            return
        if self.matches is None or self.failures is None or self.log2_p_value is None:
            raise EncodingError(f"{where}: a counted pair has matches, failures and a p-value")
        if not 0 <= self.matches <= self.trials or not 0 <= self.failures <= self.trials:
            raise EncodingError(f"{where}: matches and failures must be in [0, trials]")
        if self.hit != (self.matches >= self.threshold):
            raise EncodingError(f"{where}: hit must say whether matches reach the threshold")
        if not self.log2_p_value <= 0:
            raise EncodingError(f"{where}: log2 of a p-value is at most 0")

    @property
    def counted(self) -> bool:
        """Whether the pair was counted (no error)."""
        return self.error is None


@dataclass(frozen=True, eq=False)
class ProbeSet:
    """The probes of one scan, with their decision thresholds at the plan's
    per-pair level, computed once here for every model.

    Raises:
        EncodingError: no probes, a deposit id twice, an object that is not
            a :class:`ScanProbe`, or a plan for another number of deposits.
    """

    plan: ScanPlan
    probes: tuple[ScanProbe, ...]
    thresholds: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        probes = tuple(self.probes)
        if not probes or not all(isinstance(probe, ScanProbe) for probe in probes):
            raise EncodingError("a scan needs at least one probe, each a ScanProbe")
        ids = [probe.deposit_id for probe in probes]
        if len(set(ids)) != len(ids):
            raise EncodingError("each deposit may be scanned for once: a deposit id repeats")
        if self.plan.n_deposits != len(probes):
            raise EncodingError(
                f"the plan counts {self.plan.n_deposits} deposits, the scan has {len(probes)}"
            )
        object.__setattr__(self, "probes", probes)
        object.__setattr__(
            self,
            "thresholds",
            tuple(
                decision_threshold(probe.trials, probe.p0, self.plan.per_pair_alpha)
                for probe in probes
            ),
        )

    @classmethod
    def build(
        cls,
        probes: Sequence[ScanProbe],
        *,
        n_models: int,
        alpha: Fraction | float = DEFAULT_ALPHA,
    ) -> ProbeSet:
        """The probe set of a scan of ``n_models`` models at family-wise ``alpha``.

        Raises:
            EncodingError: as :class:`ScanPlan` and the constructor.
        """
        return cls(ScanPlan(_exact_alpha(alpha), n_models, len(probes)), tuple(probes))

    def error_results(self, model_id: str, error: str) -> list[PairResult]:
        """A result with ``error`` and no count for every probe."""
        return [_pair_result(self, model_id, index, error) for index in range(len(self.probes))]


def _pair_result(
    probes: ProbeSet, model_id: str, index: int, outcome: tuple[int, int] | str
) -> PairResult:
    """The result of probe ``index``: ``outcome`` is (matches, failures), or an error."""
    probe, threshold = probes.probes[index], probes.thresholds[index]
    if isinstance(outcome, str):
        return PairResult(
            model_id,
            probe.deposit_id,
            probes.plan,
            probe.trials,
            threshold,
            matches=None,
            failures=None,
            log2_p_value=None,
            hit=False,
            error=outcome[:MAX_ERROR_TEXT],
        )
    matches, failures = outcome
    return PairResult(
        model_id,
        probe.deposit_id,
        probes.plan,
        probe.trials,
        threshold,
        matches=matches,
        failures=failures,
        log2_p_value=log2_binomial_tail(probe.trials, matches, probe.p0),
        hit=matches >= threshold,
        error=None,
    )


@dataclass(frozen=True)
class HostedModel:
    """A model the platform hosts, and what it takes to open it.

    - ``weights`` and ``factory``: a local PyTorch model. ``factory()``
      returns the architecture (a ``torch.nn.Module``), the weights file
      (safetensors or a weights-only torch checkpoint, names and shapes
      exactly the module's) is loaded into it, and it is queried as
      :class:`~secmark.models.torch_module.TorchSuspect` does, its answers
      read as ``output`` says. torch is imported only then.
    - ``suspect``: an already built :class:`~secmark.models.Suspect` (a
      remote endpoint, say) for the black-box probes; ``weights`` may be
      given beside it for the white-box ones.
    - ``weights`` alone: white-box probes only.

    For a scan on Ray the whole object is sent to a worker: the factory must
    be importable there (a module-level function or class) and a suspect
    picklable.

    Raises:
        EncodingError: an id that is not 1 to 128 printable characters, a
            factory without weights, both a factory and a suspect, nothing
            to open, or an unknown output kind.
    """

    model_id: str
    weights: str | os.PathLike[str] | None = None
    factory: Callable[[], Any] | None = None
    suspect: Suspect | None = None
    output: Output = "argmax"

    def __post_init__(self) -> None:
        checked_id(self.model_id, "a model id")
        where = f"model {self.model_id!r}"
        if self.weights is not None:
            if not isinstance(self.weights, (str, os.PathLike)):
                raise EncodingError(f"{where}: weights must be a path")
            object.__setattr__(self, "weights", Path(self.weights))
        if self.factory is not None and self.weights is None:
            raise EncodingError(f"{where}: an architecture factory needs a weights file")
        if self.factory is not None and self.suspect is not None:
            raise EncodingError(f"{where}: give an architecture factory or a suspect, not both")
        if self.weights is None and self.suspect is None:
            raise EncodingError(f"{where}: give a weights file, a suspect, or both")
        if self.factory is not None and not callable(self.factory):
            raise EncodingError(f"{where}: the architecture factory must be callable")
        if self.output not in OUTPUTS:
            raise EncodingError(f"{where}: output must be one of {', '.join(OUTPUTS)}")

    def open_suspect(self, batch_size: int = DEFAULT_SCAN_BATCH) -> Suspect:
        """The suspect the black-box probes query.

        Raises:
            SuspectError: no suspect and no factory (a weights file alone),
                torch missing, the factory raised or returned no module, or
                the weights do not fit it.
        """
        if self.suspect is not None:
            return self.suspect
        if self.factory is None or self.weights is None:
            raise SuspectError(
                "black-box probes need the model's architecture (a factory) or a suspect; "
                "this model has a weights file only"
            )
        try:
            from secmark.models.torch_module import TorchSuspect
        except ImportError:
            raise SuspectError(
                "a model given as weights and an architecture needs torch: "
                "pip install 'secmark[torch]'"
            ) from None
        try:
            module = self.factory()
        except Exception as error:  # noqa: BLE001 - any failure of foreign code is the model's
            text = str(error)[:MAX_ERROR_TEXT]
            raise SuspectError(
                f"the architecture factory raised {type(error).__name__}: {text}"
            ) from None
        return TorchSuspect.from_file(
            module, self.weights, output=self.output, batch_size=batch_size
        )


def _predict(suspect: Suspect, batch: npt.NDArray[Any], batch_size: int) -> npt.NDArray[Any]:
    """The suspect's answers to ``batch``, asked in slices of ``batch_size`` rows.

    Raises:
        SuspectError: the suspect failed, or answered another number of rows
            or answers of unequal shapes.
    """
    parts: list[npt.NDArray[Any]] = []
    for start in range(0, len(batch), batch_size):
        chunk = batch[start : start + batch_size]
        answers = suspect.predict(chunk)
        if not isinstance(answers, np.ndarray) or answers.ndim == 0 or len(answers) != len(chunk):
            raise SuspectError(
                f"{suspect.describe()}: expected an array of {len(chunk)} answers, one per input"
            )
        if parts and answers.shape[1:] != parts[0].shape[1:]:
            raise SuspectError(f"{suspect.describe()}: answers of unequal shapes")
        parts.append(answers)
    return np.concatenate(parts)


def _count(probe: ScanProbe, answers: npt.NDArray[Any]) -> tuple[int, int] | str:
    """(matches, failures) of ``answers`` to the probe's inputs, or why they
    cannot be counted."""
    space = probe.space
    count = len(probe)
    shape = probe.labels.shape
    integral = not isinstance(space, RegressionLabels)
    if answers.shape != shape or answers.dtype.kind not in ("iu" if integral else "f"):
        kind = "integers" if integral else "floats"
        return (
            f"the model answered {answers.dtype} {answers.shape} to deposit "
            f"{probe.deposit_id!r}, not {kind} of shape {shape}"
        )
    valid: npt.NDArray[np.bool_]
    if isinstance(space, ClassLabels):
        valid = (answers >= 0) & (answers < space.num_classes)
    elif isinstance(space, RegressionLabels):
        valid = np.isfinite(answers)
    else:
        valid = np.asarray(((answers >= 0) & (answers < space.vocab_size)).all(axis=1))
    failures = int(count - valid.sum())
    budget = failure_budget(count)
    if failures > budget:
        return (
            f"{failures} of {count} answers to deposit {probe.deposit_id!r} are no "
            f"{space.KIND} label, more than the {budget} the arbiter tolerates"
        )
    matches = 0
    for label, answer, ok in zip(probe.labels, answers, valid):
        if not ok:
            continue
        if isinstance(space, ClassLabels):
            matches += answer_matches(space, int(label), int(answer))
        elif isinstance(space, RegressionLabels):
            matches += answer_matches(space, float(label), float(answer))
        else:
            matches += answer_matches(space, label, [int(token) for token in answer])
    return matches, failures


def _answer_group(
    suspect: Suspect,
    probes: Sequence[ScanProbe],
    batch_size: int,
) -> list[tuple[int, int] | str]:
    """One outcome per probe, all probes' inputs sent as one batch."""
    try:
        answers = _predict(suspect, np.concatenate([p.inputs for p in probes]), batch_size)
    except SecmarkError as error:
        return [f"the model failed: {error}"] * len(probes)
    outcomes: list[tuple[int, int] | str] = []
    offset = 0
    for probe in probes:
        outcomes.append(_count(probe, answers[offset : offset + len(probe)]))
        offset += len(probe)
    return outcomes


def scan_model(
    model: HostedModel, probes: ProbeSet, *, batch_size: int = DEFAULT_SCAN_BATCH
) -> list[PairResult]:
    """Check ``model`` against every probe; one result per probe, in order.

    Black-box probes are answered with one pass per input shape and dtype,
    white-box probes with one weights read per distinct family (module
    documentation). A model that cannot be opened or fails (a
    :class:`~secmark.errors.SecmarkError` from opening or querying it: every
    adapter of :mod:`secmark.models` reports its failures so) gives results
    with an error; any other exception of an in-process suspect is a bug in
    it and propagates.

    Raises:
        EncodingError: ``batch_size`` is not a positive integer.
    """
    _check_count(batch_size, "batch_size")
    outcomes: dict[int, tuple[int, int] | str] = {}
    groups: dict[WeightsFamily | tuple[tuple[int, ...], str], list[int]] = {}
    for index, probe in enumerate(probes.probes):
        key = probe.family if isinstance(probe.family, WeightsFamily) else probe.input_key
        groups.setdefault(key, []).append(index)
    black_box: Suspect | str | None = None
    for key, indices in groups.items():
        members = [probes.probes[i] for i in indices]
        suspect: Suspect | str
        if isinstance(key, WeightsFamily):
            suspect = _open_weights(model, key)
        else:
            if black_box is None:
                black_box = _open_black_box(model, batch_size)
            suspect = black_box
        results = (
            [suspect] * len(members)
            if isinstance(suspect, str)
            else _answer_group(suspect, members, batch_size)
        )
        outcomes.update(zip(indices, results))
    return [_pair_result(probes, model.model_id, i, outcomes[i]) for i in range(len(outcomes))]


def _open_black_box(model: HostedModel, batch_size: int) -> Suspect | str:
    try:
        return model.open_suspect(batch_size)
    except SecmarkError as error:
        return f"cannot open the model: {error}"


def _open_weights(model: HostedModel, family: WeightsFamily) -> Suspect | str:
    if model.weights is None:
        return "white-box probes need the model's weights file, which the platform did not give"
    try:
        return WeightsSuspect.from_family(model.weights, family)
    except SecmarkError as error:
        return f"cannot read the model's weights: {error}"
