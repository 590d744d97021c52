"""Verifying an RFC 3161 timestamp token over a message.

The token is the DER of a whole TimeStampResp, as :func:`request_timestamp`
returns it. :func:`verify_timestamp` runs the steps of ``specs/timestamp.md``
section "Verification" in order and stops at the first that fails, with a
:class:`~secmark.errors.TimestampError` naming it. Steps 1 to 11 are checked
here, so that the error says precisely what is wrong; step 12 hands the token
to rfc3161-client, which builds the chain with OpenSSL at genTime and
re-checks status, signature, nonce, policy, extended key usage and imprint.
Step 8 also refuses a genTime later than the verifier's clock by more than
:data:`MAX_CLOCK_SKEW`: a token from the future is forged or from a TSA whose
clock is wrong, and either way dates nothing.

:func:`verify_timestamp_unanchored` runs the same steps without a trust
store (for a requester that has none yet): it checks the token's signature
and its embedded certificate chain as far as the token carries it, which
shows the token is intact, never that its TSA is trusted.

Every failure, hostile bytes included, is a ``TimestampError``: what the
parsers raise on malformed input (:data:`MALFORMED_INPUT_ERRORS`) is turned
into one.

What the caller must still check: that ``message`` is the bytes it means to
date (a commitment id), and what genTime means for its protocol.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from typing import Final

from asn1crypto import cms, core, parser, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from rfc3161_client import VerificationError, VerifierBuilder, decode_timestamp_response

from secmark.errors import TimestampError
from secmark.timestamp._tsp import (
    HASH_ALGORITHMS,
    MALFORMED_INPUT_ERRORS,
    TimeStampResp,
    describe_status,
    imprint,
    load_response,
)
from secmark.timestamp.trust import TrustStore

__all__ = [
    "MAX_CLOCK_SKEW",
    "MAX_EMBEDDED_CHAIN",
    "UnanchoredTimestamp",
    "VerifiedTimestamp",
    "verify_timestamp",
    "verify_timestamp_unanchored",
]

MAX_CLOCK_SKEW: Final = datetime.timedelta(minutes=5)
"""How far a genTime may lie after the verifier's clock and still be accepted:
clocks of honest TSAs and verifiers drift by seconds, and the built-in TSA
backdates its certificates by the same five minutes. More is a token from the
future (a forger's or a TSA with a wrong clock), which is refused."""

MAX_EMBEDDED_CHAIN: Final = 8
"""Most certificates :func:`verify_timestamp_unanchored` follows up from the
TSA certificate: real TSA chains have two to four; the bound keeps a hostile
token from making the walk long."""

_UNIVERSAL: Final = 0
_CONSTRUCTED: Final = 1
_SET_TAG: Final = 17

# Digests accepted in the CMS layer (message-digest attribute, signature):
# SHA-1 is collision-broken, and a signer can always use SHA-256.
_SIGNATURE_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
# ESS certificate hashes identify, they do not sign: ESSCertID (v1) is SHA-1
# by definition, and the signature check already binds the key.
_ESS_HASHES: Final = ("sha1", "sha256", "sha384", "sha512")


@dataclass(frozen=True)
class VerifiedTimestamp:
    """What a token that verified says, and who said it.

    ``gen_time`` is tz-aware UTC. Fingerprints are SHA-256 over the DER
    certificate, lowercase hex.
    """

    gen_time: datetime.datetime
    serial_number: int
    policy_oid: str
    hash_algorithm: str
    tsa_subject: str
    tsa_certificate_sha256: str
    root_certificate_sha256: str


@dataclass(frozen=True)
class UnanchoredTimestamp:
    """What an intact token says, checked against no trust store.

    The token's signature, its ESS binding, its TSA certificate, genTime and
    the imprint all check out, and so does the chain of certificates the
    token embeds, from the TSA certificate up: ``chain`` holds their
    subjects (RFC 4514), TSA first, each issued by the next. The chain ends
    at a self-signed certificate (``self_signed_top``), or where the token
    embeds no issuer of the last one. Anyone can make a key and such a
    chain: this is NOT a trusted time. ``gen_time`` is tz-aware UTC.
    """

    gen_time: datetime.datetime
    serial_number: int
    policy_oid: str
    hash_algorithm: str
    tsa_subject: str
    tsa_certificate_sha256: str
    chain: tuple[str, ...]
    self_signed_top: bool

    def describe_chain(self) -> str:
        """The chain checked, in words, ending with why it stops."""
        path = " <- ".join(self.chain)
        if self.self_signed_top:
            return f"{path} (self-signed, embedded in the token: not a trust anchor)"
        return f"{path} (its issuer is not embedded in the token)"


@dataclass(frozen=True)
class _Token:
    """The parts of a parsed token the steps look at."""

    tst_info: tsp.TSTInfo
    tst_info_der: bytes
    signer_info: cms.SignerInfo
    signed_attributes: dict[str, core.Asn1Value]
    signer: x509.Certificate
    signer_asn1: asn1_x509.Certificate
    embedded: tuple[asn1_x509.Certificate, ...]


def _fingerprint(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def verify_timestamp(
    token_der: bytes,
    message: bytes,
    trust_store: TrustStore,
    *,
    nonce: int | None = None,
    now: datetime.datetime | None = None,
) -> VerifiedTimestamp:
    """Check that ``token_der`` dates ``message`` and was issued by a trusted TSA.

    ``nonce``, when given, must be the nonce of the request that obtained the
    token (only its requester knows it; a stored token is verified without).
    ``now`` is the verifier's clock (tz-aware; default: the real UTC clock):
    a genTime later than ``now + MAX_CLOCK_SKEW`` is refused.

    Raises:
        TimestampError: the token is malformed or oversized, or one of the
            steps of ``specs/timestamp.md`` fails; the message names the step;
            or ``now`` is naive.
    """
    now = _verifier_time(now)
    try:
        return _verify(token_der, message, trust_store, nonce, now)
    except MALFORMED_INPUT_ERRORS as error:
        # asn1crypto and cryptography parse some fields lazily (certificate
        # extensions, names); what they refuse there is a malformed token.
        raise TimestampError(f"the timestamp token is malformed: {_reason(error)}") from None


def verify_timestamp_unanchored(
    token_der: bytes,
    message: bytes,
    *,
    nonce: int | None = None,
    now: datetime.datetime | None = None,
) -> UnanchoredTimestamp:
    """Check that ``token_der`` is an intact token dating ``message``, trusting no one.

    Steps 1 to 10 of ``specs/timestamp.md`` section 5.3 (everything but the
    policy and the chain to a trusted root), then the certificates the token
    embeds: from the TSA certificate up, each issuer found among them must
    have signed the certificate below it, be a CA (basicConstraints cA) and
    be valid at genTime, up to a self-signed certificate (whose signature is
    checked too) or to the first certificate whose issuer is not embedded.
    A requester with no trust store uses this before it stores a token, so
    that it never stores one that no one could verify.

    This proves nothing about who issued the token: use
    :func:`verify_timestamp` with a :class:`TrustStore` for a trusted time.

    Raises:
        TimestampError: as :func:`verify_timestamp` for steps 1 to 10, or an
            embedded certificate that does not sign, is no CA, or was not
            valid at genTime.
    """
    now = _verifier_time(now)
    try:
        _, token = _checked_token(token_der, message, nonce, now)
        chain, self_signed = _embedded_chain(token)
    except MALFORMED_INPUT_ERRORS as error:
        raise TimestampError(f"the timestamp token is malformed: {_reason(error)}") from None
    tst_info = token.tst_info
    return UnanchoredTimestamp(
        gen_time=tst_info["gen_time"].native,
        serial_number=tst_info["serial_number"].native,
        policy_oid=tst_info["policy"].dotted,
        hash_algorithm=tst_info["message_imprint"]["hash_algorithm"]["algorithm"].native,
        tsa_subject=token.signer.subject.rfc4514_string(),
        tsa_certificate_sha256=_fingerprint(token.signer),
        chain=tuple(certificate.subject.rfc4514_string() for certificate in chain),
        self_signed_top=self_signed,
    )


def _reason(error: Exception) -> str:
    """A parser's complaint, or its exception's name when it has no text."""
    return str(error) or type(error).__name__


def _verifier_time(now: datetime.datetime | None) -> datetime.datetime:
    if now is None:
        return datetime.datetime.now(datetime.timezone.utc)
    if now.tzinfo is None:
        raise TimestampError("the verifier's clock gave a naive datetime; it must be tz-aware")
    return now


def _verify(
    token_der: bytes,
    message: bytes,
    trust_store: TrustStore,
    nonce: int | None,
    now: datetime.datetime,
) -> VerifiedTimestamp:
    canonical_der, token = _checked_token(token_der, message, nonce, now)
    tst_info = token.tst_info
    gen_time: datetime.datetime = tst_info["gen_time"].native
    algorithm = tst_info["message_imprint"]["hash_algorithm"]["algorithm"].native
    # 11. The policy, if the trust store requires one.
    policy_oid = tst_info["policy"].dotted
    if trust_store.policy_oid is not None and policy_oid != trust_store.policy_oid:
        raise TimestampError(
            f"the token was issued under policy {policy_oid}, not the required "
            f"{trust_store.policy_oid}"
        )
    root = _check_chain(canonical_der, message, trust_store, token, nonce)
    return VerifiedTimestamp(
        gen_time=gen_time,
        serial_number=tst_info["serial_number"].native,
        policy_oid=policy_oid,
        hash_algorithm=algorithm,
        tsa_subject=token.signer.subject.rfc4514_string(),
        tsa_certificate_sha256=_fingerprint(token.signer),
        root_certificate_sha256=_fingerprint(root),
    )


def _checked_token(
    token_der: bytes, message: bytes, nonce: int | None, now: datetime.datetime
) -> tuple[bytes, _Token]:
    """Steps 1 to 10; the token's DER (unsigned SETs in DER order) and its parts."""
    canonical_der, response = load_response(token_der, what="the timestamp token")
    token = _parse(response)
    _check_signature(token)
    _check_ess_binding(token)
    _check_tsa_certificate(token)
    _check_not_future(token, now)
    tst_info = token.tst_info
    algorithm = tst_info["message_imprint"]["hash_algorithm"]["algorithm"].native
    # 9. The imprint is the accepted hash of the message.
    if algorithm not in HASH_ALGORITHMS:
        raise TimestampError(
            f"the token's imprint uses {algorithm}; only {', '.join(HASH_ALGORITHMS)} are accepted"
        )
    if tst_info["message_imprint"]["hashed_message"].native != imprint(message, algorithm):
        raise TimestampError(
            "the token is for another message: its imprint is not the "
            f"{algorithm} of the message given"
        )
    # 10. The nonce, if the caller knows it.
    if nonce is not None and tst_info["nonce"].native != nonce:
        raise TimestampError(
            f"the token's nonce {tst_info['nonce'].native} is not the request's {nonce}: "
            "it answers another request (replayed or mixed up)"
        )
    return canonical_der, token


def _parse(response: TimeStampResp) -> _Token:
    """Steps 2 to 4: status, shape of the SignedData, signer certificate (step 1: the caller)."""
    status = response["status"]
    if status["status"].native != "granted":
        raise TimestampError(
            f"the token is not a granted timestamp: status {describe_status(status)}"
        )
    content_info = response["time_stamp_token"]
    if isinstance(content_info, core.Void) or content_info["content_type"].native != "signed_data":
        raise TimestampError("the token carries no CMS SignedData")
    signed_data = content_info["content"]
    encapsulated = signed_data["encap_content_info"]
    if encapsulated["content_type"].native != "tst_info" or isinstance(
        encapsulated["content"], core.Void
    ):
        raise TimestampError("the token's SignedData does not encapsulate a TSTInfo")
    if len(signed_data["signer_infos"]) != 1:
        raise TimestampError(
            f"the token has {len(signed_data['signer_infos'])} signers; RFC 3161 requires one"
        )
    signer_info = signed_data["signer_infos"][0]
    sid = signer_info["sid"]
    if sid.name != "issuer_and_serial_number":
        raise TimestampError("the token's signer is not identified by issuer and serial number")
    certificates = signed_data["certificates"]
    embedded = tuple(
        choice.chosen
        for choice in ([] if isinstance(certificates, core.Void) else certificates)
        if choice.name == "certificate"
    )
    for candidate in embedded:
        if (
            candidate.issuer.dump() == sid.chosen["issuer"].dump()
            and candidate.serial_number == sid.chosen["serial_number"].native
        ):
            return _Token(
                tst_info=encapsulated["content"].parsed,
                tst_info_der=encapsulated["content"].contents,
                signer_info=signer_info,
                signed_attributes=_signed_attributes(signer_info),
                signer=_load_certificate(candidate, "TSA certificate"),
                signer_asn1=candidate,
                embedded=embedded,
            )
    raise TimestampError(
        "the token does not embed the certificate that signed it; request tokens with certReq set"
    )


def _load_certificate(certificate: asn1_x509.Certificate, what: str) -> x509.Certificate:
    """A certificate of the token, every field the checks read parsed now.

    cryptography parses lazily: the version, the key (an unknown curve) and
    the extensions fail only when first read, so they are read here.
    """
    if certificate.serial_number <= 0:
        # RFC 5280 section 4.1.2.2; cryptography deprecates loading such certificates.
        raise TimestampError(f"the token's {what} has a serial number that is not positive")
    try:
        loaded = x509.load_der_x509_certificate(certificate.dump())
        loaded.public_key(), loaded.subject, loaded.issuer, loaded.extensions
        loaded.not_valid_before_utc, loaded.not_valid_after_utc  # noqa: B018
    except MALFORMED_INPUT_ERRORS as error:
        raise TimestampError(
            f"the token's {what} is malformed or of a kind not supported ({_reason(error)}); "
            "secmark accepts X.509 v3 certificates with ECDSA (P-256, P-384, P-521) or RSA keys"
        ) from None
    return loaded


def _signed_attributes(signer_info: cms.SignerInfo) -> dict[str, core.Asn1Value]:
    """The single value of each signed attribute, by type; duplicates refused."""
    attributes = signer_info["signed_attrs"]
    if isinstance(attributes, core.Void):
        raise TimestampError("the token's signer has no signed attributes")
    values: dict[str, core.Asn1Value] = {}
    for attribute in attributes:
        name = attribute["type"].native
        if name in values or len(attribute["values"]) != 1:
            raise TimestampError(f"the token's signed attribute {name} is not single-valued")
        values[name] = attribute["values"][0]
    return values


def _check_signature(token: _Token) -> None:
    """Step 5: content-type and message-digest attributes, then the signature."""
    signer_info = token.signer_info
    attributes = token.signed_attributes
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    if digest_name not in _SIGNATURE_HASHES:
        raise TimestampError(f"the token's signer digest {digest_name} is not accepted")
    if "content_type" not in attributes or attributes["content_type"].native != "tst_info":
        raise TimestampError("the token's content-type attribute is missing or not id-ct-TSTInfo")
    digest = hashes.Hash(_SIGNATURE_HASHES[digest_name]())
    digest.update(token.tst_info_der)
    if (
        "message_digest" not in attributes
        or attributes["message_digest"].native != digest.finalize()
    ):
        raise TimestampError(
            "the token's TSTInfo does not match its signed message-digest: "
            "the token was altered after signing"
        )
    # The signature covers the attributes with the SET tag (0x31) in place of
    # the [0] IMPLICIT tag (0xA0) they carry here; the contents are the ones
    # received, never re-sorted (nor re-encoded: asn1crypto's dump() would
    # re-encode them when their length byte ends in 0x80).
    signed_bytes = parser.emit(
        _UNIVERSAL, _CONSTRUCTED, _SET_TAG, signer_info["signed_attrs"].contents
    )
    signature = signer_info["signature"].native
    key = token.signer.public_key()
    signature_hash = _SIGNATURE_HASHES[digest_name]()
    if signer_info["signature_algorithm"]["algorithm"].native == "rsassa_pss":
        raise TimestampError("RSA-PSS token signatures are not supported (use ECDSA or RSA PKCS#1)")
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed_bytes, ec.ECDSA(signature_hash))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed_bytes, padding.PKCS1v15(), signature_hash)
        else:
            raise TimestampError(
                f"the TSA key type {type(key).__name__} is not supported (use ECDSA or RSA)"
            )
    except InvalidSignature:
        raise TimestampError(
            "the token's signature does not verify with its TSA certificate: "
            "the token was altered or forged"
        ) from None


def _check_ess_binding(token: _Token) -> None:
    """Step 6: the ESS signing-certificate(-v2) attribute names the signer's certificate.

    Without this check a token could be re-attributed to another certificate
    of the same key (RFC 5035 section 3); rfc3161-client does not make it.
    """
    attributes = token.signed_attributes
    if "signing_certificate_v2" in attributes:
        identifiers = attributes["signing_certificate_v2"]["certs"]
    elif "signing_certificate" in attributes:
        identifiers = attributes["signing_certificate"]["certs"]
    else:
        raise TimestampError(
            "the token has no ESS signing-certificate attribute (RFC 3161 section 2.4.1)"
        )
    if not len(identifiers):
        raise TimestampError("the token's ESS signing-certificate attribute names no certificate")
    # The first ESSCertID is the signer's (RFC 5035 section 4); ESSCertID v1 is SHA-1.
    ess = identifiers[0]
    hash_name = (
        ess["hash_algorithm"]["algorithm"].native
        if "signing_certificate_v2" in attributes
        else "sha1"
    )
    if hash_name not in _ESS_HASHES:
        raise TimestampError(f"the token's ESS certificate hash {hash_name} is not accepted")
    certificate_hash = hashlib.new(hash_name, token.signer_asn1.dump()).digest()
    issuer_serial = ess["issuer_serial"]
    names_signer = ess["cert_hash"].native == certificate_hash and (
        isinstance(issuer_serial, core.Void)
        or (
            issuer_serial["serial_number"].native == token.signer_asn1.serial_number
            and any(
                name.name == "directory_name" and name.chosen == token.signer_asn1.issuer
                for name in issuer_serial["issuer"]
            )
        )
    )
    if not names_signer:
        raise TimestampError(
            "the token's ESS signing-certificate attribute names another certificate "
            "than the one that signed it"
        )


def _check_tsa_certificate(token: _Token) -> None:
    """Steps 7 and 8: the TSA certificate's purpose, name and validity at genTime."""
    certificate = token.signer
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise TimestampError(
            f"the TSA certificate {certificate.subject.rfc4514_string()} has no "
            "extendedKeyUsage; RFC 3161 section 2.3 requires a critical timeStamping one"
        ) from None
    if list(usage.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TimestampError(
            "the TSA certificate's extendedKeyUsage must be timeStamping alone "
            "(RFC 3161 section 2.3)"
        )
    if not usage.critical:
        raise TimestampError(
            "the TSA certificate's timeStamping extendedKeyUsage is not marked critical "
            "(RFC 3161 section 2.3)"
        )
    tsa_name = token.tst_info["tsa"]
    if not isinstance(tsa_name, core.Void):
        alternative_names = token.signer_asn1.subject_alt_name_value or []
        if not (
            (tsa_name.name == "directory_name" and tsa_name.chosen == token.signer_asn1.subject)
            or any(tsa_name.dump() == name.dump() for name in alternative_names)
        ):
            raise TimestampError("the token's tsa name is not a name of its signer's certificate")
    gen_time: datetime.datetime = token.tst_info["gen_time"].native
    if not certificate.not_valid_before_utc <= gen_time <= certificate.not_valid_after_utc:
        raise TimestampError(
            f"the TSA certificate was not valid at genTime {gen_time.isoformat()}: it is "
            f"valid from {certificate.not_valid_before_utc.isoformat()} to "
            f"{certificate.not_valid_after_utc.isoformat()}"
        )


def _check_not_future(token: _Token, now: datetime.datetime) -> None:
    """Step 8, second part: genTime is not after the verifier's clock (beyond the skew).

    A token dated in the future cannot date anything yet; accepting it would
    let whoever holds a TSA key (or a TSA with a wrong clock) issue tokens that
    become "valid" later, and rfc3161-client checks the chain at genTime only.
    """
    gen_time: datetime.datetime = token.tst_info["gen_time"].native
    if gen_time > now + MAX_CLOCK_SKEW:
        raise TimestampError(
            f"the token's genTime {gen_time.isoformat()} lies in the future of the "
            f"verifier's clock {now.isoformat()} (more than "
            f"{int(MAX_CLOCK_SKEW.total_seconds())} s of clock skew)"
        )


def _embedded_chain(token: _Token) -> tuple[list[x509.Certificate], bool]:
    """The certificates the token embeds, from its TSA certificate up, each checked.

    Returns the chain (TSA first) and whether it ends at a self-signed one.
    """
    gen_time: datetime.datetime = token.tst_info["gen_time"].native
    embedded = [_load_certificate(c, "embedded certificate") for c in token.embedded]
    chain = [token.signer]
    while True:
        current = chain[-1]
        if current.issuer == current.subject:
            _check_issued_by(current, current)
            return chain, True
        issuer = next((c for c in embedded if c.subject == current.issuer and c not in chain), None)
        if issuer is None:
            return chain, False
        if len(chain) >= MAX_EMBEDDED_CHAIN:
            raise TimestampError(
                f"the token embeds a chain longer than {MAX_EMBEDDED_CHAIN} certificates"
            )
        _check_issued_by(current, issuer)
        _check_issuer_is_ca(issuer, gen_time)
        chain.append(issuer)


# mypy does not follow a starred tuple in an except clause: named tuples.
_BAD_SIGNATURE_OR_MALFORMED: Final[tuple[type[Exception], ...]] = (
    InvalidSignature,
    *MALFORMED_INPUT_ERRORS,
)
_REFUSED_OR_MALFORMED: Final[tuple[type[Exception], ...]] = (
    VerificationError,
    *MALFORMED_INPUT_ERRORS,
)


def _check_issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> None:
    subject = certificate.subject.rfc4514_string()
    try:
        certificate.verify_directly_issued_by(issuer)
    except _BAD_SIGNATURE_OR_MALFORMED:
        raise TimestampError(
            f"the certificate {subject} in the token is not signed by its issuer "
            f"{issuer.subject.rfc4514_string()}: the token's certificate chain is broken"
        ) from None


def _check_issuer_is_ca(issuer: x509.Certificate, gen_time: datetime.datetime) -> None:
    subject = issuer.subject.rfc4514_string()
    try:
        is_ca = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise TimestampError(
            f"the certificate {subject} in the token issues another one but is not a CA "
            "(no basicConstraints cA)"
        )
    if not issuer.not_valid_before_utc <= gen_time <= issuer.not_valid_after_utc:
        raise TimestampError(
            f"the certificate {subject} in the token was not valid at genTime "
            f"{gen_time.isoformat()}"
        )


def _check_chain(
    token_der: bytes,
    message: bytes,
    trust_store: TrustStore,
    token: _Token,
    nonce: int | None,
) -> x509.Certificate:
    """Step 12: rfc3161-client verifies the token against each root in turn.

    Returns the root the TSA certificate chains to.
    """
    response = decode_timestamp_response(token_der)
    policy = (
        None if trust_store.policy_oid is None else x509.ObjectIdentifier(trust_store.policy_oid)
    )
    failure = "no root"
    for root in trust_store.roots:
        verifier = VerifierBuilder(
            roots=[root],
            intermediates=list(trust_store.intermediates),
            policy_id=policy,
            nonce=nonce,
        ).build()
        try:
            verifier.verify_message(response, message)
        except _REFUSED_OR_MALFORMED as error:
            failure = str(error) or type(error).__name__
            continue
        return root
    raise TimestampError(
        f"the TSA certificate {token.signer.subject.rfc4514_string()} does not chain to a "
        f"trusted root at genTime: {failure}"
    )
