"""Checking an OpenSSF model-signing signature over a model folder.

An owner who signs a model folder with model-signing (``model_signing sign
key ...``) and registers it with secmark can have secmark check the
signature at registration (``secmark release --sigstore-bundle``): the
signature must verify under the owner's model-signing public key, the folder
must be exactly what it signed, and its subject digest must be the digest
the release registers. A release and a signature then name one model by one
value, which anyone can compare without the files (specs/provenance.md 4).

Only signatures by a key (model-signing's ``key`` method, an elliptic-curve
key pair) are checked: keyless Sigstore signatures need Fulcio and Rekor,
which an offline registration cannot reach.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from secmark.encoding import b64_decode
from secmark.encoding.jcs import reject_duplicate_keys, reject_json_constant
from secmark.errors import EncodingError, KeyMaterialError, SignatureError
from secmark.files import read_regular_file
from secmark.provenance._library import require_provenance_extra
from secmark.provenance.model_digest import model_folder_digest

__all__ = ["MAX_BUNDLE_SIZE", "MODEL_SIGNING_PREDICATE_TYPE", "verify_model_signature"]

MODEL_SIGNING_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
"""The predicate type of a model-signing 1.x signature's statement."""

MAX_BUNDLE_SIZE = 64 * 1024 * 1024
"""A bundle lists every file of the model (about 150 bytes each): 64 MiB
holds several hundred thousand files, and bounds what is parsed."""

_MAX_KEY_SIZE = 64 * 1024


def _strict_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(
            data, object_pairs_hook=reject_duplicate_keys, parse_constant=reject_json_constant
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EncodingError(f"{what} is not JSON: {error}") from None


def _signed_subject(bundle: bytes) -> str:
    """The subject digest of the statement a bundle carries (not yet verified)."""
    value = _strict_json(bundle, "the model-signing bundle")
    envelope = value.get("dsseEnvelope") if isinstance(value, dict) else None
    payload = envelope.get("payload") if isinstance(envelope, dict) else None
    if not isinstance(payload, str):
        raise EncodingError("the model-signing bundle carries no DSSE envelope payload")
    statement = _strict_json(b64_decode(payload, what="DSSE payload"), "the signed statement")
    if not isinstance(statement, dict):
        raise EncodingError("the signed statement is not a JSON object")
    if statement.get("predicateType") != MODEL_SIGNING_PREDICATE_TYPE:
        raise EncodingError(
            f"the bundle is not a model-signing v1.0 signature (predicate type "
            f"{statement.get('predicateType')!r})"
        )
    predicate = statement.get("predicate")
    serialization = predicate.get("serialization") if isinstance(predicate, dict) else None
    if not isinstance(serialization, dict) or (
        serialization.get("method"),
        serialization.get("hash_type"),
    ) != ("files", "sha256"):
        raise EncodingError(
            "the signature hashes the model otherwise than by whole files with SHA-256; "
            "sign it with model-signing's defaults to register it"
        )
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise EncodingError("the signed statement must name exactly one subject")
    digest = subjects[0].get("digest")
    sha256 = digest.get("sha256") if isinstance(digest, dict) else None
    if not isinstance(sha256, str):
        raise EncodingError("the signed statement's subject has no sha256 digest")
    return sha256


def _check_public_key(data: bytes, path: Path) -> None:
    try:
        key = load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyMaterialError(f"{path} is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise KeyMaterialError(f"{path} is not an elliptic-curve public key (model-signing's key)")


def verify_model_signature(
    folder: str | os.PathLike[str],
    *,
    bundle: str | os.PathLike[str],
    public_key: str | os.PathLike[str],
) -> str:
    """Verify a model-signing signature by ``public_key`` over ``folder``.

    The bundle may lie inside the folder: it is then left out of the model,
    as model-signing leaves out the signature it writes there. Paths the
    signature itself records as left out are left out when model-signing
    checks the files, but not from the returned digest, which must then
    equal the signature's subject digest.

    Returns:
        The folder's model-signing digest (:func:`model_folder_digest`,
        without the bundle), equal to the signature's subject digest.

    Raises:
        EncodingError: the bundle is not a model-signing v1.0 signature
            hashing whole files with SHA-256, or is over
            :data:`MAX_BUNDLE_SIZE`.
        KeyMaterialError: ``public_key`` is not an elliptic-curve PEM key.
        SignatureError: the signature does not verify under ``public_key``,
            the folder's files differ from the signed ones, or the signature
            leaves out files the folder digest covers.
        SecmarkError: a file cannot be read, or model-signing is missing.
    """
    require_provenance_extra("model_signing", "checking a model-signing signature")
    from model_signing import hashing, verifying

    root = Path(folder)
    bundle_path, key_path = Path(bundle), Path(public_key)
    bundle_bytes = read_regular_file(bundle_path, max_size=MAX_BUNDLE_SIZE, what="bundle")
    key_bytes = read_regular_file(key_path, max_size=_MAX_KEY_SIZE, what="public key")
    _check_public_key(key_bytes, key_path)
    subject = _signed_subject(bundle_bytes)
    inside = [Path(os.path.relpath(bundle_path.absolute(), root.absolute()))]
    digest = model_folder_digest(root, ignore=[bundle_path])
    # model-signing reads both files by path: hand it copies of the very
    # bytes checked above, so that what it verifies is what was parsed.
    with tempfile.TemporaryDirectory(prefix="secmark-") as scratch:
        copy_bundle, copy_key = Path(scratch) / "model.sig", Path(scratch) / "key.pub"
        copy_bundle.write_bytes(bundle_bytes)
        copy_key.write_bytes(key_bytes)
        config = verifying.Config().use_elliptic_key_verifier(public_key=copy_key)
        config.set_hashing_config(
            hashing.Config().set_ignored_paths(paths=inside, ignore_git_paths=True)
        )
        try:
            config.verify(root, copy_bundle)
        # model-signing reports a bad signature, a wrong key and a changed
        # file as ValueError, a malformed bundle as KeyError or TypeError,
        # and a signature failing both of its encodings as InvalidSignature.
        except (ValueError, KeyError, TypeError, InvalidSignature) as error:
            raise SignatureError(
                f"the model-signing signature {bundle_path} does not verify over {root} "
                f"with {key_path}: {type(error).__name__}: {error}"
            ) from None
    if subject != digest:
        raise SignatureError(
            f"the model-signing signature {bundle_path} covers other files than {root} holds "
            f"(it names {subject}, the folder is {digest}); sign the whole folder"
        )
    return digest
