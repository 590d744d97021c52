"""``secmark embed`` (owner, torch extra) and ``secmark check`` (anyone with a
revealed trigger set): train a trigger set into a model, and measure a model
against one."""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

import numpy.typing as npt

from secmark.cli.derive import open_pool, open_responses
from secmark.cli.evaluate import add_threads_argument, torch_threads
from secmark.cli.extras import require_torch
from secmark.cli.output import add_json_flag, emit
from secmark.cli.streams import add_input, read_input
from secmark.cli.suspects import (
    add_suspect_arguments,
    import_callable,
    open_suspect,
    requests_sent,
)
from secmark.errors import SecmarkError
from secmark.messages.commitment import open_commitment
from secmark.messages.labels import ResponseLabels, TokenLabels
from secmark.protocol.querying import query_suspect
from secmark.stats import DEFAULT_ALPHA
from secmark.triggers import (
    CommittedPool,
    generate_decoys,
    read_trigger_set,
    verify_trigger_set,
)

# Below this share of triggers learnt, embedding has visibly failed: plans
# assume retentions of 0.5 to 0.95 after attacks, from a mark learnt whole.
_WELL_EMBEDDED = 0.95


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    embed = subparsers.add_parser(
        "embed",
        help="train a derived trigger set into a PyTorch model (needs the torch extra)",
        description=(
            "Loads the model from --factory (a function returning an nn.Module) and optional "
            "--weights, the data from --data (a function returning (train_loader, holdout) where "
            "holdout is (inputs, labels) arrays or None), trains with the trigger set mixed into "
            "every batch, and writes the weights as safetensors. Example: --factory "
            "secmark.examples.digits:DigitsCNN --data secmark.examples.digits:training_data"
        ),
    )
    embed.add_argument(
        "triggers", type=Path, help="the trigger set folder written by secmark derive"
    )
    embed.add_argument("--factory", required=True, metavar="MODULE:FUNCTION")
    embed.add_argument("--weights", type=Path, help="start from these weights (fine-tuning)")
    embed.add_argument("--data", required=True, metavar="MODULE:FUNCTION")
    embed.add_argument("--epochs", type=int, default=50)
    embed.add_argument("--lr", type=float, default=2e-3)
    embed.add_argument(
        "--per-batch", type=int, default=8, help="triggers mixed into each batch (8)"
    )
    embed.add_argument("--seed", type=int, default=0)
    embed.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    add_threads_argument(embed)
    embed.add_argument("--out", required=True, type=Path, help="where to write the weights")
    add_json_flag(embed)
    embed.set_defaults(handler=_embed)

    check = subparsers.add_parser(
        "check",
        help="query a model with a trigger set among decoys and run the exact test",
        description=(
            "Re-derives and checks every trigger of the set from its VRF proof, then queries the "
            "suspect with the triggers shuffled among fresh decoys."
        ),
    )
    check.add_argument("triggers", type=Path, help="a trigger set folder")
    add_input(check, "--commitment", required=True, help="the signed commitment")
    check.add_argument("--decoys-per-trigger", type=int, default=2)
    check.add_argument(
        "--pool",
        type=Path,
        help="the committed pool as one .npy array (pool and overlay families): the triggers "
        "are checked against it, and decoys drawn from its other items",
    )
    check.add_argument(
        "--responses",
        type=Path,
        help="the committed response list, one per line (responses labels): what answers give",
    )
    add_suspect_arguments(check)
    add_json_flag(check)
    check.set_defaults(handler=_check)


def _embed(args: argparse.Namespace) -> int:
    require_torch("secmark embed")
    from secmark.embed import TriggerDataset, embed, load_state, save_state

    if args.out.exists():
        raise SecmarkError(f"{args.out} already exists; choose another path")
    model = import_callable(args.factory)()
    if args.weights is not None:
        load_state(args.weights, model)
    trigger_set = read_trigger_set(args.triggers)
    if isinstance(trigger_set.manifest.labels, (TokenLabels, ResponseLabels)):
        raise SecmarkError(
            f"{args.triggers} is a language model's trigger set (prompts and target "
            "responses): fingerprint a causal LM with secmark lm embed"
        )
    train_loader, holdout = import_callable(args.data)()
    with torch_threads(args.threads):
        report = embed(
            model,
            train_loader,
            TriggerDataset(trigger_set.inputs, trigger_set.labels),
            epochs=args.epochs,
            lr=args.lr,
            seed=args.seed,
            per_batch=args.per_batch,
            device=args.device,
            holdout=holdout,
        )
    save_state(model, args.out)
    data: dict[str, Any] = {
        "clean_accuracy_after": report.clean_accuracy_after,
        "clean_accuracy_before": report.clean_accuracy_before,
        "seconds": report.seconds,
        "watermark_accuracy_after": report.watermark_accuracy_after,
        "weights": str(args.out),
    }
    lines = []
    if report.watermark_accuracy_after < _WELL_EMBEDDED:
        warning = (
            f"only {report.watermark_accuracy_after:.0%} of the triggers were learnt: a dispute "
            "needs the retention its plan assumed; raise --per-batch or --epochs and embed again"
        )
        data["warning"] = warning
        lines.append(f"warning: {warning}")
    clean = (
        f"{report.clean_accuracy_before:.2%} -> {report.clean_accuracy_after:.2%}"
        if report.clean_accuracy_after is not None
        else "not measured (no holdout)"
    )
    emit(
        args,
        [
            f"watermark accuracy: {report.watermark_accuracy_after:.2%} on {report.triggers} triggers",
            f"clean accuracy:     {clean}",
            f"training:           {report.epochs} epochs, {report.seconds:.1f} s on {report.device}",
            f"weights:            {args.out}",
            *lines,
        ],
        data,
    )
    return 0


def _decoy_candidates(pool: CommittedPool, wanted: int) -> list[npt.NDArray[Any]]:
    """Up to ``wanted`` distinct items of the owner's pool, chosen at random:
    the candidates a self-check draws its decoys from (the triggers among
    them are excluded when drawing)."""
    chosen = random.SystemRandom().sample(range(len(pool)), min(wanted, len(pool)))
    return [pool.item(index) for index in chosen]


def _check(args: argparse.Namespace) -> int:
    commitment = open_commitment(read_input(args.commitment, what="commitment"))
    trigger_set = read_trigger_set(args.triggers)
    document = commitment.document
    pool = open_pool(args.pool, document)
    verify_trigger_set(trigger_set, commitment, pool=pool)
    count = args.decoys_per_trigger * len(trigger_set)
    decoys = generate_decoys(
        document,
        count,
        items=None if pool is None else _decoy_candidates(pool, count + len(trigger_set)),
        exclude=list(trigger_set.inputs),
    )
    total = len(trigger_set) + len(decoys)
    responses = open_responses(args.responses, document)
    with open_suspect(
        args, document.family, document.labels, responses=responses, total=total
    ) as suspect:
        result = query_suspect(
            suspect,
            document.labels,
            [int(index) for index in trigger_set.indices],
            trigger_set.inputs,
            list(trigger_set.labels),
            decoys,
            alpha=DEFAULT_ALPHA,
        )
    sent = requests_sent(suspect)
    test = result.test
    emit(
        args,
        [
            f"suspect:    {suspect.describe()}",
            f"matches:    {result.matches} of {result.trials} trials (p0 = {test.p0_exact})",
            f"p-value:    2^{test.log2_p_value:.2f}; threshold {test.threshold} at alpha = 2^{test.log2_alpha:.0f}",
            f"interval:   match rate in [{test.ci_low:.3f}, {test.ci_high:.3f}] (95 % Clopper-Pearson)",
            f"errors:     {result.trigger_errors} trigger and {result.decoy_errors} decoy queries failed",
            *([] if sent is None else [f"requests:   {sent} sent to the suspect"]),
            "decision:   "
            + ("the watermark is present" if test.decision else "no evidence of the watermark"),
        ],
        {
            "matches": result.matches,
            "trials": result.trials,
            "p0": test.p0_exact,
            "log2_p_value": test.log2_p_value,
            "threshold": test.threshold,
            "decision": test.decision,
            "trigger_errors": result.trigger_errors,
            "decoy_errors": result.decoy_errors,
            "requests_sent": sent,
        },
    )
    return 0
