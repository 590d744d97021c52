"""A platform scan through the command line: the owner's ``deposit`` and
``reveal``, the platform's ``platform init|deposit|reveal|deposits``, ``scan
run`` over a marked and a clean digits CNN, the finding ``scan
verify-finding`` accepts, and ``scan report``; and the inputs each refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secmark.cli.main import main
from secmark.errors import EncodingError, ProtocolError, SignatureError
from secmark.timestamp import TimestampAuthority, TimestampServer

FAMILY = '{"name":"noise","shape":[1,8,8],"dtype":"float32","low":0,"high":1}'
SIZE = 64
"""The commitment's triggers, all trained into the marked model."""
DEPOSIT = 48
"""The triggers a deposit reveals to the platform."""
FACTORY = "secmark.examples.digits:DigitsCNN"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    """``secmark argv --json``, which must succeed; its JSON output."""
    status = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)  # type: ignore[no-any-return]


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``secmark argv``, which must fail in one line: its status and error output."""
    status = main(list(argv))
    captured = capsys.readouterr()
    assert status != 0
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    return status, captured.err


def commit(capsys: pytest.CaptureFixture[str], folder: Path) -> dict[str, str]:
    """An owner's key and a commitment of SIZE digits triggers, dated by a
    fresh TSA through ``secmark timestamp``; the files, and the TSA's root."""
    run(capsys, "keygen", "Owner", "--out-dir", str(folder), "--unencrypted")
    authority = TimestampAuthority.initialize(
        folder / "tsa", passphrase=None, allow_unencrypted=True
    )
    files = {
        "key": str(folder / "Owner.key"),
        "commitment": str(folder / "commitment.json"),
        "evidence": str(folder / "commitment.evidence.json"),
        "root": str(folder / "tsa/root.pem"),
    }
    run(
        capsys,
        "commit",
        "--key",
        files["key"],
        "--family",
        FAMILY,
        "--classes",
        "10",
        "--size",
        str(SIZE),
        "--out",
        files["commitment"],
    )
    with TimestampServer(authority.respond, port=0) as server:
        run(
            capsys,
            "timestamp",
            files["commitment"],
            "--tsa",
            server.url,
            "--out",
            files["evidence"],
        )
    return files


def train_models(owned: dict[str, str], folder: Path) -> Path:
    """A digits CNN with every committed trigger trained in, a clean one
    (untrained), and the models file that lists both."""
    from secmark.cli.passphrase import open_key_file
    from secmark.embed import save_state
    from secmark.examples import digits
    from secmark.messages.commitment import open_commitment
    from secmark.triggers import iter_triggers

    keys = open_key_file(owned["key"], None)
    signed = open_commitment(Path(owned["commitment"]).read_bytes())
    batches = list(iter_triggers(keys, signed, range(SIZE)))
    inputs = np.concatenate([batch.inputs for batch in batches])
    labels = np.concatenate([batch.labels for batch in batches])
    marked = digits.new_model(seed=3)
    digits.embed_watermark(
        marked,
        digits.load_data(),
        digits.trigger_set(inputs, labels),
        seed=3,
        epochs=6,
        per_batch=64,
    )
    save_state(marked, folder / "marked.safetensors")
    save_state(digits.new_model(seed=4), folder / "clean.safetensors")
    models = folder / "models.json"
    models.write_text(
        json.dumps(
            {
                "models": [
                    {"id": "stolen", "weights": "marked.safetensors", "factory": FACTORY},
                    {
                        "id": "innocent",
                        "weights": "clean.safetensors",
                        "factory": FACTORY,
                        "output": "argmax",
                    },
                ]
            }
        )
    )
    return models


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for training and the in-process scan: this module
    imports torch only inside its tests, after the session's own fixture
    looked for it (two threads on two busy cores are several times slower)."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from secmark.cli.evaluate import torch_threads

    with torch_threads(1):
        yield


@pytest.mark.usefixtures("one_torch_thread")
def test_a_deposit_is_scanned_into_a_finding_and_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("sqlalchemy")
    owned = commit(capsys, tmp_path)
    platform = str(tmp_path / "platform")
    identity = str(tmp_path / "platform/platform.identity.json")
    created = run(
        capsys,
        "platform",
        "init",
        platform,
        "--name",
        "Model Hub",
        "--trust",
        owned["root"],
        "--deposit-size",
        str(DEPOSIT),
        "--unencrypted",
    )
    # An existing platform is never replaced.
    status, error = refused(
        capsys,
        "platform",
        "init",
        platform,
        "--name",
        "Again",
        "--trust",
        owned["root"],
        "--unencrypted",
    )
    assert "holds a platform already" in error

    deposit, challenge, reveal = (str(tmp_path / n) for n in ("deposit", "challenge", "reveal"))
    filed = run(
        capsys,
        "deposit",
        "--key",
        owned["key"],
        "--commitment",
        owned["commitment"],
        "--evidence",
        owned["evidence"],
        "--platform",
        identity,
        "--out",
        deposit,
    )
    assert filed["suspect"] == f"platform:{created['platform']}"
    case = run(capsys, "platform", "deposit", platform, deposit, "--out", challenge)["case"]
    # Filed again before its reveal: the same case and challenge.
    again = run(capsys, "platform", "deposit", platform, deposit, "--out", challenge + ".2")
    assert again["case"] == case
    assert Path(challenge + ".2").read_bytes() == Path(challenge).read_bytes()
    # The owner answers the platform's challenge with the ordinary reveal, sealed to it.
    run(
        capsys,
        "reveal",
        challenge,
        "--key",
        owned["key"],
        "--commitment",
        owned["commitment"],
        "--arbiter",
        identity,
        "--out",
        reveal,
    )
    received = run(capsys, "platform", "reveal", platform, "--case", case[:8], reveal)
    assert received == {"case": case, "triggers": DEPOSIT}
    (listed,) = run(capsys, "platform", "deposits", platform)["deposits"]
    assert listed["case"] == case and len(listed["exposed_indices"]) == DEPOSIT

    models = train_models(owned, tmp_path)
    results = f"sqlite:///{tmp_path / 'scan.db'}"
    findings = tmp_path / "findings"
    scan = ["scan", "run", platform, "--models", str(models), "--results", results]
    summary = run(capsys, *scan, "--scan-id", "nightly", "--findings", str(findings))
    assert (summary["models"], summary["deposits"], summary["scanned"]) == (2, 1, 2)
    assert summary["per_pair_alpha"] == f"1/{2**65}" and summary["errors"] == []
    (hit,) = summary["hits"]
    assert (hit["model"], hit["deposit"]) == ("stolen", case)
    assert hit["finding"] == str(findings / f"stolen--{case[:16]}.finding.json")

    # Resumed: nothing is scanned twice, the finding is kept as it was.
    before = Path(hit["finding"]).read_bytes()
    again = run(capsys, *scan, "--scan-id", "nightly", "--findings", str(findings))
    assert (again["scanned"], again["skipped"], again["findings_kept"]) == (0, 2, 1)
    assert Path(hit["finding"]).read_bytes() == before

    checked = run(capsys, "scan", "verify-finding", hit["finding"], "--platform", identity)
    assert checked["model"].startswith("sha256:") and checked["deposit_id"] == case
    assert (checked["matches"], checked["trials"]) == (hit["matches"], DEPOSIT)
    status, error = refused(
        capsys,
        "scan",
        "verify-finding",
        hit["finding"],
        "--platform",
        str(tmp_path / "Owner.identity.json"),
    )
    assert status == SignatureError.exit_code

    page = tmp_path / "report.html"
    main(
        [
            "scan",
            "report",
            "--results",
            results,
            "--scan-id",
            "nightly",
            "--out",
            str(page),
            "--platform",
            platform,
        ]
    )
    assert "1 hit(s) among 2 recorded pair(s)" in capsys.readouterr().out
    text = page.read_text()
    assert text.count('class="cell ') == 2 and "Model Hub" in text and case in text
    assert refused(
        capsys,
        "scan",
        "report",
        "--results",
        results,
        "--scan-id",
        "nightly",
        "--out",
        str(page),
    )[1].endswith("give --force to replace it\n")


def test_a_deposit_addressed_to_an_arbiter_is_refused_by_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    owned = commit(capsys, tmp_path)
    run(capsys, "keygen", "Arbiter", "--out-dir", str(tmp_path), "--unencrypted")
    arbiter = str(tmp_path / "arbiter")
    run(
        capsys,
        "arbiter",
        "init",
        arbiter,
        "--key",
        str(tmp_path / "Arbiter.key"),
        "--identity",
        str(tmp_path / "Arbiter.identity.json"),
        "--trust",
        owned["root"],
    )
    deposit = str(tmp_path / "deposit.json")
    run(
        capsys,
        "deposit",
        "--key",
        owned["key"],
        "--commitment",
        owned["commitment"],
        "--evidence",
        owned["evidence"],
        "--platform",
        str(tmp_path / "Arbiter.identity.json"),
        "--out",
        deposit,
    )
    status, error = refused(capsys, "arbiter", "file-claim", arbiter, deposit)
    assert status == ProtocolError.exit_code and "secmark deposit" in error


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (
            {"models": [{"id": "m", "weights": "w.bin", "weight": "w.bin"}]},
            "unknown member 'weight'",
        ),
        (
            {"models": [{"id": "m", "weights": "w.bin"}, {"id": "m", "weights": "w.bin"}]},
            "model id 'm' appears twice",
        ),
        ({"models": [{"id": "../m", "weights": "w.bin"}]}, "'id' must be 1 to 128 letters"),
        ({"models": [{"id": "m", "weights": "missing.bin"}]}, "which is no regular file"),
        ({"models": [{"id": "m", "factory": FACTORY}]}, "a 'factory' builds the module"),
        ({"models": [{"id": "m", "weights": "w.bin", "output": "labels"}]}, "'output' goes"),
        ({"models": [], "extra": 1}, "one member, 'models'"),
    ],
)
def test_a_models_file_is_read_strictly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], models: object, message: str
) -> None:
    (tmp_path / "w.bin").write_bytes(b"weights")
    path = tmp_path / "models.json"
    path.write_text(json.dumps(models))
    status, error = refused(
        capsys,
        "scan",
        "run",
        str(tmp_path / "no-platform"),
        "--models",
        str(path),
        "--results",
        f"sqlite:///{tmp_path / 'scan.db'}",
        "--scan-id",
        "s",
    )
    assert status == EncodingError.exit_code and message in error
    assert not (tmp_path / "scan.db").exists()


def test_a_models_file_with_a_duplicate_key_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "models.json"
    path.write_text('{"models": [{"id": "a", "id": "b", "weights": "w"}]}')
    status, error = refused(
        capsys,
        "scan",
        "run",
        str(tmp_path),
        "--models",
        str(path),
        "--results",
        "sqlite:///unused.db",
        "--scan-id",
        "s",
    )
    assert status == EncodingError.exit_code and "duplicate" in error


def test_the_command_line_defaults_are_the_library_s() -> None:
    pytest.importorskip("sqlalchemy")
    from secmark.cli import platform, scan
    from secmark.scan import ENGINES
    from secmark.scan.platform import DEFAULT_DEPOSIT_SIZE

    assert platform.DEFAULT_DEPOSIT_SIZE == DEFAULT_DEPOSIT_SIZE
    assert scan._ENGINES == ENGINES


def test_ray_options_need_the_ray_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, error = refused(
        capsys,
        "scan",
        "run",
        str(tmp_path),
        "--models",
        "m.json",
        "--results",
        "sqlite:///unused.db",
        "--scan-id",
        "s",
        "--workers",
        "2",
    )
    assert status == 2 and "--engine ray" in error


def test_a_remote_model_is_described_by_its_suspect_config(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    from secmark.cli.scan import close_suspects, read_models

    (tmp_path / "api.json").write_text(
        json.dumps({"url": "http://127.0.0.1:9/", "model": "digits"})
    )
    (tmp_path / "w.safetensors").write_bytes(b"weights")
    path = tmp_path / "models.json"
    path.write_text(
        json.dumps(
            {"models": [{"id": "api", "suspect_config": "api.json", "weights": "w.safetensors"}]}
        )
    )
    (model,) = read_models(path)
    try:
        assert model.suspect is not None and model.factory is None
        assert model.suspect.describe().startswith("oip:http://127.0.0.1:9/")
        assert model.weights == tmp_path / "w.safetensors"
    finally:
        close_suspects([model])
