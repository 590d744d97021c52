"""Keystreams and samplers: exact agreement with the sequential definition,
exact uniformity, and statistical checks on the labels they produce."""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from secmark.errors import EncodingError
from secmark.messages.families import NoiseFamily
from secmark.messages.labels import ClassLabels
from secmark.triggers import iter_triggers, sampling
from secmark.triggers.sampling import (
    KeyStream,
    distinct_uniform_integers,
    integer_width,
    stream_keys,
    uniform_float32,
    uniform_float32_rows,
    uniform_float64,
    uniform_integer,
    uniform_integers,
)
from tests.conftest import fixed_keys
from tests.triggers import reference
from tests.triggers.conftest import commit

# Fixed so that the statistical tests cannot flake: a uniform sampler fails
# one of them with probability about 1e-6 per test.
SIGNIFICANCE = 1e-6

keys_32 = st.binary(min_size=32, max_size=32)
ranges = st.one_of(
    st.integers(1, 2**32),
    st.sampled_from(
        [1, 2, 3, 5, 127, 128, 129, 255, 256, 257, 1000, 65535, 65536, 65537, 2**24 + 1, 2**31 + 1]
    ),
)


def test_keystream_is_rfc8439_chacha20_with_zero_nonce() -> None:
    # RFC 8439 appendix A.1, test vectors 1 and 2: all-zero key and nonce,
    # block counters 0 and 1.
    stream = KeyStream(bytes(32))
    assert stream.read(16).tobytes().hex() == "76b8e0ada0f13d90405d6ae55386bd28"
    stream.read(48)
    assert stream.read(16).tobytes().hex() == "9f07e7be5551387a98ba977c732d080d"


def test_stream_keys_are_rfc5869_hkdf() -> None:
    beta = hashlib.sha512(b"beta").digest()
    assert stream_keys(beta) == (
        reference.hkdf_sha256(beta, b"secmark-v1 input stream"),
        reference.hkdf_sha256(beta, b"secmark-v1 label stream"),
    )


@given(key=keys_32, sizes=st.lists(st.integers(0, 3000), max_size=6))
@settings(max_examples=40, deadline=None)
def test_keystream_reads_are_one_continuous_stream(key: bytes, sizes: list[int]) -> None:
    stream, expected = KeyStream(key), reference.Stream(key)
    for size in sizes:
        assert stream.peek(size).tobytes() == expected.read(size)
        stream.advance(size)


def test_keystream_crosses_its_refill_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampling, "_PIECE", 100)
    stream = KeyStream(bytes(range(32)))
    stream.read(30)
    assert stream.read(1234).tobytes() == reference.Stream(bytes(range(32))).read(1264)[30:]


def test_keystream_refuses_bad_keys_and_overreads() -> None:
    with pytest.raises(EncodingError):
        KeyStream(bytes(31))
    stream = KeyStream(bytes(32))
    stream.peek(4)
    with pytest.raises(ValueError):
        stream.advance(10_000)  # far past what was produced


@given(key=keys_32, n=ranges, count=st.integers(0, 400))
@settings(max_examples=150, deadline=None)
def test_uniform_integers_equal_the_sequential_definition(key: bytes, n: int, count: int) -> None:
    stream, expected = KeyStream(key), reference.Stream(key)
    drawn = uniform_integers(stream, n, count)
    assert drawn.dtype == np.int64
    assert drawn.tolist() == [reference.uniform(expected, n) for _ in range(count)]
    # The stream is left exactly where the sequential definition leaves it.
    assert stream.read(8).tobytes() == expected.read(8)
    assert all(0 <= v < n for v in drawn.tolist())


@given(key=keys_32, n=ranges, count=st.integers(9, 200))
@settings(max_examples=40, deadline=None)
def test_sampler_blocks_that_run_short_continue_the_stream(key: bytes, n: int, count: int) -> None:
    # Blocks of 7 candidates force many refills and partial blocks.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sampling, "_MAX_BLOCK", 7)
        stream = KeyStream(key)
        drawn = uniform_integers(stream, n, count)
    expected = reference.Stream(key)
    assert drawn.tolist() == [reference.uniform(expected, n) for _ in range(count)]
    assert stream.read(8).tobytes() == expected.read(8)


@given(key=keys_32, n=st.integers(1, 600), data=st.data())
@settings(max_examples=80, deadline=None)
def test_distinct_integers_equal_the_sequential_definition(
    key: bytes, n: int, data: st.DataObject
) -> None:
    count = data.draw(st.integers(0, n))
    stream, expected = KeyStream(key), reference.Stream(key)
    drawn = distinct_uniform_integers(stream, n, count)
    assert drawn.tolist() == reference.distinct(expected, n, count)
    assert len(set(drawn.tolist())) == count
    assert stream.read(8).tobytes() == expected.read(8)


def test_distinct_integers_refuse_more_than_exist() -> None:
    with pytest.raises(EncodingError):
        distinct_uniform_integers(KeyStream(bytes(32)), 5, 6)


finite = st.floats(min_value=-(2.0**100), max_value=2.0**100, allow_nan=False, width=32)


@given(
    key=keys_32,
    bounds=st.tuples(finite, finite).filter(lambda b: b[0] != b[1]),
    count=st.integers(0, 200),
)
@settings(max_examples=80, deadline=None)
def test_float32_values_equal_the_definition_and_stay_in_range(
    key: bytes, bounds: tuple[float, float], count: int
) -> None:
    low, high = sorted(bounds)
    stream, expected = KeyStream(key), reference.Stream(key)
    drawn = uniform_float32(stream, low, high, count)
    assert drawn.dtype == np.float32
    assert (
        drawn.tobytes()
        == np.array(
            [reference.f32(expected, low, high) for _ in range(count)], dtype=np.float32
        ).tobytes()
    )
    assert np.all((drawn >= np.float32(low)) & (drawn <= np.float32(high)))


@pytest.mark.parametrize(
    ("low", "high"), [(0.0, 1.0), (-0.0, 1.0), (-1.0, 1.0), (0.0, 255.0), (0.25, 0.5)]
)
@pytest.mark.parametrize("count", [0, 1, 4, 5, 6, 23, 300])
def test_float32_blocks_and_chunks_equal_the_definition(
    monkeypatch: pytest.MonkeyPatch, low: float, high: float, count: int
) -> None:
    # Tiny blocks and chunks: every value is decoded through block and chunk
    # boundaries, on the exact binary32 path ([0, 1)) and the binary64 one.
    monkeypatch.setattr(sampling, "_FLOAT_BLOCK", 5)
    monkeypatch.setattr(sampling, "_MAX_BLOCK", 11)
    key = hashlib.sha256(f"float32 {low} {high} {count}".encode()).digest()
    stream, expected = KeyStream(key), reference.Stream(key)
    stream.read(1)
    expected.read(1)
    drawn = uniform_float32(stream, low, high, count)
    reference_values = [reference.f32(expected, low, high) for _ in range(count)]
    assert drawn.tobytes() == np.array(reference_values, dtype=np.float32).tobytes()
    # The byte peeked past the last value is not consumed.
    assert stream.read(8).tobytes() == expected.read(8)


@pytest.mark.parametrize(
    ("low", "high"), [(0.0, 1.0), (-0.0, 1.0), (-1.0, 1.0), (0.0, 255.0), (0.25, 0.5)]
)
@pytest.mark.parametrize(("rows", "count"), [(0, 4), (1, 0), (1, 7), (5, 23), (3, 300)])
@pytest.mark.parametrize("float_block", [None, 50])
def test_float32_rows_equal_the_definition_row_by_row(
    monkeypatch: pytest.MonkeyPatch,
    low: float,
    high: float,
    rows: int,
    count: int,
    float_block: int | None,
) -> None:
    if float_block is not None:
        # Blocks of one or two rows, the last one partial.
        monkeypatch.setattr(sampling, "_FLOAT_ROWS_BLOCK", float_block)
    keys = [hashlib.sha256(f"rows {low} {high} {row}".encode()).digest() for row in range(rows)]
    drawn = np.full((rows, count), np.nan, dtype=np.float32)
    uniform_float32_rows(keys, low, high, drawn)
    for row, key in enumerate(keys):
        expected = reference.Stream(key)
        reference_values = [reference.f32(expected, low, high) for _ in range(count)]
        assert drawn[row].tobytes() == np.array(reference_values, dtype=np.float32).tobytes()


def test_float32_rows_refuse_a_short_key() -> None:
    with pytest.raises(EncodingError):
        uniform_float32_rows([bytes(32), bytes(31)], 0.0, 1.0, np.empty((2, 3), np.float32))


@given(
    key=keys_32,
    bounds=st.tuples(st.floats(-1e300, 1e300), st.floats(-1e300, 1e300)).filter(
        lambda b: b[0] != b[1]
    ),
)
@settings(max_examples=80, deadline=None)
def test_float64_target_equals_the_definition_and_stays_in_range(
    key: bytes, bounds: tuple[float, float]
) -> None:
    lo, hi = sorted(bounds)
    value = uniform_float64(KeyStream(key), lo, hi)
    assert value == reference.f64(reference.Stream(key), lo, hi)
    assert lo <= value <= hi


def test_float64_range_that_overflows_is_refused() -> None:
    with pytest.raises(EncodingError):
        uniform_float64(KeyStream(bytes(32)), -1.7e308, 1.7e308)


def test_uniform_range_is_bounded() -> None:
    for n in (0, 2**32 + 1):
        with pytest.raises(EncodingError):
            uniform_integer(KeyStream(bytes(32)), n)
    with pytest.raises(EncodingError):
        uniform_integers(KeyStream(bytes(32)), 3, -1)


# --- exact uniformity --------------------------------------------------------


@pytest.mark.parametrize("n", [*range(1, 257), 1000, 40_000, 65_536])
def test_rejection_sampler_is_exactly_uniform_by_enumeration(n: int) -> None:
    """Every candidate a stream can hold, fed through the sampler's rule:
    each value in [0, n) is accepted from exactly the same number of
    candidates, so the draw is exactly uniform (no modulo bias)."""
    width, mask = integer_width(n)
    candidates = np.arange(256**width, dtype=np.int64)
    accepted = (candidates & mask)[(candidates & mask) < n]
    counts = np.bincount(accepted, minlength=n)
    assert len(counts) == n and np.all(counts == counts[0])


def test_modulo_mapping_would_fail_the_enumeration() -> None:
    # The biased alternative this design rules out: one byte mod 3 gives
    # class 0 from 86 byte values and classes 1 and 2 from 85.
    assert Counter(b % 3 for b in range(256)) == {0: 86, 1: 85, 2: 85}
    # Our sampler for n = 3 reads one byte, keeps 2 bits, accepts 0..2: 64 each.
    assert Counter(b & 3 for b in range(256) if b & 3 < 3) == {0: 64, 1: 64, 2: 64}


# --- statistics --------------------------------------------------------------

STAND_IN_BETAS = 100_000


@pytest.fixture(scope="module")
def label_keys() -> list[bytes]:
    # SHA-512(i) stands in for VRF outputs, which are indistinguishable from
    # uniform 64-byte strings without the secret key.
    return [
        stream_keys(hashlib.sha512(i.to_bytes(4, "big")).digest())[1] for i in range(STAND_IN_BETAS)
    ]


@pytest.mark.parametrize("classes", [2, 10, 1000])
def test_labels_are_uniform_chi_square(label_keys: list[bytes], classes: int) -> None:
    labels = [uniform_integer(KeyStream(key), classes) for key in label_keys]
    observed = np.bincount(labels, minlength=classes)
    assert len(observed) == classes
    assert chisquare(observed).pvalue > SIGNIFICANCE


def test_the_chi_square_test_catches_a_modulo_bias(label_keys: list[bytes]) -> None:
    # One keystream byte mod 160: classes 0..95 twice as likely as 96..159.
    # The test above, at the same significance, rejects it.
    biased = [KeyStream(key).read(1)[0] % 160 for key in label_keys]
    assert chisquare(np.bincount(biased, minlength=160)).pvalue < SIGNIFICANCE


def test_labels_from_real_vrf_outputs_are_uniform() -> None:
    keys = fixed_keys("owner")
    signed = commit(keys, NoiseFamily((1,), "uint8", 0, 255), ClassLabels(10), size=1000)
    labels = np.concatenate([b.labels for b in iter_triggers(keys, signed, range(1000))])
    observed = np.bincount(labels, minlength=10)
    assert chisquare(observed).pvalue > SIGNIFICANCE
    assert math.isclose(observed.sum(), 1000)
