"""Which time-stamping authorities a verifier trusts."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509

from secmark.errors import EncodingError
from secmark.files import read_regular_file

__all__ = ["TrustStore"]


def _load_pem(data: bytes, what: str) -> tuple[x509.Certificate, ...]:
    try:
        certificates = tuple(x509.load_pem_x509_certificates(data))
        # cryptography parses some fields lazily: read them now, so that a
        # malformed certificate fails here with a typed error.
        for certificate in certificates:
            certificate.subject, certificate.issuer, certificate.public_key()
            certificate.not_valid_before_utc, certificate.not_valid_after_utc  # noqa: B018
            certificate.extensions  # noqa: B018
    except ValueError as error:
        raise EncodingError(f"{what}: not PEM certificates, or malformed ones: {error}") from None
    return certificates


# A PEM file of a few roots and intermediates; far beyond any real one.
_MAX_PEM_FILE = 16 << 20


def _read(paths: Iterable[str | os.PathLike[str]]) -> bytes:
    chunks = []
    for path in paths:
        chunks.append(read_regular_file(path, max_size=_MAX_PEM_FILE, what="certificate file"))
    return b"\n".join(chunks)


@dataclass(frozen=True)
class TrustStore:
    """Root certificates of trusted TSAs, helper certificates, and a policy.

    ``roots`` are trust anchors: a token verifies only if its signer chains to
    one of them, with every certificate valid at the token's genTime.
    ``intermediates`` are not trusted by themselves; they only help build a
    chain from the TSA certificate (which tokens must embed) to a root.
    ``policy_oid``, when set, is the only TSA policy accepted.

    Raises (on construction):
        EncodingError: no root, a root that is not self-signed (OpenSSL,
            which checks the chain, accepts only chains that end in one), or
            a policy that is not a dotted OID.
    """

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    policy_oid: str | None = None

    def __post_init__(self) -> None:
        if self.policy_oid is not None:
            try:
                x509.ObjectIdentifier(self.policy_oid)
            except ValueError:
                raise EncodingError(f"{self.policy_oid!r} is not a dotted OID") from None
        if not self.roots:
            raise EncodingError("a trust store needs at least one root certificate")
        for root in self.roots:
            if root.issuer != root.subject:
                raise EncodingError(
                    f"root {root.subject.rfc4514_string()} is not self-signed; give the CA "
                    "at the top of the chain as root and the others as intermediates"
                )

    @classmethod
    def from_pem(
        cls,
        roots: bytes,
        intermediates: bytes = b"",
        *,
        policy_oid: str | None = None,
    ) -> TrustStore:
        """A store from PEM bytes, each holding any number of certificates.

        Raises:
            EncodingError: malformed PEM or no root.
        """
        return cls(
            roots=_load_pem(roots, "the roots"),
            intermediates=_load_pem(intermediates, "the intermediates") if intermediates else (),
            policy_oid=policy_oid,
        )

    @classmethod
    def from_pem_files(
        cls,
        roots: Iterable[str | os.PathLike[str]],
        intermediates: Iterable[str | os.PathLike[str]] = (),
        *,
        policy_oid: str | None = None,
    ) -> TrustStore:
        """A store from PEM files, each holding any number of certificates.

        Raises:
            EncodingError: an unreadable file, malformed PEM or no root.
        """
        return cls.from_pem(_read(roots), _read(intermediates), policy_oid=policy_oid)
