"""Generate the OpenSSL chain vector: a token whose certificate SET is not in DER order.

Run ONCE, from the repository root:
``python3 vectors/timestamp/openssl-chain/generate.py``. Like
``vectors/timestamp/generate.py``, the output differs on every run (fresh
keys), so the committed files are the vector and this script records how
they were made. Do not regenerate them.

What it reproduces: OpenSSL-based TSAs (FreeTSA among them) configured with
``certs = chain.pem`` embed the signer's certificate followed by the chain in
the order of the file, which is not the sorted order DER requires of a SET
OF; rfc3161-client (strict DER) refuses such a token and ``openssl ts -verify``
accepts it. secmark re-encodes that unsigned SET in DER order on receipt
(specs/timestamp.md 5.2). The PKI is RSA-2048: root -> intermediate -> TSA,
the TSA signing with SHA-256 and an ESSCertID v1 (SHA-1) signing-certificate
attribute, as ``openssl ts -reply`` 3.0 does with ``ess_cert_id_alg = sha1``.
The keys are not kept. Certificates are valid for a century, so that
``openssl ts -verify`` (which checks validity now) keeps accepting the token.

Files: root.pem (trust anchor), chain.pem (intermediate then root, the order
written into the token), tsa.pem, token.tsr (the TimeStampResp exactly as
OpenSSL wrote it), token-der.tsr (the same with the certificate SET in DER
order: what secmark stores), message.bin (the 32-byte message), vector.json.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

from asn1crypto import tsp
from rfc3161_client import decode_timestamp_response

from secmark.timestamp import TrustStore, normalize_token, verify_timestamp

HERE = Path(__file__).resolve().parent
MESSAGE = hashlib.sha256(b"secmark openssl chain vector").digest()
POLICY = "1.2.3.4.1"
DAYS = "36500"

EXTENSIONS = """\
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[intermediate]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[tsa]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

TS_CONFIG = """\
[tsa]
default_tsa = tsa_config

[tsa_config]
dir = {directory}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/chain.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {policy}
other_policies = {policy}
digests = sha256, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha1
"""


def openssl(*arguments: str, cwd: Path) -> None:
    subprocess.run(["openssl", *arguments], cwd=cwd, check=True, capture_output=True)


def certificate(name: str, issuer: str | None, section: str, cwd: Path) -> None:
    if issuer is None:
        openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.pem", "-subj", f"/CN=secmark openssl vector {name}",
            "-days", DAYS, "-config", "ext.cnf", "-extensions", section, cwd=cwd,
        )  # fmt: skip
        return
    openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
        "-out", f"{name}.csr", "-subj", f"/CN=secmark openssl vector {name}", cwd=cwd,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem", "-CAkey", f"{issuer}.key",
        "-CAcreateserial", "-days", DAYS, "-extfile", "ext.cnf", "-extensions", section,
        "-out", f"{name}.pem", cwd=cwd,
    )  # fmt: skip


def main() -> None:
    if (HERE / "vector.json").exists():
        raise SystemExit(f"{HERE / 'vector.json'} exists; the vector is generated once only")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        (work / "ext.cnf").write_text(EXTENSIONS)
        certificate("root", None, "root", work)
        certificate("intermediate", "root", "intermediate", work)
        certificate("tsa", "intermediate", "tsa", work)
        # chain.pem in the order that leaves the embedded SET unsorted.
        pems = sorted(
            ((work / f"{n}.pem").read_bytes() for n in ("intermediate", "root")), reverse=True
        )
        (work / "chain.pem").write_bytes(b"".join(pems))
        (work / "serial").write_text("01\n")
        (work / "ts.cnf").write_text(TS_CONFIG.format(directory=work, policy=POLICY))
        (work / "message.bin").write_bytes(MESSAGE)
        openssl(
            "ts", "-query", "-data", "message.bin", "-sha256", "-cert", "-out", "q.tsq", cwd=work
        )
        openssl(
            "ts", "-reply", "-config", "ts.cnf", "-queryfile", "q.tsq", "-out", "r.tsr", cwd=work
        )
        token = (work / "r.tsr").read_bytes()
        for name in ("root.pem", "tsa.pem", "chain.pem"):
            (HERE / name).write_bytes((work / name).read_bytes())
    try:
        decode_timestamp_response(token)
    except ValueError:
        pass
    else:
        raise SystemExit("the certificate SET came out in DER order; run again")
    der = normalize_token(token)
    (HERE / "token.tsr").write_bytes(token)
    (HERE / "token-der.tsr").write_bytes(der)
    (HERE / "message.bin").write_bytes(MESSAGE)
    trust = TrustStore.from_pem_files([HERE / "root.pem"])
    verified = verify_timestamp(token, MESSAGE, trust)
    tst_info = tsp.TimeStampResp.load(der)["time_stamp_token"]["content"]["encap_content_info"][
        "content"
    ].parsed
    vector = {
        "kind": "timestamp-token",
        "source": "openssl ts -reply (OpenSSL 3.0) with certs = chain.pem, issued once by "
        "vectors/timestamp/openssl-chain/generate.py",
        "description": "An OpenSSL TSA token whose SignedData certificate SET is not in DER "
        "order (signer, then chain.pem's order); RSA-2048 root -> intermediate -> TSA, "
        "ESSCertID v1. Verifiers re-encode the unsigned SET in DER order (token-der.tsr). "
        "Generated once; do not modify.",
        "message_hex": MESSAGE.hex(),
        "message_source": 'SHA-256("secmark openssl chain vector")',
        "hash_algorithm": "sha256",
        "token_file": "token.tsr",
        "der_token_file": "token-der.tsr",
        "der_token_sha256": hashlib.sha256(der).hexdigest(),
        "root_certificate_file": "root.pem",
        "tsa_certificate_file": "tsa.pem",
        "chain_file": "chain.pem",
        "gen_time": verified.gen_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "serial_number": verified.serial_number,
        "nonce": tst_info["nonce"].native,
        "policy_oid": POLICY,
        "tsa_subject": verified.tsa_subject,
        "root_sha256": verified.root_certificate_sha256,
        "tsa_sha256": verified.tsa_certificate_sha256,
    }
    (HERE / "vector.json").write_text(json.dumps(vector, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
