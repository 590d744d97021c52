"""Model digests as OpenSSF model-signing computes them.

A model-signing signature (predicate ``https://model_signing/signature/v1.0``)
names the model it covers by one subject digest: the SHA-256 of the
concatenated SHA-256 digests of the model's files, in ascending order of
their paths relative to the model folder. This module obtains that digest
from model-signing itself, with model-signing's default hashing
configuration: serialization by whole files, SHA-256, symbolic links
refused, and git's own files (``.git/``, ``.gitattributes``, ``.github/``,
``.gitignore``) left out. A release of a folder registers this value
(``model-signing-files-sha256``, specs/dispute.md 8.2.1); an in-toto
statement about a released model names it by this value (specs/provenance.md).

model-signing is imported only when a folder is hashed (the ``provenance``
extra): reading and checking releases needs none of it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from secmark.errors import EncodingError, SecmarkError
from secmark.messages.release import MODEL_SIGNING_FILES_SHA256, SHA256_FILE, Release
from secmark.provenance._library import require_provenance_extra

__all__ = ["model_folder_digest", "model_signing_digest"]


def model_folder_digest(
    folder: str | os.PathLike[str], *, ignore: Iterable[str | os.PathLike[str]] = ()
) -> str:
    """Hex model-signing subject digest of a model folder.

    ``ignore`` names further paths to leave out besides git's files, such as
    a signature file kept inside the folder (model-signing's command line
    leaves out the signature it writes there in the same way); a path
    outside the folder is disregarded, as model-signing does.

    Raises:
        SecmarkError: ``folder`` is not a directory, holds no file, holds a
            symbolic link or something that is neither a file nor a
            directory (model-signing refuses both), a file in it cannot be
            read, or model-signing is not installed.
    """
    require_provenance_extra("model_signing", "hashing a model folder")
    from model_signing import hashing

    # Payload is model-signing's own construction of the signed statement;
    # its subject digest is what a signature names. model-signing 1.x offers
    # no public function for that one value, and computing it here would be
    # a second implementation to keep in step with theirs.
    from model_signing._signing.signing import Payload

    root = Path(folder)
    if not root.is_dir():
        raise SecmarkError(f"{root} is not a directory")
    config = hashing.Config().set_ignored_paths(
        paths=[Path(os.path.relpath(Path(path).absolute(), root.absolute())) for path in ignore],
        ignore_git_paths=True,
    )
    try:
        manifest = config.hash(root)
    except ValueError as error:
        # model-signing's refusal of a symbolic link or a special file.
        raise SecmarkError(f"cannot hash model folder {root}: {error}") from None
    except OSError as error:
        raise SecmarkError(f"cannot read model folder {root}: {error.strerror}") from None
    if not any(True for _ in manifest.resource_descriptors()):
        raise SecmarkError(f"model folder {root} holds no file to hash")
    subject = Payload(manifest).statement.pb.subject[0]
    digest: str = subject.digest["sha256"]
    return digest


def model_signing_digest(release: Release) -> str:
    """The model-signing subject digest of a release's model, from the release alone.

    For a folder release that is its registered value. model-signing hashes
    a single file as a model of one item, so a ``sha256-file`` release's
    model has the SHA-256 of the file's raw SHA-256 digest.

    Raises:
        EncodingError: the release's algorithm is unknown (only a release
            built in process without :func:`create_release` can have one).
    """
    if release.model_digest_algorithm == MODEL_SIGNING_FILES_SHA256:
        return release.model_digest
    if release.model_digest_algorithm == SHA256_FILE:
        return hashlib.sha256(bytes.fromhex(release.model_digest)).hexdigest()
    raise EncodingError(f"unknown model digest algorithm {release.model_digest_algorithm!r}")
