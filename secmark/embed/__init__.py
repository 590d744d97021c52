"""Embedding a derived trigger set into a PyTorch classifier (the ``torch`` extra).

The owner derives the trigger set from a signed commitment
(``secmark.triggers``), wraps it in a :class:`TriggerDataset`, trains it into
the model with :func:`embed` (or mixes it into their own loop with
:class:`TriggerMixer`), checks the :class:`EmbedReport`, and saves the
weights with :func:`save_state` as safetensors. A white-box watermark on a
weights commitment is trained in with :class:`WeightsRegularizer` (in the
owner's loop, or through :func:`embed_weights`). Nothing here is needed to
check a claim: an arbiter installs secmark without torch.
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401  (imported only to fail early and clearly)
except ImportError as error:
    raise ImportError(
        "secmark.embed needs PyTorch: install the extra with pip install 'secmark[torch]'"
    ) from error

from secmark.embed.checkpoint import load_state, save_state
from secmark.embed.dataset import TriggerDataset
from secmark.embed.lm import (
    RAW,
    LMEmbedReport,
    PromptTemplate,
    TokenSequences,
    embed_lm,
    greedy_answers,
    lm_sequences,
    lm_triggers,
    perplexity,
    train_lm,
)
from secmark.embed.mixing import (
    DEFAULT_PER_BATCH,
    TriggerMixer,
    batch_pairs,
    mixed_batches,
)
from secmark.embed.train import (
    OPTIMIZERS,
    EmbedReport,
    EvaluationData,
    Regularizer,
    embed,
    evaluate_accuracy,
    predict_labels,
    resolve_device,
    train,
    watermark_accuracy,
)
from secmark.embed.weights import (
    WeightsEmbedReport,
    WeightsRegularizer,
    canonical_tensor,
    embed_weights,
    reduce_tensor,
    weights_rows,
)

__all__ = [
    "DEFAULT_PER_BATCH",
    "OPTIMIZERS",
    "RAW",
    "EmbedReport",
    "EvaluationData",
    "LMEmbedReport",
    "PromptTemplate",
    "Regularizer",
    "TokenSequences",
    "TriggerDataset",
    "TriggerMixer",
    "WeightsEmbedReport",
    "WeightsRegularizer",
    "batch_pairs",
    "canonical_tensor",
    "embed",
    "embed_lm",
    "embed_weights",
    "evaluate_accuracy",
    "greedy_answers",
    "lm_sequences",
    "lm_triggers",
    "load_state",
    "mixed_batches",
    "perplexity",
    "predict_labels",
    "reduce_tensor",
    "resolve_device",
    "save_state",
    "train",
    "train_lm",
    "watermark_accuracy",
    "weights_rows",
]
