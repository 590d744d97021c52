"""Fixtures of the report tests: one decided case whose documents carry
hostile text (markup in the arbiter's name and the model label), its bundle,
the same bundle with a verdict whose figures were changed and re-signed,
and the judge's TSA root, written once for the whole package."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from secmark.messages import create_identity
from secmark.messages.commitment import create_commitment
from tests.protocol.conftest import (
    FAMILY,
    LABELS,
    SIZE,
    Committed,
    World,
    bundle_with,
    memorising_suspect,
    resign,
)

HOSTILE_NAME = "<script>alert('arbiter')</script> & Sons"
"""The arbiter's name: an exhibit must show it as text, never run it."""

HOSTILE_LABEL = '<img src="x" onerror="alert(2)">'
"""The commitment's model label, likewise."""


@dataclass(frozen=True)
class Exhibits:
    """Files of one decided case: ``bundle`` (upheld), ``tampered`` (its
    verdict re-signed with one match fewer: fails ``verdict-figures``),
    ``roots`` (the judge's TSA root, PEM) and the arbiter's key id."""

    folder: Path
    bundle: Path
    tampered: Path
    roots: Path
    arbiter_key_id: str


@pytest.fixture(scope="session")
def exhibits(tmp_path_factory: pytest.TempPathFactory) -> Exhibits:
    folder = tmp_path_factory.mktemp("exhibits")
    world = World(folder / "world")
    world.arbiter_identity = create_identity(world.arbiter_keys, HOSTILE_NAME)
    signed = create_commitment(
        world.owner, family=FAMILY, labels=LABELS, size=SIZE, model_label=HOSTILE_LABEL
    )
    mark = Committed(world.owner, signed, world.timestamp(signed.digest))
    world.register_release(mark, world.model_file("released"))
    run = world.run_case(mark, memorising_suspect(mark))

    def one_match_fewer(payload: dict[str, Any]) -> None:
        payload["test"]["matches"] -= 1

    tampered = bundle_with(
        run.bundle, verdict=resign(run.verdict or b"", world.arbiter_keys, one_match_fewer)
    )
    paths = Exhibits(
        folder=folder,
        bundle=folder / "verdict.bundle.json",
        tampered=folder / "tampered.bundle.json",
        roots=folder / "judge-roots.pem",
        arbiter_key_id=world.arbiter_keys.key_id,
    )
    paths.bundle.write_bytes(run.bundle)
    paths.tampered.write_bytes(tampered)
    paths.roots.write_bytes(world.tsa.root_certificate.public_bytes(Encoding.PEM))
    return paths
