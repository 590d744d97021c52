"""Certificates for the tests' HTTPS servers: a CA, and server and client
certificates it signs, valid for a day, written as PEM files."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_ADDRESS: tuple[x509.GeneralName, ...] = (
    x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
)
"""What a server certificate names by default: the tests' servers' address."""


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    usage: x509.ObjectIdentifier | None,
    names: Sequence[x509.GeneralName] = LOOPBACK_ADDRESS,
) -> x509.Certificate:
    """A CA certificate (``issuer`` None: self-signed), or one ``issuer``
    signs for ``usage``; a server certificate names ``names``."""
    now = datetime.now(timezone.utc)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def write_pem(path: Path, *items: x509.Certificate | ec.EllipticCurvePrivateKey) -> Path:
    """``items`` as one PEM file (keys unencrypted, PKCS#8), mode 0600."""
    data = b""
    for item in items:
        if isinstance(item, x509.Certificate):
            data += item.public_bytes(serialization.Encoding.PEM)
        else:
            data += item.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
    path.write_bytes(data)
    path.chmod(0o600)
    return path
