"""Suspect references: one spelling for one suspect.

The arbiter draws a claim's challenge indices from its VRF on the suspect
reference, so a suspect with two accepted spellings hands its claimant two
challenges to choose from. :func:`canonical_reference` gives each suspect a
claim may name exactly one spelling, and refuses every form whose meaning
depends on who reads it, with an :class:`~secmark.errors.EncodingError`
saying which rule was broken and what to write instead. The rules are
normative in ``specs/dispute.md`` 8.3. A claim names one of:

``oip:<scheme>://<host>[:<port>]<path>/v2/models/<name>[/versions/<version>]``
    An Open Inference Protocol model endpoint, as the URL the arbiter posts
    ``/infer`` to. ``scheme`` is ``http`` or ``https`` (lower case); the
    port is dropped when it is the scheme's default and written in decimal
    without leading zeros otherwise; no credentials, query or fragment.
    ``host`` is one of: a host name in lower case without a trailing dot,
    labels of ``a-z 0-9 - _`` (an internationalised name as its A-label,
    ``xn--...``); an IPv4 address as four decimal numbers without leading
    zeros; an IPv6 address in brackets in RFC 5952 form, an IPv4-mapped one
    (``::ffff:a.b.c.d``) written as its IPv4 address. Every path segment is
    written as ``urllib.parse.quote(text, safe="")`` of its UTF-8 text: the
    unreserved characters plain, everything else as upper-case ``%XX``.
``sha256:<hex>``
    A model file, by the SHA-256 of its bytes in lower-case hex.
``json:<scheme>://<host>[:<port>][<path>]``
    Any other JSON inference endpoint (``specs/suspects.md``), as the URL
    the arbiter posts to (:func:`canonical_endpoint_url`): scheme, port and
    host as for ``oip:``; each path segment written as
    ``urllib.parse.quote(text, safe="!$&'()*+,=:@")``, so that the RFC 3986
    sub-delimiters, ``:`` and ``@`` are written plain (``e:rawPredict``) and
    everything else but the unreserved characters as ``%XX``; a trailing
    slash is kept, since servers route ``/p`` and ``/p/`` apart, except on
    the root path, which is written without one.
``openai:<endpoint URL>#<model>`` (:func:`openai_reference`)
    A language model behind an OpenAI-compatible API: the endpoint one
    request per prompt is posted to, canonical as the URL of a ``json:``
    reference, whose path ends in ``/v1/completions`` or
    ``/v1/chat/completions`` (after the server's base path, which must not
    end in ``/v1``), then ``#`` and the model: the text of the ``model``
    member of every request body, which is what tells the models of one
    endpoint apart. The text has 1 to :data:`MAX_MODEL_NAME` printable
    characters in Unicode NFC, without leading or trailing white space,
    written as ``urllib.parse.quote(text, safe="!$&'()*+,=:@/")`` of its
    UTF-8 (``meta-llama/Llama-3.1-8B`` stays as it is; a ``#`` in a name is
    ``%23``); an accepted spelling is percent-decoded and written so again.
    The reference is split at its first ``#``, which no canonical URL holds.

Refused, because clients or servers read them as another spelling of some
endpoint: the IPv4 forms resolvers accept besides the dotted quad
(``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``); a host that
ends in a number but is not such an address; IPv6 zone identifiers and the
NAT64 prefix ``64:ff9b::/96``; ``0.0.0.0``, ``::`` and loopback addresses
other than ``127.0.0.1`` and ``::1`` (a server on all interfaces answers on
every one); names under ``.localhost`` (RFC 6761); path segments that are
empty, ``.`` or ``..`` (also percent-encoded), or whose text holds ``/`` or
``\\`` (``%2F``, ``%5C``), ``;`` (path parameters, stripped by some
servers), control characters, leading or trailing white space, or text not
in Unicode NFC; percent-escapes that are not UTF-8; white space, control
and non-ASCII characters, backslashes, ``?`` and ``#`` anywhere in a URL.

Host names are not resolved: ``localhost`` and ``127.0.0.1`` are two
references, as are two DNS names of one server, and one model asked through
both APIs of a server is two ``openai:`` references. Each alias a claimant
tries is one more challenge of his commitment, and every further challenge
at an arbiter halves the level (``specs/dispute.md`` 8.4.1): aliases that
escape canonicalisation cost him alpha, not the soundness of the test.
What the arbiter actually queried is bound to the claim's reference by
:func:`secmark.protocol.suspects.bind_suspect`.

``platform:<hex>``
    Every model a platform hosts, for an owner's *deposit* with that
    platform (``specs/scan.md``): the platform's identity key id, 64
    lower-case hex digits. Only the platform named may take such a claim;
    an arbiter refuses it, and no adapter describes itself by it, so nothing
    is ever queried or decided under it.

``label:<text>`` (:func:`arbiter_label`) is how an adapter describes an
in-process model that was not loaded from a file: the arbiter's own name for
it. No claim may name one, since its claimant would choose the text, and
with it the challenge, freely.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Final
from urllib.parse import quote, unquote_to_bytes

from secmark.errors import EncodingError

__all__ = [
    "CHAT_PATH",
    "CLAIMABLE_KINDS",
    "COMPLETIONS_PATH",
    "MAX_LABEL_LENGTH",
    "MAX_MODEL_NAME",
    "MAX_REFERENCE_LENGTH",
    "arbiter_label",
    "canonical_base_url",
    "canonical_endpoint_url",
    "canonical_reference",
    "check_file_reference",
    "model_path",
    "openai_reference",
    "split_openai_reference",
]

MAX_REFERENCE_LENGTH: Final = 1024
"""Longest suspect reference: a claim holds at most this many characters
(``secmark.messages.claim``), and parsing stops before reading more."""

MAX_LABEL_LENGTH: Final = 256
"""Longest text of an arbiter's ``label:``."""

MAX_MODEL_NAME: Final = 1024
"""Longest model name of an ``openai:`` reference, in characters (Hugging
Face ids and local paths fit), and so of the ``model`` member sent."""

COMPLETIONS_PATH: Final = "/v1/completions"
CHAT_PATH: Final = "/v1/chat/completions"
"""The two OpenAI APIs an ``openai:`` reference may name, after the server root."""

CLAIMABLE_KINDS: Final = ("oip", "sha256", "json", "openai", "platform")
"""The kinds of reference a claim may name (``platform`` only in a deposit)."""

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_MAX_HOST_LENGTH = 253  # RFC 1035 2.3.4, without the trailing dot
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_PCHARS = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*")  # RFC 3986 pchar
_HOST_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
# A host whose last label is one of these is read as an IPv4 address by
# WHATWG URL parsers (browsers, curl in part) and by inet_aton (glibc, BSD).
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_PORT = re.compile(r"[0-9]{1,8}")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_CANONICAL_LOOPBACK = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))
_USERINFO = re.compile(r"(//)[^/?#]*@")
_QUERY = re.compile(r"\?[^#]*")
_FRAGMENT = re.compile(r"#.*", re.DOTALL)
_CREDENTIALS_RULE = (
    "must not hold credentials, a query or a fragment "
    "(the arbiter passes credentials in headers; an endpoint has no query)"
)
_OIP_FORM = "<base>/v2/models/<name>[/versions/<version>]"
# RFC 3986 pchar minus the unreserved characters: written plain in the path of
# a json: reference (Vertex AI's ":rawPredict" is sent with a plain colon).
# ';' is refused in every path segment, so it is absent.
_ENDPOINT_SAFE = "!$&'()*+,=:@"
# A model name keeps '/' plain (Hugging Face ids are owner/name). Only these
# characters and %XX are accepted in a spelling, so that the canonical form,
# which writes them plain, is never longer than a spelling accepted.
_MODEL_SAFE = _ENDPOINT_SAFE + "/"
_MODEL_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,=:@/]|%[0-9A-Fa-f]{2})*")
_OPENAI_FORM = (
    "openai:<server root>/v1/completions#<model> or "
    "openai:<server root>/v1/chat/completions#<model>"
)


def _shown(text: str) -> str:
    """``text`` quoted, cut to 80 characters, with what could be a secret
    (a URL's user information, query, and fragment but an ``openai:``
    model's) written as ``***``: error messages stay short and end up in
    logs, so they must not carry the credentials a mistaken reference held."""
    text = _USERINFO.sub(r"\1***@", text)
    text = _QUERY.sub("?***", text)
    if not text.startswith("openai:"):
        text = _FRAGMENT.sub("#***", text)
    return repr(text) if len(text) <= 80 else repr(text[:80]) + "..."


def canonical_reference(reference: str) -> str:
    """The canonical spelling of a reference a claim may name (module docstring).

    ``label:`` references are refused: they are the arbiter's to assign.

    Raises:
        EncodingError: not a string, longer than :data:`MAX_REFERENCE_LENGTH`,
            of no claimable form, or a form whose meaning depends on who
            reads it; the message says which rule and what to write instead.
    """
    if not isinstance(reference, str):
        raise EncodingError(f"a suspect reference is a string, not {type(reference).__name__}")
    if not 0 < len(reference) <= MAX_REFERENCE_LENGTH:
        raise EncodingError(
            f"a suspect reference has 1 to {MAX_REFERENCE_LENGTH} characters, not {len(reference)}"
        )
    kind, separator, rest = reference.partition(":")
    if separator and kind == "sha256":
        if not _HEX64.fullmatch(rest):
            raise EncodingError(
                f"{_shown(reference)}: a model file is named sha256: and the 64 hex digits "
                "of the SHA-256 of its bytes"
            )
        return "sha256:" + rest.lower()
    if separator and kind == "platform":
        if not _HEX64.fullmatch(rest):
            raise EncodingError(
                f"{_shown(reference)}: a platform is named platform: and the 64 hex digits of "
                "its identity key id"
            )
        return "platform:" + rest.lower()
    if separator and kind == "oip":
        origin, segments = _split_url(rest, _shown(reference), strip_trailing_slashes=False)
        if not _is_model_path(segments):
            raise EncodingError(
                f"{_shown(reference)}: an oip: reference is the URL of a model, {_OIP_FORM}"
            )
        if segments[-2] == "versions":  # "models" there in the form without a version
            _check_version(segments[-1], _shown(reference))
        return "oip:" + origin + "".join("/" + segment for segment in segments)
    if separator and kind == "json":
        return "json:" + _endpoint_url(rest, _shown(reference))
    if separator and kind == "openai":
        url, hash_mark, model = rest.partition("#")
        if not hash_mark or not model:
            raise EncodingError(
                f"{_shown(reference)}: an openai: reference names the model after the endpoint, "
                f"{_OPENAI_FORM}, the model as the 'model' member of each request"
            )
        endpoint = _openai_endpoint(url, _shown(reference))
        text = _model_text(model, _shown(reference))
        return f"openai:{endpoint}#{quote(text, safe=_MODEL_SAFE)}"
    if separator and kind == "label":
        raise EncodingError(
            f"{_shown(reference)}: a label: reference is the arbiter's own name for an "
            "in-process model, and no claim may name one (its claimant would choose the "
            "challenge by choosing the text); name the suspect by its endpoint (oip:URL) or "
            "by the SHA-256 of its weights file (sha256:HEX)"
        )
    raise EncodingError(
        f"{_shown(reference)} is not a suspect reference: a claim names an Open Inference "
        "Protocol endpoint (oip:URL), a model behind an OpenAI-compatible API "
        "(openai:URL#MODEL), another JSON endpoint (json:URL) or a model file (sha256:HEX), "
        "and a deposit the platform (platform:KEYID)"
    )


def openai_reference(endpoint_url: str, model: str) -> str:
    """``openai:<endpoint>#<model>``, canonical (module docstring): the
    language model whose requests carry ``model`` (its text, not
    percent-encoded) as their ``model`` member, posted to ``endpoint_url``
    (a ``/v1/completions`` or ``/v1/chat/completions`` URL, any spelling).

    Raises:
        EncodingError: the URL has no canonical form or names neither API,
            the model name breaks a rule of the module docstring, or the
            reference would exceed :data:`MAX_REFERENCE_LENGTH`.
    """
    if not isinstance(endpoint_url, str) or not isinstance(model, str):
        raise EncodingError("an openai: reference is made of an endpoint URL and a model name")
    if len(endpoint_url) > MAX_REFERENCE_LENGTH:
        raise EncodingError(f"an endpoint URL has at most {MAX_REFERENCE_LENGTH} characters")
    endpoint = _openai_endpoint(endpoint_url, _shown(endpoint_url))
    _check_model_name(model, f"the model name {_shown(model)}")
    reference = f"openai:{endpoint}#{quote(model, safe=_MODEL_SAFE)}"
    if len(reference) > MAX_REFERENCE_LENGTH:
        raise EncodingError(
            f"the reference of model {_shown(model)} at {endpoint} would have "
            f"{len(reference)} characters, more than a claim holds ({MAX_REFERENCE_LENGTH})"
        )
    return reference


def split_openai_reference(reference: str) -> tuple[str, str, str]:
    """``(server root, API path, model name)`` of a canonical ``openai:``
    reference: the root without a trailing slash, :data:`COMPLETIONS_PATH`
    or :data:`CHAT_PATH`, and the model's text, percent-decoded.

    Raises:
        EncodingError: ``reference`` is no canonical ``openai:`` reference.
    """
    if canonical_reference(reference) != reference or not reference.startswith("openai:"):
        raise EncodingError(f"{_shown(reference)} is no canonical openai: reference")
    endpoint, _, model = reference[len("openai:") :].partition("#")
    path = COMPLETIONS_PATH if endpoint.endswith(COMPLETIONS_PATH) else CHAT_PATH
    return endpoint[: -len(path)], path, unquote_to_bytes(model).decode("utf-8")


def canonical_base_url(base_url: str) -> str:
    """``scheme://host[:port][/path]`` of a server root, canonical as in an
    ``oip:`` reference, trailing slashes dropped.

    Raises:
        EncodingError: as :func:`canonical_reference` for an ``oip:`` URL.
    """
    if not isinstance(base_url, str):
        raise EncodingError(f"a base URL is a string, not {type(base_url).__name__}")
    if len(base_url) > MAX_REFERENCE_LENGTH:
        raise EncodingError(f"a base URL has at most {MAX_REFERENCE_LENGTH} characters")
    origin, segments = _split_url(base_url, _shown(base_url), strip_trailing_slashes=True)
    return origin + "".join("/" + segment for segment in segments)


def canonical_endpoint_url(url: str) -> str:
    """``scheme://host[:port][/path]`` of a JSON endpoint, canonical as in a
    ``json:`` reference (module docstring): the URL requests are posted to.

    Raises:
        EncodingError: as :func:`canonical_reference` for an ``oip:`` URL
            (credentials, queries, dot segments, encoded slashes, ...).
    """
    if not isinstance(url, str):
        raise EncodingError(f"an endpoint URL is a string, not {type(url).__name__}")
    if len(url) > MAX_REFERENCE_LENGTH:
        raise EncodingError(f"an endpoint URL has at most {MAX_REFERENCE_LENGTH} characters")
    return _endpoint_url(url, _shown(url))


def _endpoint_url(url: str, context: str) -> str:
    origin, segments = _split_url(url, context, strip_trailing_slashes=False, safe=_ENDPOINT_SAFE)
    # _split_url drops one trailing slash; on a path other than the root it
    # names another resource, so it is written back.
    trailing = "/" if segments and url.endswith("/") else ""
    return origin + "".join("/" + segment for segment in segments) + trailing


def _openai_endpoint(url: str, context: str) -> str:
    """The canonical ``json:`` URL of ``url``, checked to post to one of the
    two APIs on a base path that does not end in ``/v1``."""
    endpoint = _endpoint_url(url, context)
    # The path, after the origin (whose host may be "v1": https://v1/...).
    path = "/" + endpoint.partition("://")[2].partition("/")[2]
    api = next((api for api in (COMPLETIONS_PATH, CHAT_PATH) if path.endswith(api)), None)
    if api is None:
        raise EncodingError(
            f"{context}: an openai: reference names the API posted to, {_OPENAI_FORM}"
        )
    if path[: -len(api)].endswith("/v1"):
        raise EncodingError(
            f"{context}: the server root ends in /v1, so requests go to /v1/v1/...: "
            f"write {_OPENAI_FORM}, the root without /v1"
        )
    return endpoint


def _model_text(raw: str, context: str) -> str:
    """The text of the model part of an ``openai:`` reference, checked."""
    if not _MODEL_CHARS.fullmatch(raw):
        if re.search(r"%(?![0-9A-Fa-f]{2})", raw):
            raise EncodingError(
                f"{context}: a '%' must begin a %XX escape (write a literal '%' as %25)"
            )
        char = next(c for c in raw if not _MODEL_CHARS.fullmatch(c))
        raise EncodingError(
            f"{context}: {char!r} must be percent-encoded in a model name, as the %XX of "
            "its UTF-8 ('#' as %23)"
        )
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise EncodingError(
            f"{context}: the percent-escapes of the model name are not UTF-8 text"
        ) from None
    _check_model_name(text, context)
    return text


def _check_model_name(text: str, context: str) -> None:
    """The rules on the text of a model name (module docstring)."""
    if not 0 < len(text) <= MAX_MODEL_NAME:
        raise EncodingError(f"{context}: a model name has 1 to {MAX_MODEL_NAME} characters")
    if not text.isprintable() or text.strip() != text:
        raise EncodingError(
            f"{context}: a model name must not hold control characters or leading or "
            "trailing white space"
        )
    if not unicodedata.is_normalized("NFC", text):
        raise EncodingError(
            f"{context}: a model name must be in Unicode NFC "
            f"({unicodedata.normalize('NFC', text)!r})"
        )


def model_path(name: str, version: str | None = None) -> str:
    """``/v2/models/<name>[/versions/<version>]``, each part (plain text, not
    percent-encoded) written as one canonical path segment.

    Raises:
        EncodingError: a part is empty or breaks a rule of the module
            docstring (``/``, ``;``, ``.``, ``..``, a decimal version with
            leading zeros, ...).
    """
    path = "/v2/models/" + _text_segment(name, "the model name")
    if version is not None:
        segment = _text_segment(version, "the model version")
        _check_version(segment, f"the model version {_shown(version)}")
        path += "/versions/" + segment
    return path


def _text_segment(text: str, what: str) -> str:
    if not isinstance(text, str) or not text:
        raise EncodingError(f"{what} must be a non-empty string")
    _check_segment_text(text, f"{what} {_shown(text)}")
    return quote(text, safe="")


def arbiter_label(text: str) -> str:
    """``label:<text>``: the arbiter's name for an in-process model, which no
    claim can name. ``text`` has 1 to :data:`MAX_LABEL_LENGTH` printable
    characters without leading or trailing white space.

    Raises:
        EncodingError: ``text`` breaks that rule.
    """
    if not (
        isinstance(text, str)
        and 0 < len(text) <= MAX_LABEL_LENGTH
        and text.isprintable()
        and text.strip() == text
    ):
        raise EncodingError(
            f"a label has 1 to {MAX_LABEL_LENGTH} printable characters without leading or "
            "trailing white space"
        )
    return "label:" + text


def check_file_reference(reference: str) -> str:
    """``reference`` if it is a canonical ``sha256:`` reference of a model file.

    Raises:
        EncodingError: anything else (upper-case hex included: write it in lower case).
    """
    if not (
        isinstance(reference, str)
        and reference.startswith("sha256:")
        and _HEX64.fullmatch(reference[7:])
        and reference == reference.lower()
    ):
        raise EncodingError(
            f"{_shown(str(reference))} is not a model file reference: write sha256: and the "
            "64 lower-case hex digits of the SHA-256 of the file's bytes"
        )
    return reference


# -- parsing -------------------------------------------------------------------


def _is_model_path(segments: list[str]) -> bool:
    """Whether the canonical ``segments`` end in a model's path. At most one
    of the two forms fits: the next-to-last segment is ``models`` in the
    first, ``versions`` in the second."""
    if len(segments) >= 3 and segments[-3:-1] == ["v2", "models"]:
        return True
    return len(segments) >= 5 and segments[-5:-3] == ["v2", "models"] and segments[-2] == "versions"


def _check_version(segment: str, context: str) -> None:
    """A decimal version is written without leading zeros: Triton reads the
    version as an integer, so ``01`` and ``1`` are one model version there."""
    if segment.isdigit() and segment.isascii() and segment != str(int(segment)):
        raise EncodingError(
            f"{context}: a decimal model version is read as an integer by servers (Triton), "
            f"so write it without leading zeros: {int(segment)}"
        )


def _check_characters(url: str, context: str) -> None:
    for char in url:
        if "!" <= char <= "~" and char not in "\\?#":
            continue
        if char in "?#":
            raise EncodingError(f"{context}: the URL {_CREDENTIALS_RULE}")
        if char == "\\":
            raise EncodingError(
                f"{context}: a backslash is read as '/' by some URL parsers and as a "
                "character by others; write '/'"
            )
        if not char.isascii():
            raise EncodingError(
                f"{context}: non-ASCII character {char!r}: write an internationalised host "
                "name as its A-label (xn--...) and percent-encode path text as UTF-8"
            )
        raise EncodingError(
            f"{context}: white space and control characters ({char!r}) are stripped or "
            "encoded differently by different clients; remove them or percent-encode them "
            "inside a path segment"
        )


def _split_url(
    url: str, context: str, *, strip_trailing_slashes: bool, safe: str = ""
) -> tuple[str, list[str]]:
    """The canonical ``scheme://host[:port]`` of ``url`` and its canonical
    path segments. A reference may end in one slash, a base URL in any number."""
    _check_characters(url, context)
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in _DEFAULT_PORTS:
        raise EncodingError(f"{context}: the URL must be http(s)://host[:port][/path]")
    authority, slash, path = rest.partition("/")
    origin = f"{scheme}://{_canonical_authority(authority, scheme, context)}"
    parts = path.split("/") if slash else []
    if strip_trailing_slashes:
        while parts and parts[-1] == "":
            parts.pop()
    elif parts and parts[-1] == "":
        parts.pop()
    if "" in parts:
        raise EncodingError(
            f"{context}: an empty path segment ('//'): some servers and proxies merge "
            "slashes and others do not; write one '/'"
        )
    return origin, [_canonical_segment(part, context, safe) for part in parts]


def _canonical_segment(raw: str, context: str, safe: str = "") -> str:
    if not _PCHARS.fullmatch(raw):
        if re.search(r"%(?![0-9A-Fa-f]{2})", raw):
            raise EncodingError(
                f"{context}: a '%' must begin a %XX escape (write a literal '%' as %25)"
            )
        char = next(c for c in raw if not _PCHARS.fullmatch(c))
        raise EncodingError(f"{context}: {char!r} must be percent-encoded in a path")
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise EncodingError(
            f"{context}: the percent-escapes of path segment {raw!r} are not UTF-8 text"
        ) from None
    _check_segment_text(text, context)
    return quote(text, safe=safe)


def _check_segment_text(text: str, context: str) -> None:
    """The rules on the text of one path segment (decoded)."""
    if text in (".", ".."):
        raise EncodingError(
            f"{context}: a '.' or '..' path segment (%2E included) is resolved away by "
            "clients and servers; name the path it leads to"
        )
    if "/" in text or "\\" in text:
        raise EncodingError(
            f"{context}: '/' and '\\' (%2F, %5C) inside a path segment are decoded into "
            "separators by some servers; a name or path segment must not hold them"
        )
    if ";" in text:
        raise EncodingError(
            f"{context}: ';' (%3B) begins path parameters, which some servers strip "
            "(so /m;x reaches /m); a name or path segment must not hold it"
        )
    if not text.isprintable() or text.strip() != text:
        raise EncodingError(
            f"{context}: a path segment must not hold control characters or leading or "
            "trailing white space"
        )
    if not unicodedata.is_normalized("NFC", text):
        raise EncodingError(
            f"{context}: the text of a path segment must be in Unicode NFC "
            f"({unicodedata.normalize('NFC', text)!r})"
        )


def _canonical_authority(authority: str, scheme: str, context: str) -> str:
    if not authority:
        raise EncodingError(f"{context}: the URL has no host")
    if "@" in authority:
        raise EncodingError(f"{context}: the URL {_CREDENTIALS_RULE}")
    port: str | None
    if authority.startswith("["):
        literal, bracket, after = authority[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise EncodingError(f"{context}: an IPv6 host is written [address][:port]")
        host = _ipv6_host(literal, context)
        port = after[1:] if after else None
    else:
        name, colon, port = authority.partition(":")
        if ":" in port or "[" in authority or "]" in authority:
            raise EncodingError(f"{context}: an IPv6 address is written in brackets, [::1]")
        host = _named_host(name, context)
        if not colon:
            port = None
    return host + _canonical_port(port, scheme, context)


def _canonical_port(port: str | None, scheme: str, context: str) -> str:
    if not port:  # absent, or empty: the default port (RFC 3986 6.2.3)
        return ""
    if not _PORT.fullmatch(port) or not 0 < int(port) < 65536:
        raise EncodingError(f"{context}: the port must be a decimal number from 1 to 65535")
    number = int(port)
    return "" if number == _DEFAULT_PORTS[scheme] else f":{number}"


def _ipv6_host(literal: str, context: str) -> str:
    if "%" in literal:
        raise EncodingError(
            f"{context}: an IPv6 zone identifier (%25...) names an interface of the client, "
            "not the server; remove it"
        )
    try:
        address = ipaddress.IPv6Address(literal)
    except ValueError:
        raise EncodingError(f"{context}: [{literal}] is not an IPv6 address") from None
    return _ip_host(address, context)


def _named_host(name: str, context: str) -> str:
    host = name.lower().removesuffix(".")  # a trailing dot: the fully qualified form
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:  # four decimal numbers; leading zeros are refused (Python >= 3.9.5)
            address = ipaddress.IPv4Address(host)
        except ValueError:
            raise EncodingError(
                f"{context}: a host ending in a number is read as an IPv4 address, and "
                "resolvers accept many spellings of one (127.1, 2130706433, 0x7f000001, "
                "0177.0.0.1): write it as four decimal numbers from 0 to 255 without leading "
                "zeros, like 127.0.0.1"
            ) from None
        return _ip_host(address, context)
    if len(host) > _MAX_HOST_LENGTH or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise EncodingError(
            f"{context}: a host name is dot-separated labels of 1 to 63 of a-z, 0-9, '-' and "
            f"'_', at most {_MAX_HOST_LENGTH} characters in all, without percent-escapes "
            "(an internationalised name is written as its A-label, xn--...)"
        )
    if host.endswith(".localhost"):
        raise EncodingError(
            f"{context}: every name under .localhost is the local host (RFC 6761 6.3); "
            "write localhost"
        )
    return host


def _ip_host(address: ipaddress.IPv4Address | ipaddress.IPv6Address, context: str) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:
            raise EncodingError(
                f"{context}: a NAT64 address (64:ff9b::/96) reaches the IPv4 address it "
                "embeds; write that address"
            )
    if address.is_unspecified:
        raise EncodingError(
            f"{context}: {address} names no host (a client connecting to it reaches the "
            "local host); write 127.0.0.1 or [::1]"
        )
    if address.is_loopback and address not in _CANONICAL_LOOPBACK:
        raise EncodingError(
            f"{context}: a server listening on every interface answers on every loopback "
            "address; write 127.0.0.1 or [::1]"
        )
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    return f"[{address.compressed}]"
