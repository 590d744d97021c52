"""The MLServer runtime that serves a PyTorch classifier (see :mod:`secmark.examples.serving`).

MLServer imports this module in its own process, from the
``implementation`` of a ``model-settings.json`` that
:func:`secmark.examples.serving.write_mlserver_folder` wrote; nothing else
in secmark imports it, so MLServer stays an optional dependency
(``pip install mlserver==1.7.1``).

:class:`TorchClassifier` builds the model with the factory named in
``parameters.extra``, loads ``parameters.uri`` (safetensors, or a
weights-only torch checkpoint: never unpickled) and answers:

- input: the tensor named ``input-0``, any numeric datatype, ``[N, ...]``
  with 1 <= N <= ``max_batch_rows``, finite values; fed to the model as
  float32;
- outputs: ``scores`` (FP32 ``[N, K]``, the logits) and ``label`` (INT64
  ``[N, 1]``, their argmax, the first index on a tie), or those the
  request names, in its order.

A request it cannot answer gets HTTP 400 with a JSON error saying why (no
such input, a shape the model does not take, a non-finite value); MLServer
would answer a plain exception with a 500 and a non-JSON body.
"""

from __future__ import annotations

import importlib

import numpy as np
import torch
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri

from secmark.embed import load_state
from secmark.examples.serving import INPUT_NAME, LABEL_OUTPUT, SCORES_OUTPUT, RuntimeOptions

__all__ = ["TorchClassifier"]

# Error texts quoted back to the client stay short.
_MAX_ERROR_TEXT = 200


def _build(factory: str) -> torch.nn.Module:
    module_name, _, function_name = factory.partition(":")
    try:
        model = getattr(importlib.import_module(module_name), function_name)()
    except (ImportError, AttributeError) as error:
        raise MLServerError(f"cannot build the model with {factory}: {error}") from None
    if not isinstance(model, torch.nn.Module):
        raise MLServerError(f"{factory} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


class TorchClassifier(MLModel):  # type: ignore[misc]  # mlserver ships no type information
    """A classifier from a factory and a weights file (module docstring)."""

    async def load(self) -> bool:
        parameters = self.settings.parameters
        options = RuntimeOptions.from_extra(None if parameters is None else parameters.extra)
        # The server answers one request at a time; more threads than one
        # only make a small model wait on cores other processes are using.
        torch.set_num_threads(options.threads)
        model = _build(options.factory)
        load_state(await get_model_uri(self.settings), model)
        self._model = model.eval()
        self._max_rows = options.max_batch_rows
        return True

    def _batch(self, payload: InferenceRequest) -> np.ndarray:
        named = [tensor for tensor in payload.inputs if tensor.name == INPUT_NAME]
        if len(named) != 1:
            names = [tensor.name for tensor in payload.inputs][:8]
            raise MLServerError(f"expected one input named {INPUT_NAME!r}, got {names}")
        try:
            batch = np.asarray(NumpyCodec.decode_input(named[0]), dtype=np.float32)
        except (ValueError, TypeError) as error:
            raise MLServerError(
                f"the input is not numeric: {str(error)[:_MAX_ERROR_TEXT]}"
            ) from None
        if batch.ndim < 1 or not 1 <= batch.shape[0] <= self._max_rows:
            raise MLServerError(
                f"the input must hold 1 to {self._max_rows} rows, not shape {list(batch.shape)}"
            )
        if not np.isfinite(batch).all():
            raise MLServerError("the input holds a value that is not finite")
        return batch

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        batch = self._batch(payload)
        try:
            with torch.inference_mode():
                logits = self._model(torch.from_numpy(batch))
        except RuntimeError as error:
            raise MLServerError(
                f"the model cannot take inputs of shape {list(batch.shape)}: "
                f"{str(error)[:_MAX_ERROR_TEXT]}"
            ) from None
        scores = logits.detach().to(torch.float32).numpy()
        if scores.ndim != 2 or scores.shape[0] != batch.shape[0]:
            raise MLServerError(
                f"the model answered shape {list(scores.shape)}, not one row of scores per input",
                status_code=500,
            )
        outputs = {
            SCORES_OUTPUT: lambda: NumpyCodec.encode_output(SCORES_OUTPUT, scores),
            LABEL_OUTPUT: lambda: NumpyCodec.encode_output(
                LABEL_OUTPUT, np.argmax(scores, axis=1).astype(np.int64)
            ),
        }
        wanted = [request.name for request in payload.outputs or ()] or list(outputs)
        unknown = [name for name in wanted if name not in outputs]
        if unknown:
            raise MLServerError(f"no output {unknown[0][:64]!r}; this model has {list(outputs)}")
        answered: list[ResponseOutput] = [outputs[name]() for name in wanted]
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=answered)
