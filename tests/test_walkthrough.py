"""The README's walkthrough, run as it is written.

The ``sh`` code blocks between ``<!-- walkthrough:begin -->`` and
``<!-- walkthrough:end -->`` in README.md are joined into one script and run
by ``bash -euo pipefail`` in an empty folder, against the servers the script
itself starts (secmark's TSA, and MLServer serving the watermarked model):
the README cannot drift from what is tested. Only the ports come from here,
through the variables the README gives defaults to, so that the test runs
beside anything else listening on the machine.

Needs torch, scikit-learn and mlserver (the test extra); about 40-60 s on a
two-core machine.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from secmark.stats.planning import plan_table
from tests.conftest import free_ports, listening

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- walkthrough:begin -->"
END = "<!-- walkthrough:end -->"
_TIMEOUT = 300.0
_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def walkthrough_script(readme: str) -> str:
    """The ``sh`` blocks of the marked section, in order, as one script."""
    assert readme.count(BEGIN) == 1 and readme.count(END) == 1, "the markers must appear once"
    section = readme[readme.index(BEGIN) + len(BEGIN) : readme.index(END)]
    blocks = _BLOCK.findall(section)
    assert blocks, "the walkthrough has no sh blocks"
    return "\n".join(blocks)


def _secmark_on_path(folder: Path) -> str:
    """A ``bin`` folder whose ``secmark`` runs this interpreter's secmark,
    put first on PATH: the script runs what this test imports."""
    folder.mkdir()
    shim = folder / "secmark"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m secmark.cli.main "$@"\n')
    shim.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


def test_the_plan_the_walkthrough_uses_is_what_secmark_plan_prints() -> None:
    script = walkthrough_script(README.read_text(encoding="utf-8"))
    planned = re.search(
        r"secmark plan --classes (\d+) --retention ([0-9.]+) --disputes (\d+)", script
    )
    assert planned is not None, "the walkthrough takes its numbers from secmark plan"
    classes, retention, disputes = int(planned[1]), Fraction(planned[2]), int(planned[3])
    (result,) = plan_table(Fraction(1, classes), (retention,), disputes=disputes)
    assert result is not None
    assert f"--classes {classes} --size {result.trigger_set_size} " in script
    assert f"--challenge-size {result.k} --alpha-log2 -64" in script


def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    pytest.importorskip("mlserver", reason="mlserver is not installed (the test extra pins it)")
    script = tmp_path / "walkthrough.sh"
    script.write_text(walkthrough_script(README.read_text(encoding="utf-8")))
    work = tmp_path / "work"
    work.mkdir()
    tsa_port, suspect_port, grpc_port = free_ports(3)
    environment = {
        **os.environ,
        "PATH": _secmark_on_path(tmp_path / "bin"),
        "TSA_PORT": str(tsa_port),
        "SUSPECT_PORT": str(suspect_port),
        "SUSPECT_GRPC_PORT": str(grpc_port),
    }
    environment.pop("SECMARK_PASSPHRASE", None)  # the README must set it itself
    log = tmp_path / "walkthrough.log"
    started = time.monotonic()
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["bash", "-euo", "pipefail", str(script)],
            cwd=work,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the script and its servers, stopped as a group
        )
        try:
            status = process.wait(timeout=_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
            status = None
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace")
    # tqdm redraws its bar with carriage returns: keep the log readable.
    tail = "\n".join(line.rsplit("\r", 1)[-1] for line in text.splitlines()[-60:])
    assert status == 0, f"the walkthrough failed (status {status}, {seconds:.0f} s):\n{tail}"
    assert "bundle verified" in text and "verdict: upheld" in text, tail
    assert (work / "model.safetensors").is_file()
    # The trap stopped both servers before the script ended.
    assert not any(listening(port) for port in (tsa_port, suspect_port, grpc_port))
    print(f"walkthrough: {seconds:.1f} s")
