"""The distributions built from a checkout: the wheel ships the JSON Schemas and
the licence, the sdist the specification and the vectors, and the metadata
says what the project is and which dependencies it needs.

Built as ``python -m build`` does (sdist first, then the wheel from the
unpacked sdist), through setuptools' PEP 517 backend, offline and without
build isolation, from a copy of the checkout so the tree is left untouched.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.version import Version

from secmark import schemas

REPOSITORY = Path(__file__).resolve().parents[2]

_BUILD = """\
import sys
from setuptools import build_meta
build = build_meta.build_sdist if sys.argv[1] == "sdist" else build_meta.build_wheel
build(sys.argv[2])
"""


def _checkout_files() -> list[str]:
    if shutil.which("git") is None or not (REPOSITORY / ".git").exists():
        pytest.skip("building the distributions needs a git checkout (to list its files)")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPOSITORY,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPOSITORY / name).is_file()]


def _build(kind: str, source: Path, out: Path) -> Path:
    out.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", _BUILD, kind, str(out)],
        cwd=source,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-4000:]
    (built,) = out.glob("*.tar.gz" if kind == "sdist" else "*.whl")
    return built


@pytest.fixture(scope="module")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel), the wheel built from the unpacked sdist."""
    work = tmp_path_factory.mktemp("package")
    copy = work / "checkout"
    for name in _checkout_files():
        if name.startswith(("tests/", "benchmarks/")):
            continue  # not part of either distribution
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPOSITORY / name, target)
    sdist = _build("sdist", copy, work / "dist")
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(work / "unpacked", filter="data")
        else:  # a Python from before extraction filters; the archive is our own
            archive.extractall(work / "unpacked")
    (root,) = (work / "unpacked").iterdir()
    return sdist, _build("wheel", root, work / "dist")


def _sdist_names(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as archive:
        return {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}


def _metadata(wheel: Path) -> tuple[set[str], dict[str, list[str]], zipfile.ZipFile]:
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    (metadata,) = [name for name in names if name.endswith(".dist-info/METADATA")]
    message = Parser().parsestr(archive.read(metadata).decode())
    fields: dict[str, list[str]] = {}
    for key, value in message.items():
        fields.setdefault(key, []).append(value)
    return names, fields, archive


def test_the_wheel_ships_every_schema_and_the_licence(distributions: tuple[Path, Path]) -> None:
    _, wheel = distributions
    names, _, archive = _metadata(wheel)
    with archive:
        for name in schemas.names():
            shipped = archive.read(f"secmark/schemas/{name}.schema.json")
            assert (
                shipped == (REPOSITORY / "secmark" / "schemas" / f"{name}.schema.json").read_bytes()
            )
        (licence,) = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
        text = archive.read(licence).decode()
        assert text == (REPOSITORY / "LICENSE").read_text()
        assert "Apache License" in text and "Version 2.0, January 2004" in text
        assert "END OF TERMS AND CONDITIONS" in text
        assert "secmark/py.typed" in names
        assert not any(name.startswith(("tests/", "specs/", "vectors/")) for name in names)


def test_the_sdist_carries_the_specification_and_the_vectors(
    distributions: tuple[Path, Path],
) -> None:
    sdist, _ = distributions
    names = _sdist_names(sdist)
    assert {"LICENSE", "README.md", "pyproject.toml"} <= names
    expected = {
        name
        for name in _checkout_files()
        if name.startswith(("specs/", "vectors/", "secmark/schemas/")) and "__pycache__" not in name
    }
    assert expected and not expected - names, sorted(expected - names)
    assert not any(name.startswith("specs/schemas/") for name in names), "one copy of each schema"


def test_the_metadata_describes_the_project(distributions: tuple[Path, Path]) -> None:
    _, wheel = distributions
    _, fields, archive = _metadata(wheel)
    archive.close()
    assert fields["License-Expression"] == ["Apache-2.0"]
    assert fields["License-File"] == ["LICENSE"]
    urls = dict(value.split(", ", 1) for value in fields["Project-URL"])
    assert {"Homepage", "Repository", "Documentation", "Issues"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    assert "Typing :: Typed" in fields["Classifier"]
    assert "Topic :: Security :: Cryptography" in fields["Classifier"]
    assert "watermarking" in fields["Keywords"][0]
    requires = fields["Requires-Dist"]
    # 1.0.6 fixes GHSA-3xxc-pwj6-jgrj and accepts tokens after the TSA certificate expired.
    assert "rfc3161-client>=1.0.6" in requires
    for tool in ("mlserver-sklearn", "playwright", "ruff", "mypy"):
        assert any(r.startswith(tool) and 'extra == "test"' in r for r in requires), tool


def test_the_installed_rfc3161_client_is_one_the_package_accepts() -> None:
    assert Version(importlib.metadata.version("rfc3161-client")) >= Version("1.0.6")


def test_the_schemas_load_from_the_installed_wheel(
    distributions: tuple[Path, Path], tmp_path: Path
) -> None:
    _, wheel = distributions
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import secmark.schemas as s; print(s.__file__); print(len(s.load_all()))",
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    location, count = done.stdout.split()
    assert location.startswith(str(tmp_path / "site"))
    assert int(count) == len(schemas.names())
