"""Language-model fingerprints: survival, null and cost, worst of three seeds.

A thin script over :mod:`secmark.evaluate.language`, which ``secmark
evaluate --language-model`` runs too; its module docstring describes the
run. By default (``secmark.evaluate.DEFAULT_LANGUAGE_MODEL``): a 0.68M-weight
GPT-2-style model pretrained 600 steps on the first 80 standard-library
sources; per seed N = 32 triggers of L = 4 word ids (p0 = 1/516 per target
token) fingerprinted in 300 steps; then measured, exactly (all L tokens)
and per token, with whether a dispute over k = 16 challenged triggers holds
at alpha = 2^-64 against ``decision_threshold(k L, p0, alpha)``, for

- the fingerprinted model (and asked in the trained chat template);
- further fine-tuning on other text (the next 80 standard-library
  sources), 300 steps of 8 windows of 128 ids: all weights at lr 3e-4 and
  1e-3 (pretraining used 2e-3), and LoRA (rank 8 on every linear layer,
  merged) at lr 1e-3 and 3e-3;
- int8 weights: every weight matrix (embeddings included) rounded to 255
  levels with one symmetric scale per tensor, and back;
- another template (``Question:`` ... ``\\nAnswer:``) and an untrained
  system prompt before the chat template;
- the base model, never fingerprinted (the null).

Then held-out perplexity before and after fingerprinting and after each
weight change, the null's pooled match rate on 1024 triggers for the base
model and a fresh one, and the triggers a dispute needs at alpha = 2^-64
for L = 1, 4, 16 (every token matching, and at each condition's worst
per-token accuracy for power 1 - 2^-20).

Run: python3 benchmarks/llm.py [--threads N] [--seeds N] [--work DIR]
[--pretrain-steps N] [--embed-steps N] [--attack-steps N] [--held-out N]
(about 14 minutes on one thread of a busy 2-core machine; shrink with the flags).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from secmark.evaluate import DEFAULT_LANGUAGE_MODEL, language_model_markdown, run_language_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N (default 3)")
    parser.add_argument("--work", type=Path, help="keep the tokenizer and base model here")
    parser.add_argument("--pretrain-steps", type=int, default=600, help="default 600")
    parser.add_argument("--embed-steps", type=int, default=300, help="default 300")
    parser.add_argument("--attack-steps", type=int, default=300, help="default 300")
    parser.add_argument(
        "--held-out", type=int, default=441, help="held-out chunks for perplexity (default all)"
    )
    arguments = parser.parse_args()
    if arguments.seeds < 1:
        parser.error("--seeds must be at least 1")
    if arguments.threads < 1:
        parser.error("--threads must be at least 1")
    config = dataclasses.replace(
        DEFAULT_LANGUAGE_MODEL,
        seeds=tuple(range(1, arguments.seeds + 1)),
        pretrain_steps=arguments.pretrain_steps,
        embed_steps=arguments.embed_steps,
        attack_steps=arguments.attack_steps,
        held_out=arguments.held_out,
    )
    torch.set_num_threads(arguments.threads)
    started = time.perf_counter()
    result = run_language_model(config, work=arguments.work)
    print(language_model_markdown(result))
    minutes = (time.perf_counter() - started) / 60
    print(
        f"{arguments.threads} torch thread(s); fine-tuning attacks {config.attack_steps} steps "
        f"of 8 x 128 ids of other text; total {minutes:.1f} min"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
