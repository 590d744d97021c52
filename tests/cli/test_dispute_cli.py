"""The dispute through the command line, as the README walks it."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from secmark.cli.main import main
from secmark.timestamp import TimestampAuthority, TimestampServer

torch = pytest.importorskip("torch")

FAMILY = '{"name":"noise","shape":[1,8,8],"dtype":"float32","low":0,"high":1}'


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    status = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)  # type: ignore[no-any-return]


def test_whole_dispute_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from secmark.embed import save_state
    from secmark.examples.digits import new_model

    owner_key, arbiter_key = tmp_path / "keys/Owner.key", tmp_path / "keys/Arbiter.key"
    run(capsys, "keygen", "Owner", "--out-dir", str(tmp_path / "keys"), "--unencrypted")
    run(capsys, "keygen", "Arbiter", "--out-dir", str(tmp_path / "keys"), "--unencrypted")
    # genTime has whole seconds: each token gets its own minute, so the
    # release is dated strictly after the commitment.
    ticks = iter(range(1000))
    start = datetime.now(timezone.utc) - timedelta(days=1)
    authority = TimestampAuthority.initialize(
        tmp_path / "tsa",
        passphrase=None,
        allow_unencrypted=True,
        clock=lambda: start + timedelta(minutes=next(ticks)),
    )
    files = {
        name: str(tmp_path / name)
        for name in (
            "commitment.json",
            "commitment.evidence.json",
            "release.json",
            "release.evidence.json",
            "claim.json",
            "challenge.json",
            "reveal.json",
            "model.safetensors",
        )
    }
    save_state(new_model(seed=3), files["model.safetensors"])
    with TimestampServer(authority.respond, port=0) as server:
        run(
            capsys,
            "commit",
            "--key",
            str(owner_key),
            "--family",
            FAMILY,
            "--classes",
            "10",
            "--size",
            "64",
            "--out",
            files["commitment.json"],
        )
        run(
            capsys,
            "timestamp",
            files["commitment.json"],
            "--tsa",
            server.url,
            "--out",
            files["commitment.evidence.json"],
        )
        run(
            capsys,
            "release",
            "--key",
            str(owner_key),
            "--commitment",
            files["commitment.json"],
            "--model-file",
            files["model.safetensors"],
            "--name",
            "m",
            "--version",
            "1",
            "--out",
            files["release.json"],
        )
        run(
            capsys,
            "timestamp",
            files["release.json"],
            "--tsa",
            server.url,
            "--out",
            files["release.evidence.json"],
        )
    arbiter_identity = str(tmp_path / "keys/Arbiter.identity.json")
    run(
        capsys,
        "claim",
        "--key",
        str(owner_key),
        "--commitment",
        files["commitment.json"],
        "--evidence",
        files["commitment.evidence.json"],
        "--release",
        files["release.json"],
        "--release-evidence",
        files["release.evidence.json"],
        "--suspect",
        "sha256:" + hashlib.sha256(Path(files["model.safetensors"]).read_bytes()).hexdigest(),
        "--arbiter",
        arbiter_identity,
        "--out",
        files["claim.json"],
    )
    arbiter = str(tmp_path / "arbiter")
    run(
        capsys,
        "arbiter",
        "init",
        arbiter,
        "--key",
        str(arbiter_key),
        "--identity",
        arbiter_identity,
        "--trust",
        str(tmp_path / "tsa/root.pem"),
        "--challenge-size",
        "32",
    )
    case = str(run(capsys, "arbiter", "file-claim", arbiter, files["claim.json"])["case"])
    run(capsys, "arbiter", "challenge", arbiter, "--case", case, "--out", files["challenge.json"])
    run(
        capsys,
        "reveal",
        files["challenge.json"],
        "--key",
        str(owner_key),
        "--commitment",
        files["commitment.json"],
        "--arbiter",
        arbiter_identity,
        "--out",
        files["reveal.json"],
    )
    run(capsys, "arbiter", "receive-reveal", arbiter, "--case", case, files["reveal.json"])

    # A challenge is answered once.
    assert main(["arbiter", "receive-reveal", arbiter, "--case", case, files["reveal.json"]]) == 8
    assert "needs stage 'challenged'" in capsys.readouterr().err

    queried = run(
        capsys,
        "arbiter",
        "query",
        arbiter,
        "--case",
        case,
        "--torch-factory",
        "secmark.examples.digits:DigitsCNN",
        "--weights",
        files["model.safetensors"],
    )
    assert queried["trials"] == 32 and queried["holds"] is False  # an unmarked model
    decided = run(capsys, "arbiter", "decide", arbiter, "--case", case)
    assert decided["outcome"] == "rejected"
    report = run(
        capsys, "verify-bundle", str(decided["bundle"]), "--trust", str(tmp_path / "tsa/root.pem")
    )
    assert report["verified"] is True and report["outcome"] == "rejected"
