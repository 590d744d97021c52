"""The built-in TSA: files, keys, serial numbers, certificate profile, rejections."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import stat
import threading
from pathlib import Path

import pytest
from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from secmark.encoding import canonical_json
from secmark.errors import KeyMaterialError, SecmarkError
from secmark.timestamp import (
    TimestampAuthority,
    TrustStore,
    request_timestamp_from,
    verify_timestamp,
)
from secmark.timestamp._tsp import TimeStampResp
from secmark.timestamp.authority import MAX_REQUEST_SIZE, MAX_SERIAL, SERIAL_FILE, TSA_KEY_FILE
from tests.timestamp.conftest import MESSAGE, PASSPHRASE, UTC, tst_info


def _request(
    algorithm: str = "sha256",
    hashed_message: bytes | None = None,
    **fields: object,
) -> bytes:
    digest = (
        hashed_message if hashed_message is not None else hashlib.new(algorithm, MESSAGE).digest()
    )
    value: dict[str, object] = {
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": algorithm}, "hashed_message": digest},
        "cert_req": True,
    }
    value.update(fields)
    return tsp.TimeStampReq(value).dump()


def _status(response: bytes) -> tuple[str, set[str]]:
    info = TimeStampResp.load(response)["status"].native
    return info["status"], set(info["fail_info"] or ())


def test_files_and_modes(authority: TimestampAuthority) -> None:
    directory = authority.directory
    assert stat.S_IMODE(os.stat(directory / TSA_KEY_FILE).st_mode) == 0o600
    stored = json.loads((directory / TSA_KEY_FILE).read_bytes())
    assert stored["protection"] == "argon2id-xchacha20poly1305" and "key" not in stored
    assert stat.S_IMODE(os.stat(directory / "root.pem").st_mode) == 0o644
    assert json.loads((directory / SERIAL_FILE).read_text()) == {"last_serial": 0}
    assert TimestampAuthority.needs_passphrase(directory)


def test_certificate_profile(authority: TimestampAuthority) -> None:
    root, tsa = authority.root_certificate, authority.tsa_certificate
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    usage = tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert usage.critical and list(usage.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    key_usage = tsa.extensions.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical and key_usage.value.digital_signature
    assert not tsa.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(tsa.public_key(), ec.EllipticCurvePublicKey)
    assert tsa.issuer == root.subject
    tsa.verify_directly_issued_by(root)


def test_wrong_passphrase(authority: TimestampAuthority) -> None:
    with pytest.raises(KeyMaterialError, match="wrong passphrase"):
        TimestampAuthority.open(authority.directory, passphrase=b"not it")
    with pytest.raises(KeyMaterialError, match="is encrypted: a passphrase is required"):
        TimestampAuthority.open(authority.directory, passphrase=None)


def test_passphrase_required_unless_unencrypted_allowed(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError, match="no passphrase"):
        TimestampAuthority.initialize(tmp_path / "a", passphrase=None)
    with pytest.raises(KeyMaterialError, match="empty"):
        TimestampAuthority.initialize(tmp_path / "a", passphrase=b"")
    authority = TimestampAuthority.initialize(
        tmp_path / "b", passphrase=None, allow_unencrypted=True
    )
    assert not TimestampAuthority.needs_passphrase(authority.directory)
    reopened = TimestampAuthority.open(authority.directory, passphrase=None)
    assert reopened.tsa_certificate == authority.tsa_certificate
    with pytest.raises(KeyMaterialError, match="not encrypted"):
        TimestampAuthority.open(authority.directory, passphrase=PASSPHRASE)


def test_refuses_to_initialize_twice(authority: TimestampAuthority) -> None:
    with pytest.raises(SecmarkError, match="already holds"):
        TimestampAuthority.initialize(authority.directory, passphrase=PASSPHRASE)


def test_refuses_key_readable_by_others(authority: TimestampAuthority) -> None:
    (authority.directory / TSA_KEY_FILE).chmod(0o644)
    with pytest.raises(KeyMaterialError, match="readable by other users"):
        TimestampAuthority.open(authority.directory, passphrase=PASSPHRASE)


def test_open_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(SecmarkError, match="not a timestamp authority directory"):
        TimestampAuthority.open(tmp_path / "nothing", passphrase=PASSPHRASE)


def test_serials_unique_and_increasing_across_reopen(authority: TimestampAuthority) -> None:
    first = [
        tst_info(request_timestamp_from(authority.respond, MESSAGE))["serial_number"].native
        for _ in range(3)
    ]
    reopened = TimestampAuthority.open(authority.directory, passphrase=PASSPHRASE)
    second = [
        tst_info(request_timestamp_from(reopened.respond, MESSAGE))["serial_number"].native
        for _ in range(3)
    ]
    assert first + second == [1, 2, 3, 4, 5, 6]


def test_serials_unique_under_concurrency(authority: TimestampAuthority) -> None:
    # Two instances on one directory stand for two processes (the flock), and
    # several threads each for concurrent requests in one process (the lock).
    twin = TimestampAuthority.open(authority.directory, passphrase=PASSPHRASE)
    serials: list[int] = []
    guard = threading.Lock()

    def issue(instance: TimestampAuthority) -> None:
        for _ in range(4):
            serial = tst_info(request_timestamp_from(instance.respond, MESSAGE))[
                "serial_number"
            ].native
            with guard:
                serials.append(serial)

    threads = [
        threading.Thread(target=issue, args=(instance,)) for instance in [authority, twin] * 2
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(serials) == list(range(1, 17))


def test_corrupt_serial_state_is_a_system_failure(authority: TimestampAuthority) -> None:
    (authority.directory / SERIAL_FILE).write_text("{}")
    status, failures = _status(authority.respond(_request()))
    assert (status, failures) == ("rejection", {"system_failure"})


def test_serial_space_exhausted(authority: TimestampAuthority) -> None:
    (authority.directory / SERIAL_FILE).write_text(json.dumps({"last_serial": MAX_SERIAL}))
    assert _status(authority.respond(_request())) == ("rejection", {"system_failure"})


def test_response_fields(tmp_path: Path) -> None:
    moment = datetime.datetime(2024, 5, 6, 7, 8, 9, 987654, tzinfo=UTC)
    authority = TimestampAuthority.initialize(
        tmp_path / "tsa", passphrase=PASSPHRASE, clock=lambda: moment
    )
    response = authority.respond(_request("sha512", nonce=2**70 + 5))
    info = tst_info(response)
    assert info["version"].native == "v1"
    assert info["policy"].dotted == authority.policy_oid
    assert info["gen_time"].native == moment.replace(microsecond=0)
    assert info["nonce"].native == 2**70 + 5
    assert info["message_imprint"]["hashed_message"].native == hashlib.sha512(MESSAGE).digest()
    assert info["accuracy"].native is None
    assert info["tsa"].chosen.native == {"common_name": "secmark timestamp authority"}
    signed_data = tsp.TimeStampResp.load(response)["time_stamp_token"]["content"]
    assert signed_data["version"].native == "v3"
    assert len(signed_data["certificates"]) == 1
    signer = signed_data["signer_infos"][0]
    assert signer["sid"].name == "issuer_and_serial_number"
    assert [a["type"].native for a in signer["signed_attrs"]] == [
        "content_type",
        "message_digest",
        "signing_certificate_v2",
    ]
    trust = TrustStore(roots=(authority.root_certificate,))
    assert verify_timestamp(response, MESSAGE, trust, nonce=2**70 + 5).gen_time == moment.replace(
        microsecond=0
    )


@pytest.mark.parametrize(
    ("request_der", "failure"),
    [
        (b"garbage", "bad_data_format"),
        (b"", "bad_data_format"),
        (b"\x30" * (MAX_REQUEST_SIZE + 1), "bad_data_format"),
        (_request("sha1"), "bad_alg"),
        (_request("md5"), "bad_alg"),
        (_request("sha384"), "bad_alg"),
        (_request("sha256", hashed_message=b"\x00" * 31), "bad_data_format"),
        (_request(version="v2"), "bad_request"),
        (_request(req_policy="1.2.3.4"), "unaccepted_policy"),
        (
            _request(extensions=[{"extn_id": "1.2.3.4", "critical": False, "extn_value": b""}]),
            "unaccepted_extensions",
        ),
    ],
    ids=[
        "garbage",
        "empty",
        "oversized",
        "sha1",
        "md5",
        "sha384",
        "short-imprint",
        "version-2",
        "other-policy",
        "extensions",
    ],
)
def test_rejections(authority: TimestampAuthority, request_der: bytes, failure: str) -> None:
    response = authority.respond(request_der)
    assert _status(response) == ("rejection", {failure})
    # The status text says why, for the requester's logs.
    assert TimeStampResp.load(response)["status"]["status_string"].native


def test_requested_policy_accepted(authority: TimestampAuthority) -> None:
    assert _status(authority.respond(_request(req_policy=authority.policy_oid)))[0] == "granted"


def test_naive_clock_is_a_system_failure(authority: TimestampAuthority) -> None:
    naive = TimestampAuthority.open(
        authority.directory, passphrase=PASSPHRASE, clock=lambda: datetime.datetime(2024, 1, 1)
    )
    assert _status(naive.respond(_request())) == ("rejection", {"system_failure"})


def test_tsa_key_file_header_is_authenticated(authority: TimestampAuthority) -> None:
    key_path = authority.directory / TSA_KEY_FILE
    stored = json.loads(key_path.read_bytes())
    stored["kdf"]["opslimit"] += 1
    key_path.write_bytes(canonical_json(stored))
    with pytest.raises(KeyMaterialError, match="wrong passphrase, or the file was modified"):
        TimestampAuthority.open(authority.directory, passphrase=PASSPHRASE)
