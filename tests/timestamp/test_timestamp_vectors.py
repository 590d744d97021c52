"""The fixed test TSA of vectors/timestamp/: its token must keep verifying."""

from __future__ import annotations

import datetime
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from secmark.errors import TimestampError
from secmark.timestamp import TrustStore, verify_timestamp
from tests.conftest import VECTORS, flip_byte, load_vector

DIRECTORY: Path = VECTORS / "timestamp"


def test_vector_token_verifies() -> None:
    vector = load_vector("timestamp/vector.json")
    token = (DIRECTORY / vector["token_file"]).read_bytes()
    message = bytes.fromhex(vector["message_hex"])
    trust = TrustStore.from_pem_files(
        [DIRECTORY / vector["root_certificate_file"]], policy_oid=vector["policy_oid"]
    )
    verified = verify_timestamp(token, message, trust, nonce=vector["nonce"])
    assert verified.gen_time == datetime.datetime.fromisoformat(
        vector["gen_time"].replace("Z", "+00:00")
    )
    assert verified.serial_number == vector["serial_number"]
    assert verified.hash_algorithm == vector["hash_algorithm"]
    assert verified.tsa_subject == vector["tsa_subject"]
    assert verified.root_certificate_sha256 == vector["root_sha256"]
    assert verified.tsa_certificate_sha256 == vector["tsa_sha256"]
    with pytest.raises(TimestampError):
        verify_timestamp(flip_byte(token, len(token) - 1), message, trust)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_vector_token_verifies_with_openssl() -> None:
    vector = load_vector("timestamp/vector.json")
    result = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-digest",
            hashlib.sha256(bytes.fromhex(vector["message_hex"])).hexdigest(),
            "-in",
            vector["token_file"],
            "-CAfile",
            vector["root_certificate_file"],
            "-untrusted",
            vector["tsa_certificate_file"],
        ],
        cwd=DIRECTORY,
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0 and b"Verification: OK" in result.stdout, result.stderr
