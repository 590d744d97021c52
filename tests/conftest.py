"""Fixtures shared by every test package."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secmark.cli.evaluate import torch_threads
from secmark.crypto import IdentityKeys

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


pytest_plugins = ("tests.lm.fixtures",)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """One pytest-xdist worker more than there are CPUs (``--maxprocesses``
    caps it): many tests wait on a server or a subprocess, and the extra
    worker keeps the CPUs busy meanwhile (259 s against 297 s on 2 cores)."""
    return (os.cpu_count() or 1) + 1


def load_vector(relative: str) -> Any:
    return json.loads((VECTORS / relative).read_text(encoding="utf-8"))


def fixed_keys(label: str) -> IdentityKeys:
    """Deterministic identity keys, distinct per label."""

    def seed(part: str) -> bytes:
        return hashlib.sha256(f"secmark tests {label} {part}".encode()).digest()

    return IdentityKeys(seed("signing"), seed("vrf"), seed("encryption"))


def flip_byte(data: bytes, index: int, mask: int = 0x01) -> bytes:
    """``data`` with the bits of ``mask`` flipped in byte ``index``."""
    changed = bytearray(data)
    changed[index] ^= mask
    return bytes(changed)


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free at the time of the call."""
    # Hold every socket until all are bound, so that the ports are distinct.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def listening(port: int) -> bool:
    """Whether something accepts connections on loopback ``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def owner_keys() -> IdentityKeys:
    return fixed_keys("owner")


@pytest.fixture
def other_keys() -> IdentityKeys:
    return fixed_keys("other")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread when a collected test module imported it.

    Two intra-op threads beside any other busy process on a small machine
    wait on each other (PITFALLS: the demo took 87-195 s against 18 s). A
    run that imports no torch while collecting does not pay for importing it.
    """
    if "torch" not in sys.modules:
        yield
        return
    with torch_threads(1):
        yield
