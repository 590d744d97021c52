"""An extraction dispute through the command line: the log operator's ``secmark log``
steps, the owner's ``extraction-claim``, ``arbiter extraction`` against a real
JSON API serving a copy that memorised a thief's answers, and ``verify-bundle``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from secmark.cli.gateway import default_log_url
from secmark.cli.main import main
from secmark.cli.passphrase import open_key_file
from secmark.cli.verification import EXIT_SELF_ASSERTED
from secmark.encoding import canonical_json
from secmark.messages.extraction import open_extraction_claim
from secmark.messages.serving_policy import InputEncoding, open_serving_policy
from secmark.serving.entry import LogEntry, client_account
from secmark.serving.extract import ClientExtract
from secmark.serving.log import QueryLog
from secmark.serving.marking import Marker, canonical_input
from secmark.serving.wrapper import MarkedClassifier
from secmark.timestamp import TimestampAuthority, TimestampServer
from tests.models import json_server
from tests.models.json_server import Answer, JsonApi

json_api = json_server.json_api

ENCODING = InputEncoding("float32", (8,))
WEIGHTS = np.random.default_rng(0).normal(size=(8, 10))
FAMILY = '{"name":"noise","shape":[8],"dtype":"float32","low":0,"high":1}'
THIEF_KEY = "thief-api-key-7f3a"


def served_model(batch: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """The owner's model: a fixed linear classifier of 8 features, 10 classes."""
    return np.argmax(np.asarray(batch, dtype=np.float64) @ WEIGHTS, axis=1).astype(np.int64)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    """``secmark argv --json``, which must succeed; its JSON output."""
    status = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)  # type: ignore[no-any-return]


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``secmark argv``, which must fail: its status and error output."""
    status = main(list(argv))
    captured = capsys.readouterr()
    assert status != 0
    assert "Traceback" not in captured.err
    return status, captured.err


@dataclass(frozen=True)
class Served:
    """A policy whose API answered a thief and another client, the log's
    checkpoint and extract of the thief's account, and a JSON API serving a
    copy trained on the thief's answers."""

    folder: Path
    files: dict[str, str]
    thief: str
    other: str
    suspect_url: str

    def claim_argv(self, **changes: str) -> list[str]:
        options = {
            "--key": self.files["owner.key"],
            "--policy": self.files["policy.json"],
            "--policy-evidence": self.files["policy.evidence.json"],
            "--extract": self.files["extract.json"],
            "--checkpoint-evidence": self.files["checkpoint.evidence.json"],
            "--client": self.thief,
            "--suspect": f"json:{self.suspect_url}",
            "--arbiter": self.files["arbiter.identity.json"],
            "--out": self.files["claim.json"],
            **changes,
        }
        return ["extraction-claim", *(part for pair in options.items() for part in pair)]


@pytest.fixture
def served(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], json_api: JsonApi
) -> Iterator[Served]:
    keys = tmp_path / "keys"
    for name in ("Owner", "Platform", "Arbiter"):
        run(capsys, "keygen", name, "--out-dir", str(keys), "--unencrypted")
    files = {
        "owner.key": str(keys / "Owner.key"),
        "platform.key": str(keys / "Platform.key"),
        "platform.identity.json": str(keys / "Platform.identity.json"),
        "arbiter.key": str(keys / "Arbiter.key"),
        "arbiter.identity.json": str(keys / "Arbiter.identity.json"),
        **{
            name: str(tmp_path / name)
            for name in (
                "commitment.json",
                "release.json",
                "policy.json",
                "policy.evidence.json",
                "checkpoint.json",
                "checkpoint.evidence.json",
                "extract.json",
                "claim.json",
                "bundle.json",
                "suspect.json",
            )
        },
    }
    model = tmp_path / "model.bin"
    model.write_bytes(b"the served model")
    run(capsys, "commit", "--key", files["owner.key"], "--family", FAMILY, "--classes", "10",
        "--size", "64", "--out", files["commitment.json"])  # fmt: skip
    run(capsys, "release", "--commitment", files["commitment.json"], "--key", files["owner.key"],
        "--model-file", str(model), "--name", "linear", "--version", "1",
        "--out", files["release.json"])  # fmt: skip
    run(capsys, "serving-policy", "--key", files["owner.key"], "--release", files["release.json"],
        "--operator", files["platform.identity.json"], "--classes", "10", "--rate", "1/5",
        "--log-rate", "1/10", "--input-dtype", "float32", "--input-shape", "8",
        "--out", files["policy.json"])  # fmt: skip
    # The TSA keeps real time: the log's entries must fall between the two trusted times.
    authority = TimestampAuthority.initialize(
        tmp_path / "tsa", passphrase=None, allow_unencrypted=True
    )
    files["tsa.pem"] = str(tmp_path / "tsa" / "root.pem")
    with TimestampServer(authority.respond, port=0) as tsa:
        run(capsys, "timestamp", files["policy.json"], "--tsa", tsa.url,
            "--out", files["policy.evidence.json"])  # fmt: skip
        answers = _traffic(files)
        run(capsys, "log", "checkpoint", "--policy", files["policy.json"], "--operator-key",
            files["platform.key"], "--out", files["checkpoint.json"])  # fmt: skip
        run(capsys, "timestamp", files["checkpoint.json"], "--tsa", tsa.url,
            "--out", files["checkpoint.evidence.json"])  # fmt: skip
    api_key = tmp_path / "thief.api-key"
    api_key.write_text(THIEF_KEY + "\n")
    account = run(capsys, "log", "account", "--policy", files["policy.json"],
                  "--api-key-file", str(api_key))  # fmt: skip
    assert THIEF_KEY not in json.dumps(account)
    url = json_api.route(f"/{tmp_path.name}/predict", _copy(answers))
    policy_id = bytes.fromhex(account["policy_id"])
    yield Served(tmp_path, files, account["client"], client_account(policy_id, "another key"), url)
    json_api.routes.pop(f"/{tmp_path.name}/predict")


def _traffic(files: dict[str, str]) -> dict[bytes, int]:
    """Marked traffic into the gateway's default log: the thief asks 300
    inputs, another client 60. Returns what the thief was served, by canonical input."""
    policy = open_serving_policy(Path(files["policy.json"]).read_bytes())
    operator = open_key_file(files["platform.key"], None)
    log = QueryLog.open(
        default_log_url(Path(files["policy.json"])), policy_id=bytes.fromhex(policy.digest)
    )
    try:
        api = MarkedClassifier(served_model, Marker(policy, operator.vrf), log)
        rng = np.random.default_rng(1)
        inputs = rng.random((300, 8)).astype(np.float32)
        served = api.predict(inputs, api_key=THIEF_KEY)
        api.predict(rng.random((60, 8)).astype(np.float32), api_key="another key")
    finally:
        log.close()
    return {
        canonical_input(row, ENCODING): int(answer)
        for row, answer in zip(inputs, served, strict=True)
    }


def _copy(answers: dict[bytes, int]) -> Any:
    """A JSON API answering as a copy that memorised the thief's answers."""

    def handler(body: Any, _headers: dict[str, str]) -> Answer:
        rows = np.asarray(body["inputs"], dtype=np.float32)
        labels = [
            answers.get(canonical_input(row, ENCODING), int(fallback))
            for row, fallback in zip(rows, served_model(rows), strict=True)
        ]
        return Answer(body={"labels": labels})

    return handler


def decide(served: Served, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The owner's claim, and the arbiter's decision on it; its JSON output."""
    files = served.files
    run(capsys, "log", "add-timestamp", "--policy", files["policy.json"], "--checkpoint",
        files["checkpoint.json"], "--evidence", files["checkpoint.evidence.json"])  # fmt: skip
    extracted = run(capsys, "log", "extract", "--policy", files["policy.json"], "--client",
                    served.thief, "--checkpoint", files["checkpoint.json"],
                    "--out", files["extract.json"])  # fmt: skip
    assert extracted["marked"] > 30 and extracted["unmarked"] > 0
    run(capsys, *served.claim_argv())
    arbiter = str(served.folder / "arbiter")
    run(capsys, "arbiter", "init", arbiter, "--key", files["arbiter.key"], "--identity",
        files["arbiter.identity.json"], "--trust", files["tsa.pem"])  # fmt: skip
    Path(files["suspect.json"]).write_text(
        json.dumps(
            {
                "protocol": "json",
                "url": served.suspect_url,
                "request": {"inputs": "{{inputs}}"},
                "answers": "/labels",
                "output": "labels",
            }
        )
    )
    return run(capsys, "arbiter", "extraction", arbiter, "--claim", files["claim.json"],
               "--extract", files["extract.json"], "--suspect-config", files["suspect.json"],
               "--out", files["bundle.json"])  # fmt: skip


def _arbiter_key_id(served: Served) -> str:
    return open_key_file(served.files["arbiter.key"], None).key_id


def test_a_copy_of_the_thiefs_answers_is_upheld_from_the_command_line(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    decided = decide(served, capsys)
    assert decided["outcome"] == "upheld" and decided["matches"] == decided["trials"]
    assert decided["requests_sent"] >= 1
    files = served.files
    report = run(capsys, "verify-bundle", files["bundle.json"], "--trust", files["tsa.pem"],
                 "--arbiter", _arbiter_key_id(served))  # fmt: skip
    assert report["outcome"] == "upheld" and report["exit_code"] == 0
    assert report["time_trust"] == "judge-roots" and report["arbiter_pinned"] is True
    checks = {check["name"]: check for check in report["checks"]}
    assert "2 client account(s)" in checks["log-checkpoint"]["evidence"]
    # The text report, and one claim per policy, account and suspect.
    assert main(["verify-bundle", files["bundle.json"], "--trust", files["tsa.pem"]]) == 0
    assert "outcome: upheld" in capsys.readouterr().out
    argv = ["arbiter", "extraction", str(served.folder / "arbiter"), "--claim",
            files["claim.json"], "--extract", files["extract.json"], "--suspect-config",
            files["suspect.json"], "--out", str(served.folder / "again.json")]  # fmt: skip
    status, err = refused(capsys, *argv)
    assert status == 8 and "already decided" in err
    assert not (served.folder / "again.json").exists()


def test_a_bundle_is_refused_when_tampered_and_self_asserted_without_trust(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    decide(served, capsys)
    bundle = Path(served.files["bundle.json"])
    assert main(["verify-bundle", str(bundle), "--json"]) == EXIT_SELF_ASSERTED
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "upheld" and report["time_trust"] == "self-asserted"

    # The extract loses a marked entry: it is no longer the one the claim names.
    data = json.loads(bundle.read_bytes())
    extract = ClientExtract.from_bytes(data["extract"].encode())
    marked = next(e for e in extract.entries if LogEntry.from_bytes(e).marked)
    data["extract"] = (
        replace(extract, entries=tuple(e for e in extract.entries if e != marked))
        .to_bytes()
        .decode()
    )
    tampered = served.folder / "tampered.json"
    tampered.write_bytes(canonical_json(data))
    argv = ["verify-bundle", str(tampered), "--trust", served.files["tsa.pem"], "--json"]
    assert main(argv) == 5
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] is None
    assert [c["name"] for c in report["checks"] if c["result"] == "failed"] == ["extract-digest"]


def test_only_the_policys_owner_claims(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    files = served.files
    run(capsys, "log", "extract", "--policy", files["policy.json"], "--client", served.thief,
        "--checkpoint", files["checkpoint.json"], "--out", files["extract.json"])  # fmt: skip
    status, err = refused(capsys, *served.claim_argv(**{"--key": files["platform.key"]}))
    assert status == 4 and "not the serving policy's owner" in err
    assert not Path(files["claim.json"]).exists()
    # The extract must be of the client account the claim names.
    status, err = refused(capsys, *served.claim_argv(**{"--client": served.other}))
    assert status == 8 and served.other in err
    assert not Path(files["claim.json"]).exists()
    # The suspect must be named as the arbiter will compare it.
    url = served.suspect_url.replace("http://", "HTTP://")
    status, err = refused(capsys, *served.claim_argv(**{"--suspect": f"json:{url}"}))
    assert status == 3 and "not canonical" in err
    assert not Path(files["claim.json"]).exists()
    run(capsys, *served.claim_argv())
    claim = open_extraction_claim(
        Path(files["claim.json"]).read_bytes(),
        open_key_file(files["owner.key"], None).public_keys,
    ).document
    extract = Path(files["extract.json"]).read_bytes()
    assert claim.extract_sha256 == hashlib.sha256(extract).hexdigest()
    assert claim.client == served.thief


def test_only_the_policys_operator_signs_checkpoints(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    out = served.folder / "owner-checkpoint.json"
    status, err = refused(capsys, "log", "checkpoint", "--policy", served.files["policy.json"],
                          "--operator-key", served.files["owner.key"], "--out", str(out))  # fmt: skip
    assert status == 4 and "not the log operator" in err
    assert not out.exists()
    # Evidence dating another document is not stored beside the checkpoint.
    status, err = refused(capsys, "log", "add-timestamp", "--policy", served.files["policy.json"],
                          "--checkpoint", served.files["checkpoint.json"],
                          "--evidence", served.files["policy.evidence.json"])  # fmt: skip
    assert status == 8 and "not the checkpoint" in err
    # A mistyped --log is refused, never made into an empty log and signed.
    typo = served.folder / "typo.sqlite"
    status, err = refused(capsys, "log", "checkpoint", "--policy", served.files["policy.json"],
                          "--log", f"sqlite:///{typo}", "--operator-key",
                          served.files["platform.key"], "--out", str(out))  # fmt: skip
    assert status == 8 and "no query log" in err
    assert not typo.exists() and not out.exists()
