"""``secmark serve-example``: serve a watermarked PyTorch model with MLServer.

For tests, demos and the README's walkthrough: a suspect to query that is a
real Open Inference Protocol server. The command writes MLServer's settings
(:mod:`secmark.examples.serving`) into a temporary folder, starts ``mlserver
start`` on it in a process group of its own, waits until the model is ready,
prints one ``serving oip:...`` line, and stays in the foreground until it is
interrupted (Ctrl-C, SIGTERM, SIGHUP), when it stops the server and removes
the folder. ``--write-settings DIR`` only writes the settings, for running
``mlserver start DIR`` yourself.

MLServer is optional: ``pip install mlserver==1.7.1`` (Python < 3.13).
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from secmark.cli.output import add_json_flag, emit
from secmark.cli.signals import StopRequested, stop_on_signals
from secmark.errors import SecmarkError
from secmark.examples.serving import (
    DEFAULT_HTTP_PORT,
    RuntimeOptions,
    ServedModel,
    ServerAddress,
    write_mlserver_folder,
)
from secmark.models.remote import oip_model_url

__all__ = ["register"]

_DEFAULT_READY_TIMEOUT = 120.0
_STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.2
_MLSERVER = "from mlserver.cli import main; main()"
_PR_SET_PDEATHSIG = 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser(
        "serve-example",
        help="serve a PyTorch model over the Open Inference Protocol with MLServer (tests, demos)",
        description=(
            "Starts MLServer with secmark's example runtime on WEIGHTS (the file secmark embed "
            "wrote), built by --factory. Prints 'serving oip:URL' once the model answers, then "
            "runs until interrupted (Ctrl-C, SIGTERM), and stops the server. The model takes "
            "the input 'input-0' and answers 'scores' (logits) and 'label', as secmark's OIP "
            "client asks by default. Needs mlserver (pip install mlserver==1.7.1) and torch."
        ),
    )
    serve.add_argument("weights", type=Path, help="the model's weights (safetensors)")
    serve.add_argument(
        "--factory",
        required=True,
        metavar="MODULE:FUNCTION",
        help="a function returning the nn.Module (as for secmark embed)",
    )
    serve.add_argument("--name", required=True, help="the model's name in the URL")
    serve.add_argument("--model-version", help="also serve it as this version")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_HTTP_PORT, help=f"HTTP port ({DEFAULT_HTTP_PORT})"
    )
    serve.add_argument(
        "--grpc-port",
        type=int,
        help="gRPC port, which MLServer always opens (default: --port + 1)",
    )
    serve.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads in the server (default 1)"
    )
    serve.add_argument(
        "--ready-timeout",
        type=float,
        default=_DEFAULT_READY_TIMEOUT,
        metavar="SECONDS",
        help=f"give up if the model is not ready by then ({_DEFAULT_READY_TIMEOUT:g})",
    )
    serve.add_argument(
        "--write-settings",
        type=Path,
        metavar="DIR",
        help="only write MLServer's settings into DIR, for 'mlserver start DIR'",
    )
    add_json_flag(serve)
    serve.set_defaults(handler=_serve)


def _served(args: argparse.Namespace) -> tuple[ServedModel, ServerAddress]:
    grpc_port = args.grpc_port if args.grpc_port is not None else args.port + 1
    model = ServedModel(
        name=args.name,
        weights=args.weights,
        options=RuntimeOptions(factory=args.factory, threads=args.threads),
        version=args.model_version,
    )
    return model, ServerAddress(host=args.host, http_port=args.port, grpc_port=grpc_port)


def _server_environment() -> dict[str, str]:
    """This environment, with ``PYTHONPATH`` made absolute: the server runs
    in another working directory, where a relative entry (``.``, as used to
    reach the user's own factory module) would name another folder."""
    environment = dict(os.environ)
    entries = environment.get("PYTHONPATH")
    if entries is not None:
        environment["PYTHONPATH"] = os.pathsep.join(
            os.path.abspath(entry or os.curdir) for entry in entries.split(os.pathsep)
        )
    return environment


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, have the kernel send SIGTERM to
    the server if this command dies without stopping it (SIGKILL, a crash),
    so that no orphaned server keeps the ports."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, then SIGKILL if it lingers."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=_STOP_TIMEOUT)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait()


def _wait_ready(process: subprocess.Popen[bytes], ready_url: str, timeout: float) -> None:
    """Return once ``ready_url`` answers 200.

    Raises:
        SecmarkError: the server exited first, or ``timeout`` seconds passed.
    """
    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False, timeout=1.0) as client:
        while time.monotonic() < deadline:
            status = process.poll()
            if status is not None:
                raise SecmarkError(
                    f"MLServer exited with status {status} before the model was ready "
                    "(its log is above: a port in use, or a factory it cannot import?)"
                )
            try:
                if client.get(ready_url).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(_POLL_INTERVAL)
    raise SecmarkError(
        f"the model was not ready within {timeout:g} s; its log is above "
        "(give a longer --ready-timeout on a slow machine)"
    )


def _serve(args: argparse.Namespace) -> int:
    model, address = _served(args)
    if args.write_settings is not None:
        path = write_mlserver_folder(args.write_settings, model, address)
        emit(
            args,
            [f"settings: {path}", f"start it: mlserver start {args.write_settings}"],
            {"model_settings": str(path), "folder": str(args.write_settings)},
        )
        return 0
    if args.ready_timeout <= 0:
        raise SecmarkError("--ready-timeout must be positive")
    for module, package in (("mlserver", "mlserver==1.7.1"), ("torch", "torch==2.13.0")):
        if importlib.util.find_spec(module) is None:
            raise SecmarkError(f"serve-example needs {module}: pip install {package}")
    model_url = oip_model_url(address.base_url, model.name, model.version)
    with tempfile.TemporaryDirectory(prefix="secmark-serve-") as folder:
        write_mlserver_folder(Path(folder), model, address)
        with stop_on_signals():
            process = subprocess.Popen(
                [sys.executable, "-c", _MLSERVER, "start", folder],
                cwd=folder,  # MLServer writes .envs/ and .metrics/ into its working directory
                env=_server_environment(),
                stdin=subprocess.DEVNULL,
                stdout=sys.stderr,  # its log; this command's own stdout stays readable
                stderr=sys.stderr,
                start_new_session=True,  # a group of its own, stopped as a whole
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (no threads run yet)
            )
            try:
                _wait_ready(process, f"{model_url}/ready", args.ready_timeout)
                emit(
                    args,
                    [f"serving oip:{model_url} (MLServer pid {process.pid}); Ctrl-C stops it"],
                    {"reference": f"oip:{model_url}", "url": address.base_url, "pid": process.pid},
                )
                sys.stdout.flush()
                status = process.wait()
            except (StopRequested, KeyboardInterrupt):
                return 0
            finally:
                _stop_group(process)
    raise SecmarkError(f"MLServer stopped by itself with status {status}; its log is above")
