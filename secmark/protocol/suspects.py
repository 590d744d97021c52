"""Canonical suspect references.

A claim and its challenge are bound to the suspect by a reference string,
and the challenge indices are a function of it. So one suspect must have one
spelling: otherwise a claimant could vary the spelling of the same endpoint
until a challenge landed on indices he likes. A reference is canonical when
:func:`canonical_suspect` returns it unchanged; the arbiter refuses claims
whose reference is not.

Forms:

- ``oip:<url>``: an Open Inference Protocol model endpoint,
  ``<base>/v2/models/<name>[/versions/<version>]``, spelled as
  :class:`secmark.models.OipSuspect` describes it (scheme and host lower
  case, default port dropped, name and version quoted);
- ``sha256:<hex>``: a model file, by the SHA-256 of its bytes (lower case);
- ``label:<text>``: anything else an arbiter names (an in-process model),
  1 to 256 printable characters without surrounding spaces.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from secmark.errors import EncodingError, SuspectError
from secmark.models.remote import oip_model_url

__all__ = ["canonical_suspect"]

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_OIP = re.compile(
    r"oip:(?P<base>.+?)/v2/models/(?P<name>[^/?#]+)(/versions/(?P<version>[^/?#]+))?/?"
)


def canonical_suspect(reference: str) -> str:
    """The canonical spelling of ``reference``.

    Raises:
        EncodingError: an unknown form or a malformed reference.
    """
    kind, _, rest = reference.partition(":")
    if kind == "sha256" and _HEX64.fullmatch(rest):
        return "sha256:" + rest.lower()
    if kind == "label" and 1 <= len(rest) <= 256 and rest.isprintable() and rest.strip() == rest:
        return reference
    match = _OIP.fullmatch(reference)
    if match:
        version = match["version"]
        try:
            url = oip_model_url(match["base"], unquote(match["name"]), version and unquote(version))
        except SuspectError as error:
            raise EncodingError(f"{reference!r}: {error}") from None
        return "oip:" + url
    raise EncodingError(
        f"{reference!r} is not a suspect reference (oip:URL, sha256:HEX or label:TEXT)"
    )
