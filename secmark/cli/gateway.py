"""``secmark gateway``: serve a model's Open Inference Protocol API with marked answers.

Runs the marking gateway (:mod:`secmark.serving.gateway`) with uvicorn in
front of an OIP v2 server: it answers ``POST /v2/models/MODEL/infer`` with
the answers the serving policy marks, logs the queries the policy logs to
the query log (:class:`~secmark.serving.log.QueryLog`), and with
``--checkpoint-seconds`` signs a log checkpoint that often with the
operator's keys. It runs until interrupted (Ctrl-C, SIGTERM).

Needs the ``serving`` extra (starlette, uvicorn, sqlalchemy).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from secmark.cli.passphrase import open_key_file
from secmark.errors import EncodingError, SecmarkError
from secmark.files import read_regular_file
from secmark.messages.serving_policy import MAX_POLICY_SIZE, open_serving_policy
from secmark.models.http import hide_userinfo

__all__ = ["default_log_url", "register"]

_DEFAULT_LISTEN = "127.0.0.1:8080"
_LOG_FILE = "query-log.sqlite"


DEFAULT_MAX_CONNECTIONS = 256
"""Connections the gateway serves at once: bounds the memory its request
bodies and worker threads may take."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gateway = subparsers.add_parser(
        "gateway",
        help="serve a model's OIP API with marked answers, logging the marked queries",
        description=(
            "Serves POST /v2/models/MODEL/infer (and the health and model metadata routes) in "
            "front of the Open Inference Protocol server at --upstream. Clients send "
            "'Authorization: Bearer KEY'; the answers the serving policy marks are served "
            "marked, and the queries it logs are in the query log before the answer leaves. "
            "Only the output --output is served. Runs until interrupted."
        ),
    )
    gateway.add_argument("--upstream", required=True, metavar="URL", help="the OIP server")
    gateway.add_argument("--model", required=True, metavar="NAME", help="the model served")
    gateway.add_argument("--policy", required=True, type=Path, help="the signed serving policy")
    gateway.add_argument(
        "--operator-key", required=True, type=Path, help="the log operator's key file"
    )
    gateway.add_argument("--passphrase-file", help="read the key file's passphrase from here")
    gateway.add_argument(
        "--log",
        metavar="URL",
        help=(
            f"the query log's database (default: sqlite:///POLICY_DIR/{_LOG_FILE}; "
            "postgresql+psycopg://... for PostgreSQL)"
        ),
    )
    gateway.add_argument(
        "--listen",
        default=_DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address to listen on ({_DEFAULT_LISTEN})",
    )
    gateway.add_argument(
        "--output", required=True, metavar="NAME", help="the model output holding the answers"
    )
    gateway.add_argument(
        "--answer",
        required=True,
        choices=("classes", "scores"),
        help="the output holds class indices ([N] or [N,1]) or one score per class ([N,K])",
    )
    gateway.add_argument(
        "--checkpoint-seconds",
        type=float,
        metavar="N",
        help="sign a log checkpoint every N seconds, and at shutdown",
    )
    gateway.add_argument(
        "--tsa",
        action="append",
        default=[],
        metavar="URL",
        help="a TSA that timestamps every checkpoint signed (repeatable); without it, "
        "timestamp checkpoints with 'secmark log checkpoint' and 'secmark timestamp'",
    )
    gateway.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="the most one upstream exchange may take (10)",
    )
    gateway.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help="connections served at once; more are answered 503 "
        f"({DEFAULT_MAX_CONNECTIONS}; each may hold a request body of up to 16 MiB)",
    )
    gateway.set_defaults(handler=_gateway)


def default_log_url(policy: Path) -> str:
    """The query log of the serving policy in the file ``policy`` when no ``--log`` is
    given: an SQLite database in the policy file's folder."""
    return f"sqlite:///{policy.resolve().parent / _LOG_FILE}"


def _listen_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SecmarkError(f"--listen must be HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def _gateway(args: argparse.Namespace) -> int:
    for module in ("starlette", "uvicorn", "sqlalchemy"):
        if importlib.util.find_spec(module) is None:
            raise SecmarkError(f"secmark gateway needs {module}: pip install 'secmark[serving]'")
    # Imported here: the serving extra is optional for every other command.
    import uvicorn

    from secmark.serving.gateway import GatewayConfig, create_gateway
    from secmark.serving.log import QueryLog
    from secmark.serving.marking import Marker

    if args.max_connections < 1:
        raise EncodingError("--max-connections must be at least 1")
    host, port = _listen_address(args.listen)
    policy = open_serving_policy(
        read_regular_file(args.policy, max_size=MAX_POLICY_SIZE, what="serving policy")
    )
    operator = open_key_file(args.operator_key, args.passphrase_file)
    marker = Marker(policy, operator.vrf)
    config = GatewayConfig(
        upstream=args.upstream.rstrip("/"),
        model=args.model,
        output=args.output,
        answer=args.answer,
        timeout=args.timeout,
        checkpoint_seconds=args.checkpoint_seconds,
        timestamp_authorities=tuple(args.tsa),
    )
    log = QueryLog.open(
        args.log or default_log_url(args.policy), policy_id=bytes.fromhex(policy.digest)
    )
    try:
        app = create_gateway(marker, log, config, operator_keys=operator)
        upstream = hide_userinfo(config.upstream, config.upstream)
        print(
            f"secmark gateway: serving {args.model} from {upstream} with marked answers "
            f"on http://{args.listen}; Ctrl-C stops it",
            file=sys.stderr,
        )
        uvicorn.run(
            app,
            host=host,
            port=port,
            lifespan="on",
            log_level="warning",
            limit_concurrency=args.max_connections,
        )
    finally:
        log.close()
    return 0
