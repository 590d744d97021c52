"""Fixtures of the timestamp tests: authorities, trust stores, custom PKIs."""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secmark.crypto import INTERACTIVE_KDF
from secmark.timestamp import DEFAULT_POLICY_OID, TimestampAuthority, TrustStore
from secmark.timestamp.authority import (
    CONFIG_FILE,
    ROOT_CERTIFICATE_FILE,
    SERIAL_FILE,
    TSA_CERTIFICATE_FILE,
    TSA_KEY_FILE,
    encode_tsa_key,
)

MESSAGE = hashlib.sha256(b"secmark test commitment").digest()
OTHER_MESSAGE = hashlib.sha256(b"another commitment").digest()
PASSPHRASE = b"test passphrase"
UTC = datetime.timezone.utc
TIME_STAMPING = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING])


def tst_info(token: bytes) -> tsp.TSTInfo:
    signed_data = tsp.TimeStampResp.load(token)["time_stamp_token"]["content"]
    return signed_data["encap_content_info"]["content"].parsed


@pytest.fixture
def authority(tmp_path: Path) -> TimestampAuthority:
    return TimestampAuthority.initialize(
        tmp_path / "tsa", passphrase=PASSPHRASE, kdf=INTERACTIVE_KDF
    )


@pytest.fixture
def trust(authority: TimestampAuthority) -> TrustStore:
    return TrustStore(roots=(authority.root_certificate,), policy_oid=DEFAULT_POLICY_OID)


@dataclass(frozen=True)
class Pki:
    """A root and a TSA certificate made outside TimestampAuthority.initialize."""

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    tsa_key: ec.EllipticCurvePrivateKey
    tsa: x509.Certificate

    def issue(
        self,
        *,
        serial: int | None = None,
        key_usage: x509.ExtendedKeyUsage | None = None,
        critical: bool = True,
    ) -> x509.Certificate:
        """Another certificate for the TSA key under the same root."""
        return _tsa_certificate(
            self.root_key,
            self.root,
            self.tsa_key,
            key_usage,
            critical,
            serial or x509.random_serial_number(),
        )


def _tsa_certificate(
    root_key: ec.EllipticCurvePrivateKey,
    root: x509.Certificate,
    tsa_key: ec.EllipticCurvePrivateKey,
    key_usage: x509.ExtendedKeyUsage | None,
    critical: bool,
    serial: int,
) -> x509.Certificate:
    now = datetime.datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "custom TSA")]))
        .issuer_name(root.subject)
        .public_key(tsa_key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=critical)
    return builder.sign(root_key, hashes.SHA256())


def make_pki(
    *,
    key_usage: x509.ExtendedKeyUsage | None = TIME_STAMPING,
    critical: bool = True,
) -> Pki:
    root_key = ec.generate_private_key(ec.SECP256R1())
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "custom root")])
    now = datetime.datetime.now(UTC)
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    tsa = _tsa_certificate(
        root_key, root, tsa_key, key_usage, critical, x509.random_serial_number()
    )
    return Pki(root_key, root, tsa_key, tsa)


def open_custom_authority(directory: Path, pki: Pki) -> TimestampAuthority:
    """An authority whose certificates come from ``pki``, in the on-disk layout."""
    directory.mkdir(mode=0o700)
    pem = serialization.Encoding.PEM
    (directory / ROOT_CERTIFICATE_FILE).write_bytes(pki.root.public_bytes(pem))
    (directory / TSA_CERTIFICATE_FILE).write_bytes(pki.tsa.public_bytes(pem))
    key_path = directory / TSA_KEY_FILE
    key_path.write_bytes(encode_tsa_key(pki.tsa_key, None))
    key_path.chmod(0o600)
    (directory / SERIAL_FILE).write_text(json.dumps({"last_serial": 0}))
    (directory / CONFIG_FILE).write_text(
        json.dumps({"version": 1, "policy_oid": DEFAULT_POLICY_OID})
    )
    return TimestampAuthority.open(directory, passphrase=None)
