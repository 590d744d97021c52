"""ECVRF-EDWARDS25519-SHA512-TAI: RFC 9381 vectors, rejections, properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl import bindings as sodium
from nacl.exceptions import RuntimeError as SodiumRuntimeError

from secmark.crypto import VrfPublicKey, VrfSecretKey, ecvrf, proof_to_hash
from secmark.errors import KeyMaterialError, ProofError
from tests.conftest import flip_byte, load_vector

RFC_VECTORS = load_vector("ecvrf/rfc9381-tai.json")["vectors"]
Q = 2**252 + 27742317777372353535851937790883648493
P = 2**255 - 19


@pytest.mark.parametrize("vector", RFC_VECTORS, ids=lambda v: f"example-{v['example']}")
def test_rfc9381_intermediate_values(vector: dict[str, str]) -> None:
    secret = VrfSecretKey(bytes.fromhex(vector["sk"]))
    assert secret._x == int.from_bytes(bytes.fromhex(vector["x"]), "little") % Q
    h = ecvrf._encode_to_curve(bytes.fromhex(vector["pk"]), bytes.fromhex(vector["alpha"]))
    assert h.hex() == vector["H"]


@pytest.mark.parametrize("vector", RFC_VECTORS, ids=lambda v: f"example-{v['example']}")
def test_proof_to_hash_matches_rfc(vector: dict[str, str]) -> None:
    assert proof_to_hash(bytes.fromhex(vector["pi"])).hex() == vector["beta"]


@pytest.mark.parametrize("position", range(ecvrf.PROOF_SIZE))
def test_every_tampered_proof_byte_is_rejected(position: int) -> None:
    vector = RFC_VECTORS[1]
    public = VrfPublicKey.from_public_bytes(bytes.fromhex(vector["pk"]))
    proof = bytes.fromhex(vector["pi"])
    for mask in (0x01, 0x80):
        with pytest.raises(ProofError):
            public.verify(bytes.fromhex(vector["alpha"]), flip_byte(proof, position, mask))


def test_unreduced_scalar_is_rejected_although_it_would_verify_mod_q() -> None:
    vector = RFC_VECTORS[0]
    proof = bytes.fromhex(vector["pi"])
    s = int.from_bytes(proof[48:], "little")
    public = VrfPublicKey.from_public_bytes(bytes.fromhex(vector["pk"]))
    with pytest.raises(ProofError, match="not reduced"):
        public.verify(b"", proof[:48] + (s + Q).to_bytes(32, "little"))


def test_zero_challenge_and_scalar_give_proof_error_not_library_error() -> None:
    vector = RFC_VECTORS[0]
    public = VrfPublicKey.from_public_bytes(bytes.fromhex(vector["pk"]))
    forged = bytes.fromhex(vector["pi"])[:32] + bytes(48)
    with pytest.raises(ProofError, match="does not verify"):
        public.verify(b"", forged)


@pytest.mark.parametrize(
    ("encoding", "canonical"),
    [
        ((P - 1).to_bytes(32, "little"), True),
        ((P).to_bytes(32, "little"), False),
        ((P + 1).to_bytes(32, "little"), False),
        ((2**255 - 1).to_bytes(32, "little"), False),
        ((1 | (1 << 255)).to_bytes(32, "little"), False),
        (((P - 1) | (1 << 255)).to_bytes(32, "little"), False),
        ((1).to_bytes(32, "little"), True),
    ],
)
def test_rfc8032_canonical_encoding_rule(encoding: bytes, canonical: bool) -> None:
    assert ecvrf._is_canonical_encoding(encoding) is canonical


def test_encode_to_curve_result_is_in_prime_order_subgroup() -> None:
    for counter in range(32):
        point = ecvrf._encode_to_curve(bytes.fromhex(RFC_VECTORS[0]["pk"]), bytes([counter]))
        assert sodium.crypto_core_ed25519_is_valid_point(point)


@pytest.mark.parametrize("size", [0, 31, 33])
def test_wrong_sizes_are_refused(size: int) -> None:
    with pytest.raises(KeyMaterialError):
        VrfSecretKey(bytes(size))
    with pytest.raises(KeyMaterialError):
        VrfPublicKey.from_public_bytes(bytes(size))


@settings(max_examples=40, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), alpha=st.binary(max_size=96))
def test_prove_verify_round_trip(seed: bytes, alpha: bytes) -> None:
    secret = VrfSecretKey(seed)
    proof, beta = secret.prove_and_hash(alpha)
    assert len(proof) == ecvrf.PROOF_SIZE and len(beta) == ecvrf.OUTPUT_SIZE
    assert secret.public_key.verify(alpha, proof) == beta
    assert proof_to_hash(proof) == beta


@settings(max_examples=40, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    alpha=st.binary(max_size=64),
    position=st.integers(min_value=0, max_value=ecvrf.PROOF_SIZE - 1),
    mask=st.integers(min_value=1, max_value=255),
)
def test_any_single_byte_change_to_a_proof_is_rejected(
    seed: bytes, alpha: bytes, position: int, mask: int
) -> None:
    secret = VrfSecretKey(seed)
    proof = secret.prove(alpha)
    with pytest.raises(ProofError):
        secret.public_key.verify(alpha, flip_byte(proof, position, mask))


@settings(max_examples=25, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), alpha=st.binary(max_size=32))
def test_output_is_unique_per_key_and_input(seed: bytes, alpha: bytes) -> None:
    secret = VrfSecretKey(seed)
    other = VrfSecretKey(hashlib.sha256(seed).digest())
    assert secret.prove_and_hash(alpha)[1] != secret.prove_and_hash(alpha + b"\x00")[1]
    assert secret.prove_and_hash(alpha)[1] != other.prove_and_hash(alpha)[1]
    with pytest.raises(ProofError):
        other.public_key.verify(alpha, secret.prove(alpha))


def test_secret_key_repr_does_not_show_the_seed() -> None:
    seed = bytes(range(32))
    assert seed.hex() not in repr(VrfSecretKey(seed))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    alpha=st.binary(max_size=64),
    position=st.integers(min_value=0, max_value=ecvrf.PROOF_SIZE - 1),
)
def test_ell2_round_trip_and_tamper(seed: bytes, alpha: bytes, position: int) -> None:
    secret = VrfSecretKey(seed)
    proof, beta = secret.prove_and_hash(alpha, suite=ecvrf.ELL2)
    assert secret.public_key.verify(alpha, proof, suite=ecvrf.ELL2) == beta
    assert proof_to_hash(proof, suite=ecvrf.ELL2) == beta
    with pytest.raises(ProofError):
        secret.public_key.verify(alpha, flip_byte(proof, position), suite=ecvrf.ELL2)


def test_a_proof_of_one_suite_does_not_verify_in_the_other() -> None:
    secret = VrfSecretKey(bytes(range(32)))
    for made, checked in ((ecvrf.TAI, ecvrf.ELL2), (ecvrf.ELL2, ecvrf.TAI)):
        with pytest.raises(ProofError):
            secret.public_key.verify(b"alpha", secret.prove(b"alpha", suite=made), suite=checked)


def test_ell2_encode_to_curve_is_in_the_prime_order_subgroup() -> None:
    for counter in range(16):
        point = ecvrf.ELL2.encode_to_curve(bytes.fromhex(RFC_VECTORS[0]["pk"]), bytes([counter]))
        assert sodium.crypto_core_ed25519_is_valid_point(point)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    alpha=st.binary(max_size=96),
    suite=st.sampled_from([ecvrf.TAI, ecvrf.ELL2]),
)
def test_hash_is_the_output_a_proof_proves(seed: bytes, alpha: bytes, suite: ecvrf.Suite) -> None:
    secret = VrfSecretKey(seed)
    assert secret.hash(alpha, suite=suite) == secret.prove_and_hash(alpha, suite=suite)[1]


@pytest.mark.parametrize("vector", RFC_VECTORS, ids=lambda v: f"example-{v['example']}")
def test_hash_matches_rfc_beta(vector: dict[str, str]) -> None:
    secret = VrfSecretKey(bytes.fromhex(vector["sk"]))
    assert secret.hash(bytes.fromhex(vector["alpha"])).hex() == vector["beta"]


def _off_curve_encoding() -> bytes:
    for y in range(2, 100):
        encoded = y.to_bytes(32, "little")
        try:
            sodium.crypto_core_ed25519_add(encoded, encoded)
        except SodiumRuntimeError:
            return encoded
    raise AssertionError("no encoding off the curve below y = 100")


def _bad_gammas() -> dict[str, bytes]:
    gamma = bytes.fromhex(RFC_VECTORS[0]["pi"])[:32]
    order_2 = (P - 1).to_bytes(32, "little")
    return {
        "identity": (1).to_bytes(32, "little"),
        "order 2": order_2,
        "order 4": bytes(32),
        "torsion component": sodium.crypto_core_ed25519_add(gamma, order_2),
        "non-canonical": (P + 1).to_bytes(32, "little"),
        "off the curve": _off_curve_encoding(),
    }


@pytest.mark.parametrize("c", [0, 1, 2**128 - 1], ids=["c=0", "c=1", "c=max"])
@pytest.mark.parametrize("name", list(_bad_gammas()))
def test_invalid_gamma_is_refused_once_checked_by_the_multiplication(name: str, c: int) -> None:
    # verify leaves Gamma's check to the scalar multiplication c * Gamma; for
    # c = 0 there is no multiplication, and Gamma is checked on its own.
    vector = RFC_VECTORS[0]
    public = VrfPublicKey.from_public_bytes(bytes.fromhex(vector["pk"]))
    proof = _bad_gammas()[name] + c.to_bytes(16, "little") + bytes.fromhex(vector["pi"])[48:]
    with pytest.raises(ProofError, match="Gamma"):
        public.verify(bytes.fromhex(vector["alpha"]), proof)
    with pytest.raises(ProofError, match="Gamma"):
        proof_to_hash(proof)


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00" * 31, bytes(32), bytes([1]) + bytes(31), b"\xff" * 32, "not bytes"],
)
def test_the_public_constructor_validates_like_from_public_bytes(raw: object) -> None:
    """VrfPublicKey(raw) is public: it refuses what from_public_bytes does,
    so no unchecked key reaches libsodium in verify."""
    with pytest.raises(KeyMaterialError):
        VrfPublicKey(raw)  # type: ignore[arg-type]
