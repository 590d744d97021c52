"""Re-rolling the challenge through aliases of one suspect (specs/dispute.md 8.3).

The arbiter's challenge is a VRF function of (commitment id, SHA-256 of the
suspect reference). Before canonical references were enforced, 13 spellings
of one endpoint (IP literal forms, trailing dots, percent-encoding, dot
segments, free labels) were 13 suspects with 13 challenges, which together
covered 240 of 256 triggers. Every alias below either canonicalises to the
one reference or is refused with an EncodingError; free ``label:`` text is
the arbiter's, never the claimant's; and the arbiter binds what it actually
queries to the claim's reference (``bind_suspect``).

Do not modify the alias tables without a reason: each row is an attack.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import string
import unicodedata
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from secmark.crypto import IdentityKeys
from secmark.errors import EncodingError, ProtocolError, SuspectError
from secmark.messages import sign_document
from secmark.messages.claim import create_claim
from secmark.messages.transcript import Transcript, TranscriptEntry, open_transcript
from secmark.models import CallableSuspect, OipSuspect, WeightsSuspect
from secmark.protocol.suspects import bind_suspect, canonical_suspect
from tests.protocol.conftest import Committed, World

MODEL = "/v2/models/m"
LOOPBACK = "oip:http://127.0.0.1:8080/v2/models/m"

# -- one endpoint, one reference ----------------------------------------------------

ALIASES_OF_LOOPBACK = [
    "oip:http://127.0.0.1:8080/v2/models/m",
    "oip:HTTP://127.0.0.1:8080/v2/models/m",
    "oip:http://127.0.0.1.:8080/v2/models/m",
    "oip:http://127.0.0.1:08080/v2/models/m",
    "oip:http://127.0.0.1:8080/v2/models/m/",
    "oip:http://[::ffff:127.0.0.1]:8080/v2/models/m",
    "oip:http://[::FFFF:7F00:1]:8080/v2/models/m",
    "oip:http://[0:0:0:0:0:ffff:7f00:0001]:8080/v2/models/m",
    "oip:http://127.0.0.1:8080/%76%32/%6d%6F%64%65%6C%73/%6D",
    "oip:http://127.0.0.1:8080/v2/models/%6d",
]
"""Spellings of http://127.0.0.1:8080/v2/models/m that canonicalise to it."""

REFUSED_ALIASES_OF_LOOPBACK = [
    # IPv4 forms inet_aton and WHATWG parsers accept besides the dotted quad
    "oip:http://127.1:8080/v2/models/m",
    "oip:http://127.0.1:8080/v2/models/m",
    "oip:http://2130706433:8080/v2/models/m",
    "oip:http://0x7f000001:8080/v2/models/m",
    "oip:http://0X7F000001:8080/v2/models/m",
    "oip:http://0x7f.0.0.1:8080/v2/models/m",
    "oip:http://0177.0.0.1:8080/v2/models/m",
    "oip:http://127.0.0.01:8080/v2/models/m",
    "oip:http://127.000.000.001:8080/v2/models/m",
    "oip:http://127.0.0.1..:8080/v2/models/m",
    # Unicode digits and dots that IDNA mapping turns into ASCII ones
    "oip:http://\u0661\u0662\u0667.0.0.1:8080/v2/models/m",
    "oip:http://\uff11\uff12\uff17.0.0.1:8080/v2/models/m",
    "oip:http://127\u30020\u30020\u30021:8080/v2/models/m",
    # other loopback and unspecified addresses reach the same listener
    "oip:http://127.0.0.2:8080/v2/models/m",
    "oip:http://127.255.255.254:8080/v2/models/m",
    "oip:http://0.0.0.0:8080/v2/models/m",
    "oip:http://[::]:8080/v2/models/m",
    "oip:http://[::ffff:127.0.0.2]:8080/v2/models/m",
    "oip:http://[::ffff:0.0.0.0]:8080/v2/models/m",
    "oip:http://[64:ff9b::7f00:1]:8080/v2/models/m",
    "oip:http://[fe80::1%25lo]:8080/v2/models/m",
    "oip:http://[::1%25lo]:8080/v2/models/m",
    # dot segments, empty segments, encoded separators
    "oip:http://127.0.0.1:8080/%2e/v2/models/m",
    "oip:http://127.0.0.1:8080/%2E%2E/v2/models/m",
    "oip:http://127.0.0.1:8080/./v2/models/m",
    "oip:http://127.0.0.1:8080/x/../v2/models/m",
    "oip:http://127.0.0.1:8080/.%2e/v2/models/m",
    "oip:http://127.0.0.1:8080//v2/models/m",
    "oip:http://127.0.0.1:8080/v2//models/m",
    "oip:http://127.0.0.1:8080/v2/models/m//",
    "oip:http://127.0.0.1:8080/v2%2Fmodels/m",
    "oip:http://127.0.0.1:8080/v2/models/m%2F",
    "oip:http://127.0.0.1:8080/v2/models/m%5C",
    "oip:http://127.0.0.1:8080\\v2\\models\\m",
    # path parameters, credentials, queries, fragments, white space
    "oip:http://127.0.0.1:8080/v2/models/m;x=1",
    "oip:http://127.0.0.1:8080/v2/models/m%3Bx",
    "oip:http://u:p@127.0.0.1:8080/v2/models/m",
    "oip:http://@127.0.0.1:8080/v2/models/m",
    "oip:http://127.0.0.1:8080/v2/models/m?x=1",
    "oip:http://127.0.0.1:8080/v2/models/m#x",
    " oip:http://127.0.0.1:8080/v2/models/m",
    "oip:http://127.0.0.1:8080/v2/models/m ",
    "oip:http://127.0.0.1:8080/v2/models/m\n",
    "oip:http://127.0.0.1:8080/v2/mod\tels/m",
    "oip:http://127.0.0.1:8080/v2/models/m%20",
    "oip:http://127.0.0.1:8080/v2/models/%00m",
    "oip:http://127.0.0.1:8080/v2/models/m%09",
    # ports
    "oip:http://127.0.0.1:+8080/v2/models/m",
    "oip:http://127.0.0.1:8080:8080/v2/models/m",
    "oip:http://127.0.0.1:0x1f90/v2/models/m",
    # free labels
    "label:the model at 127.0.0.1:8080",
    "label:oip:http://127.0.0.1:8080/v2/models/m",
    "OIP:http://127.0.0.1:8080/v2/models/m",
    "http://127.0.0.1:8080/v2/models/m",
]
"""Spellings that would reach http://127.0.0.1:8080/v2/models/m (with some
client or server) and are refused."""


def test_spellings_of_one_endpoint_canonicalise_to_one_reference() -> None:
    assert {canonical_suspect(spelling) for spelling in ALIASES_OF_LOOPBACK} == {LOOPBACK}
    assert canonical_suspect(LOOPBACK) == LOOPBACK


@pytest.mark.parametrize("spelling", REFUSED_ALIASES_OF_LOOPBACK)
def test_ambiguous_spellings_of_an_endpoint_are_refused(spelling: str) -> None:
    with pytest.raises(EncodingError):
        canonical_suspect(spelling)


def test_the_thirteen_spellings_of_the_report_give_one_challenge_input() -> None:
    """The spellings that covered 240 of 256 triggers: at most one is left,
    so at most one challenge can be drawn for this endpoint."""
    spellings = [
        "oip:http://127.0.0.1:8080/v2/models/m",
        "oip:http://127.1:8080/v2/models/m",
        "oip:http://2130706433:8080/v2/models/m",
        "oip:http://0x7f000001:8080/v2/models/m",
        "oip:http://[::ffff:127.0.0.1]:8080/v2/models/m",
        "oip:http://[0:0:0:0:0:ffff:7f00:1]:8080/v2/models/m",
        "oip:http://127.0.0.1.:8080/v2/models/m",
        "oip:http://127.0.0.1:8080/%2e/v2/models/m",
        "oip:http://127.0.0.1:8080/%70/../v2/models/m",
        "oip:http://127.0.0.1:8080/v2/models/%6D",
        "label:suspect one",
        "label:suspect two",
        "label:Suspect one",
    ]
    accepted = set()
    for spelling in spellings:
        try:
            accepted.add(canonical_suspect(spelling))
        except EncodingError:
            continue
    assert accepted == {LOOPBACK}


@pytest.mark.parametrize(
    ("spellings", "canonical"),
    [
        (["localhost", "LOCALHOST", "localhost.", "LocalHost."], "localhost"),
        (["[::1]", "[0:0:0:0:0:0:0:1]", "[0000::0001]", "[::0:1]", "[0::1]"], "[::1]"),
        (["[2001:DB8::1]", "[2001:db8:0:0:0:0:0:1]", "[2001:0db8::0001]"], "[2001:db8::1]"),
        # RFC 5952 4.2.3: the first of two equally long runs of zeros is compressed
        (["[2001:db8:0:0:1:0:0:1]", "[2001:DB8::1:0:0:1]"], "[2001:db8::1:0:0:1]"),
        # RFC 5952 4.2.2: a single zero group is not compressed
        (["[2001:db8:0:1:1:1:1:1]", "[2001:db8::1:1:1:1:1]"], "[2001:db8:0:1:1:1:1:1]"),
        (["XN--BCHER-KVA.example", "xn--bcher-kva.EXAMPLE."], "xn--bcher-kva.example"),
        (["example.com", "Example.COM", "example.com."], "example.com"),
        (["[::ffff:192.0.2.1]", "[::ffff:c000:201]", "192.0.2.1", "192.0.2.1."], "192.0.2.1"),
    ],
)
def test_host_spellings_canonicalise_to_one_host(spellings: list[str], canonical: str) -> None:
    for spelling in spellings:
        assert (
            canonical_suspect(f"oip:http://{spelling}{MODEL}") == f"oip:http://{canonical}{MODEL}"
        )


@pytest.mark.parametrize(
    "host",
    [
        "a.localhost",
        "A.LocalHost.",
        "%6cocalhost",
        "b\u00fccher.example",
        "localhost..",
        ".localhost",
        "example.123",
        "example.0x1",
        "-" * 64,
        ".".join(["a" * 63] * 4),
        "[v1.x]",
        "[::1",
        "::1",
        "[::1]x",
        "[1:2:3:4:5:6:7:8:9]",
        "",
    ],
)
def test_ambiguous_or_malformed_hosts_are_refused(host: str) -> None:
    with pytest.raises(EncodingError):
        canonical_suspect(f"oip:http://{host}{MODEL}")


@pytest.mark.parametrize(
    ("canonical", "spelling"),
    [
        ("oip:http://h/v2/models/m", "oip:http://h:80/v2/models/m"),
        ("oip:http://h/v2/models/m", "oip:http://h:/v2/models/m"),
        ("oip:http://h/v2/models/m", "oip:http://h:0080/v2/models/m"),
        ("oip:https://h/v2/models/m", "oip:https://h:443/v2/models/m"),
        ("oip:https://h/v2/models/m", "oip:HTTPS://h:0443/v2/models/m"),
        ("oip:http://h:443/v2/models/m", "oip:http://h:0443/v2/models/m"),
        ("oip:https://h:80/v2/models/m", "oip:https://h:80/v2/models/m"),
        ("oip:http://h/p/v2/models/m", "oip:http://h/%70/v2/models/m"),
        ("oip:http://h/~u/v2/models/m", "oip:http://h/%7e%75/v2/models/m"),
        ("oip:http://h/a-b_c.d/v2/models/m", "oip:http://h/%61%2D%62%5F%63%2E%64/v2/models/m"),
        ("oip:http://h/v2/models/a%3Ab", "oip:http://h/v2/models/a:b"),
        ("oip:http://h/v2/models/a%3Ab", "oip:http://h/v2/models/a%3ab"),
        ("oip:http://h/v2/models/a%40b", "oip:http://h/v2/models/a@b"),
        ("oip:http://h/v2/models/a%2Bb", "oip:http://h/v2/models/a+b"),
        ("oip:http://h/v2/models/a%20b", "oip:http://h/v2/models/a%20b"),
        ("oip:http://h/v2/models/%C3%A9", "oip:http://h/v2/models/%c3%a9"),
        ("oip:http://h/v2/models/%25", "oip:http://h/v2/models/%25"),
        ("oip:http://h/v2/models/m/versions/1", "oip:http://h/v2/models/m/versions/%31/"),
        ("oip:http://h/v2/models/m/versions/v01", "oip:http://h/v2/models/m/versions/v01"),
        ("oip:http://h/v2/models/m/versions/0", "oip:http://h/v2/models/m/versions/0"),
        ("sha256:" + "ab" * 32, "sha256:" + "AB" * 32),
        ("sha256:" + "ab" * 32, "sha256:" + "aB" * 32),
    ],
)
def test_equivalent_spellings_canonicalise_to_one_reference(canonical: str, spelling: str) -> None:
    assert canonical_suspect(spelling) == canonical
    assert canonical_suspect(canonical) == canonical


@pytest.mark.parametrize(
    "reference",
    [
        "oip:http://h/v2/models/%C3",  # not UTF-8
        "oip:http://h/v2/models/%FF",
        "oip:http://h/v2/models/%",
        "oip:http://h/v2/models/%zz",
        "oip:http://h/v2/models/%2",
        "oip:http://h/v2/models/\u00e9",  # raw non-ASCII
        "oip:http://h/v2/models/e%CC%81",  # not NFC: e + combining acute
        "oip:http://h/v2/models/m%CD%BEx",  # U+037E, ';' in NFC
        "oip:http://h/v2/models/%E2%84%AB",  # U+212B ANGSTROM SIGN, U+00C5 in NFC
        "oip:http://h/v2/models/%E2%80%8B",  # zero-width space: not printable
        "oip:http://h/v2/models/a%0Ab",
        'oip:http://h/v2/models/a"b',
        "oip:http://h/v2/models/a<b",
        "oip:http://h/v2/models/a|b",
        "oip:http://h/v2/models/m/versions/01",  # Triton reads versions as integers
        "oip:http://h/v2/models/m/versions/%30%31",
        "oip:http://h/v2/models/m/versions/",
        "oip:http://h/v2/models",
        "oip:http://h/v2/models/",
        "oip:http://h/v1/models/m",
        "oip:http://h/v2/models/m/infer",
        "oip:ftp://h/v2/models/m",
        "oip://h/v2/models/m",
        "oip:http:/h/v2/models/m",
        "oip:h/v2/models/m",
        "sha256:" + "ab" * 31,
        "sha256:" + "ab" * 33,
        "sha256:" + "zz" * 32,
        "sha256:" + "\uff41" * 64,
        "sha512:" + "ab" * 64,
        "oip:http://h/v2/models/" + "m" * 1024,
        "",
    ],
)
def test_malformed_references_are_refused(reference: str) -> None:
    with pytest.raises(EncodingError):
        canonical_suspect(reference)


def test_canonical_urls_are_sent_as_written() -> None:
    """The reference is the URL queried: httpx sends it unchanged."""
    for spelling in ALIASES_OF_LOOPBACK + [
        "oip:http://h/a:b@c/v2/models/%C3%A9%20x/versions/v1.0",
        "oip:http://[2001:db8::1]:8443/v2/models/m",
    ]:
        url = canonical_suspect(spelling)[len("oip:") :] + "/infer"
        assert str(httpx.URL(url)) == url
        assert httpx.URL(url).raw_path.decode("ascii") == url[url.index("/", len("http://")) :]


# -- property: idempotent, and one reference per endpoint ---------------------------

_UNRESERVED = string.ascii_letters + string.digits + "-._~"
_PLAIN_RESERVED = "!$&'()*+,=:@"  # pchar but not unreserved; ';' is refused
_TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8",
        categories=("Lu", "Ll", "Nd", "Pc", "Pd", "Po", "Sm", "Zs"),
        exclude_characters="/\\;",
    ),
    min_size=1,
    max_size=8,
)
SEGMENT_TEXT = _TEXT.map(lambda text: unicodedata.normalize("NFC", text).strip() or "x").filter(
    lambda text: text not in (".", "..") and text.isprintable() and not set(text) & set("/\\;")
)
"""The text of a valid path segment (decoded), in NFC (U+037E, the Greek question
mark, is ';' in NFC)."""


@st.composite
def spelled_segment(draw: st.DrawFn, text: str) -> str:
    """One of the many percent-encodings of ``text`` as a path segment."""
    out = []
    for char in text:
        octets = char.encode("utf-8")
        escapes = "".join(
            draw(st.sampled_from([f"%{byte:02X}", f"%{byte:02x}"])) for byte in octets
        )
        if char in _UNRESOLVED_SAFE:
            out.append(draw(st.sampled_from([char, escapes])))
        else:
            out.append(escapes)
    return "".join(out)


_UNRESOLVED_SAFE = _UNRESERVED + _PLAIN_RESERVED

HOST_NAMES = st.lists(
    st.text(alphabet=string.ascii_lowercase + string.digits + "-_", min_size=1, max_size=10),
    min_size=1,
    max_size=4,
).filter(
    lambda labels: (
        not labels[-1].isdigit() and not labels[-1].startswith("0x") and labels[-1] != "localhost"
    )
)
IPV4 = st.integers(min_value=1 << 24, max_value=(224 << 24) - 1).map(ipaddress.IPv4Address)
IPV6 = st.integers(min_value=1 << 100, max_value=(1 << 128) - 1).map(ipaddress.IPv6Address)


@st.composite
def endpoints(draw: st.DrawFn) -> dict[str, Any]:
    """An endpoint in a normal form (what it is, not how it is spelled)."""
    kind = draw(st.sampled_from(["name", "ipv4", "ipv6"]))
    host: Any = {
        "name": HOST_NAMES.map(".".join),
        "ipv4": IPV4.filter(lambda a: not a.is_loopback or str(a) == "127.0.0.1"),
        "ipv6": IPV6.filter(lambda a: a not in ipaddress.IPv6Network("64:ff9b::/96")),
    }[kind]
    return {
        "scheme": draw(st.sampled_from(["http", "https"])),
        "host": draw(host),
        "port": draw(st.none() | st.integers(min_value=1, max_value=65535)),
        "base": draw(st.lists(SEGMENT_TEXT, max_size=3)),
        "name": draw(SEGMENT_TEXT),
        "version": draw(st.none() | SEGMENT_TEXT.filter(lambda v: not v.isdigit())),
    }


@st.composite
def spellings(draw: st.DrawFn, endpoint: dict[str, Any]) -> str:
    """One of the accepted spellings of ``endpoint``."""
    scheme = "".join(draw(st.sampled_from([c, c.upper()])) for c in endpoint["scheme"])
    host = endpoint["host"]
    if isinstance(host, ipaddress.IPv4Address):
        choices = [str(host), str(host) + ".", f"[::ffff:{host}]", f"[::FFFF:{host}]"]
        mapped = ipaddress.IPv6Address(int(host) | 0xFFFF << 32)
        choices += [f"[{mapped.exploded}]", f"[{mapped.compressed.upper()}]"]
        spelled_host = draw(st.sampled_from(choices))
    elif isinstance(host, ipaddress.IPv6Address):
        groups = host.exploded.split(":")
        groups = [draw(st.sampled_from([g, g.lstrip("0") or "0", g.upper()])) for g in groups]
        spelled_host = draw(st.sampled_from([f"[{':'.join(groups)}]", f"[{host.compressed}]"]))
    else:
        spelled_host = "".join(draw(st.sampled_from([c, c.upper()])) for c in host)
        spelled_host += draw(st.sampled_from(["", "."]))
    default = 80 if endpoint["scheme"] == "http" else 443
    port = endpoint["port"]
    if port is None or port == default:
        spelled_port = draw(st.sampled_from(["", ":", f":{default}", f":0{default}"]))
    else:
        spelled_port = ":" + "0" * draw(st.integers(0, 2)) + str(port)
    texts = [*endpoint["base"], "v2", "models", endpoint["name"]]
    if endpoint["version"] is not None:
        texts += ["versions", endpoint["version"]]
    path = "".join("/" + draw(spelled_segment(text)) for text in texts)
    path += draw(st.sampled_from(["", "/"]))
    return f"oip:{scheme}://{spelled_host}{spelled_port}{path}"


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def normal(endpoint: dict[str, Any]) -> tuple[Any, ...]:
        default = 80 if endpoint["scheme"] == "http" else 443
        port = None if endpoint["port"] in (None, default) else endpoint["port"]
        return (
            endpoint["scheme"],
            str(endpoint["host"]),
            port,
            tuple(endpoint["base"]),
            endpoint["name"],
            endpoint["version"],
        )

    return normal(a) == normal(b)


PROPERTY_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_canonical_suspect_is_idempotent(data: st.DataObject) -> None:
    spelling = data.draw(spellings(data.draw(endpoints())))
    canonical = canonical_suspect(spelling)
    assert canonical_suspect(canonical) == canonical
    url = canonical[len("oip:") :]
    assert str(httpx.URL(url)) == url


@PROPERTY_SETTINGS
@given(data=st.data())
def test_spellings_of_an_endpoint_map_to_one_reference(data: st.DataObject) -> None:
    endpoint = data.draw(endpoints())
    first, second = data.draw(spellings(endpoint)), data.draw(spellings(endpoint))
    assert canonical_suspect(first) == canonical_suspect(second)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_distinct_endpoints_keep_distinct_references(data: st.DataObject) -> None:
    one, other = data.draw(endpoints()), data.draw(endpoints())
    assume(not _same(one, other))
    assert canonical_suspect(data.draw(spellings(one))) != canonical_suspect(
        data.draw(spellings(other))
    )


@PROPERTY_SETTINGS
@given(reference=st.text(max_size=60).map(lambda text: "oip:http://h/" + text))
def test_any_accepted_text_is_a_fixed_point(reference: str) -> None:
    try:
        canonical = canonical_suspect(reference)
    except EncodingError:
        return
    assert canonical_suspect(canonical) == canonical


# -- labels are the arbiter's ------------------------------------------------------


@pytest.mark.parametrize("reference", ["label:suspect model", "label:x", "label:a local copy"])
def test_a_claim_may_not_name_a_free_label(
    world: World, owner_mark: Committed, reference: str
) -> None:
    """The claimant's own client refuses it, and so does the arbiter when the
    claim is built by hand."""
    with pytest.raises(EncodingError, match="arbiter's own name"):
        world.claim(owner_mark, suspect=reference)
    claim = create_claim(
        world.owner,
        commitment=owner_mark.data,
        commitment_evidence=owner_mark.evidence,
        suspect=reference,
        arbiter=world.arbiter_keys.key_id,
    ).to_json()
    with pytest.raises(EncodingError, match="arbiter's own name"):
        world.arbiter().file_claim(claim)


# -- binding what is queried ---------------------------------------------------------


def test_an_endpoint_binds_to_the_reference_of_the_url_it_queries() -> None:
    with OipSuspect("HTTP://[::FFFF:127.0.0.1]:08080/", "m") as suspect:
        assert bind_suspect(LOOPBACK, suspect) == LOOPBACK


@pytest.mark.parametrize(
    ("base_url", "model", "version"),
    [
        ("http://127.0.0.1:8080", "n", None),
        ("http://127.0.0.1:8080", "m", "1"),
        ("http://localhost:8080", "m", None),
        ("http://[::1]:8080", "m", None),
        ("https://127.0.0.1:8080", "m", None),
        ("http://127.0.0.1:8081", "m", None),
        ("http://127.0.0.1:8080/prefix", "m", None),
    ],
)
def test_bind_refuses_an_endpoint_other_than_the_claims(
    base_url: str, model: str, version: str | None
) -> None:
    with OipSuspect(base_url, model, model_version=version) as suspect:
        with pytest.raises(ProtocolError) as raised:
            bind_suspect(LOOPBACK, suspect)
        assert LOOPBACK in str(raised.value) and suspect.describe() in str(raised.value)


def test_a_weights_file_binds_to_its_digest(tmp_path: Path) -> None:
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path, other = tmp_path / "suspect.safetensors", tmp_path / "other.safetensors"
    path.write_bytes(safetensors_numpy.save({"w": np.ones((2, 3))}))
    other.write_bytes(safetensors_numpy.save({"w": np.zeros((2, 3))}))
    reference = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert bind_suspect(reference, WeightsSuspect(path, "w")) == reference
    with pytest.raises(ProtocolError, match="query the suspect the claim names"):
        bind_suspect(reference, WeightsSuspect(other, "w"))


def test_an_in_process_model_without_a_file_binds_to_nothing() -> None:
    reference = "sha256:" + "ab" * 32
    with pytest.raises(ProtocolError, match="no claim can name"):
        bind_suspect(reference, CallableSuspect(lambda batch: np.zeros(len(batch), np.int64)))
    stated = CallableSuspect(lambda batch: np.zeros(len(batch), np.int64), reference=reference)
    assert bind_suspect(reference, stated) == reference


class _Described:
    """A suspect that describes itself as told."""

    def __init__(self, reference: Any) -> None:
        self.reference = reference

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.zeros(len(batch), np.int64)

    def describe(self) -> Any:
        return self.reference


@pytest.mark.parametrize(
    ("queried", "message"),
    [
        ("oip:HTTP://127.0.0.1:8080/v2/models/m", "not canonical"),
        ("oip:http://127.1:8080/v2/models/m", "no suspect reference"),
        ("label:oip:http://127.0.0.1:8080/v2/models/m", "no claim can name"),
        ("free text", "no suspect reference"),
        (None, "not a reference"),
    ],
)
def test_bind_refuses_an_adapter_that_does_not_report_a_canonical_reference(
    queried: Any, message: str
) -> None:
    with pytest.raises(ProtocolError, match=message):
        bind_suspect(LOOPBACK, _Described(queried))


def test_bind_refuses_a_claim_reference_that_is_not_canonical() -> None:
    with OipSuspect("http://127.0.0.1:8080", "m") as suspect:
        with pytest.raises(ProtocolError, match="not canonical"):
            bind_suspect("oip:http://127.0.0.1:8080/v2/models/m/", suspect)
        with pytest.raises(EncodingError):
            bind_suspect("label:the model at 127.0.0.1", suspect)


def test_an_endpoint_whose_url_has_no_canonical_form_is_not_built() -> None:
    for base_url in ("http://127.1:8080", "http://h/a/../b", "http://h/a%2Fb", "http://h\\x"):
        with pytest.raises(SuspectError):
            OipSuspect(base_url, "m")


# -- the transcript records what was queried ----------------------------------------


def _transcript(suspect: str, queried: str) -> Transcript:
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    entry = TranscriptEntry(0, "00" * 32, 0, 3, None)
    return Transcript("11" * 32, suspect, now, now, (entry,), queried=queried)


def test_the_transcript_records_the_queried_reference() -> None:
    from tests.test_schemas import validator

    keys = IdentityKeys.generate()
    for queried in (LOOPBACK,):
        signed = sign_document(_transcript(LOOPBACK, queried), keys)
        opened = open_transcript(signed.to_json(), keys.public_keys)
        assert opened.document.queried == queried
        payload = json.loads(signed.payload)
        assert payload["queried"] == queried
        validator("transcript").validate(payload)


def test_a_transcript_of_another_model_than_its_suspect_is_refused() -> None:
    with pytest.raises(EncodingError, match="queried another model"):
        _transcript(LOOPBACK, "oip:http://127.0.0.1:8080/v2/models/n")
