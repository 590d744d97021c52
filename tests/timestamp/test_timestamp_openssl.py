"""Interoperability with OpenSSL's ``ts`` command, in both directions."""

from __future__ import annotations

import datetime
import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from rfc3161_client import decode_timestamp_response

from secmark.errors import TimestampError
from secmark.timestamp import (
    TimestampAuthority,
    TrustStore,
    normalize_token,
    request_timestamp_from,
    verify_timestamp,
    verify_timestamp_unanchored,
)
from tests.timestamp.conftest import MESSAGE, OTHER_MESSAGE
from tests.timestamp.openssl_tsa import (
    OPENSSL,
    OPENSSL_POLICY,
    make_chain_tsa,
    reply_with,
    run_openssl,
    token_for,
)

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")

# A throwaway CA and TSA for `openssl ts -reply`. The TSA's timeStamping EKU
# must be critical: openssl refuses to sign with it otherwise.
_EXTENSIONS = """\
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[tsa]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

_TS_CONFIG = """\
[tsa]
default_tsa = tsa_config

[tsa_config]
dir = {directory}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


@pytest.fixture(scope="module", params=["ec", "rsa"])
def openssl_tsa(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with ca.pem and an `openssl ts` configuration (ts.cnf)."""
    directory = tmp_path_factory.mktemp(f"openssl-{request.param}")
    key_options = (
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        if request.param == "ec"
        else ["-newkey", "rsa:2048"]
    )
    (directory / "ext.cnf").write_text(_EXTENSIONS)
    run_openssl(
        "req",
        "-x509",
        *key_options,
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=openssl test CA",
        "-days",
        "2",
        "-config",
        "ext.cnf",
        "-extensions",
        "ca",
        cwd=directory,
    )
    run_openssl(
        "req",
        "-new",
        *key_options,
        "-nodes",
        "-keyout",
        "tsa.key",
        "-out",
        "tsa.csr",
        "-subj",
        "/CN=openssl test TSA",
        cwd=directory,
    )
    run_openssl(
        "x509",
        "-req",
        "-in",
        "tsa.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-extensions",
        "tsa",
        "-out",
        "tsa.pem",
        cwd=directory,
    )
    (directory / "serial").write_text("01\n")
    (directory / "ts.cnf").write_text(_TS_CONFIG.format(directory=directory, policy=OPENSSL_POLICY))
    return directory


def _openssl_reply(directory: Path) -> Callable[[bytes], bytes]:
    """An authority that answers with `openssl ts -reply`."""

    def respond(request: bytes) -> bytes:
        (directory / "request.tsq").write_bytes(request)
        run_openssl(
            "ts",
            "-reply",
            "-config",
            "ts.cnf",
            "-queryfile",
            "request.tsq",
            "-out",
            "reply.tsr",
            cwd=directory,
        )
        return (directory / "reply.tsr").read_bytes()

    return respond


@pytest.mark.parametrize("hash_algorithm", ["sha256", "sha512"])
def test_openssl_token_verifies_in_secmark(openssl_tsa: Path, hash_algorithm: str) -> None:
    (openssl_tsa / "message").write_bytes(MESSAGE)
    run_openssl(
        "ts",
        "-query",
        "-data",
        "message",
        f"-{hash_algorithm}",
        "-cert",
        "-out",
        "query.tsq",
        cwd=openssl_tsa,
    )
    run_openssl(
        "ts",
        "-reply",
        "-config",
        "ts.cnf",
        "-queryfile",
        "query.tsq",
        "-out",
        "reply.tsr",
        cwd=openssl_tsa,
    )
    token = (openssl_tsa / "reply.tsr").read_bytes()
    trust = TrustStore.from_pem_files([openssl_tsa / "ca.pem"], policy_oid=OPENSSL_POLICY)
    verified = verify_timestamp(token, MESSAGE, trust)
    assert verified.tsa_subject == "CN=openssl test TSA"
    assert verified.policy_oid == OPENSSL_POLICY
    assert verified.hash_algorithm == hash_algorithm
    with pytest.raises(TimestampError, match="for another message"):
        verify_timestamp(token, OTHER_MESSAGE, trust)


def test_secmark_request_answered_byrun_openssl(openssl_tsa: Path) -> None:
    token = request_timestamp_from(_openssl_reply(openssl_tsa), MESSAGE, hash_algorithm="sha512")
    trust = TrustStore.from_pem_files([openssl_tsa / "ca.pem"])
    assert verify_timestamp(token, MESSAGE, trust).hash_algorithm == "sha512"


@pytest.mark.parametrize("hash_algorithm", ["sha256", "sha512"])
def test_builtin_token_verifies_withrun_openssl(
    authority: TimestampAuthority, hash_algorithm: str
) -> None:
    directory = authority.directory
    token = request_timestamp_from(authority.respond, MESSAGE, hash_algorithm=hash_algorithm)
    (directory / "token.tsr").write_bytes(token)
    (directory / "message").write_bytes(MESSAGE)
    common = ["-in", "token.tsr", "-CAfile", "root.pem", "-untrusted", "tsa.pem"]
    output = run_openssl("ts", "-verify", "-data", "message", *common, cwd=directory)
    assert b"Verification: OK" in output
    digest = hashlib.new(hash_algorithm, MESSAGE).hexdigest()
    output = run_openssl("ts", "-verify", "-digest", digest, *common, cwd=directory)
    assert b"Verification: OK" in output
    # Control: openssl does reject a token for another message.
    (directory / "other").write_bytes(OTHER_MESSAGE)
    refused = subprocess.run(
        [OPENSSL, "ts", "-verify", "-data", "other", *common],
        cwd=directory,
        capture_output=True,
        check=False,
    )
    assert refused.returncode != 0 and b"message imprint mismatch" in refused.stderr


# --- OpenSSL TSAs that embed their chain (FreeTSA and the like) ---------------


@pytest.fixture(
    scope="module",
    params=[("ec", "sha256"), ("ec", "sha1"), ("rsa", "sha1")],
    ids=["ec-ess-v2", "ec-ess-v1", "rsa-ess-v1"],
)
def chain_tsa(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    key, ess_alg = request.param
    return make_chain_tsa(
        tmp_path_factory.mktemp(f"chain-{key}-{ess_alg}"), key=key, ess_alg=ess_alg
    )


def test_chain_in_non_der_order_is_re_encoded_on_receipt(chain_tsa: Path) -> None:
    raw: list[bytes] = []

    def recording(request: bytes) -> bytes:
        raw.append(reply_with(chain_tsa)(request))
        return raw[-1]

    token = request_timestamp_from(recording, MESSAGE)
    # The TSA's own answer is refused by strict DER; the stored token is not.
    with pytest.raises(ValueError, match="InvalidSetOrdering"):
        decode_timestamp_response(raw[0])
    decode_timestamp_response(token)
    assert token != raw[0] and sorted(token) == sorted(raw[0]) and len(token) == len(raw[0])
    certificates = tsp.TimeStampResp.load(token)["time_stamp_token"]["content"]["certificates"]
    assert len(certificates) == 3  # TSA, intermediate, root
    # The intermediate comes from the token; the root alone is trusted.
    trust = TrustStore.from_pem_files([chain_tsa / "root.pem"], policy_oid=OPENSSL_POLICY)
    assert verify_timestamp(token, MESSAGE, trust).tsa_subject == "CN=openssl chain test tsa"
    assert verify_timestamp(raw[0], MESSAGE, trust).tsa_subject == "CN=openssl chain test tsa"
    intact = verify_timestamp_unanchored(token, MESSAGE)
    assert intact.chain == (
        "CN=openssl chain test tsa",
        "CN=openssl chain test intermediate",
        "CN=openssl chain test root",
    )
    assert intact.self_signed_top
    # OpenSSL still accepts the re-encoded token.
    (chain_tsa / "stored.tsr").write_bytes(token)
    (chain_tsa / "message.bin").write_bytes(MESSAGE)
    output = run_openssl(
        "ts", "-verify", "-data", "message.bin", "-in", "stored.tsr", "-CAfile", "root.pem",
        cwd=chain_tsa,
    )  # fmt: skip
    assert b"Verification: OK" in output


def test_bare_token_from_openssl_is_wrapped(chain_tsa: Path) -> None:
    bare = token_for(chain_tsa, MESSAGE, token_only=True)
    stored = normalize_token(bare)
    decode_timestamp_response(stored)
    trust = TrustStore.from_pem_files([chain_tsa / "root.pem"])
    assert verify_timestamp(stored, MESSAGE, trust).policy_oid == OPENSSL_POLICY


def test_impostor_intermediate_breaks_the_embedded_chain(chain_tsa: Path) -> None:
    """The certificate SET is unsigned: an intermediate swapped for a look-alike is caught."""
    token = normalize_token(token_for(chain_tsa, MESSAGE))
    response = tsp.TimeStampResp.load(token)
    signed_data = response["time_stamp_token"]["content"]
    impostor_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "openssl chain test intermediate")])
    impostor = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(impostor_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(impostor_key, hashes.SHA256())
    )
    kept = [
        choice
        for choice in signed_data["certificates"]
        if choice.chosen.subject.human_friendly != "Common Name: openssl chain test intermediate"
    ]
    signed_data["certificates"] = [
        *kept,
        cms.CertificateChoices.load(
            cms.CertificateChoices(
                name="certificate",
                value=asn1_x509.Certificate.load(impostor.public_bytes(Encoding.DER)),
            ).dump()
        ),
    ]
    forged = normalize_token(response.dump(force=True))
    with pytest.raises(TimestampError, match="not signed by its issuer"):
        verify_timestamp_unanchored(forged, MESSAGE)
    trust = TrustStore.from_pem_files([chain_tsa / "root.pem"])
    with pytest.raises(TimestampError, match="does not chain to a trusted root"):
        verify_timestamp(forged, MESSAGE, trust)
