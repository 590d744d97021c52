"""Hostile bytes: every failure of the verifier, the client and the TSA is typed.

Each test is named after what a hostile token, answer, request or key file
did before it was fixed (found by fuzzing): an untyped exception that
aborted a whole evidence check, killed a server thread or printed a
traceback.

The sweeps flip every bit of a token. By default: every bit of the P-256
vector token (8,520 flips) and one bit per byte of the RSA vector token made
by ``openssl ts -reply`` (3,258 flips); with ``SECMARK_FULL_FLIP_SWEEP=1``,
every bit of the RSA token too (26,064 flips).
"""

from __future__ import annotations

import datetime
import http.client
import os
import warnings
from collections import Counter
from pathlib import Path

import pytest
from asn1crypto import core, tsp
from cryptography.utils import CryptographyDeprecationWarning

from secmark.cli.main import main
from secmark.encoding import b64url_encode, canonical_json
from secmark.errors import KeyMaterialError, TimestampError
from secmark.timestamp import (
    QUERY_MEDIA_TYPE,
    TimestampAuthority,
    TimestampServer,
    TrustStore,
    verify_timestamp,
    verify_timestamp_unanchored,
)
from secmark.timestamp._tsp import TimeStampResp
from secmark.timestamp.authority import TSA_KEY_FILE, decode_tsa_key
from secmark.timestamp.evidence import EvidenceToken, TimestampEvidence
from tests.conftest import VECTORS, load_vector

FULL_SWEEP = os.environ.get("SECMARK_FULL_FLIP_SWEEP") == "1"

P256_VECTOR = VECTORS / "timestamp" / "vector.json"
RSA_VECTOR = VECTORS / "timestamp" / "openssl-chain" / "vector.json"

# The TSA certificate of the P-256 vector: X.509 version (context [0], INTEGER 2),
# and the named curve P-256 (1.2.840.10045.3.1.7) in its key.
_VERSION_V3 = bytes.fromhex("a003020102")
_P256_OID = bytes.fromhex("06082a8648ce3d030107")


def _vector(path: Path) -> tuple[bytes, bytes, TrustStore, datetime.datetime]:
    vector = load_vector(str(path.relative_to(VECTORS)))
    token = (path.parent / vector["token_file"]).read_bytes()
    trust = TrustStore.from_pem_files([path.parent / vector["root_certificate_file"]])
    gen_time = datetime.datetime.fromisoformat(vector["gen_time"].replace("Z", "+00:00"))
    return token, bytes.fromhex(vector["message_hex"]), trust, gen_time


def _flip(data: bytes, bit: int) -> bytes:
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


def _sweep(path: Path, bits: range | list[int]) -> Counter[str]:
    """Verify ``token`` with each bit in ``bits`` flipped; count the outcomes."""
    token, message, trust, gen_time = _vector(path)
    original = verify_timestamp(token, message, trust)
    outcomes: Counter[str] = Counter()
    with warnings.catch_warnings():
        # cryptography warns (does not raise) on a flipped negative serial number.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        for bit in bits:
            try:
                verified = verify_timestamp(_flip(token, bit), message, trust)
            except TimestampError:
                outcomes["TimestampError"] += 1
            except Exception as error:  # noqa: BLE001 (what this test counts)
                outcomes[f"untyped {type(error).__name__} at bit {bit}"] += 1
            else:
                # Only unsigned fields can change unnoticed (SignedData and
                # SignerInfo versions, the signature algorithm identifier):
                # what the token says is the same.
                assert verified == original, f"bit {bit} changed a verified token"
                assert verified.gen_time == gen_time
                outcomes["still verifies"] += 1
    return outcomes


def _untyped(outcomes: Counter[str]) -> list[str]:
    return [outcome for outcome in outcomes if outcome.startswith("untyped")]


def test_every_bit_flip_of_the_p256_vector_token_is_typed() -> None:
    token = _vector(P256_VECTOR)[0]
    outcomes = _sweep(P256_VECTOR, range(len(token) * 8))
    assert not _untyped(outcomes)
    assert outcomes["TimestampError"] > 0.95 * len(token) * 8


def test_bit_flips_of_the_rsa_openssl_token_are_typed() -> None:
    token = _vector(RSA_VECTOR)[0]
    bits = range(len(token) * 8) if FULL_SWEEP else [8 * i + i % 8 for i in range(len(token))]
    outcomes = _sweep(RSA_VECTOR, bits)
    assert not _untyped(outcomes)
    # Flips in the embedded root certificate go unnoticed: the trusted root is used.
    assert outcomes["TimestampError"] > 0.5 * len(bits)


def test_certificate_version_flipped_is_a_timestamp_error() -> None:
    """Was cryptography's InvalidVersion, out of verify_timestamp."""
    token, message, trust, _ = _vector(P256_VECTOR)
    index = token.index(_VERSION_V3) + len(_VERSION_V3) - 1
    hostile = token[:index] + bytes([token[index] ^ 0x01]) + token[index + 1 :]
    with pytest.raises(TimestampError, match="TSA certificate is malformed or of a kind not"):
        verify_timestamp(hostile, message, trust)


def test_curve_oid_flipped_is_a_timestamp_error() -> None:
    """Was cryptography's UnsupportedAlgorithm (unknown curve), out of verify_timestamp."""
    token, message, trust, _ = _vector(P256_VECTOR)
    index = token.index(_P256_OID) + len(_P256_OID) - 1
    hostile = token[:index] + bytes([token[index] ^ 0x01]) + token[index + 1 :]
    with pytest.raises(TimestampError, match="TSA certificate is malformed or of a kind not"):
        verify_timestamp(hostile, message, trust)
    with pytest.raises(TimestampError, match="TSA certificate is malformed or of a kind not"):
        verify_timestamp_unanchored(hostile, message)


def test_hostile_token_does_not_hide_the_good_one_in_evidence() -> None:
    """specs/timestamp.md 5.3a: one hostile token fails alone."""
    token, message, trust, gen_time = _vector(P256_VECTOR)
    index = token.index(_P256_OID) + len(_P256_OID) - 1
    hostile = token[:index] + bytes([token[index] ^ 0x01]) + token[index + 1 :]
    evidence = TimestampEvidence(
        message.hex(), (EvidenceToken("hostile", hostile), EvidenceToken("good", token))
    )
    check = evidence.check(trust)
    assert check.tokens[0].verified is None
    assert "malformed" in (check.tokens[0].error or "")
    assert check.trusted_time == gen_time


# --- The TSA: requests ---------------------------------------------------------


def _request(*, nonce: int = 0x5F94979E58D004CB) -> bytes:
    return tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": bytes(range(32)),
            },
            "nonce": nonce,
            "cert_req": True,
        }
    ).dump()


def _status(answer: bytes) -> tuple[str, set[str]]:
    status = TimeStampResp.load(answer)["status"]
    return status["status"].native, set(status["fail_info"].native or ())


# Found by fuzzing: one-byte changes asn1crypto parses into an object without
# .native (AttributeError at request.native), which killed the handler thread.
# (marker, offset of the byte in it, new value)
_REQUEST_CHANGES = {
    "imprint-oid-length-shortened": (b"\x06\x09\x60\x86\x48", 1, 0x02),
    "nonce-tag-made-object-descriptor": (b"\x02\x08\x5f\x94", 0, 0x07),
}


@pytest.mark.parametrize("change", list(_REQUEST_CHANGES), ids=list(_REQUEST_CHANGES))
def test_one_byte_request_change_gets_a_rejection(
    authority: TimestampAuthority, change: str
) -> None:
    marker, offset, value = _REQUEST_CHANGES[change]
    request = _request()
    index = request.index(marker) + offset
    hostile = request[:index] + bytes([value]) + request[index + 1 :]
    with pytest.raises(AttributeError):
        tsp.TimeStampReq.load(hostile, strict=True).native  # noqa: B018 (what used to escape)
    assert _status(authority.respond(hostile)) == ("rejection", {"bad_data_format"})
    # Over HTTP the client gets the rejection too, not a dropped connection.
    with TimestampServer(authority.respond, port=0) as server:
        host, port = server.url.removeprefix("http://").rstrip("/").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("POST", "/", hostile, {"Content-Type": QUERY_MEDIA_TYPE})
        answer = connection.getresponse()
        assert answer.status == 200
        assert _status(answer.read()) == ("rejection", {"bad_data_format"})
        connection.close()


def test_every_bit_flip_of_a_request_is_answered(authority: TimestampAuthority) -> None:
    """Flips of the structure (not of the imprint's or nonce's value bytes,
    which only ask for another timestamp) each get a TimeStampResp."""
    request = _request()
    parsed = tsp.TimeStampReq.load(request)
    values = set()
    for value in (parsed["message_imprint"]["hashed_message"], parsed["nonce"]):
        start = request.index(value.dump()) + len(value.dump()) - len(value.contents)
        values.update(range(start, start + len(value.contents)))
    statuses: Counter[str] = Counter()
    for bit in range(len(request) * 8):
        if bit // 8 not in values:
            statuses[_status(authority.respond(_flip(request, bit)))[0]] += 1
    assert set(statuses) == {"granted", "rejection"}
    assert statuses["rejection"] > statuses["granted"]


def test_server_answers_500_if_the_authority_fails() -> None:
    def broken(request: bytes) -> bytes:
        raise RuntimeError("a bug")

    with TimestampServer(broken, port=0) as server:
        host, port = server.url.removeprefix("http://").rstrip("/").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("POST", "/", _request(), {"Content-Type": QUERY_MEDIA_TYPE})
        assert connection.getresponse().status == 500
        connection.close()


# --- The TSA: key files ----------------------------------------------------------


class _AlgorithmIdentifier(core.Sequence):
    _fields = [("algorithm", core.ObjectIdentifier)]  # noqa: RUF012 (asn1crypto's format)


class _PrivateKeyInfo(core.Sequence):
    """PKCS #8 (RFC 5208) for any algorithm; asn1crypto's own knows only a few."""

    _fields = [  # noqa: RUF012 (asn1crypto's format)
        ("version", core.Integer),
        ("algorithm", _AlgorithmIdentifier),
        ("key", core.OctetString),
    ]


def _unknown_algorithm_key_file(tmp_path: Path) -> Path:
    """An authority directory whose key file holds PKCS #8 of an unknown algorithm."""
    authority = TimestampAuthority.initialize(
        tmp_path / "tsa", passphrase=None, allow_unencrypted=True
    )
    unknown = _PrivateKeyInfo(
        {"version": 0, "algorithm": {"algorithm": "1.3.6.1.4.1.55555.1.1"}, "key": bytes(32)}
    ).dump()
    key_path = authority.directory / TSA_KEY_FILE
    key_path.write_bytes(
        canonical_json(
            {
                "type": "secmark.tsa-key",
                "version": 1,
                "protection": "none",
                "key": b64url_encode(unknown),
            }
        )
    )
    return key_path


def test_key_file_of_unknown_algorithm_is_a_key_material_error(tmp_path: Path) -> None:
    key_path = _unknown_algorithm_key_file(tmp_path)
    with pytest.raises(KeyMaterialError, match="algorithm this system does not know"):
        decode_tsa_key(key_path.read_bytes(), None, what=str(key_path))
    with pytest.raises(KeyMaterialError, match="algorithm this system does not know"):
        TimestampAuthority.open(key_path.parent, passphrase=None)


def test_tsa_serve_with_such_a_key_exits_6_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_path = _unknown_algorithm_key_file(tmp_path)
    assert main(["tsa", "serve", str(key_path.parent), "--port", "0"]) == 6
    error = capsys.readouterr().err
    assert error.startswith("secmark: error:") and "Traceback" not in error
    assert "restore the file from a backup" in error
