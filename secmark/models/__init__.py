"""Suspect adapters: how the arbiter queries the model it suspects.

Every adapter satisfies :class:`Suspect`: ``predict(batch)`` returns one
checked answer per input row (int64 labels, int64 token ids or float64
values, as the adapter's ``output`` says) or raises
:class:`~secmark.errors.SuspectError`; ``describe()`` returns the canonical
reference of what it actually queries (:mod:`secmark.models.reference`),
which the arbiter binds to the claim's.

- :class:`OipSuspect`: a remote endpoint speaking the Open Inference Protocol
  (KServe v2 REST, as served by KServe, MLServer and Triton).
- :class:`JsonApiSuspect`: any other JSON endpoint (SageMaker, Vertex AI,
  Hugging Face Inference Endpoints, ...), through a request template and
  JSON pointers to the answers.
- :class:`SuspectConfig`: every setting of a remote suspect, read strictly
  from one JSON file (``specs/suspects.md``), which builds either adapter.
  Both remote adapters post through :mod:`secmark.models.http` (bounded
  retries honouring ``Retry-After``, counted requests, redacted credentials),
  and send only to the addresses an :class:`EgressPolicy` permits when given
  one (a service querying the URLs claimants name).
- :class:`OpenAICompletionsSuspect`, :class:`OpenAIChatSuspect`: a language
  model behind an OpenAI-compatible API, asked greedily for the target
  tokens of a language-model commitment, its text answers re-encoded with
  :class:`~secmark.models.tokenizer.LMTokenizer` (``secmark[lm]``).
- :class:`CallableSuspect`, :class:`EstimatorSuspect`: a Python function, a
  scikit-learn style estimator.
- :class:`WeightsSuspect`: a model's weights (a safetensors file or a
  weights-only torch checkpoint), answering the rows of a weights commitment
  with the bits of their projections: white-box evidence. numpy only.
- ``secmark.models.torch_module.TorchSuspect``: a ``torch.nn.Module``, and
  ``secmark.models.transformers_lm.TransformersSuspect``: a Hugging Face
  causal language model run in process. They are not imported here, so that
  this package works without torch installed; import them from their modules.
"""

from __future__ import annotations

from secmark.models.base import (
    OUTPUTS,
    Output,
    Suspect,
    check_answers,
    check_batch,
    check_batch_size,
    check_output,
    check_reference,
)
from secmark.models.callable import CallableSuspect, EstimatorSuspect
from secmark.models.config import SuspectConfig
from secmark.models.egress import EgressPolicy, EgressRefused
from secmark.models.http import TlsFiles
from secmark.models.json_api import PLACEHOLDER, JsonApiSuspect, JsonPointer
from secmark.models.openai import OpenAIChatSuspect, OpenAICompletionsSuspect, openai_endpoint_url
from secmark.models.remote import OIP_DATATYPES, OipSuspect
from secmark.models.weights import WeightsSuspect, reduce_parameter

__all__ = [
    "OIP_DATATYPES",
    "OUTPUTS",
    "PLACEHOLDER",
    "CallableSuspect",
    "EgressPolicy",
    "EgressRefused",
    "EstimatorSuspect",
    "JsonApiSuspect",
    "JsonPointer",
    "OipSuspect",
    "OpenAIChatSuspect",
    "OpenAICompletionsSuspect",
    "Output",
    "Suspect",
    "SuspectConfig",
    "TlsFiles",
    "WeightsSuspect",
    "check_answers",
    "check_batch",
    "check_batch_size",
    "check_output",
    "check_reference",
    "openai_endpoint_url",
    "reduce_parameter",
]
