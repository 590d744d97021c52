"""Command-line options that name a suspect model, and the adapter they build.

A suspect is a remote endpoint, a local PyTorch model (``--torch-factory
module:function`` returning an ``nn.Module``, with ``--weights`` in
safetensors or a weights-only checkpoint), or, for a weights commitment,
the suspect's weights file itself (``--weights-file``). torch is imported
only for the second.

A remote endpoint is described either by one suspect config file
(``--suspect-config FILE``, :class:`~secmark.models.SuspectConfig`,
``specs/suspects.md``: Open Inference Protocol or any JSON API), or by flags
for an Open Inference Protocol endpoint (``--url``, ``--model`` and the
settings below them). Never both: the file is the description an arbiter
keeps with a case, and a flag beside it would make what was queried depend
on a command line nobody kept. Credentials never come from the command line
(other users of the machine can read it): ``--header-from-env NAME=VAR``
and ``--headers-file FILE`` (or the config's ``headers_from_env`` and
``headers_file``); ``--header NAME:VALUE`` is deprecated for that reason.

Each adapter describes itself by the reference of what it actually queries
(``specs/dispute.md`` 8.3), which the arbiter binds to the claim's: the
canonical ``oip:`` URL of the endpoint, ``json:`` and the canonical URL of a
JSON API, ``openai:``, the canonical URL and ``#`` and the model of an
OpenAI-compatible API, or ``sha256:`` of the ``--weights`` or
``--weights-file`` file. A
claim on a local model therefore names ``sha256:`` and the SHA-256 of its
weights file.

While a suspect is queried, :func:`open_suspect` shows a progress bar on
standard error when it is a terminal (never in logs or pipes), unless
``--quiet`` is given; the number of requests sent to a remote suspect
(:func:`requests_sent`) is reported by the commands, and added to the error
when a query step fails.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from secmark.cli.extras import require_torch
from secmark.cli.output import show_progress
from secmark.errors import EncodingError, SecmarkError, SuspectError
from secmark.messages.families import TriggerFamily, WeightsFamily
from secmark.messages.labels import LabelSpace, ResponseLabels
from secmark.messages.responses import ResponseList
from secmark.models import OIP_DATATYPES, OUTPUTS, Suspect, SuspectConfig, WeightsSuspect
from secmark.models.prompts import answer_length

__all__ = [
    "add_suspect_arguments",
    "build_suspect",
    "import_callable",
    "open_suspect",
    "requests_sent",
    "torch_model_loader",
]

# Flags that describe a remote suspect, and the config member each one sets.
_REMOTE_FLAGS = {
    "url": "url",
    "model": "model",
    "model_version": "model_version",
    "datatype": "datatype",
    "input_name": "input_name",
    "output": "output",
    "output_name": "output_name",
    "request_output": "requested_outputs",
    "batch_size": "batch_size",
    "no_batch_dimension": "batch_dimension",
    "input_shape": "input_shape",
    "timeout": "timeout",
    "retries": "retries",
    "header_from_env": "headers_from_env",
    "headers_file": "headers_file",
    "tls_ca_file": "tls",
    "tls_cert_file": "tls",
    "tls_key_file": "tls",
    "openai": "protocol",
    "tokenizer": "tokenizer",
    "system_prompt": "system",
    "header": None,
}

_CONFIG_HELP = (
    "every setting of a remote suspect in one JSON object (specs/suspects.md), kept with a "
    "case: protocol ('oip', 'json', 'openai-completions' or 'openai-chat'), url; for oip "
    "model, model_version, input_name, datatype, output_name, requested_outputs; for "
    "openai model, tokenizer (the tokenizer.json answers are re-encoded with) and, for "
    "chat, system; for json request (a body template holding "
    "the string '{{inputs}}' once) and answers (an RFC 6901 JSON pointer to the list of "
    "answers, e.g. '/predictions'), answer (a pointer inside each); output, batch_size, "
    "batch_dimension, input_shape, timeout, retries, backoff, max_response_bytes, tls "
    "{ca_file, cert_file, key_file}, headers (no credentials), headers_from_env {header: "
    "VARIABLE}, headers_file (a JSON object of headers, mode 600), description. Paths are "
    "read from the file's folder. Unknown members, duplicate keys and values of the wrong "
    "type are refused. No other suspect option may be given with it"
)


def add_suspect_arguments(parser: argparse.ArgumentParser) -> None:
    """The options naming a suspect, and ``--quiet`` for the progress bar."""
    group = parser.add_argument_group(
        "suspect",
        "a remote endpoint (--suspect-config FILE, or --url and --model for an Open Inference "
        "Protocol server), a local torch model (--torch-factory and --weights), or a weights "
        "file (--weights-file)",
    )
    group.add_argument("--suspect-config", type=Path, metavar="FILE", help=_CONFIG_HELP)
    group.add_argument("--url", help="base URL of an Open Inference Protocol server")
    group.add_argument("--model", help="model name on that server")
    group.add_argument("--model-version", metavar="VERSION", help="model version (none)")
    group.add_argument("--datatype", choices=sorted(OIP_DATATYPES), help="input tensor type (FP32)")
    group.add_argument("--input-name", metavar="NAME", help="input tensor name (input-0)")
    group.add_argument(
        "--output",
        choices=OUTPUTS,
        help="how answers are read: argmax (scores or logits, the default), labels "
        "(class indices or token ids), values (regression)",
    )
    group.add_argument(
        "--output-name", metavar="NAME", help="the output the answers are read from (the first)"
    )
    group.add_argument(
        "--request-output",
        action="append",
        metavar="NAME",
        help="an output to ask for in the request, e.g. predict_proba for MLServer's "
        "scikit-learn runtime (repeatable)",
    )
    group.add_argument("--batch-size", type=int, metavar="N", help="inputs per request (64)")
    group.add_argument(
        "--no-batch-dimension",
        action="store_true",
        default=None,
        help="the model takes one input per request, without a leading batch axis",
    )
    group.add_argument(
        "--input-shape",
        type=_shape,
        metavar="D1,D2,...",
        help="send each input in this shape (its values in C order), e.g. 64 for 8x8 images",
    )
    group.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="limit of one attempt, all in (10)"
    )
    group.add_argument(
        "--retries",
        type=int,
        metavar="N",
        help="retries of a request after a timeout, connection failure, 408, 429 or 5xx (2)",
    )
    group.add_argument(
        "--openai",
        choices=("completions", "chat"),
        help="--url is an OpenAI-compatible language-model server (its root, without /v1) and "
        "--model its model name, asked greedily at /v1/completions or /v1/chat/completions",
    )
    group.add_argument(
        "--tokenizer",
        type=Path,
        metavar="FILE",
        help="with --openai: the model's tokenizer.json (or its folder); answers are re-encoded "
        "with it and compared id by id",
    )
    group.add_argument(
        "--system-prompt", metavar="TEXT", help="with --openai chat: a system message first"
    )
    group.add_argument(
        "--lm-folder",
        type=Path,
        metavar="FOLDER",
        help="a local Hugging Face causal language model (safetensors), queried greedily in "
        "process with the folder's tokenizer",
    )
    group.add_argument("--tls-ca-file", type=Path, metavar="PEM", help="CA certificates to trust")
    group.add_argument(
        "--tls-cert-file", type=Path, metavar="PEM", help="client certificate (mutual TLS)"
    )
    group.add_argument(
        "--tls-key-file", type=Path, metavar="PEM", help="its unencrypted key (mode 600)"
    )
    group.add_argument(
        "--header-from-env",
        action="append",
        metavar="NAME=VARIABLE",
        help="send header NAME with the value of environment variable VARIABLE, e.g. "
        "Authorization=SECMARK_SUSPECT_TOKEN holding 'Bearer ...' (repeatable)",
    )
    group.add_argument(
        "--headers-file",
        type=Path,
        metavar="FILE",
        help="send the headers of this JSON object {name: value} (readable by its owner only)",
    )
    group.add_argument(
        "--header",
        action="append",
        metavar="NAME:VALUE",
        help="deprecated: a header given here is visible to every user of this machine "
        "(ps, /proc); use --header-from-env or --headers-file for credentials",
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
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar (one is shown on standard error while the suspect is queried, "
        "when standard error is a terminal)",
    )


def _shape(text: str) -> list[int]:
    try:
        shape = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of integers like 1,8,8") from None
    return shape


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


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _given_remote_flags(args: argparse.Namespace) -> list[str]:
    return [dest for dest in _REMOTE_FLAGS if getattr(args, dest, None) is not None]


def _config_from_flags(args: argparse.Namespace) -> SuspectConfig:
    """The config the remote-suspect flags describe, checked as a file's would be."""
    members: dict[str, Any] = {}
    for dest, member in _REMOTE_FLAGS.items():
        value = getattr(args, dest, None)
        if value is None or member is None or member == "tls":
            continue
        if dest == "no_batch_dimension":
            value = not value
        elif dest == "openai":
            value = f"openai-{value}"
        elif dest == "header_from_env":
            value = _pairs(value, "=", dest)
        elif isinstance(value, Path):
            value = str(value)
        members[member] = value
    tls = {
        key: str(getattr(args, f"tls_{key}"))
        for key in ("ca_file", "cert_file", "key_file")
        if getattr(args, f"tls_{key}", None) is not None
    }
    if tls:
        members["tls"] = tls
    names = {member: dest for dest, member in _REMOTE_FLAGS.items() if member}
    tls_flags = ", ".join(_flag(f"tls_{key}") for key in ("ca_file", "cert_file", "key_file"))
    return SuspectConfig.from_mapping(
        members,
        base=Path.cwd(),
        name=lambda member: tls_flags if member == "tls" else _flag(names.get(member, member)),
    )


def _pairs(entries: list[str], separator: str, dest: str) -> dict[str, str]:
    """``NAME<separator>VALUE`` entries as a dict; errors quote the name only."""
    pairs: dict[str, str] = {}
    for entry in entries:
        name, found, value = entry.partition(separator)
        if not found or not name.strip():
            raise EncodingError(f"{_flag(dest)} takes NAME{separator}VALUE")
        if name.strip() in pairs:
            raise EncodingError(f"{_flag(dest)} gives header {name.strip()!r} twice")
        pairs[name.strip()] = value.strip()
    return pairs


def build_suspect(
    args: argparse.Namespace,
    family: TriggerFamily | None,
    labels: LabelSpace | None = None,
    responses: ResponseList | None = None,
) -> Suspect:
    """The adapter the options describe, for a commitment to ``family`` with
    label space ``labels`` (None: a model that is only queried, as for an
    extraction claim). A language model is asked for ``labels``' target
    tokens, or for responses labels the committed ``responses``' max_tokens
    (:func:`~secmark.models.prompts.answer_length`). Nothing is sent to a
    remote suspect yet.

    Raises:
        SecmarkError: not exactly one kind of suspect given, a part missing,
            a kind that does not fit the family, or a flag beside
            ``--suspect-config``.
        EncodingError, KeyMaterialError, SuspectError: as
            :class:`~secmark.models.SuspectConfig` (an invalid config or
            setting, a missing credential).
    """
    flags = _given_remote_flags(args)
    configured = getattr(args, "suspect_config", None) is not None
    remote = configured or bool(flags)
    local = args.torch_factory is not None or args.weights is not None
    white_box = args.weights_file is not None
    language_model = args.lm_folder is not None
    if remote + local + white_box + language_model != 1:
        raise SecmarkError(
            "name the suspect with --suspect-config (or --url and --model), with "
            "--torch-factory and --weights, with --lm-folder, or (white-box) with --weights-file"
        )
    length = answer_length(labels)
    if isinstance(labels, ResponseLabels) and responses is None:
        raise SecmarkError(
            "the commitment's labels are committed responses: give the response list "
            "(--responses) to read the answers by"
        )
    if language_model:
        if length is None:
            raise SecmarkError("--lm-folder answers a commitment with token or response labels")
        return _language_model(args.lm_folder, length, responses)
    if isinstance(family, WeightsFamily) != white_box:
        raise SecmarkError(
            "a weights commitment is checked with --weights-file, any other by querying a model"
        )
    if white_box and isinstance(family, WeightsFamily):
        return WeightsSuspect.from_family(args.weights_file, family)
    if local:
        if args.torch_factory is None or args.weights is None:
            raise SecmarkError("a local suspect needs both --torch-factory and --weights")
        return torch_model_loader(args.torch_factory)(args.weights)
    if configured and flags:
        raise SecmarkError(
            f"--suspect-config describes the suspect whole; give "
            f"{', '.join(_flag(dest) for dest in flags)} in the file instead, so that the file "
            "kept with the case is what was queried"
        )
    if configured:
        config = SuspectConfig.from_file(args.suspect_config)
    else:
        if args.url is None or args.model is None:
            raise SecmarkError("a remote suspect needs both --url and --model")
        config = _config_from_flags(args)
    credentials = None
    if args.header:
        # Never the value: it is what the warning is about.
        print(
            "secmark: warning: --header puts its value on the command line, where every user "
            "of this machine can read it (ps, /proc); use --header-from-env or --headers-file",
            file=sys.stderr,
        )
        credentials = _pairs(args.header, ":", "header")
    return config.build(credentials=credentials, answer_length=length, responses=responses)


def _language_model(folder: Path, length: int, responses: ResponseList | None) -> Suspect:
    """The in-process language model of ``folder``, with its own tokenizer."""
    from secmark.models.tokenizer import LMTokenizer
    from secmark.models.transformers_lm import TransformersSuspect

    return TransformersSuspect(
        folder, tokenizer=LMTokenizer.from_file(folder), length=length, responses=responses
    )


def requests_sent(suspect: Suspect) -> int | None:
    """Requests sent to a remote suspect so far; None for a local one."""
    count = getattr(suspect, "requests_sent", None)
    return count if isinstance(count, int) else None


class _Progress:
    """``suspect``, advancing a progress bar by the inputs answered or
    finally refused (a batch refused as a whole is asked again input by
    input, so it is counted then)."""

    __slots__ = ("_bar", "_suspect")

    def __init__(self, suspect: Suspect, bar: tqdm[Any]) -> None:
        self._suspect = suspect
        self._bar = bar

    @property
    def requests_sent(self) -> int | None:
        return requests_sent(self._suspect)

    def describe(self) -> str:
        return self._suspect.describe()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        try:
            answers = self._suspect.predict(batch)
        except SuspectError:
            if len(batch) == 1:
                self._advance(1)
            raise
        self._advance(len(batch))
        return answers

    def _advance(self, inputs: int) -> None:
        count = requests_sent(self._suspect)
        if count is not None:
            self._bar.set_postfix(requests=count, refresh=False)
        self._bar.update(inputs)


@contextmanager
def open_suspect(
    args: argparse.Namespace,
    family: TriggerFamily | None,
    labels: LabelSpace | None = None,
    *,
    responses: ResponseList | None = None,
    total: int | None = None,
) -> Iterator[Suspect]:
    """The suspect the options describe (:func:`build_suspect`, with
    ``responses``), with a
    progress bar over ``total`` inputs on standard error when it is a
    terminal and neither ``--quiet`` was given; closed on exit. A
    SuspectError raised inside says how many requests were sent.
    """
    suspect = build_suspect(args, family, labels, responses)
    stream = sys.stderr
    bar: tqdm[Any] = tqdm(
        total=total,
        desc="querying the suspect",
        unit=" inputs",
        file=stream,
        disable=not (show_progress(args) and stream.isatty()),
        dynamic_ncols=True,
    )
    try:
        yield _Progress(suspect, bar)
    except SuspectError as error:
        count = requests_sent(suspect)
        if count is None:
            raise
        raise SuspectError(f"{error} ({_requests(count)} sent to the suspect)") from None
    finally:
        bar.close()
        close = getattr(suspect, "close", None)
        if callable(close):
            close()


def _requests(count: int) -> str:
    return f"{count} request" + ("" if count == 1 else "s")
