"""verify_timestamp: round trips, and one rejection per check, each named by its attack."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import pytest
from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from secmark.crypto import INTERACTIVE_KDF
from secmark.errors import EncodingError, TimestampError
from secmark.timestamp import (
    MAX_TOKEN_SIZE,
    TimestampAuthority,
    TrustStore,
    request_timestamp_from,
    verify_timestamp,
)
from tests.conftest import flip_byte
from tests.timestamp.conftest import (
    MESSAGE,
    OTHER_MESSAGE,
    PASSPHRASE,
    UTC,
    make_pki,
    open_custom_authority,
    tst_info,
)


@pytest.mark.parametrize("hash_algorithm", ["sha256", "sha512"])
def test_round_trip(authority: TimestampAuthority, trust: TrustStore, hash_algorithm: str) -> None:
    before = datetime.datetime.now(UTC).replace(microsecond=0)
    token = request_timestamp_from(authority.respond, MESSAGE, hash_algorithm=hash_algorithm)
    verified = verify_timestamp(token, MESSAGE, trust, nonce=tst_info(token)["nonce"].native)
    assert verified.hash_algorithm == hash_algorithm
    assert before <= verified.gen_time <= datetime.datetime.now(UTC)
    assert verified.gen_time.tzinfo is not None
    assert verified.serial_number == 1
    assert verified.policy_oid == authority.policy_oid
    assert verified.tsa_subject == "CN=secmark timestamp authority"
    tsa_der = authority.tsa_certificate.public_bytes(Encoding.DER)
    root_der = authority.root_certificate.public_bytes(Encoding.DER)
    assert verified.tsa_certificate_sha256 == hashlib.sha256(tsa_der).hexdigest()
    assert verified.root_certificate_sha256 == hashlib.sha256(root_der).hexdigest()


def test_trust_store_finds_the_root_among_several(
    tmp_path: Path, authority: TimestampAuthority
) -> None:
    other = TimestampAuthority.initialize(
        tmp_path / "other", passphrase=PASSPHRASE, kdf=INTERACTIVE_KDF
    )
    trust = TrustStore(roots=(other.root_certificate, authority.root_certificate))
    token = request_timestamp_from(authority.respond, MESSAGE)
    verified = verify_timestamp(token, MESSAGE, trust)
    root_der = authority.root_certificate.public_bytes(Encoding.DER)
    assert verified.root_certificate_sha256 == hashlib.sha256(root_der).hexdigest()


def test_trust_store_from_pem_files(authority: TimestampAuthority) -> None:
    trust = TrustStore.from_pem_files([authority.directory / "root.pem"])
    token = request_timestamp_from(authority.respond, MESSAGE)
    assert verify_timestamp(token, MESSAGE, trust).serial_number == 1
    with pytest.raises(EncodingError, match="not self-signed"):
        TrustStore.from_pem_files([authority.directory / "tsa.pem"])
    with pytest.raises(EncodingError, match="not PEM"):
        TrustStore.from_pem(b"garbage")
    with pytest.raises(EncodingError, match="not a dotted OID"):
        TrustStore(roots=(authority.root_certificate,), policy_oid="policy one")


# --- Rejections -------------------------------------------------------------


def test_tampered_signature(authority: TimestampAuthority, trust: TrustStore) -> None:
    token = request_timestamp_from(authority.respond, MESSAGE)
    # The token ends with the SignerInfo's signature (no unsigned attributes).
    with pytest.raises(TimestampError, match="signature does not verify"):
        verify_timestamp(flip_byte(token, len(token) - 1), MESSAGE, trust)


def test_tampered_tst_info(authority: TimestampAuthority, trust: TrustStore) -> None:
    token = request_timestamp_from(authority.respond, MESSAGE)
    gen_time = tst_info(token)["gen_time"].dump()[2:]  # the digits, after tag and length
    index = token.index(gen_time) + len("YYYYMMDDHHMMS")  # last digit of the seconds
    tampered = flip_byte(token, index)
    assert tst_info(tampered)["gen_time"].native != tst_info(token)["gen_time"].native
    with pytest.raises(TimestampError, match="altered after signing"):
        verify_timestamp(tampered, MESSAGE, trust)


def test_token_for_another_message(authority: TimestampAuthority, trust: TrustStore) -> None:
    token = request_timestamp_from(authority.respond, OTHER_MESSAGE)
    with pytest.raises(TimestampError, match="for another message"):
        verify_timestamp(token, MESSAGE, trust)


def test_untrusted_root(tmp_path: Path, authority: TimestampAuthority) -> None:
    stranger = TimestampAuthority.initialize(
        tmp_path / "stranger", passphrase=PASSPHRASE, kdf=INTERACTIVE_KDF
    )
    token = request_timestamp_from(stranger.respond, MESSAGE)
    with pytest.raises(TimestampError, match="does not chain to a trusted root"):
        verify_timestamp(token, MESSAGE, TrustStore(roots=(authority.root_certificate,)))


def test_tsa_certificate_expired_at_gen_time(tmp_path: Path) -> None:
    # Certificates valid for one day in 2020; the token is issued today.
    created = TimestampAuthority.initialize(
        tmp_path / "old",
        passphrase=PASSPHRASE,
        validity=datetime.timedelta(days=1),
        clock=lambda: datetime.datetime(2020, 1, 1, tzinfo=UTC),
    )
    authority = TimestampAuthority.open(created.directory, passphrase=PASSPHRASE)
    token = request_timestamp_from(authority.respond, MESSAGE)
    trust = TrustStore(roots=(authority.root_certificate,))
    with pytest.raises(TimestampError, match="not valid at genTime"):
        verify_timestamp(token, MESSAGE, trust)


def test_token_dated_within_validity_verifies_after_expiry(tmp_path: Path) -> None:
    authority = TimestampAuthority.initialize(
        tmp_path / "old",
        passphrase=PASSPHRASE,
        validity=datetime.timedelta(days=1),
        clock=lambda: datetime.datetime(2020, 1, 1, 12, tzinfo=UTC),
    )
    token = request_timestamp_from(authority.respond, MESSAGE)
    trust = TrustStore(roots=(authority.root_certificate,))
    assert verify_timestamp(token, MESSAGE, trust).gen_time == datetime.datetime(
        2020, 1, 1, 12, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("key_usage", "critical", "error"),
    [
        (None, True, "has no extendedKeyUsage"),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), False, "not marked critical"),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), True, "timeStamping alone"),
    ],
    ids=["eku-missing", "eku-not-critical", "eku-other-purpose"],
)
def test_tsa_certificate_without_critical_time_stamping_usage(
    tmp_path: Path, key_usage: x509.ExtendedKeyUsage | None, critical: bool, error: str
) -> None:
    pki = make_pki(key_usage=key_usage, critical=critical)
    authority = open_custom_authority(tmp_path / "custom", pki)
    token = request_timestamp_from(authority.respond, MESSAGE)
    with pytest.raises(TimestampError, match=error):
        verify_timestamp(token, MESSAGE, TrustStore(roots=(pki.root,)))


def test_custom_pki_control(tmp_path: Path) -> None:
    """The custom PKI of the tests above verifies when its EKU is right."""
    pki = make_pki()
    authority = open_custom_authority(tmp_path / "custom", pki)
    token = request_timestamp_from(authority.respond, MESSAGE)
    assert verify_timestamp(token, MESSAGE, TrustStore(roots=(pki.root,))).serial_number == 1


def test_certificate_substitution_caught_by_ess(tmp_path: Path) -> None:
    """Same key, second certificate: signature and chain still verify, ESS does not."""
    pki = make_pki()
    authority = open_custom_authority(tmp_path / "custom", pki)
    token = request_timestamp_from(authority.respond, MESSAGE)
    substitute = asn1_x509.Certificate.load(pki.issue().public_bytes(Encoding.DER))
    response = tsp.TimeStampResp.load(token)
    signed_data = response["time_stamp_token"]["content"]
    signed_data["certificates"] = [cms.CertificateChoices(name="certificate", value=substitute)]
    signed_data["signer_infos"][0]["sid"] = cms.SignerIdentifier(
        name="issuer_and_serial_number",
        value={"issuer": substitute.issuer, "serial_number": substitute.serial_number},
    )
    forged = response.dump(force=True)
    with pytest.raises(TimestampError, match="ESS signing-certificate attribute names another"):
        verify_timestamp(forged, MESSAGE, TrustStore(roots=(pki.root,)))


def test_wrong_nonce(authority: TimestampAuthority, trust: TrustStore) -> None:
    token = request_timestamp_from(authority.respond, MESSAGE)
    nonce = tst_info(token)["nonce"].native
    with pytest.raises(TimestampError, match="nonce"):
        verify_timestamp(token, MESSAGE, trust, nonce=nonce + 1)


def test_wrong_policy(authority: TimestampAuthority) -> None:
    token = request_timestamp_from(authority.respond, MESSAGE)
    trust = TrustStore(roots=(authority.root_certificate,), policy_oid="1.2.3.4")
    with pytest.raises(TimestampError, match="not the required 1.2.3.4"):
        verify_timestamp(token, MESSAGE, trust)


def test_rejection_status(authority: TimestampAuthority, trust: TrustStore) -> None:
    rejection = authority.respond(b"not a request")
    with pytest.raises(
        TimestampError, match=r"not a granted timestamp: status rejection \(badDataFormat\)"
    ):
        verify_timestamp(rejection, MESSAGE, trust)


def test_token_without_certificate(authority: TimestampAuthority, trust: TrustStore) -> None:
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": hashlib.sha256(MESSAGE).digest(),
            },
            "cert_req": False,
        }
    )
    token = authority.respond(request.dump())
    assert not tsp.TimeStampResp.load(token)["time_stamp_token"]["content"]["certificates"].native
    with pytest.raises(TimestampError, match="does not embed the certificate"):
        verify_timestamp(token, MESSAGE, trust)


@pytest.mark.parametrize(
    ("token", "error"),
    [
        (b"", "not a DER TimeStampResp"),
        (b"\x30\x03\x02\x01", "not a DER TimeStampResp"),
        (b"garbage", "not a DER TimeStampResp"),
        (b"\x30" * (MAX_TOKEN_SIZE + 1), "more than"),
    ],
    ids=["empty", "truncated", "garbage", "oversized"],
)
def test_malformed_token(trust: TrustStore, token: bytes, error: str) -> None:
    with pytest.raises(TimestampError, match=error):
        verify_timestamp(token, MESSAGE, trust)


def test_truncated_real_token(authority: TimestampAuthority, trust: TrustStore) -> None:
    token = request_timestamp_from(authority.respond, MESSAGE)
    with pytest.raises(TimestampError, match="not a DER TimeStampResp"):
        verify_timestamp(token[:-1], MESSAGE, trust)
