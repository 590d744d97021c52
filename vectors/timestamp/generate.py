"""Generate the fixed timestamp vector: a test TSA and one token it issued.

Run ONCE, from the repository root: ``python3 vectors/timestamp/generate.py``.
Unlike ``vectors/generate.py``, the output differs on every run (fresh keys,
randomized ECDSA), so the committed files are the vector and this script only
records how they were made. Do not regenerate them: a verifier that stops
accepting the committed token has changed behaviour.

The TSA private key is not kept; nothing needs it to verify. The certificates
are valid for a century from the fixed genTime, so the token keeps verifying
with OpenSSL (which checks validity now) as well as at genTime.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from asn1crypto import tsp
from cryptography.hazmat.primitives.serialization import Encoding

from secmark.timestamp import TimestampAuthority, request_timestamp_from
from secmark.timestamp.authority import ROOT_CERTIFICATE_FILE, TSA_CERTIFICATE_FILE

HERE = Path(__file__).resolve().parent
GEN_TIME = datetime.datetime(2025, 1, 1, 0, 0, 0, tzinfo=datetime.timezone.utc)
MESSAGE = hashlib.sha256(b"secmark timestamp vector").digest()


def main() -> None:
    if (HERE / "vector.json").exists():
        raise SystemExit("vectors/timestamp/vector.json exists; the vector is generated once only")
    with tempfile.TemporaryDirectory() as scratch:
        authority = TimestampAuthority.initialize(
            Path(scratch) / "tsa",
            passphrase=None,
            allow_unencrypted=True,
            common_name="secmark test vector TSA",
            validity=datetime.timedelta(days=36525),
            clock=lambda: GEN_TIME,
        )
        token = request_timestamp_from(authority.respond, MESSAGE, hash_algorithm="sha256")
        for name in (ROOT_CERTIFICATE_FILE, TSA_CERTIFICATE_FILE):
            shutil.copyfile(authority.directory / name, HERE / name)
    (HERE / "token.tsr").write_bytes(token)

    def fingerprint(certificate_der: bytes) -> str:
        return hashlib.sha256(certificate_der).hexdigest()

    vector = {
        "description": "A token from the built-in TSA over a fixed 32-byte message; "
        "generated once by generate.py, do not modify.",
        "message_hex": MESSAGE.hex(),
        "message_source": 'SHA-256("secmark timestamp vector")',
        "hash_algorithm": "sha256",
        "token_file": "token.tsr",
        "root_certificate_file": ROOT_CERTIFICATE_FILE,
        "tsa_certificate_file": TSA_CERTIFICATE_FILE,
        "gen_time": GEN_TIME.isoformat().replace("+00:00", "Z"),
        "serial_number": 1,
        "nonce": tsp.TimeStampResp.load(token)["time_stamp_token"]["content"]["encap_content_info"][
            "content"
        ]
        .parsed["nonce"]
        .native,
        "policy_oid": authority.policy_oid,
        "tsa_subject": authority.tsa_certificate.subject.rfc4514_string(),
        "root_sha256": fingerprint(authority.root_certificate.public_bytes(Encoding.DER)),
        "tsa_sha256": fingerprint(authority.tsa_certificate.public_bytes(Encoding.DER)),
    }
    (HERE / "vector.json").write_text(json.dumps(vector, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
