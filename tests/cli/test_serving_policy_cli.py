"""``secmark serving-policy`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secmark.cli.main import main
from secmark.messages.serving_policy import open_serving_policy

FAMILY = '{"name":"noise","shape":[4],"dtype":"float32","low":0,"high":1}'


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    status = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)  # type: ignore[no-any-return]


@pytest.fixture
def world(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    keys = tmp_path / "keys"
    for name in ("Owner", "Platform", "Stranger"):
        run(capsys, "keygen", name, "--out-dir", str(keys), "--unencrypted")
    model = tmp_path / "model.bin"
    model.write_bytes(b"a served model")
    files = {
        "owner": str(keys / "Owner.key"),
        "stranger": str(keys / "Stranger.key"),
        "platform": str(keys / "Platform.identity.json"),
        "commitment": str(tmp_path / "commitment.json"),
        "release": str(tmp_path / "release.json"),
        "policy": str(tmp_path / "policy.json"),
    }
    run(capsys, "commit", "--key", files["owner"], "--family", FAMILY, "--classes", "10",
        "--size", "64", "--out", files["commitment"])  # fmt: skip
    run(capsys, "release", "--commitment", files["commitment"], "--key", files["owner"],
        "--model-file", str(model), "--name", "digits", "--version", "1",
        "--out", files["release"])  # fmt: skip
    return files


def _policy_args(files: dict[str, str], *extra: str) -> list[str]:
    return [
        "serving-policy",
        "--key",
        files["owner"],
        "--release",
        files["release"],
        "--classes",
        "10",
        "--rate",
        "1/50",
        "--input-dtype",
        "float32",
        "--input-shape",
        "1,8,8",
        "--out",
        files["policy"],
        *extra,
    ]


def test_a_platform_operated_policy(
    world: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(capsys, *_policy_args(world, "--operator", world["platform"], "--log-rate", "0.01"))
    assert out["rate"] == "1/50" and out["log_rate"] == "1/100" and out["p0"] == "1/9"
    assert out["owner_is_operator"] is False
    policy = open_serving_policy(Path(world["policy"]).read_bytes()).document
    assert policy.input.shape == (1, 8, 8)
    assert policy.operator.key_id == out["operator"]


def test_an_owner_operated_policy_says_so(
    world: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(capsys, *_policy_args(world, "--operator-self"))
    assert out["owner_is_operator"] is True
    assert main([*_policy_args(world, "--operator-self")]) == 1
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        (("--rate", "0"), 3, "--rate"),
        (("--rate", "1"), 3, "--rate"),
        (("--input-shape", "8,-1"), 3, "--input-shape"),
        (("--input-shape", "8,,8"), 3, "--input-shape"),
        (("--classes", "2", "--answer-rule", "other-label"), 3, "at least 3 classes"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    world: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    change: tuple[str, ...],
    status: int,
    message: str,
) -> None:
    argv = _policy_args(world, "--operator-self")
    for flag, value in zip(change[::2], change[1::2], strict=True):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    assert main(argv) == status
    assert message in capsys.readouterr().err
    assert not Path(world["policy"]).exists()


def test_the_release_must_be_the_owners(
    world: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _policy_args(world, "--operator-self")
    argv[argv.index("--key") + 1] = world["stranger"]
    assert main(argv) == 4
    assert not Path(world["policy"]).exists()
