"""Command-line options that name a suspect model, and the adapter they build.

A suspect is a remote Open Inference Protocol endpoint (``--url`` and
``--model``), a local PyTorch model (``--torch-factory module:function``
returning an ``nn.Module``, with ``--weights`` in safetensors or a
weights-only checkpoint), or, for a weights commitment, the suspect's weights
file itself (``--weights-file``). torch is imported only for the second.

Each adapter describes itself by the reference of what it actually queries
(``specs/dispute.md`` 8.3), which the arbiter binds to the claim's: the
canonical ``oip:`` URL of ``--url`` and ``--model``, or ``sha256:`` of the
``--weights`` or ``--weights-file`` file. A claim on a local model therefore
names ``sha256:`` and the SHA-256 of its weights file.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from secmark.cli.extras import require_torch
from secmark.errors import SecmarkError
from secmark.messages.families import TriggerFamily, WeightsFamily
from secmark.models import OIP_DATATYPES, OipSuspect, Suspect, WeightsSuspect

__all__ = ["add_suspect_arguments", "build_suspect", "import_callable", "torch_model_loader"]


def add_suspect_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("suspect (a remote endpoint or a local torch model)")
    group.add_argument("--url", help="base URL of an Open Inference Protocol server")
    group.add_argument("--model", help="model name on that server")
    group.add_argument(
        "--datatype", default="FP32", choices=sorted(OIP_DATATYPES), help="input tensor type (FP32)"
    )
    group.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="an HTTP header, e.g. an API key",
    )
    group.add_argument(
        "--torch-factory", metavar="MODULE:FUNCTION", help="a function returning the nn.Module"
    )
    group.add_argument(
        "--weights",
        type=Path,
        help="the local model's weights (safetensors or weights-only checkpoint)",
    )
    group.add_argument(
        "--weights-file",
        type=Path,
        help="white-box: the suspect's weights file, checked against a weights commitment",
    )


def import_callable(spec: str) -> Callable[..., Any]:
    """The function named ``module:function``.

    Raises:
        SecmarkError: it cannot be imported or is not callable.
    """
    module_name, _, function_name = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise SecmarkError(f"cannot import {spec!r}: {error}") from None
    if not callable(factory):
        raise SecmarkError(f"{spec!r} is not callable")
    return factory  # type: ignore[no-any-return]


def torch_model_loader(factory_spec: str) -> Callable[[Path], Suspect]:
    """A function building a suspect from a weights file with the given
    factory, described by ``sha256:`` of the file (``TorchSuspect.from_file``)."""
    factory = import_callable(factory_spec)

    def load(path: Path) -> Suspect:
        require_torch("a local torch model")
        from secmark.models.torch_module import TorchSuspect

        return TorchSuspect.from_file(factory(), path)

    return load


def build_suspect(args: argparse.Namespace, family: TriggerFamily) -> Suspect:
    """The adapter the options describe, for a commitment to ``family``.

    Raises:
        SecmarkError: not exactly one kind of suspect given, a part missing,
            or a kind that does not fit the family.
    """
    remote = args.url is not None or args.model is not None
    local = args.torch_factory is not None or args.weights is not None
    white_box = args.weights_file is not None
    if remote + local + white_box != 1:
        raise SecmarkError(
            "name the suspect with --url and --model, with --torch-factory and --weights, "
            "or (white-box) with --weights-file"
        )
    if isinstance(family, WeightsFamily) != white_box:
        raise SecmarkError(
            "a weights commitment is checked with --weights-file, any other by querying a model"
        )
    if white_box:
        return WeightsSuspect.from_family(args.weights_file, family)  # type: ignore[arg-type]
    if remote:
        if args.url is None or args.model is None:
            raise SecmarkError("a remote suspect needs both --url and --model")
        headers = {}
        for header in args.header:
            name, separator, value = header.partition(":")
            if not separator or not name.strip():
                raise SecmarkError(f"--header takes NAME:VALUE, not {header!r}")
            headers[name.strip()] = value.strip()
        return OipSuspect(args.url, args.model, datatype=args.datatype, headers=headers)
    if args.torch_factory is None or args.weights is None:
        raise SecmarkError("a local suspect needs both --torch-factory and --weights")
    return torch_model_loader(args.torch_factory)(args.weights)
