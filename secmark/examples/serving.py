"""Serving a watermarked PyTorch classifier with MLServer, for tests and demos.

A suspect in a dispute is usually a model behind an inference API. This
module writes the two files MLServer 1.7 reads (``settings.json`` for the
server, ``<name>/model-settings.json`` for the model) so that ``mlserver
start FOLDER`` serves a classifier built by a factory function and loaded
from a safetensors file, with the runtime of
:mod:`secmark.examples.mlserver_runtime`. ``secmark serve-example`` writes
them into a temporary folder, starts the server and stops it again.

The served model answers under the Open Inference Protocol the way
:class:`secmark.models.OipSuspect` asks by default:

- one input tensor named :data:`INPUT_NAME` (``input-0``), ``[N, ...]``;
- two outputs: :data:`SCORES_OUTPUT` (``scores``, FP32 ``[N, K]``, the
  model's logits) first, so that the adapter's default (the first output,
  reduced by argmax) reads it; then :data:`LABEL_OUTPUT` (``label``, INT64
  ``[N, 1]``, the argmax). A request naming outputs gets those only.

Nothing here imports MLServer or torch: the server process imports them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from secmark.errors import EncodingError, SecmarkError
from secmark.files import PUBLIC_FILE_MODE, write_atomic

__all__ = [
    "DEFAULT_GRPC_PORT",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_MAX_BATCH_ROWS",
    "INPUT_NAME",
    "LABEL_OUTPUT",
    "MODEL_SETTINGS_FILE",
    "RUNTIME",
    "SCORES_OUTPUT",
    "SERVER_SETTINGS_FILE",
    "RuntimeOptions",
    "ServedModel",
    "ServerAddress",
    "write_mlserver_folder",
]

RUNTIME: Final = "secmark.examples.mlserver_runtime.TorchClassifier"
"""The ``implementation`` MLServer imports in its own process."""

INPUT_NAME: Final = "input-0"
"""The input tensor's name: :class:`secmark.models.OipSuspect`'s default."""

SCORES_OUTPUT: Final = "scores"
LABEL_OUTPUT: Final = "label"

DEFAULT_HTTP_PORT: Final = 8080
DEFAULT_GRPC_PORT: Final = 8081
"""MLServer's own defaults. MLServer cannot run without its gRPC server, and
binds it with SO_REUSEPORT: two servers given one gRPC port would both seem
to start, so each needs a port of its own."""

DEFAULT_MAX_BATCH_ROWS: Final = 1024
"""Rows one request may carry: bounds the memory a single request takes."""

SERVER_SETTINGS_FILE: Final = "settings.json"
MODEL_SETTINGS_FILE: Final = "model-settings.json"

# A model name is a folder name here and a path segment of the OIP URL:
# letters, digits, dot, dash and underscore only, so both read it the same.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_MAX_THREADS = 256
_MAX_BATCH_ROWS = 1 << 20


@dataclass(frozen=True)
class RuntimeOptions:
    """What the runtime reads from a model's ``parameters.extra``.

    ``factory`` is ``module:function``, a function taking no arguments and
    returning the ``torch.nn.Module`` the weights fit (as ``secmark embed
    --factory`` takes it); the module must be importable by the server
    process. ``threads`` is torch's CPU thread count in the server (one:
    more only slows a small model down on a shared machine).
    ``max_batch_rows`` bounds the rows of one request.

    Raises:
        EncodingError: a factory that is not ``module:function``, or
            ``threads`` / ``max_batch_rows`` not an integer in range.
    """

    factory: str
    threads: int = 1
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS

    def __post_init__(self) -> None:
        if not isinstance(self.factory, str) or not _FACTORY.fullmatch(self.factory):
            raise EncodingError(
                f"factory {str(self.factory)[:70]!r} must be MODULE:FUNCTION, "
                "e.g. secmark.examples.digits:DigitsCNN"
            )
        for what, value, high in (
            ("threads", self.threads, _MAX_THREADS),
            ("max_batch_rows", self.max_batch_rows, _MAX_BATCH_ROWS),
        ):
            if type(value) is not int or not 1 <= value <= high:
                raise EncodingError(f"{what} must be an integer in [1, {high}], not {value!r}")

    @classmethod
    def from_extra(cls, extra: object) -> RuntimeOptions:
        """The options in a model's ``parameters.extra`` (as :meth:`to_extra` wrote them).

        Raises:
            EncodingError: ``extra`` is not an object, or a field is missing or invalid.
        """
        if not isinstance(extra, dict):
            raise EncodingError("the model settings have no parameters.extra object")
        return cls(
            factory=extra.get("factory"),  # type: ignore[arg-type]
            threads=extra.get("threads", 1),
            max_batch_rows=extra.get("max_batch_rows", DEFAULT_MAX_BATCH_ROWS),
        )

    def to_extra(self) -> dict[str, Any]:
        return {
            "factory": self.factory,
            "threads": self.threads,
            "max_batch_rows": self.max_batch_rows,
        }


@dataclass(frozen=True)
class ServedModel:
    """The model to serve: its OIP ``name`` (and ``version``, when given,
    served as that version too), the ``weights`` file ``secmark embed``
    wrote (safetensors, or a weights-only torch checkpoint) and the
    runtime's ``options``.

    Raises:
        EncodingError: a name or version outside 1 to 64 letters, digits,
            ``.``, ``-`` and ``_``.
    """

    name: str
    weights: Path
    options: RuntimeOptions
    version: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise EncodingError(
                f"model name {str(self.name)[:70]!r} must be 1 to 64 letters, digits, '.', "
                "'-' or '_', starting with a letter or digit"
            )
        if self.version is not None and not (
            isinstance(self.version, str) and _NAME.fullmatch(self.version)
        ):
            raise EncodingError(
                f"model version {str(self.version)[:70]!r} must be 1 to 64 letters, digits, "
                "'.', '-' or '_', starting with a letter or digit"
            )


@dataclass(frozen=True)
class ServerAddress:
    """Where MLServer listens: ``host`` (loopback by default), the REST
    ``http_port`` and the ``grpc_port`` it cannot do without.

    Raises:
        EncodingError: a port outside 1..65535, or both ports equal.
    """

    host: str = "127.0.0.1"
    http_port: int = DEFAULT_HTTP_PORT
    grpc_port: int = DEFAULT_GRPC_PORT

    def __post_init__(self) -> None:
        for what, port in (("HTTP port", self.http_port), ("gRPC port", self.grpc_port)):
            if type(port) is not int or not 1 <= port <= 65535:
                raise EncodingError(f"the {what} must be in 1..65535, not {port!r}")
        if self.http_port == self.grpc_port:
            raise EncodingError("the HTTP and gRPC ports must differ")
        if not isinstance(self.host, str) or not self.host:
            raise EncodingError("the host must be a non-empty address")

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.http_port}"


def write_mlserver_folder(folder: Path, model: ServedModel, address: ServerAddress) -> Path:
    """Write ``settings.json`` and ``<name>/model-settings.json`` into ``folder``
    (created if missing) and return the model settings' path.

    The server listens on ``address`` only, without a metrics endpoint, and
    loads the model in its own process (``parallel_workers: 0``: MLServer's
    worker processes break under uvloop 0.22 and later). The weights are
    named by their absolute path, so the folder may live anywhere.

    Raises:
        SecmarkError: ``model.weights`` is not a file, or ``folder`` already
            holds settings of a model under another name.
    """
    weights = model.weights.resolve()
    if not weights.is_file():
        raise SecmarkError(
            f"no model file at {model.weights}: give the weights secmark embed wrote"
        )
    folder.mkdir(parents=True, exist_ok=True)
    # MLServer serves every model-settings.json below the folder: another
    # model's settings left there would be served too.
    others = [
        path.parent.name
        for path in folder.glob(f"*/{MODEL_SETTINGS_FILE}")
        if path.parent.name != model.name
    ]
    if others:
        raise SecmarkError(
            f"{folder} already holds the settings of model {others[0]!r}; choose an empty folder"
        )
    server = {
        "host": address.host,
        "http_port": address.http_port,
        "grpc_port": address.grpc_port,
        "metrics_endpoint": None,
        "parallel_workers": 0,
    }
    parameters: dict[str, Any] = {"uri": str(weights), "extra": model.options.to_extra()}
    if model.version is not None:
        parameters["version"] = model.version
    settings = {"name": model.name, "implementation": RUNTIME, "parameters": parameters}
    write_atomic(
        folder / SERVER_SETTINGS_FILE,
        json.dumps(server, indent=2).encode() + b"\n",
        mode=PUBLIC_FILE_MODE,
        overwrite=True,
    )
    (folder / model.name).mkdir(exist_ok=True)
    path = folder / model.name / MODEL_SETTINGS_FILE
    write_atomic(
        path, json.dumps(settings, indent=2).encode() + b"\n", mode=PUBLIC_FILE_MODE, overwrite=True
    )
    return path
