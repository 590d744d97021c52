"""A small RFC 3161 time-stamping authority, for parties that run their own.

:meth:`TimestampAuthority.initialize` creates, in a directory of its own, a
self-signed root certificate, a TSA certificate it issues and the TSA's
signing key; :meth:`TimestampAuthority.open` loads them and
:meth:`TimestampAuthority.respond` answers a DER TimeStampReq with a DER
TimeStampResp. The profile (algorithms, certificate extensions, serial
numbers, failure answers) is stated in ``specs/timestamp.md``; tokens it
issues verify with :func:`secmark.timestamp.verify_timestamp`, with
``openssl ts -verify`` and with rfc3161-client.

The root's private key is not kept: it signs the TSA certificate once, at
initialization, and is then discarded, so stealing the directory gives a
forger the TSA key (whose certificate expires) but never a way to mint
another TSA certificate under the same root.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from asn1crypto import algos, cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secmark.crypto.passphrase_box import (
    BOX_FIELDS,
    MODERATE_KDF,
    PROTECTED,
    UNPROTECTED,
    KdfParams,
    open_box,
    seal_box,
)
from secmark.encoding import b64url_decode, b64url_encode, canonical_json, parse_canonical_json
from secmark.errors import EncodingError, KeyMaterialError, SecmarkError, TimestampError
from secmark.files import PUBLIC_FILE_MODE, SECRET_FILE_MODE, write_atomic
from secmark.timestamp._tsp import HASH_ALGORITHMS, MALFORMED_INPUT_ERRORS, TimeStampResp

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_POLICY_OID",
    "DEFAULT_VALIDITY",
    "MAX_REQUEST_SIZE",
    "MAX_SERIAL",
    "ROOT_CERTIFICATE_FILE",
    "SERIAL_FILE",
    "TSA_CERTIFICATE_FILE",
    "TSA_KEY_FILE",
    "TimestampAuthority",
    "decode_tsa_key",
    "encode_tsa_key",
]

DEFAULT_POLICY_OID: Final = "2.25.335186766500734563308664238787900305342"
"""TSA policy of the built-in authority: an OID under the UUID arc (X.667),
which needs no registration and collides with no one's."""

DEFAULT_VALIDITY: Final = datetime.timedelta(days=3 * 365)
"""Lifetime of the certificates :meth:`TimestampAuthority.initialize` makes.

Tokens stay verifiable after the TSA certificate expires (validity is checked
at genTime), so this bounds only how long a stolen TSA key is useful.
"""

MAX_REQUEST_SIZE: Final = 4096
"""Largest TimeStampReq answered, in bytes. A request with a SHA-512 imprint,
a nonce and a policy is about 120 bytes; the bound stops memory exhaustion."""

MAX_SERIAL: Final = 2**159 - 1
"""Largest serial number issued: RFC 3161 section 2.4.2 lets verifiers refuse
serials longer than 160 bits (20 octets of a positive DER INTEGER)."""

ROOT_CERTIFICATE_FILE: Final = "root.pem"
TSA_CERTIFICATE_FILE: Final = "tsa.pem"
TSA_KEY_FILE: Final = "tsa-key.json"
SERIAL_FILE: Final = "serial.json"
CONFIG_FILE: Final = "authority.json"
_LOCK_FILE: Final = ".serial.lock"
_CONFIG_VERSION: Final = 1

# Backdating notBefore tolerates clocks of verifiers that lag a little.
_CLOCK_SKEW: Final = datetime.timedelta(minutes=5)

Clock = Callable[[], datetime.datetime]


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _now(clock: Clock) -> datetime.datetime:
    """The clock's time in UTC, in whole seconds (genTime carries no fraction)."""
    moment = clock()
    if moment.tzinfo is None:
        raise TimestampError("the authority's clock returned a naive datetime; it must be tz-aware")
    return moment.astimezone(datetime.timezone.utc).replace(microsecond=0)


def _reject(failure: str, text: str) -> bytes:
    """A TimeStampResp with status rejection, one PKIFailureInfo bit and a text."""
    return TimeStampResp(
        {
            "status": tsp.PKIStatusInfo(
                {
                    "status": "rejection",
                    "status_string": tsp.PKIFreeText([text]),
                    "fail_info": tsp.PKIFailureInfo({failure}),
                }
            )
        }
    ).dump()


def _signing_certificate_v2(certificate: asn1_x509.Certificate) -> tsp.SigningCertificateV2:
    """The ESS attribute naming ``certificate`` by SHA-256 hash and issuer/serial (RFC 5035)."""
    issuer_serial = {
        "issuer": [asn1_x509.GeneralName(name="directory_name", value=certificate.issuer)],
        "serial_number": certificate.serial_number,
    }
    # hash_algorithm is left out: SHA-256 is its DEFAULT, which DER omits.
    identifier = tsp.ESSCertIDv2(
        {"cert_hash": hashlib.sha256(certificate.dump()).digest(), "issuer_serial": issuer_serial}
    )
    return tsp.SigningCertificateV2({"certs": [identifier]})


def _key_usage(*, key_cert_sign: bool) -> x509.KeyUsage:
    """keyCertSign and cRLSign for the root, digitalSignature alone for the TSA."""
    return x509.KeyUsage(
        digital_signature=not key_cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _make_certificates(
    common_name: str, not_before: datetime.datetime, not_after: datetime.datetime
) -> tuple[x509.Certificate, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A root, the TSA certificate it issues, and the TSA key (the root key is dropped)."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} root")])
    tsa_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    tsa = (
        x509.CertificateBuilder()
        .subject_name(tsa_name)
        .issuer_name(root_name)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=False), critical=True)
        # RFC 3161 section 2.3: the only purpose, and critical.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(tsa_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    return root, tsa, tsa_key


@dataclass(frozen=True)
class _Request:
    """What is taken from a TimeStampReq that passed the checks."""

    message_imprint: tsp.MessageImprint
    nonce: int | None
    cert_req: bool


class _RequestRefused(Exception):
    """Internal: a request to answer with a rejection (failure bit, text)."""

    def __init__(self, failure: str, text: str) -> None:
        super().__init__(text)
        self.failure = failure
        self.text = text


class _SerialCounter:
    """Serial numbers that never repeat, across threads, processes and restarts.

    The last serial issued is kept in a JSON file rewritten atomically before
    the serial is handed out; a thread lock and an flock on a lock file
    serialize the read-increment-write, so two servers on one directory do not
    collide either. A crash may skip a serial, never repeat one.
    """

    def __init__(self, directory: Path) -> None:
        self._path = directory / SERIAL_FILE
        self._lock_path = directory / _LOCK_FILE
        self._lock = threading.Lock()

    @staticmethod
    def create(directory: Path) -> None:
        write_atomic(directory / SERIAL_FILE, json.dumps({"last_serial": 0}).encode())

    def next(self) -> int:
        """The next serial, already recorded on disk.

        Raises:
            TimestampError: the state cannot be read or written, or is exhausted.
        """
        with self._lock:
            try:
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, SECRET_FILE_MODE)
            except OSError as error:
                raise TimestampError(f"cannot lock the serial-number state: {error}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                serial = self._read() + 1
                if serial > MAX_SERIAL:
                    raise TimestampError("the authority has used up its serial numbers")
                write_atomic(
                    self._path,
                    json.dumps({"last_serial": serial}).encode(),
                    overwrite=True,
                )
                return serial
            except OSError as error:
                raise TimestampError(
                    f"cannot record serial number in {self._path}: {error}"
                ) from None
            finally:
                os.close(fd)  # closing releases the flock

    def _read(self) -> int:
        try:
            state = json.loads(self._path.read_bytes())
            last = state["last_serial"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise TimestampError(
                f"cannot read the serial-number state {self._path}: {error}; restore it from "
                "a backup (never reset it: serials must not repeat)"
            ) from None
        if not isinstance(last, int) or isinstance(last, bool) or not 0 <= last <= MAX_SERIAL:
            raise TimestampError(f"{self._path} holds an invalid last_serial {last!r}")
        return last


_KEY_TYPE = "secmark.tsa-key"
_KEY_VERSION = 1
# A P-256 key file is a few hundred bytes.
_MAX_KEY_FILE_SIZE = 16 * 1024


def encode_tsa_key(
    key: ec.EllipticCurvePrivateKey, passphrase: bytes | None, *, kdf: KdfParams = MODERATE_KDF
) -> bytes:
    """The TSA key file: its PKCS #8 DER in a passphrase box (Argon2id +
    XChaCha20-Poly1305, see ``secmark.crypto.passphrase_box``), or in clear
    when ``passphrase`` is None (the caller decides that is allowed)."""
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    header = {"type": _KEY_TYPE, "version": _KEY_VERSION}
    if passphrase is None:
        return canonical_json({**header, "key": b64url_encode(der), "protection": UNPROTECTED})
    return seal_box(header, der, passphrase, kdf)


def decode_tsa_key(
    data: bytes, passphrase: bytes | None, *, what: str
) -> ec.EllipticCurvePrivateKey:
    """Open a TSA key file written by :func:`encode_tsa_key`.

    Raises:
        KeyMaterialError: malformed, a wrong or missing passphrase (or one
            given for a key in clear), or not an EC private key.
    """
    try:
        document = parse_canonical_json(data, max_size=_MAX_KEY_FILE_SIZE, what=what)
        if not isinstance(document, dict) or (
            document.get("type"),
            document.get("version") if type(document.get("version")) is int else None,
        ) != (_KEY_TYPE, _KEY_VERSION):
            raise EncodingError(f"not a {_KEY_TYPE} version {_KEY_VERSION} file")
        protection = document.get("protection")
        if protection == UNPROTECTED:
            if set(document) != {"type", "version", "protection", "key"}:
                raise EncodingError("an unencrypted key file has type, version, protection, key")
            if passphrase is not None:
                raise KeyMaterialError(
                    f"{what} is not encrypted, but a passphrase was given; give none"
                )
            der = b64url_decode(document["key"], what=f"{what} key")
        elif protection == PROTECTED:
            if set(document) != {"type", "version"} | BOX_FIELDS:
                raise EncodingError("an encrypted key file has type, version and the box fields")
            der = open_box(document, passphrase, what=what)
        else:
            raise EncodingError(f"unknown protection {protection!r}")
    except EncodingError as error:
        raise KeyMaterialError(f"{what} is malformed: {error}") from None
    try:
        key = serialization.load_der_private_key(der, password=None)
    except ValueError:
        raise KeyMaterialError(f"{what} does not hold a private key") from None
    except UnsupportedAlgorithm:
        raise KeyMaterialError(
            f"{what} holds a private key of an algorithm this system does not know; "
            "a TSA key is an EC key (P-256): restore the file from a backup"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyMaterialError(f"{what} holds no EC private key")
    return key


@dataclass(frozen=True)
class TimestampAuthority:
    """A loaded TSA: its certificates, its signing key and its serial counter.

    Build one with :meth:`initialize` or :meth:`open`. :meth:`respond` may be
    called from several threads at once.
    """

    directory: Path
    root_certificate: x509.Certificate
    tsa_certificate: x509.Certificate
    policy_oid: str
    _private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    _serials: _SerialCounter = field(repr=False)
    _clock: Clock = field(repr=False, default=_utc_now)

    @classmethod
    def initialize(
        cls,
        directory: str | os.PathLike[str],
        *,
        passphrase: bytes | None,
        allow_unencrypted: bool = False,
        common_name: str = "secmark timestamp authority",
        validity: datetime.timedelta = DEFAULT_VALIDITY,
        policy_oid: str = DEFAULT_POLICY_OID,
        clock: Clock = _utc_now,
        kdf: KdfParams = MODERATE_KDF,
    ) -> TimestampAuthority:
        """Create a new authority in ``directory`` and return it opened.

        ``directory`` is created if missing and must not already hold an
        authority. The TSA key is written encrypted under ``passphrase``;
        without one, ``allow_unencrypted`` must be set explicitly. Both
        certificates are valid from ``clock()`` (minus five minutes of skew)
        for ``validity``.

        Raises:
            KeyMaterialError: no passphrase and ``allow_unencrypted`` is false,
                or an empty passphrase.
            SecmarkError: the directory already holds an authority or cannot
                be written, or ``policy_oid`` is not a dotted OID.
        """
        if passphrase is None and not allow_unencrypted:
            raise KeyMaterialError(
                "no passphrase given for the TSA key; give one, or allow an unencrypted "
                "key file explicitly (--unencrypted) if the disk is otherwise protected"
            )
        if passphrase is not None and not passphrase:
            raise KeyMaterialError("the TSA key passphrase is empty; choose a real one")
        if validity <= datetime.timedelta(0):
            raise SecmarkError("the certificate validity must be positive")
        try:
            x509.ObjectIdentifier(policy_oid)
        except ValueError:
            raise SecmarkError(f"the policy {policy_oid!r} is not a dotted OID") from None
        target = Path(directory)
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        if (target / CONFIG_FILE).exists():
            raise SecmarkError(f"{target} already holds a timestamp authority")

        not_before = _now(clock) - _CLOCK_SKEW
        root, tsa, tsa_key = _make_certificates(common_name, not_before, not_before + validity)
        write_atomic(
            target / TSA_KEY_FILE,
            encode_tsa_key(tsa_key, passphrase, kdf=kdf),
            mode=SECRET_FILE_MODE,
        )
        write_atomic(
            target / ROOT_CERTIFICATE_FILE,
            root.public_bytes(serialization.Encoding.PEM),
            mode=PUBLIC_FILE_MODE,
        )
        write_atomic(
            target / TSA_CERTIFICATE_FILE,
            tsa.public_bytes(serialization.Encoding.PEM),
            mode=PUBLIC_FILE_MODE,
        )
        _SerialCounter.create(target)
        # Written last: its presence marks a complete authority.
        write_atomic(
            target / CONFIG_FILE,
            json.dumps({"version": _CONFIG_VERSION, "policy_oid": policy_oid}).encode(),
            mode=PUBLIC_FILE_MODE,
        )
        return cls.open(target, passphrase=passphrase, clock=clock)

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        passphrase: bytes | None,
        clock: Clock = _utc_now,
    ) -> TimestampAuthority:
        """Load the authority that :meth:`initialize` created in ``directory``.

        ``clock`` supplies genTime (tests inject a fixed one).

        Raises:
            KeyMaterialError: wrong or missing passphrase, a key file readable
                by others, or a key that does not match the TSA certificate.
            SecmarkError: files missing or malformed.
        """
        target = Path(directory)
        try:
            config = json.loads((target / CONFIG_FILE).read_bytes())
            root_pem = (target / ROOT_CERTIFICATE_FILE).read_bytes()
            tsa_pem = (target / TSA_CERTIFICATE_FILE).read_bytes()
            key_path = target / TSA_KEY_FILE
            key_data = key_path.read_bytes()
            key_mode = key_path.stat().st_mode
        except (OSError, ValueError) as error:
            raise SecmarkError(
                f"{target} is not a timestamp authority directory ({error}); "
                "create one with `secmark tsa init`"
            ) from None
        if not isinstance(config, dict) or config.get("version") != _CONFIG_VERSION:
            raise SecmarkError(f"{target / CONFIG_FILE} is not a version {_CONFIG_VERSION} config")
        policy_oid = config.get("policy_oid")
        if not isinstance(policy_oid, str):
            raise SecmarkError(f"{target / CONFIG_FILE} names no policy_oid")
        if key_mode & 0o077:
            raise KeyMaterialError(
                f"{key_path} is readable by other users (mode {key_mode & 0o777:o}); "
                "run chmod 600 on it"
            )
        try:
            root = x509.load_pem_x509_certificate(root_pem)
            tsa = x509.load_pem_x509_certificate(tsa_pem)
        except ValueError as error:
            raise SecmarkError(f"a certificate in {target} is malformed: {error}") from None
        private_key = decode_tsa_key(key_data, passphrase, what=str(key_path))
        if private_key.public_key() != tsa.public_key():
            raise KeyMaterialError(f"{key_path} is not the key of {target / TSA_CERTIFICATE_FILE}")
        return cls(
            directory=target,
            root_certificate=root,
            tsa_certificate=tsa,
            policy_oid=policy_oid,
            _private_key=private_key,
            _serials=_SerialCounter(target),
            _clock=clock,
        )

    @staticmethod
    def needs_passphrase(directory: str | os.PathLike[str]) -> bool:
        """Whether the TSA key in ``directory`` is encrypted.

        Raises:
            SecmarkError: the key file cannot be read.
        """
        key_path = Path(directory) / TSA_KEY_FILE
        try:
            data = key_path.read_bytes()
        except OSError as error:
            raise SecmarkError(f"cannot read {key_path}: {error.strerror}") from None
        try:
            document = parse_canonical_json(data, max_size=_MAX_KEY_FILE_SIZE, what=str(key_path))
        except EncodingError as error:
            raise KeyMaterialError(f"{key_path} is malformed: {error}") from None
        return not (isinstance(document, dict) and document.get("protection") == UNPROTECTED)

    def respond(self, request_der: bytes) -> bytes:
        """Answer a DER TimeStampReq with a DER TimeStampResp.

        Never raises for a bad request: RFC 3161 section 2.4.2 wants an answer
        with status rejection and a PKIFailureInfo bit instead (badDataFormat
        for undecodable bytes, badRequest for a wrong version, badAlg for an
        imprint algorithm other than SHA-256 and SHA-512, unacceptedPolicy,
        unacceptedExtensions, systemFailure when no serial can be allocated).
        """
        try:
            request = self._check_request(request_der)
            serial = self._serials.next()
            gen_time = _now(self._clock)
        except _RequestRefused as refused:
            return _reject(refused.failure, refused.text)
        except SecmarkError as error:
            return _reject("system_failure", f"the authority cannot issue a timestamp: {error}")
        return self._issue(request, serial, gen_time)

    def _check_request(self, request_der: bytes) -> _Request:
        if len(request_der) > MAX_REQUEST_SIZE:
            raise _RequestRefused(
                "bad_data_format", f"request larger than {MAX_REQUEST_SIZE} bytes"
            )
        try:
            request = tsp.TimeStampReq.load(request_der, strict=True)
            request.native  # noqa: B018  (forces the lazy parse of every field)
        except MALFORMED_INPUT_ERRORS as error:
            # asn1crypto raises AttributeError or IndexError for some unknown
            # tags: a hostile request must get a rejection, not kill the thread.
            reason = str(error) or type(error).__name__
            raise _RequestRefused(
                "bad_data_format", f"the request is not a DER TimeStampReq: {reason}"
            ) from None
        if request["version"].native != "v1":
            raise _RequestRefused("bad_request", "only TimeStampReq version 1 is supported")
        message_imprint = request["message_imprint"]
        algorithm = message_imprint["hash_algorithm"]["algorithm"].native
        if algorithm not in HASH_ALGORITHMS:
            raise _RequestRefused(
                "bad_alg",
                f"unsupported imprint algorithm {algorithm}; use {' or '.join(HASH_ALGORITHMS)}",
            )
        expected_size = HASH_ALGORITHMS[algorithm]().digest_size
        if len(message_imprint["hashed_message"].native) != expected_size:
            raise _RequestRefused(
                "bad_data_format", f"a {algorithm} imprint must be {expected_size} bytes"
            )
        policy = request["req_policy"].native
        if policy is not None and policy != self.policy_oid:
            raise _RequestRefused(
                "unaccepted_policy", f"this authority issues under policy {self.policy_oid} only"
            )
        if request["extensions"].native:
            raise _RequestRefused("unaccepted_extensions", "no request extension is supported")
        return _Request(
            message_imprint=message_imprint,
            nonce=request["nonce"].native,
            cert_req=bool(request["cert_req"].native),
        )

    def _issue(self, request: _Request, serial: int, gen_time: datetime.datetime) -> bytes:
        """The TimeStampResp granting ``request``, in the profile of specs/timestamp.md."""
        certificate = asn1_x509.Certificate.load(
            self.tsa_certificate.public_bytes(serialization.Encoding.DER)
        )
        tst_info = tsp.TSTInfo(
            {
                "version": "v1",
                "policy": self.policy_oid,
                "message_imprint": request.message_imprint,
                "serial_number": serial,
                "gen_time": gen_time,
                "nonce": request.nonce,
                "tsa": asn1_x509.GeneralName(name="directory_name", value=certificate.subject),
            }
        )
        # Signed attributes (RFC 5652 section 5.3, RFC 5816): openssl requires the
        # ESS signing-certificate-v2 attribute binding the signer's certificate.
        signed_attributes = cms.CMSAttributes(
            [
                cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
                cms.CMSAttribute(
                    {"type": "message_digest", "values": [hashlib.sha256(tst_info.dump()).digest()]}
                ),
                cms.CMSAttribute(
                    {
                        "type": "signing_certificate_v2",
                        "values": [_signing_certificate_v2(certificate)],
                    }
                ),
            ]
        )
        # The signature covers the attributes encoded as a SET (tag 0x31), not
        # with the [0] IMPLICIT tag they carry inside SignerInfo.
        signature = self._private_key.sign(signed_attributes.dump(), ec.ECDSA(hashes.SHA256()))
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    name="issuer_and_serial_number",
                    value=cms.IssuerAndSerialNumber(
                        {"issuer": certificate.issuer, "serial_number": certificate.serial_number}
                    ),
                ),
                "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                "signed_attrs": signed_attributes,
                "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
                "signature": signature,
            }
        )
        signed_data: dict[str, object] = {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {"content_type": "tst_info", "content": tst_info},
            "signer_infos": [signer_info],
        }
        if request.cert_req:
            # Only the signer's: several certificates in a non-DER-sorted SET
            # make rfc3161-client refuse the token.
            signed_data["certificates"] = [
                cms.CertificateChoices(name="certificate", value=certificate)
            ]
        return TimeStampResp(
            {
                "status": tsp.PKIStatusInfo({"status": "granted"}),
                "time_stamp_token": cms.ContentInfo(
                    {"content_type": "signed_data", "content": cms.SignedData(signed_data)}
                ),
            }
        ).dump()
