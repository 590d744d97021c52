"""``openai:`` references: one spelling for one model behind an OpenAI-compatible API.

The challenge is drawn from the reference, so every accepted spelling of a
model is a challenge its claimant may choose among: the spellings below
must meet in one canonical form, and every form whose meaning depends on
who reads it must be refused. Binding: an adapter sending one model cannot
answer a claim naming another, nor one naming its endpoint as ``json:``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmark.errors import EncodingError, ProtocolError
from secmark.models.reference import (
    CHAT_PATH,
    CLAIMABLE_KINDS,
    COMPLETIONS_PATH,
    MAX_MODEL_NAME,
    MAX_REFERENCE_LENGTH,
    canonical_reference,
    openai_reference,
    split_openai_reference,
)
from secmark.protocol.suspects import bind_suspect

ENDPOINT = "https://api.example.com/v1/chat/completions"


def test_openai_is_a_claimable_kind() -> None:
    assert "openai" in CLAIMABLE_KINDS


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        # Hugging Face ids keep their '/' plain.
        (
            f"openai:{ENDPOINT}#meta-llama/Llama-3.1-8B",
            f"openai:{ENDPOINT}#meta-llama/Llama-3.1-8B",
        ),
        # Scheme and host are lowered, the default port dropped, as in json:.
        (
            "openai:HTTPS://API.Example.COM:443/v1/chat/completions#gpt-4o",
            f"openai:{ENDPOINT}#gpt-4o",
        ),
        (
            "openai:http://[0:0:0:0:0:0:0:1]:8000/v1/completions#m",
            "openai:http://[::1]:8000/v1/completions#m",
        ),
        # Escapes of characters written plain are decoded: %41 is A, %2F is /.
        (f"openai:{ENDPOINT}#%41%2fb", f"openai:{ENDPOINT}#A/b"),
        (f"openai:{ENDPOINT}#a%3ab", f"openai:{ENDPOINT}#a:b"),
        # Everything else is written as upper-case %XX of the UTF-8.
        (f"openai:{ENDPOINT}#caf%c3%a9%20%3f", f"openai:{ENDPOINT}#caf%C3%A9%20%3F"),
        # A '#' in a name is %23; the reference splits at its first '#'.
        (f"openai:{ENDPOINT}#a%23b", f"openai:{ENDPOINT}#a%23b"),
        (f"openai:{ENDPOINT}#%25", f"openai:{ENDPOINT}#%25"),
        # The server's base path is kept, its segments canonical as in json:.
        (
            "openai:https://h.example/serving%2Dx/v1/completions#m",
            "openai:https://h.example/serving-x/v1/completions#m",
        ),
    ],
)
def test_spellings_meet_in_one_canonical_form(spelling: str, canonical: str) -> None:
    assert canonical_reference(spelling) == canonical
    assert canonical_reference(canonical) == canonical


@pytest.mark.parametrize(
    ("model", "written"),
    [
        ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B"),
        ("a#b", "a%23b"),
        ("a b", "a%20b"),
        ("50%", "50%25"),
        ("q?;x", "q%3F%3Bx"),
        ("モデル", "%E3%83%A2%E3%83%87%E3%83%AB"),
    ],
)
def test_a_model_name_is_written_once_and_read_back(model: str, written: str) -> None:
    reference = openai_reference("HTTP://127.0.0.1:8000/v1/completions", model)
    assert reference == f"openai:http://127.0.0.1:8000/v1/completions#{written}"
    assert canonical_reference(reference) == reference
    assert split_openai_reference(reference) == ("http://127.0.0.1:8000", COMPLETIONS_PATH, model)


def test_the_api_path_and_the_base_path_are_read_back() -> None:
    reference = openai_reference("https://h.example/a/b/v1/chat/completions", "m")
    assert split_openai_reference(reference) == ("https://h.example/a/b", CHAT_PATH, "m")


def test_two_models_and_two_apis_are_four_references() -> None:
    references = {
        openai_reference(f"http://127.0.0.1:8000{path}", model)
        for path in (COMPLETIONS_PATH, CHAT_PATH)
        for model in ("a", "b")
    }
    assert len(references) == 4


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        # The model is what tells an endpoint's models apart: it is required.
        (f"openai:{ENDPOINT}", "names the model after the endpoint"),
        (f"openai:{ENDPOINT}#", "names the model after the endpoint"),
        # Model texts with two readings, or none.
        (f"openai:{ENDPOINT}#a%0Ab", "control characters"),
        (f"openai:{ENDPOINT}#%E2%80%8Bm", "control characters"),  # a zero-width space
        (f"openai:{ENDPOINT}#%20m", "leading or trailing white space"),
        (f"openai:{ENDPOINT}#m%C2%A0", "control characters|white space"),
        (f"openai:{ENDPOINT}#e%CC%81", "NFC"),
        (f"openai:{ENDPOINT}#%FF", "not UTF-8"),
        (f"openai:{ENDPOINT}#%C3", "not UTF-8"),
        (f"openai:{ENDPOINT}#a%", "must begin a %XX escape"),
        (f"openai:{ENDPOINT}#a%G0", "must begin a %XX escape"),
        # Characters a spelling must escape (the canonical form is never longer).
        (f"openai:{ENDPOINT}#a b", "must be percent-encoded"),
        (f"openai:{ENDPOINT}#a#b", "must be percent-encoded"),
        (f"openai:{ENDPOINT}#a;b", "must be percent-encoded"),
        (f"openai:{ENDPOINT}#a?b", "must be percent-encoded"),
        (f"openai:{ENDPOINT}#caf\u00e9", "must be percent-encoded"),
        # Only the two APIs, on a root without /v1.
        ("openai:https://api.example.com#m", "names the API posted to"),
        ("openai:https://api.example.com/v1#m", "names the API posted to"),
        ("openai:https://api.example.com/v1/completions/#m", "names the API posted to"),
        ("openai:https://api.example.com/v1/embeddings#m", "names the API posted to"),
        ("openai:https://api.example.com/v2/completions#m", "names the API posted to"),
        ("openai:https://v1/completions#m", "names the API posted to"),  # a host named v1
        ("openai:https://api.example.com/v1/v1/completions#m", "ends in /v1"),
        ("openai:https://api.example.com/x/v1/v1/chat/completions#m", "ends in /v1"),
        # Every rule of a json: URL still applies.
        ("openai:https://user:pw@api.example.com/v1/completions#m", "credentials"),
        ("openai:https://api.example.com/v1/completions?x=1#m", "query"),
        ("openai:https://api.example.com/a/../v1/completions#m", r"'\.\.' path segment"),
        ("openai:https://api.example.com/%2E/v1/completions#m", r"'\.\.' path segment"),
        ("openai:https://api.example.com//v1/completions#m", "empty path segment"),
        ("openai:https://api.example.com/a%2Fb/v1/completions#m", "'/' and"),
        ("openai:http://127.1/v1/completions#m", "IPv4 address"),
        ("openai:http://0.0.0.0/v1/completions#m", "names no host"),
        ("openai:ftp://api.example.com/v1/completions#m", r"http\(s\)"),
    ],
)
def test_ambiguous_or_incomplete_references_are_refused(reference: str, message: str) -> None:
    with pytest.raises(EncodingError, match=message):
        canonical_reference(reference)


def test_an_over_long_model_name_is_refused() -> None:
    with pytest.raises(EncodingError, match=f"1 to {MAX_MODEL_NAME} characters"):
        openai_reference(ENDPOINT, "m" * (MAX_MODEL_NAME + 1))
    # Within the name's bound, but the claim that names it holds 1024 characters.
    with pytest.raises(EncodingError, match="more than a claim holds"):
        openai_reference(ENDPOINT, "\u00e9" * 200)
    spelling = f"openai:{ENDPOINT}#" + "m" * MAX_REFERENCE_LENGTH
    with pytest.raises(EncodingError, match=f"1 to {MAX_REFERENCE_LENGTH} characters"):
        canonical_reference(spelling)


@pytest.mark.parametrize("model", ["", " m", "m\n", "e\u0301", "\u200bm"])
def test_openai_reference_refuses_what_a_claim_could_not_name(model: str) -> None:
    with pytest.raises(EncodingError, match="model name"):
        openai_reference(ENDPOINT, model)


def test_split_takes_canonical_openai_references_only() -> None:
    for reference in (f"json:{ENDPOINT}", f"openai:{ENDPOINT}#%41", "sha256:" + "ab" * 32):
        with pytest.raises(EncodingError, match="no canonical openai: reference"):
            split_openai_reference(reference)


class _Described:
    """A suspect that only describes itself: binding happens before any query."""

    def __init__(self, reference: str) -> None:
        self.reference = reference

    def describe(self) -> str:
        return self.reference

    def predict(self, batch: np.ndarray) -> np.ndarray:
        raise AssertionError("bind_suspect must not query")


@pytest.mark.parametrize(
    ("claimed", "queried"),
    [
        # Another model on the same endpoint: the model the claim names is not asked.
        (f"openai:{ENDPOINT}#a", f"openai:{ENDPOINT}#b"),
        (f"openai:{ENDPOINT}#a", f"openai:{ENDPOINT}#A"),
        # The same model through the other API.
        (
            "openai:https://api.example.com/v1/completions#a",
            "openai:https://api.example.com/v1/chat/completions#a",
        ),
        # The endpoint named without its model cannot be answered by a model on it.
        (f"json:{ENDPOINT}", f"openai:{ENDPOINT}#a"),
    ],
)
def test_an_adapter_of_another_model_is_not_bound(claimed: str, queried: str) -> None:
    with pytest.raises(ProtocolError, match="query the suspect the claim names"):
        bind_suspect(claimed, _Described(queried))


def test_a_non_canonical_model_spelling_is_not_bound() -> None:
    with pytest.raises(ProtocolError, match="not canonical"):
        bind_suspect(f"openai:{ENDPOINT}#%41", _Described(f"openai:{ENDPOINT}#A"))
    with pytest.raises(ProtocolError, match="not canonical"):
        bind_suspect(f"openai:{ENDPOINT}#A", _Described(f"openai:{ENDPOINT}#%41"))


@settings(max_examples=300, deadline=None)
@given(model=st.text(min_size=1, max_size=40))
def test_any_model_name_has_at_most_one_reference_and_reads_back(model: str) -> None:
    try:
        reference = openai_reference(ENDPOINT, model)
    except EncodingError:
        return
    assert canonical_reference(reference) == reference
    assert split_openai_reference(reference) == ("https://api.example.com", CHAT_PATH, model)


@settings(max_examples=300, deadline=None)
@given(raw=st.text(alphabet="aA/:%#;?23fF-~ \u00e9", min_size=1, max_size=12))
def test_canonicalising_a_model_spelling_is_idempotent(raw: str) -> None:
    try:
        canonical = canonical_reference(f"openai:{ENDPOINT}#{raw}")
    except EncodingError:
        return
    assert canonical_reference(canonical) == canonical
    assert len(canonical) <= len(f"openai:{ENDPOINT}#{raw}")


@pytest.mark.parametrize(
    "reference",
    [
        "json:https://user:s3cret@api.example.com/predict",
        "json:https://s3cret@api.example.com/predict",
        "json:https://api.example.com/predict?key=s3cret",
        "json:https://api.example.com/predict#s3cret",
        "oip:https://user:s3cret@api.example.com/v2/models/m",
        f"openai:https://user:s3cret@api.example.com{CHAT_PATH}#m",
        f"openai:https://api.example.com{COMPLETIONS_PATH}?api_key=s3cret#m",
    ],
)
def test_a_refused_reference_does_not_quote_the_credentials_it_held(reference: str) -> None:
    # Error messages go to logs and HTTP problem documents: a key pasted
    # into a URL by mistake must not travel on with the refusal.
    with pytest.raises(EncodingError, match="credentials") as refused:
        canonical_reference(reference)
    assert "s3cret" not in str(refused.value) and "***" in str(refused.value)
