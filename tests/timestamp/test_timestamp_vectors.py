"""The fixed test TSA of vectors/timestamp/: its token must keep verifying."""

from __future__ import annotations

import datetime
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from rfc3161_client import decode_timestamp_response

from secmark.errors import TimestampError
from secmark.timestamp import (
    TrustStore,
    normalize_token,
    verify_timestamp,
    verify_timestamp_unanchored,
)
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


# --- vectors/timestamp/openssl-chain: a certificate SET not in DER order ------

CHAIN: Path = DIRECTORY / "openssl-chain"


def test_openssl_chain_vector_is_re_encoded_exactly() -> None:
    vector = load_vector("timestamp/openssl-chain/vector.json")
    raw = (CHAIN / vector["token_file"]).read_bytes()
    der = (CHAIN / vector["der_token_file"]).read_bytes()
    with pytest.raises(ValueError, match="InvalidSetOrdering"):
        decode_timestamp_response(raw)
    decode_timestamp_response(der)
    assert normalize_token(raw) == der
    assert normalize_token(der) == der
    assert hashlib.sha256(der).hexdigest() == vector["der_token_sha256"]
    message = bytes.fromhex(vector["message_hex"])
    trust = TrustStore.from_pem_files([CHAIN / vector["root_certificate_file"]])
    for token in (raw, der):
        verified = verify_timestamp(token, message, trust, nonce=vector["nonce"])
        assert verified.tsa_subject == vector["tsa_subject"]
        assert verified.tsa_certificate_sha256 == vector["tsa_sha256"]
    intact = verify_timestamp_unanchored(raw, message)
    assert len(intact.chain) == 3 and intact.self_signed_top


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize("token_key", ["token_file", "der_token_file"])
def test_openssl_chain_vector_verifies_with_openssl(token_key: str) -> None:
    vector = load_vector("timestamp/openssl-chain/vector.json")
    result = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-data",
            "message.bin",
            "-in",
            vector[token_key],
            "-CAfile",
            vector["root_certificate_file"],
        ],
        cwd=CHAIN,
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0 and b"Verification: OK" in result.stdout, result.stderr
