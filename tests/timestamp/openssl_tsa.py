"""An `openssl ts -reply` TSA with a root -> intermediate -> TSA chain, for tests.

Configured as OpenSSL-based public TSAs (FreeTSA among them) are: ``certs =
chain.pem`` makes every token embed the signer's certificate followed by the
chain in the order of the file, which is not the sorted order DER requires
of a SET OF. chain.pem is written in the order that leaves the SET unsorted,
so that every token these TSAs issue needs secmark's re-encoding.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

OPENSSL = shutil.which("openssl")

OPENSSL_POLICY = "1.2.3.4.1"

_EXTENSIONS = """\
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

_TS_CONFIG = """\
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
ess_cert_id_alg = {ess_alg}
"""


def run_openssl(*arguments: str | Path, cwd: Path, stdin: bytes | None = None) -> bytes:
    """Run openssl; its standard output, or an AssertionError with its errors."""
    assert OPENSSL is not None
    result = subprocess.run(
        [OPENSSL, *map(str, arguments)], cwd=cwd, input=stdin, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def make_chain_tsa(directory: Path, *, key: str = "ec", ess_alg: str = "sha256") -> Path:
    """Create in ``directory`` root.pem, intermediate.pem, chain.pem, tsa.pem and ts.cnf.

    ``key`` is "ec" (P-256) or "rsa" (2048 bits); ``ess_alg`` "sha1" gives an
    ESSCertID v1 (signing-certificate), anything else an ESSCertIDv2
    (signing-certificate-v2) with that hash.
    """
    options = (
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        if key == "ec"
        else ["-newkey", "rsa:2048"]
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ext.cnf").write_text(_EXTENSIONS)
    run_openssl(
        "req", "-x509", *options, "-nodes", "-keyout", "root.key", "-out", "root.pem",
        "-subj", "/CN=openssl chain test root", "-days", "2", "-config", "ext.cnf",
        "-extensions", "root", cwd=directory,
    )  # fmt: skip
    for name, issuer in (("intermediate", "root"), ("tsa", "intermediate")):
        run_openssl(
            "req", "-new", *options, "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN=openssl chain test {name}", cwd=directory,
        )  # fmt: skip
        run_openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem", "-CAkey",
            f"{issuer}.key", "-CAcreateserial", "-days", "1", "-extfile", "ext.cnf",
            "-extensions", name, "-out", f"{name}.pem", cwd=directory,
        )  # fmt: skip
    chain = sorted(
        ((directory / f"{name}.pem").read_bytes() for name in ("intermediate", "root")),
        reverse=True,
    )
    (directory / "chain.pem").write_bytes(b"".join(chain))
    (directory / "serial").write_text("01\n")
    (directory / "ts.cnf").write_text(
        _TS_CONFIG.format(directory=directory, policy=OPENSSL_POLICY, ess_alg=ess_alg)
    )
    return directory


def reply_with(directory: Path) -> Callable[[bytes], bytes]:
    """An authority (request DER -> TimeStampResp DER) that runs `openssl ts -reply`."""

    def respond(request: bytes) -> bytes:
        (directory / "request.tsq").write_bytes(request)
        run_openssl(
            "ts", "-reply", "-config", "ts.cnf", "-queryfile", "request.tsq", "-out",
            "reply.tsr", cwd=directory,
        )  # fmt: skip
        return (directory / "reply.tsr").read_bytes()

    return respond


def token_for(directory: Path, message: bytes, *, token_only: bool = False) -> bytes:
    """A token over ``message`` as `openssl ts -query | ts -reply` makes it (no secmark).

    ``token_only`` writes the bare TimeStampToken (``-token_out``) instead of
    the whole TimeStampResp.
    """
    (directory / "message.bin").write_bytes(message)
    run_openssl(
        "ts", "-query", "-data", "message.bin", "-sha256", "-cert", "-out", "query.tsq",
        cwd=directory,
    )  # fmt: skip
    extra = ["-token_out"] if token_only else []
    run_openssl(
        "ts", "-reply", "-config", "ts.cnf", "-queryfile", "query.tsq", *extra, "-out",
        "token.tsr", cwd=directory,
    )  # fmt: skip
    return (directory / "token.tsr").read_bytes()
