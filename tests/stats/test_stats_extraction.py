"""How many thief queries before detection (secmark.stats.extraction, specs/serving.md 6)."""

from __future__ import annotations

import argparse
import json
from fractions import Fraction

import pytest

from secmark.cli import plan as plan_command
from secmark.errors import EncodingError
from secmark.stats import exact_binomial_tail
from secmark.stats.extraction import extraction_plan

ALPHA = Fraction(1, 2**64)
POWER = 1 - Fraction(1, 2**20)


def _fewest_marks(p0: Fraction, level: Fraction) -> int:
    k = 1
    while p0**k > level:
        k += 1
    return k


@pytest.mark.parametrize(
    ("rate", "p0", "accounts"),
    [
        (Fraction(1, 50), Fraction(1, 9), 1),
        (Fraction(1, 100), Fraction(1, 9), 1000),
        (Fraction(1, 20), Fraction(1, 2), 1),
    ],
)
def test_a_memorising_copy_is_planned_exactly(rate: Fraction, p0: Fraction, accounts: int) -> None:
    result = extraction_plan(rate, p0, alpha=ALPHA, accounts=accounts, power=POWER)
    marks = _fewest_marks(p0, ALPHA / accounts)
    assert result.marks_needed == marks
    n = result.queries_needed
    assert n is not None
    # The fewest n with P[Binomial(n, r) >= marks] >= power, on rationals.
    assert exact_binomial_tail(n, marks, rate) >= POWER
    assert exact_binomial_tail(n - 1, marks, rate) < POWER
    assert result.detection_probability == pytest.approx(float(POWER), abs=1e-6)


def test_more_accounts_and_weaker_copies_need_more_queries() -> None:
    base = extraction_plan(Fraction(1, 50), Fraction(1, 9))
    many = extraction_plan(Fraction(1, 50), Fraction(1, 9), accounts=10**6)
    weak = extraction_plan(Fraction(1, 50), Fraction(1, 9), agreement=Fraction(1, 2))
    assert base.queries_needed is not None and many.queries_needed is not None
    assert weak.queries_needed is not None
    assert base.queries_needed < many.queries_needed < weak.queries_needed


def test_a_partial_copy_reaches_the_power_at_the_planned_queries() -> None:
    result = extraction_plan(Fraction(1, 20), Fraction(1, 9), agreement=Fraction(3, 4))
    assert result.marks_needed is not None and result.queries_needed is not None
    assert result.detection_probability is not None
    assert result.detection_probability >= float(POWER)


@pytest.mark.parametrize(
    "arguments",
    [
        {"rate": Fraction(0), "p0": Fraction(1, 9)},
        {"rate": Fraction(1), "p0": Fraction(1, 9)},
        {"rate": Fraction(1, 9), "p0": Fraction(1, 9), "agreement": Fraction(1, 9)},
        {"rate": Fraction(1, 9), "p0": Fraction(1, 9), "accounts": 0},
    ],
)
def test_out_of_range_questions_are_refused(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        extraction_plan(**arguments)  # type: ignore[arg-type]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    parser = argparse.ArgumentParser(prog="secmark")
    plan_command.register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    assert args.handler(args) == 0
    return capsys.readouterr().out


def test_plan_answers_the_extraction_question(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(["plan", "--classes", "10", "--marking-rate", "1/50", "--json"], capsys)
    data = json.loads(out)
    assert data["p0"] == "1/9"
    rows = {row["agreement"]: row for row in data["extraction"]}
    assert set(rows) == {"1", "9/10", "1/2"}
    expected = extraction_plan(Fraction(1, 50), Fraction(1, 9))
    assert rows["1"]["marks_needed"] == expected.marks_needed
    assert rows["1"]["queries_needed"] == expected.queries_needed
    text = _run(["plan", "--classes", "2", "--marking-rate", "1/50", "--agreement", "1"], capsys)
    assert "p0 = 1/2" in text


def test_plan_refuses_an_agreement_at_or_below_p0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(EncodingError, match="agreement"):
        _run(["plan", "--classes", "3", "--marking-rate", "1/50", "--agreement", "1/2"], capsys)
