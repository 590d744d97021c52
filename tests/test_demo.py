"""The README's first command: ``secmark demo`` tells the whole story and succeeds,
leaves a map of its files and the command that re-checks the owner's bundle,
and can be run again."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from secmark.cli.main import main
from secmark.errors import SecmarkError

pytest.importorskip("torch")

# Imported after the skip: the demo module needs torch.
from secmark.examples import demo as demo_module
from secmark.examples.demo import MARKER_FILE, DemoOutcome, prepare_folder


def test_demo_upholds_the_owner_and_rejects_the_thief(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "demo"
    assert main(["demo", "--out", str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    assert "owner UPHELD, thief REJECTED, chosen inputs REJECTED" in captured.err
    assert "every check passed" in captured.err
    summary = json.loads(captured.out)  # the story is on stderr: stdout is JSON only
    assert summary["succeeded"] is True and summary["bundle_verified"] is True
    assert summary["outcomes"] == {
        "owner": "upheld",
        "thief": "rejected",
        "chosen_inputs": "rejected",
    }
    assert summary["threads"] == 1
    listed = {entry["path"] for entry in summary["files"]}
    for name in (
        "owner.bundle.json",
        "owner.commitment.json",
        "thief.release.json",
        "arbiter.identity.json",
        "tsa/root.pem",
    ):
        assert (folder / name).is_file()
        assert str(folder / name) in listed
    assert f"{folder / 'arbiter'}/" in listed
    # The printed command re-checks the bundle against the demo TSA's root,
    # with the demo's arbiter pinned: verified, exit status 0.
    command = summary["verify_command"]
    assert command[:2] == ["secmark", "verify-bundle"] and "--arbiter" in command
    assert main(command[1:]) == 0
    assert "bundle verified" in capsys.readouterr().out

    # Run again into the same folder: refused with a hint, before any work.
    assert main(["demo", "--out", str(folder)]) == 1
    assert "give --force to replace it" in capsys.readouterr().err
    assert (folder / "owner.bundle.json").is_file()


def test_the_text_output_maps_the_files_and_prints_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "my demo"
    (folder / "tsa").mkdir(parents=True)
    (folder / "tsa/root.pem").write_text("")
    (folder / "owner.bundle.json").write_text("")
    seen: dict[str, object] = {}

    def fake_run(out: Path, say: object, *, replace: bool) -> DemoOutcome:
        import torch

        seen.update(out=out, replace=replace, threads=torch.get_num_threads())
        return DemoOutcome("upheld", "rejected", "rejected", True, 1.0, out, "ab" * 32, {})

    monkeypatch.setattr(demo_module, "run_demo", fake_run)
    assert main(["demo", "--out", str(folder), "--force", "--threads", "1"]) == 0
    assert seen == {"out": folder, "replace": True, "threads": 1}
    out = capsys.readouterr().out
    assert f"{folder / 'tsa'}/" in out and str(folder / "tsa/root.pem") in out
    assert "owner-model.safetensors" not in out  # only files that are there
    assert "'secmark plan --classes 10' says which family" in out
    command = shlex.split(out.strip().splitlines()[-1])
    assert command == [
        "secmark",
        "verify-bundle",
        str(folder / "owner.bundle.json"),
        "--trust",
        str(folder / "tsa/root.pem"),
        "--arbiter",
        "ab" * 32,
    ]


def test_force_replaces_an_earlier_demo_and_nothing_else(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    prepare_folder(folder)  # created
    prepare_folder(folder)  # empty: fine
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("kept")
    (folder / "notes.txt").write_text("")
    with pytest.raises(SecmarkError, match="was not made by secmark demo"):
        prepare_folder(folder, replace=True)
    (folder / MARKER_FILE).write_text("")
    (folder / "cases").mkdir()
    (folder / "cases" / "state.json").write_text("")
    (folder / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SecmarkError, match="give --force"):
        prepare_folder(folder)
    prepare_folder(folder, replace=True)
    assert list(folder.iterdir()) == []
    assert (outside / "keep.txt").read_text() == "kept"  # a link is removed, not followed
    (tmp_path / "file").write_text("")
    with pytest.raises(SecmarkError, match="is a file"):
        prepare_folder(tmp_path / "file", replace=True)
