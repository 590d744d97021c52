"""``secmark arbiter query`` against a JSON API described by a suspect config:
the request count is reported, and credentials that the suspect echoes back
never reach the signed transcript."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secmark.crypto.keyfile import write_key_file
from secmark.messages.transcript import open_transcript
from tests.models import json_server
from tests.models.cli_world import run, write_config
from tests.models.json_server import Answer, JsonApi, labels_of
from tests.protocol.conftest import CHALLENGE_SIZE, POLICY, World, memorising_suspect

json_api = json_server.json_api

TOKEN = "Bearer tok-91b3e5c7d2a84f60"


def arbiter_folder(world: World) -> Path:
    """The folder of ``world``'s arbiter, set up for the command line."""
    files = world.folder / "arbiter-files"
    files.mkdir()
    write_key_file(files / "arbiter.key", world.arbiter_keys, None, unencrypted=True)
    (files / "identity.json").write_bytes(world.arbiter_identity.to_json())
    folder = world.folder / "arbiter"
    folder.mkdir(exist_ok=True)
    config = {
        "challenge_days": 7,
        "challenge_size": POLICY.challenge_size,
        "decoys_per_trigger": POLICY.decoys_per_trigger,
        "identity": str(files / "identity.json"),
        "key_file": str(files / "arbiter.key"),
        "trust": [str(world.folder / "tsa" / "root.pem")],
    }
    (folder / "arbiter.json").write_text(json.dumps(config))
    return folder


def test_arbiter_query_counts_requests_and_keeps_credentials_out_of_the_transcript(
    json_api: JsonApi,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def api(body: Any, headers: dict[str, str]) -> Answer:
        calls.append(1)
        if len(calls) <= 2:  # the first batch, then its first input alone
            return Answer(400, {"error": f"refused for {headers['authorization']}"})
        return Answer(body={"labels": labels_of(body["inputs"])})

    url = json_api.route("/arbiter/predict", api)
    world = World(tmp_path)
    mark = world.commit()
    case = world.run_case(mark, memorising_suspect(mark), query=False, suspect=f"json:{url}").case
    config = write_config(
        tmp_path / "suspect.json",
        {
            "protocol": "json",
            "url": url,
            "request": {"inputs": "{{inputs}}"},
            "answers": "/labels",
            "output": "labels",
            "headers_from_env": {"Authorization": "SECMARK_TEST_ARBITER_TOKEN"},
        },
    )
    monkeypatch.setenv("SECMARK_TEST_ARBITER_TOKEN", TOKEN)
    folder = arbiter_folder(world)
    argv = ["arbiter", "query", str(folder), "--case", case.name, "--suspect-config", str(config)]
    result = run(capsys, *argv, "--json")
    assert result.status == 0, result.err
    queries = 2 * CHALLENGE_SIZE  # one decoy per trigger
    # 64 refused, asked again one by one (64), then the other 32 at once.
    assert result.data["requests_sent"] == 1 + 64 + 1 == len(calls)
    assert result.data["trigger_errors"] + result.data["decoy_errors"] == 1
    transcript = (case.folder / "transcript.json").read_bytes()
    assert b"tok-91b3e5c7d2a84f60" not in transcript
    entries = open_transcript(transcript, world.arbiter_keys.public_keys).document.entries
    assert len(entries) == queries
    errors = [entry.error for entry in entries if entry.error is not None]
    assert errors == [f"json:{url}: HTTP 400: refused for [redacted]"]
    assert "tok-91b3e5c7d2a84f60" not in result.out + result.err


@pytest.mark.parametrize("flag", ["--decoy-labels", "--decoy-pool"])
@pytest.mark.parametrize("content", [b"", b"not numpy", "object array", "archive", "fifo", None])
def test_arbiter_query_refuses_decoy_files_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | str | None, flag: str
) -> None:
    """--decoy-labels and --decoy-pool are read without unpickling, as one
    array each, from a regular file only, before the suspect is opened."""
    world = World(tmp_path)
    mark = world.commit()
    case = world.run_case(mark, memorising_suspect(mark), query=False).case
    given = tmp_path / "given.npy"
    if content == "object array":
        np.save(given, np.array([3, "three"], dtype=object), allow_pickle=True)
    elif content == "fifo":
        os.mkfifo(given)  # would block a reader that does not check the type first
    elif content == "archive":
        with given.open("wb") as archive:
            np.savez(archive, labels=np.arange(3))
    elif isinstance(content, bytes):
        given.write_bytes(content)
    config = tmp_path / "not-read.json"
    argv = ["arbiter", "query", str(arbiter_folder(world)), "--case", case.name]
    argv += ["--suspect-config", str(config), flag, str(given), "--json"]
    result = run(capsys, *argv)
    what = flag.removeprefix("--").replace("-", " ")
    assert result.status == 3 and f"the {what} {given}" in result.err, result.err
    assert not (case.folder / "query-plan.safetensors").exists()
