"""MLServer runtimes served to the remote-adapter tests.

conftest.py copies this file into the server's directory; pytest never
imports it (it needs mlserver, and runs in the server's process). Neither
runtime needs torch.

- ``LinearClassifier``: a fixed linear classifier over flattened inputs whose
  weights conftest.py writes as .npy files. It answers two outputs, ``logits``
  (FP64, [N, K]) and ``label`` (INT64, [N, 1] as MLServer's NumpyCodec
  encodes a 1-D array).
- ``Misbehaving``: the same classifier with one fault chosen by the model's
  ``parameters.extra.mode``, so one server hosts every fault under its own
  model name.
"""

from __future__ import annotations

import asyncio

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse

SLOW_SECONDS = 3.0


class LinearClassifier(MLModel):
    async def load(self) -> bool:
        extra = self.settings.parameters.extra
        self._weights = np.load(extra["weights"])
        self._bias = np.load(extra["bias"])
        return True

    def logits(self, payload: InferenceRequest) -> np.ndarray:
        inputs = NumpyCodec.decode_input(payload.inputs[0])
        flat = inputs.reshape(inputs.shape[0], -1).astype(np.float64)
        return flat @ self._weights + self._bias

    def respond(self, logits: np.ndarray) -> InferenceResponse:
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output("logits", logits),
                NumpyCodec.encode_output("label", np.argmax(logits, axis=1).astype(np.int64)),
            ],
        )

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        return self.respond(self.logits(payload))


class Misbehaving(LinearClassifier):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        mode = self.settings.parameters.extra["mode"]
        logits = self.logits(payload)
        if mode == "extra-row":
            return self.respond(np.vstack([logits, logits[:1]]))
        if mode == "nan":
            logits[0, 0] = np.nan
            return self.respond(logits)
        if mode == "fractional-labels":
            fractional = np.arange(logits.shape[0], dtype=np.float64) + 0.5
            return InferenceResponse(
                model_name=self.name, outputs=[NumpyCodec.encode_output("label", fractional)]
            )
        if mode == "no-outputs":
            return InferenceResponse(model_name=self.name, outputs=[])
        if mode == "crash":
            raise RuntimeError("simulated crash inside the model")
        if mode == "refuse":
            raise MLServerError("query refused by the suspect's policy", status_code=400)
        if mode == "slow":
            await asyncio.sleep(SLOW_SECONDS)
            return self.respond(logits)
        raise MLServerError(f"unknown test mode {mode!r}", status_code=500)
