"""``secmark scan``: a platform scans its hosted models for its deposits.

``scan run`` checks every model of a models file against every deposit of
the platform (:func:`secmark.scan.run_scan`), stores the results under a
scan id in a results database, signs a finding for each hit and prints a
summary; run again with the same scan id, it resumes where it stopped.
``scan report`` writes a scan's results as one HTML page
(:func:`secmark.report.scan.render_scan_report`); ``scan verify-finding``
checks a finding against the platform's identity.

The models file is one JSON object (strict: UTF-8, no duplicate keys, no
unknown member)::

    {"models": [
      {"id": "m1", "weights": "m1.safetensors", "factory": "pkg.module:build",
       "output": "argmax"},
      {"id": "api", "suspect_config": "api.json", "weights": "api.safetensors"}
    ]}

Each model has an ``id`` (1 to 128 of letters, digits, ``.``, ``_`` and
``-``, starting with a letter or digit: it names the model's finding
files) and either ``weights`` with a torch ``factory`` (``module:function``
returning the ``nn.Module``; ``output``: ``argmax``, ``labels`` or
``values``), a ``suspect_config`` (a remote suspect, ``specs/suspects.md``;
``weights`` beside it answer white-box deposits), or ``weights`` alone
(white-box deposits only). Paths are read from the file's folder.

Everything here needs the ``scan`` extra (SQLAlchemy; Ray for ``--engine
ray``), imported only when a command runs.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secmark import __version__
from secmark.cli.output import Output, Verbosity, add_json_flag, emit, printable, show_progress
from secmark.cli.plan import parse_probability
from secmark.cli.platform import (
    add_database_option,
    add_platform_options,
    deposit_facts,
    opened_platform,
    require_scan_extra,
)
from secmark.cli.streams import (
    UsageError,
    add_input,
    add_output,
    describe,
    is_stdio,
    read_file,
    read_input,
    write_output,
)
from secmark.cli.suspects import import_callable
from secmark.encoding import format_time
from secmark.errors import EncodingError, ProtocolError, SecmarkError
from secmark.files import PUBLIC_FILE_MODE, read_regular_file, write_atomic
from secmark.messages.identity import open_identity
from secmark.models import OUTPUTS, SuspectConfig
from secmark.models.http import load_json
from secmark.report.scan import render_scan_report
from secmark.report.words import format_level, format_p_value
from secmark.stats import DEFAULT_ALPHA, log2_binomial_tail

if TYPE_CHECKING:
    from secmark.scan import HostedModel, PairResult, ScanResults, ScanSummary
    from secmark.scan.platform import Platform

__all__ = ["MAX_MODELS_FILE", "close_suspects", "finding_path", "read_models", "register"]

MAX_MODELS_FILE = 64 * 1024 * 1024
"""Largest models file: some 300 000 models of 200 bytes each."""

_MODEL_KEYS = ("factory", "id", "output", "suspect_config", "weights")
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DEPOSIT_PREFIX = 16
"""Hex digits of the deposit id in a finding's file name."""
_ENGINES = ("local", "ray")
"""As :data:`secmark.scan.ENGINES` (``--help`` needs no SQLAlchemy; a test
pins the two together)."""

_MODELS_HELP = (
    'a JSON object {"models": [...]}: each model an object with "id" and either "weights" '
    'and "factory" (module:function returning the torch module; "output": argmax, labels or '
    'values), "suspect_config" (a remote suspect; "weights" beside it for white-box '
    'deposits), or "weights" alone (white-box deposits only); paths relative to the file. '
    "Unknown members and duplicate ids are refused"
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scan = subparsers.add_parser(
        "scan", help="a platform's scans: every hosted model against every deposit"
    )
    commands = scan.add_subparsers(metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="scan the models of a models file for the platform's deposits",
        description=(
            "Checks every model of --models against every deposit of the platform, each "
            "pair tested at alpha / (models x deposits), and stores each model's results "
            "under --scan-id in --results as soon as it is done: run the command again "
            "with the same scan id, models and alpha to resume a stopped scan. A signed "
            "finding is written to --findings for each hit, as "
            "<model id>--<deposit id prefix>.finding.json (never replacing another file). "
            "A hit is a reason to file a claim with an arbiter, never a verdict. Exit "
            "status 0 once every model is recorded, whatever was found: the summary lists "
            "the hits and the pairs that could not be counted."
        ),
    )
    add_platform_options(run)
    run.add_argument("--models", required=True, type=Path, metavar="FILE", help=_MODELS_HELP)
    _results_options(run)
    run.add_argument(
        "--alpha",
        metavar="P",
        help="family-wise level: the chance of any false hit in the whole scan, e.g. 2^-64 "
        "(the default), 1e-20 or N/D; a resumed scan must keep it",
    )
    run.add_argument(
        "--engine", choices=_ENGINES, default="local", help="run the models in process or on Ray"
    )
    run.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --engine ray: the cluster to run on (default: a local instance)",
    )
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="with --engine ray: most models scanned at once (default: every CPU)",
    )
    run.add_argument(
        "--findings",
        type=Path,
        metavar="DIR",
        help="write a signed finding per hit into this folder (created if missing)",
    )
    run.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar (one is shown on standard error when it is a terminal)",
    )
    add_json_flag(run)
    run.set_defaults(handler=_run)

    report = commands.add_parser(
        "report",
        help="write a scan's results as a self-contained HTML page",
        description=(
            "Writes the scan's plan, hits, a heat map of models x deposits by p-value, a "
            "histogram of the p-values and the pairs not counted, as one HTML page that "
            "loads nothing and runs no script. With --platform the page also names the "
            "platform and each deposit's commitment and owner (read without its key)."
        ),
    )
    _results_options(report)
    add_output(report, "--out", required=True, metavar="HTML", help="where to write the page")
    report.add_argument(
        "--force", action="store_true", help="replace --out if it exists (written atomically)"
    )
    report.add_argument(
        "--platform", type=Path, metavar="FOLDER", help="the platform's working folder"
    )
    add_database_option(report)
    report.set_defaults(handler=_report)

    verify = commands.add_parser(
        "verify-finding",
        help="check a platform's finding and print its figures",
        description=(
            "Checks that the platform signed the finding, that it names a model a claim can "
            "name, and that its figures are a hit at the scan's per-pair level; prints them. "
            "File a claim on the model it names with an arbiter to have it decided."
        ),
    )
    add_input(verify, "finding", help="the finding")
    verify.add_argument(
        "--platform", required=True, type=Path, help="the platform's identity document"
    )
    add_json_flag(verify)
    verify.set_defaults(handler=_verify_finding)


def _results_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results",
        required=True,
        metavar="URL",
        help="the scan results database (sqlite:///PATH or postgresql+psycopg://...)",
    )
    parser.add_argument(
        "--scan-id", required=True, metavar="ID", help="the scan: 1 to 128 printable characters"
    )


def finding_path(folder: Path, model_id: str, deposit_id: str) -> Path:
    """Where ``scan run`` writes the finding of ``model_id`` on ``deposit_id``."""
    return folder / f"{model_id}--{deposit_id[:_DEPOSIT_PREFIX]}.finding.json"


def _entry_path(value: object, base: Path, where: str, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise EncodingError(f"{where}: {key!r} must be a path, as a non-empty string")
    path = base / value
    if not path.is_file():
        raise EncodingError(f"{where}: {key!r} names {path}, which is no regular file")
    return path


def _read_model(entry: object, base: Path, where: str) -> HostedModel:
    from secmark.scan import HostedModel

    if not isinstance(entry, dict):
        raise EncodingError(f"{where} must be a JSON object")
    unknown = sorted(set(entry) - set(_MODEL_KEYS))
    if unknown:
        raise EncodingError(
            f"{where}: unknown member {unknown[0]!r:.40} (known: {', '.join(_MODEL_KEYS)})"
        )
    model_id = entry.get("id")
    if not isinstance(model_id, str) or not _MODEL_ID.fullmatch(model_id):
        raise EncodingError(
            f"{where}: 'id' must be 1 to 128 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit (it names the model's finding files)"
        )
    where = f"{where} ({model_id})"
    weights = (
        None if "weights" not in entry else _entry_path(entry["weights"], base, where, "weights")
    )
    factory = entry.get("factory")
    config = entry.get("suspect_config")
    output = entry.get("output", "argmax")
    if factory is not None and config is not None:
        raise EncodingError(f"{where}: give 'factory' or 'suspect_config', not both")
    if factory is not None and weights is None:
        raise EncodingError(f"{where}: a 'factory' builds the module its 'weights' are loaded into")
    if "output" in entry and factory is None:
        raise EncodingError(
            f"{where}: 'output' goes with a 'factory' (a suspect config names its own)"
        )
    if output not in OUTPUTS:
        raise EncodingError(f"{where}: 'output' must be one of {', '.join(OUTPUTS)}")
    if weights is None and config is None:
        raise EncodingError(
            f"{where}: give 'weights' (with a 'factory'), a 'suspect_config', or both"
        )
    if factory is not None and not isinstance(factory, str):
        raise EncodingError(f"{where}: 'factory' must be a string module:function")
    suspect = (
        None
        if config is None
        else SuspectConfig.from_file(_entry_path(config, base, where, "suspect_config")).build()
    )
    return HostedModel(
        model_id,
        weights=weights,
        factory=None if factory is None else import_callable(factory),
        suspect=suspect,
        output=output,
    )


def read_models(path: Path) -> list[HostedModel]:
    """The hosted models the models file ``path`` lists (module documentation).

    Remote suspects are built, not contacted; factories are imported.

    Raises:
        EncodingError: no valid models file: invalid JSON, an unknown member,
            a model id twice or not a file-name-safe id, a missing or
            contradictory part, a path to no regular file, or a suspect
            config that does not parse.
        SecmarkError: the file cannot be read, or a factory cannot be
            imported; as :meth:`~secmark.models.SuspectConfig.build` for a
            suspect config (a missing credential: KeyMaterialError).
    """
    data = read_regular_file(path, max_size=MAX_MODELS_FILE, what="models file")
    try:
        document: Any = load_json(data, f"models file {path}", finite=True)
    except ValueError as error:
        raise EncodingError(str(error)) from None
    if not isinstance(document, dict) or set(document) != {"models"}:
        raise EncodingError(f"models file {path} must be an object with one member, 'models'")
    entries = document["models"]
    if not isinstance(entries, list) or not entries:
        raise EncodingError(f"models file {path}: 'models' must be a non-empty list")
    models: list[HostedModel] = []
    seen: set[str] = set()
    try:
        for index, entry in enumerate(entries):
            model = _read_model(entry, path.parent, f"models file {path}: models[{index}]")
            models.append(model)
            if model.model_id in seen:
                raise EncodingError(
                    f"models file {path}: models[{index}]: model id {model.model_id!r} "
                    "appears twice"
                )
            seen.add(model.model_id)
    except BaseException:
        close_suspects(models)  # the clients of the remote suspects built so far
        raise
    return models


@contextmanager
def _opened_results(url: str) -> Iterator[ScanResults]:
    require_scan_extra("a scan")
    from secmark.scan import ScanResults

    results = ScanResults.open(url)
    try:
        yield results
    finally:
        results.close()


def close_suspects(models: Sequence[HostedModel]) -> None:
    """Close the clients of the models' remote suspects."""
    for model in models:
        close = getattr(model.suspect, "close", None)
        if callable(close):
            close()


def _alpha(text: str | None) -> Fraction:
    return DEFAULT_ALPHA if text is None else parse_probability(text, what="--alpha")


def _write_findings(
    platform: Platform,
    summary: ScanSummary,
    models: Sequence[HostedModel],
    folder: Path,
) -> tuple[dict[tuple[str, str], Path], int]:
    """Each hit's finding, by (model id, deposit id), and how many were kept
    from an earlier run of the same scan rather than written now.

    Raises:
        SecmarkError: a finding's file exists and is not this hit's finding
            by this platform, or cannot be written.
    """
    from secmark.messages.finding import open_finding
    from secmark.scan.platform import model_reference

    by_id = {model.model_id: model for model in models}
    written: dict[tuple[str, str], Path] = {}
    kept = 0
    for hit in summary.hits:
        model = by_id[hit.model_id]
        path = finding_path(folder, hit.model_id, hit.deposit_id)
        if path.exists():
            try:
                earlier = open_finding(read_file(path), platform.keys.public_keys).document
            except SecmarkError:
                earlier = None
            if earlier is None or (earlier.scan_id, earlier.deposit_id, earlier.model) != (
                summary.scan_id,
                hit.deposit_id,
                model_reference(model),
            ):
                raise SecmarkError(
                    f"{path} exists and is not this platform's finding of {hit.model_id} on "
                    f"deposit {hit.deposit_id} in scan {summary.scan_id}; move it away, or "
                    "choose another --findings folder"
                )
            kept += 1
        else:
            data = platform.finding(hit, model, summary.scan_id)
            write_atomic(path, data, mode=PUBLIC_FILE_MODE)
        written[(hit.model_id, hit.deposit_id)] = path
    return written, kept


def _pair(result: PairResult) -> str:
    return f"{result.model_id} on deposit {result.deposit_id}"


def _run(args: argparse.Namespace) -> int:
    if args.engine != "ray" and (args.ray_address is not None or args.workers is not None):
        raise UsageError("--ray-address and --workers go with --engine ray")
    if args.findings is not None and args.findings.exists() and not args.findings.is_dir():
        raise SecmarkError(f"--findings {args.findings} exists and is no folder")
    alpha = _alpha(args.alpha)
    require_scan_extra("a scan")
    from secmark.scan import run_scan

    models = read_models(args.models)
    with ExitStack() as stack:
        stack.callback(close_suspects, models)
        platform = stack.enter_context(opened_platform(args))
        results = stack.enter_context(_opened_results(args.results))
        probes = platform.probes()
        if not probes:
            raise ProtocolError(
                "the platform holds no deposit whose reveal came in: nothing to scan for"
            )
        unknown = sorted(results.done_models(args.scan_id) - {m.model_id for m in models})
        if unknown:
            raise ProtocolError(
                f"scan {args.scan_id!r} recorded model {unknown[0]!r}, which {args.models} "
                "does not list: resume a scan with the models it started with"
            )
        summary = run_scan(
            models,
            probes,
            results,
            scan_id=args.scan_id,
            alpha=alpha,
            engine=args.engine,
            ray_address=args.ray_address,
            workers=args.workers,
            progress=show_progress(args),
        )
        findings: dict[tuple[str, str], Path] = {}
        kept = 0
        if args.findings is not None and summary.hits:
            args.findings.mkdir(parents=True, exist_ok=True)
            findings, kept = _write_findings(platform, summary, models, args.findings)
    _print_summary(args, summary, findings, kept)
    return 0


def _print_summary(
    args: argparse.Namespace,
    summary: ScanSummary,
    findings: dict[tuple[str, str], Path],
    kept: int,
) -> None:
    plan = summary.plan
    hits, errors = summary.hits, summary.errors
    lines = [
        (
            f"scan {summary.scan_id}: {plan.n_models} model(s) x {plan.n_deposits} deposit(s) = "
            f"{plan.pairs} pairs; {summary.scanned} model(s) scanned now, {summary.skipped} "
            "recorded before"
        ),
        (
            f"alpha {format_level(str(plan.alpha))} for the whole scan: each pair at "
            f"{format_level(str(plan.per_pair_alpha))}"
        ),
        f"hits: {len(hits)}",
        *(
            f"  {_pair(hit)}: {hit.matches} of {hit.trials} matches (threshold "
            f"{hit.threshold}), p = {format_p_value(hit.log2_p_value or 0.0)}"
            for hit in hits
        ),
        f"errors: {len(errors)} pair(s) not counted",
        *(f"  {_pair(error)}: {error.error}" for error in errors),
    ]
    if findings:
        lines.append(
            f"findings: {len(findings) - kept} written to {args.findings}"
            + (f", {kept} kept from an earlier run" if kept else "")
        )
    elif hits:
        lines.append("findings: none written (give --findings DIR to sign one per hit)")
    emit(
        args,
        lines,
        {
            "scan_id": summary.scan_id,
            "alpha": str(plan.alpha),
            "per_pair_alpha": str(plan.per_pair_alpha),
            "models": plan.n_models,
            "deposits": plan.n_deposits,
            "pairs": plan.pairs,
            "scanned": summary.scanned,
            "skipped": summary.skipped,
            "hits": [
                {
                    "model": hit.model_id,
                    "deposit": hit.deposit_id,
                    "matches": hit.matches,
                    "trials": hit.trials,
                    "threshold": hit.threshold,
                    "log2_p_value": hit.log2_p_value,
                    "finding": (
                        str(findings[key])
                        if (key := (hit.model_id, hit.deposit_id)) in findings
                        else None
                    ),
                }
                for hit in hits
            ],
            "errors": [
                {"model": error.model_id, "deposit": error.deposit_id, "error": error.error}
                for error in errors
            ],
            "findings_kept": kept,
        },
    )


def _report(args: argparse.Namespace) -> int:
    if not is_stdio(args.out) and args.out.exists() and not args.force:
        raise SecmarkError(f"{args.out} already exists; give --force to replace it")
    if args.database is not None and args.platform is None:
        raise UsageError("--database names the platform's deposits: give it with --platform")
    platform = None if args.platform is None else deposit_facts(args.platform, args.database)
    with _opened_results(args.results) as results:
        plan = results.plan(args.scan_id)
        if plan is None:
            raise ProtocolError(f"no scan {args.scan_id!r} in {results.describe()}")
        pairs = results.results(args.scan_id)
    page = render_scan_report(
        args.scan_id, plan, pairs, platform=platform, generator=f"secmark {__version__}"
    )
    write_output(args.out, page.encode("utf-8"), overwrite=args.force)
    output = Output.from_args(args)
    if output.verbosity > Verbosity.QUIET:
        hits = sum(pair.hit for pair in pairs)
        print(
            printable(
                f"scan report written to {describe(args.out, output=True)}: {hits} hit(s) "
                f"among {len(pairs)} recorded pair(s)"
            ),
            file=output.summary,
        )
    return 0


def _verify_finding(args: argparse.Namespace) -> int:
    data = read_input(args.finding, what="finding")
    platform = open_identity(read_file(args.platform)).document
    require_scan_extra("checking a finding")
    from secmark.scan.platform import verify_finding

    finding = verify_finding(data, platform.public_keys)
    log2_p = log2_binomial_tail(finding.trials, finding.matches, finding.p0)
    emit(
        args,
        [
            (
                f"finding of scan {finding.scan_id}, signed by platform {platform.name} "
                f"({platform.key_id}): valid"
            ),
            f"model:      {finding.model}",
            f"deposit:    {finding.deposit_id}",
            f"commitment: {finding.commitment_id}",
            f"owner:      {finding.owner}",
            (
                f"matches:    {finding.matches} of {finding.trials} "
                f"(threshold {finding.threshold}, p0 {finding.p0})"
            ),
            f"p-value:    {format_p_value(log2_p)}",
            (
                f"level:      {format_level(str(finding.alpha))} over {finding.models} "
                f"model(s) x {finding.deposits} deposit(s): "
                f"{format_level(str(finding.per_pair_alpha))} per pair"
            ),
            f"scanned:    {format_time(finding.scanned)} (the platform's clock)",
            f"next: file a claim on it with an arbiter: secmark claim --suspect {finding.model}",
        ],
        {
            "valid": True,
            "platform": platform.key_id,
            "scan_id": finding.scan_id,
            "model": finding.model,
            "deposit_id": finding.deposit_id,
            "commitment_id": finding.commitment_id,
            "owner": finding.owner,
            "matches": finding.matches,
            "trials": finding.trials,
            "threshold": finding.threshold,
            "p0": str(finding.p0),
            "alpha": str(finding.alpha),
            "per_pair_alpha": str(finding.per_pair_alpha),
            "models": finding.models,
            "deposits": finding.deposits,
            "log2_p_value": log2_p,
            "scanned": format_time(finding.scanned),
        },
    )
    return 0
