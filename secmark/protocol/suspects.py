"""Canonical suspect references, and binding what the arbiter queries to them.

A claim and its challenge are bound to the suspect by a reference string,
and the challenge indices are a function of it. So one suspect must have one
spelling: otherwise a claimant could vary the spelling of the same endpoint
until a challenge landed on indices he likes. A reference is canonical when
:func:`canonical_suspect` returns it unchanged; the arbiter refuses claims
whose reference is not. A claim names one of (``specs/dispute.md`` 8.3,
:mod:`secmark.models.reference` for every rule):

- ``oip:<url>``: an Open Inference Protocol model endpoint,
  ``<base>/v2/models/<name>[/versions/<version>]``: scheme and host lower
  case, default port dropped, IP literals in one form (dotted-quad IPv4,
  RFC 5952 IPv6, IPv4-mapped IPv6 as IPv4), no trailing dot, path segments
  percent-encoded one way; IPv4 shorthand, dot segments, encoded slashes,
  credentials, queries and the like refused;
- ``json:<url>``: any other JSON inference API, by the canonical URL its
  requests are posted to, the same rules (``specs/suspects.md`` 8a.4.1);
- ``openai:<url>#<model>``: a language model behind an OpenAI-compatible
  API, by the canonical ``/v1/completions`` or ``/v1/chat/completions`` URL
  and the ``model`` member of its requests: one endpoint serves many models;
- ``sha256:<hex>``: a model file, by the SHA-256 of its bytes (lower case).

``label:<text>`` is refused: it is how an adapter names an in-process model
the arbiter built, and a claimant free to choose the text would be free to
re-roll the challenge.

Host names are not resolved, so ``localhost`` and ``127.0.0.1`` are two
references. What closes the gap is :func:`bind_suspect`: before it queries,
the arbiter checks that what its adapter actually queries (the URL it posts
to and the model it names there, the digest of the weights file it read) is
the claim's reference.
"""

from __future__ import annotations

from secmark.errors import EncodingError, ProtocolError
from secmark.models.base import Suspect
from secmark.models.reference import canonical_reference

__all__ = ["bind_suspect", "canonical_suspect"]


def canonical_suspect(reference: str) -> str:
    """The canonical spelling of ``reference``.

    Raises:
        EncodingError: an unknown form (``label:`` included), or a malformed
            or ambiguous reference; the message says what to write instead.
    """
    return canonical_reference(reference)


def bind_suspect(reference: str, suspect: Suspect) -> str:
    """The reference of what ``suspect`` actually queries, checked to be the
    claim's ``reference``.

    ``suspect.describe()`` reports what the adapter queries
    (:class:`~secmark.models.base.Suspect`): the canonical ``oip:`` or ``json:``
    URL it posts to, ``openai:`` and that URL with the model it sends, or
    ``sha256:`` of the weights file it read. It must be
    canonical and equal ``reference`` character for character. Call it
    before sending the suspect any query, and record the result (the
    transcript's ``queried``).

    Raises:
        EncodingError: ``reference`` is of no claimable form.
        ProtocolError: ``reference`` is not canonical, or the suspect reports
            another reference, a non-canonical one, or an in-process
            ``label:`` no claim can name; the message names both references.
    """
    claimed = canonical_suspect(reference)
    if claimed != reference:
        raise ProtocolError(
            f"the claim's suspect reference {reference!r} is not canonical; it is {claimed!r}"
        )
    queried = suspect.describe()
    if not isinstance(queried, str):
        raise ProtocolError(
            f"the suspect queried for {reference!r} describes itself with a "
            f"{type(queried).__name__}, not a reference"
        )
    if queried.startswith("label:"):
        raise ProtocolError(
            f"the claim names the suspect {reference!r}, but the model queried is "
            f"{queried!r}, an in-process model no claim can name: load it from its weights "
            "file (TorchSuspect.from_file), or state that file's digest with reference=, so "
            "that it is described by the file's SHA-256"
        )
    try:
        canonical = canonical_suspect(queried)
    except EncodingError as error:
        raise ProtocolError(
            f"the claim names the suspect {reference!r}, but the model queried describes "
            f"itself as {queried!r}, which is no suspect reference ({error})"
        ) from None
    if canonical != queried:
        raise ProtocolError(
            f"the claim names the suspect {reference!r}, but the model queried describes "
            f"itself as {queried!r}, not canonical ({canonical!r}): its adapter must report "
            "the canonical reference of what it queries"
        )
    if queried != reference:
        raise ProtocolError(
            f"the claim names the suspect {reference!r}, but the model queried is "
            f"{queried!r}: query the suspect the claim names"
        )
    return queried
