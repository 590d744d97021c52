"""The language-model section: worst of seeds, triggers needed, the missing
extra, a tiny run end to end (one seed, a few steps: too short for the
fingerprint to take, so only its structure and the null are asserted), and
its rendering in the text, JSON and HTML report and through the command."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import shutil
from fractions import Fraction
from pathlib import Path

import pytest

from secmark.errors import EncodingError, SecmarkError
from secmark.evaluate import (
    CONDITIONS,
    DEFAULT_LANGUAGE_MODEL,
    AttackSweep,
    EvaluationConfig,
    EvaluationResult,
    LanguageModelConfig,
    LanguageModelMeasure,
    LanguageModelResult,
    language_model_markdown,
    run_evaluation,
    run_language_model,
    triggers_needed,
    worst_of_seeds,
    write_report,
)
from secmark.evaluate.report import render_html, summary_json, summary_markdown
from secmark.stats import DEFAULT_ALPHA, DEFAULT_TARGET_POWER, binomial_tail, decision_threshold
from tests.lm.fixtures import LmModel

P0 = Fraction(1, 516)
TINY = LanguageModelConfig(
    seeds=(1,),
    pretrain_steps=2,
    embed_steps=2,
    attack_steps=1,
    full_lrs=(1e-3,),
    lora_lrs=(1e-3,),
    triggers=8,
    challenges=4,
    held_out=2,
    null_triggers=16,
)
"""Every condition once, a few steps each: seconds of CPU time."""


def _measure(
    condition: str, seed: int, exact: int, tokens: int, matches: int, ppl: float | None = None
) -> LanguageModelMeasure:
    return LanguageModelMeasure(
        condition=condition,
        lr=None,
        seed=seed,
        triggers=32,
        target_length=4,
        exact=exact,
        tokens=tokens,
        challenged=16,
        challenged_matches=matches,
        threshold=12,
        perplexity=ppl,
    )


def test_worst_of_seeds_is_the_lowest_count_and_the_nulls_highest() -> None:
    measures = [
        _measure("fingerprinted", 1, 30, 120, 60, 10.0),
        _measure("fingerprinted", 2, 31, 110, 64, 12.5),
        _measure("fingerprinted", 3, 29, 125, 11, 11.0),
        _measure("other_template", 1, 2, 40, 20),
        _measure("other_template", 2, 0, 30, 13),
        _measure("null", 1, 0, 0, 0, 20.0),
        _measure("null", 2, 0, 2, 1, 21.0),
        _measure("null", 3, 1, 1, 0, 19.0),
    ]
    marked, template, null = worst_of_seeds(measures)
    assert (marked.condition, marked.seeds) == ("fingerprinted", 3)
    # Each figure is its own minimum: the worst seed need not be the same one.
    assert (marked.exact, marked.tokens, marked.challenged_matches) == (29, 110, 11)
    assert marked.holds == 2 and marked.perplexity == 12.5
    assert marked.token_accuracy == 110 / 128 and marked.exact_accuracy == 29 / 32
    assert (template.exact, template.tokens, template.challenged_matches, template.holds) == (
        0,
        30,
        13,
        2,
    )
    assert template.perplexity is None
    assert null.null and (null.exact, null.tokens, null.challenged_matches) == (1, 2, 1)
    assert null.holds == 0 and null.perplexity == 21.0


def test_worst_of_seeds_refuses_seeds_that_ran_different_tests() -> None:
    other = dataclasses.replace(_measure("int8", 2, 0, 0, 0), threshold=13)
    with pytest.raises(EncodingError, match="different tests"):
        worst_of_seeds([_measure("int8", 1, 0, 0, 0), other])
    with pytest.raises(EncodingError, match="no language-model measure"):
        worst_of_seeds([])


@pytest.mark.parametrize("length", [1, 4, 16])
def test_triggers_needed_when_every_token_matches_is_the_first_reachable_threshold(
    length: int,
) -> None:
    plan = triggers_needed(length, P0, DEFAULT_ALPHA)
    assert plan.triggers is not None and not plan.never
    tokens = plan.triggers * length
    assert (plan.tokens, plan.threshold) == (tokens, decision_threshold(tokens, P0, DEFAULT_ALPHA))
    assert plan.threshold is not None and plan.threshold <= tokens
    for fewer in range(1, plan.triggers):
        assert decision_threshold(fewer * length, P0, DEFAULT_ALPHA) > fewer * length
    assert triggers_needed(length, P0, DEFAULT_ALPHA, 1.0) == dataclasses.replace(
        plan, accuracy=1.0
    )


def test_triggers_needed_at_an_accuracy_reaches_the_target_power_first() -> None:
    plan = triggers_needed(4, P0, DEFAULT_ALPHA, 0.5)
    assert plan.triggers is not None and plan.threshold is not None and plan.tokens is not None
    assert binomial_tail(plan.tokens, plan.threshold, 0.5) >= DEFAULT_TARGET_POWER
    for fewer in range(1, plan.triggers):
        threshold = decision_threshold(4 * fewer, P0, DEFAULT_ALPHA)
        assert threshold > 4 * fewer or binomial_tail(4 * fewer, threshold, 0.5) < (
            DEFAULT_TARGET_POWER
        )
    at_chance = triggers_needed(4, P0, DEFAULT_ALPHA, float(P0))
    assert at_chance.never and at_chance.triggers is None
    beyond = triggers_needed(1, P0, DEFAULT_ALPHA, 0.01, max_triggers=10)
    assert not beyond.never and beyond.triggers is None and beyond.max_triggers == 10


def test_the_configuration_is_checked() -> None:
    with pytest.raises(EncodingError, match="cannot exceed"):
        LanguageModelConfig(triggers=8, challenges=9)
    with pytest.raises(EncodingError, match="learning rate"):
        LanguageModelConfig(full_lrs=(0.0,))
    with pytest.raises(EncodingError, match="no data sets"):
        EvaluationConfig(datasets=(), seeds=(1,), sweeps=())
    with pytest.raises(EncodingError, match="same alpha|evaluation's alpha"):
        EvaluationConfig(
            datasets=(),
            seeds=(1,),
            sweeps=(),
            language_model=dataclasses.replace(TINY, alpha=Fraction(1, 2**40)),
        )
    assert EvaluationConfig(datasets=(), seeds=(1,), sweeps=(), language_model=TINY)


def test_without_the_extra_it_fails_first_naming_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a)
    )
    with pytest.raises(SecmarkError, match=r"needs peft: pip install 'secmark\[lm-train\]'"):
        run_language_model(TINY)
    # Before any data set is evaluated.
    config = EvaluationConfig(
        datasets=("digits",),
        seeds=(1,),
        sweeps=(AttackSweep("prune", (0.5,)),),
        language_model=TINY,
    )
    with pytest.raises(SecmarkError, match="lm-train"):
        run_evaluation(config, progress=False)


@pytest.fixture(scope="module")
def tiny(lm_model: LmModel, tmp_path_factory: pytest.TempPathFactory) -> LanguageModelResult:
    work = tmp_path_factory.mktemp("language-model")
    shutil.copytree(lm_model.folder.parent / "tokenizer", work / "tokenizer")
    return run_language_model(TINY, work=work, progress=False)


def test_a_tiny_run_measures_every_condition_against_the_exact_threshold(
    tiny: LanguageModelResult,
) -> None:
    tokens = TINY.challenges * TINY.target_length
    threshold = decision_threshold(tokens, tiny.p0, TINY.alpha)
    assert tiny.p0 == Fraction(1, tiny.words) and tiny.threshold == threshold
    conditions = [(m.condition, m.lr) for m in tiny.measures]
    assert {c for c, _ in conditions} == set(CONDITIONS)
    assert ("finetune_all", 1e-3) in conditions and ("finetune_lora", 1e-3) in conditions
    for measure in tiny.measures:
        assert measure.threshold == threshold and measure.challenged_tokens == tokens
        assert 0 <= measure.challenged_matches <= measure.tokens <= TINY.triggers * 4
        assert measure.holds == (measure.challenged_matches >= threshold)
    # The null: a model never fingerprinted is counted against the same exact
    # threshold, and never decides a dispute.
    (null,) = [row for row in tiny.rows() if row.null]
    assert null.threshold == threshold and null.holds == 0
    assert null.challenged_matches < threshold
    assert [n.model for n in tiny.null] == ["base model", "fresh model"]
    assert all(n.tokens < decision_threshold(64, tiny.p0, TINY.alpha) for n in tiny.null)
    (seed,) = tiny.seeds
    assert seed.perplexity_before > 1 and seed.perplexity_after > 1
    assert tiny.rows() == worst_of_seeds(tiny.measures)
    assert tiny.pretrain_seconds is not None and tiny.weights > 0


def test_the_planning_table_is_decision_threshold_for_each_length(
    tiny: LanguageModelResult,
) -> None:
    every = [plan for plan in tiny.plans if plan.condition is None]
    assert [plan.target_length for plan in every] == [1, 4, 16]
    for plan in every:
        assert plan == triggers_needed(plan.target_length, tiny.p0, TINY.alpha)
    measured = {(p.condition, p.lr) for p in tiny.plans if p.condition is not None}
    assert measured == {(row.condition, row.lr) for row in tiny.rows() if not row.null}


def _report_result(language: LanguageModelResult) -> EvaluationResult:
    config = EvaluationConfig(datasets=(), seeds=(1,), sweeps=(), language_model=language.config)
    return EvaluationResult(config, (), (), (), (), seconds=1.0, language_model=language)


def test_the_section_renders_in_text_json_and_html(
    tiny: LanguageModelResult, tmp_path: Path
) -> None:
    # A condition named by someone else is text, never markup.
    hostile = dataclasses.replace(tiny.measures[0], condition="<script>alert(1)</script>")
    language = dataclasses.replace(tiny, measures=(*tiny.measures, hostile))
    files = write_report(_report_result(language), tmp_path / "report")
    markdown = files.markdown.read_text(encoding="utf-8")
    assert markdown == summary_markdown(_report_result(language))
    assert language_model_markdown(language) in markdown
    assert "| condition | exact (all L) | per token |" in markdown
    assert "| per-token accuracy | L = 1 | L = 4 | L = 16 |" in markdown
    assert "Where the watermark did not survive" not in markdown  # no data set ran
    data = json.loads(files.json.read_text(encoding="utf-8"))
    section = data["language_model"]
    assert section["threshold"] == tiny.threshold and section["p0"] == str(tiny.p0)
    assert {row["condition"] for row in section["rows"]} == set(CONDITIONS) | {hostile.condition}
    assert all("holds" in measure for measure in section["measures"])
    assert data == summary_json(_report_result(language)) | {"seconds": 1.0}
    page = files.html.read_text(encoding="utf-8")
    assert page == render_html(_report_result(language))
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<|user|>" not in page and "&lt;|user|&gt;…&lt;|assistant|&gt;" in page
    assert '<section id="language-model">' in page and "Triggers needed" in page


def test_the_page_shows_the_templates_as_text_in_a_browser(
    tiny: LanguageModelResult, tmp_path: Path
) -> None:
    """What a reader sees, by headless chromium (skipped where none is installed)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        pytest.skip("no browser installed: Debian's chromium package is missing")
    files = write_report(_report_result(tiny), tmp_path / "report")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        try:
            view = browser.new_page()
            requests: list[str] = []
            view.on("request", lambda request: requests.append(request.url))
            view.goto(files.html.as_uri())
            text = view.inner_text("#language-model")
            rows = view.locator("#language-model tr").count()
        finally:
            browser.close()
    assert requests == [files.html.as_uri()]
    assert "<|user|>…<|assistant|>" in text and "never fingerprinted (null)" in text
    assert rows >= len(tiny.rows()) + 1


def test_the_command_runs_the_section_alone(
    tiny: LanguageModelResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from secmark.cli import evaluate
    from secmark.evaluate import harness

    ran: list[LanguageModelConfig] = []

    def run(config: LanguageModelConfig, *, progress: bool) -> LanguageModelResult:
        ran.append(config)
        return tiny

    monkeypatch.setattr(harness, "run_language_model", run)
    parser = argparse.ArgumentParser(prog="secmark")
    evaluate.register(parser.add_subparsers())
    argv = ["evaluate", "--language-model", "--datasets", "none", "--seeds", "2"]
    args = parser.parse_args([*argv, "--out", str(tmp_path / "r"), "--no-progress", "--json"])
    assert args.handler(args) == 0
    (config,) = ran
    assert config == dataclasses.replace(DEFAULT_LANGUAGE_MODEL, seeds=(1, 2))
    data = json.loads(capsys.readouterr().out)
    assert data["settings"] == 0 and Path(data["report"]).is_file()
    conditions = data["language_model"]["conditions"]
    assert [c["condition"] for c in conditions] == [row.condition for row in tiny.rows()]
    (null,) = [c for c in conditions if c["null"]]
    assert null["held_seeds"] == 0
    args = parser.parse_args(["evaluate", "--datasets", "none", "--out", str(tmp_path / "x")])
    with pytest.raises(EncodingError, match="no data sets"):
        args.handler(args)
