"""Command-line options that name a suspect model, and the adapter they build.

A suspect is either a remote Open Inference Protocol endpoint (``--url`` and
``--model``) or a local PyTorch model (``--torch-factory module:function``
returning an ``nn.Module``, with ``--weights`` in safetensors or a
weights-only checkpoint). torch is imported only for the second.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from secmark.errors import SecmarkError
from secmark.models import OIP_DATATYPES, OipSuspect, Suspect

__all__ = ["add_suspect_arguments", "build_suspect", "import_callable", "torch_model_loader"]


def add_suspect_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("suspect (a remote endpoint or a local torch model)")
    group.add_argument("--url", help="base URL of an Open Inference Protocol server")
    group.add_argument("--model", help="model name on that server")
    group.add_argument("--datatype", default="FP32", choices=sorted(OIP_DATATYPES), help="input tensor type (FP32)")
    group.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="an HTTP header, e.g. an API key")
    group.add_argument("--torch-factory", metavar="MODULE:FUNCTION", help="a function returning the nn.Module")
    group.add_argument("--weights", type=Path, help="the local model's weights (safetensors or weights-only checkpoint)")


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
    """A function building a suspect from a weights file with the given factory."""
    factory = import_callable(factory_spec)

    def load(path: Path) -> Suspect:
        from secmark.embed import load_state
        from secmark.models.torch_module import TorchSuspect

        model = factory()
        load_state(path, model)
        return TorchSuspect(model)

    return load


def build_suspect(args: argparse.Namespace) -> Suspect:
    """The adapter the options describe.

    Raises:
        SecmarkError: neither or both kinds of suspect given, or a part missing.
    """
    remote = args.url is not None or args.model is not None
    local = args.torch_factory is not None or args.weights is not None
    if remote == local:
        raise SecmarkError("name the suspect with --url and --model, or with --torch-factory and --weights")
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
