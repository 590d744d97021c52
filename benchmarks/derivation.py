"""Trigger derivation and the arbiter's reveal check against their floors, and memory.

Two trigger families, each with K = 10 class labels: noise 3x32x32 float32
on [0, 1) (what a model taking images in [0, 1] is marked with) and noise
3x32x32 uint8 on [0, 255].

Floors are bare library calls on arguments prepared beforehand
(``benchmarks/vrf_floor.py``), nothing but the operations that
``specs/derivation.md`` and RFC 9381 leave no implementation free to skip:

- the beta floor: encode_to_curve, one scalar multiplication ``(8x mod q) * H``
  and SHA-512 (RFC 9381 5.1 then 5.2, no proof);
- the streams floor: per trigger, the two HKDF-SHA256 derivations of 7.2 and
  the two ChaCha20 keystreams (one cipher context each) of exactly the bytes
  the trigger reads: 3 per float32 value or 1 per uint8 value of the input,
  one 64-byte block for the label;
- the verify floor: encode_to_curve, four scalar multiplications, the two
  subtractions that form U and V, the three doublings that clear Gamma's
  cofactor for beta, SHA-512 (RFC 9381 5.3 and 5.2).

(a) Deriving 512 triggers as an owner does before embedding:
    ``iter_triggers`` in batches of 256, reading inputs and labels (the
    batches' proofs are made only when read, and embedding does not read
    them). Target: <= 1.2x the beta floor plus the streams floor, so that
    everything the project adds (the Python around the VRF, sampling,
    decoding, batching) costs at most a fifth of the work the specification
    requires. Also printed: against the beta floor alone (which leaves out
    the streams no implementation can skip), against a bare VRF prove, and,
    for ``secmark derive`` (a trigger set keeps the proofs), the same with
    the proofs read, against the prove floor plus the beta and streams floors.
(b) The arbiter's check of a reveal of 128 indices, the code it runs:
    ``secmark.protocol.reveals.revealed_triggers`` (each proof verified,
    each trigger re-derived from its beta). Target: <= 1.2x the verify floor
    plus the streams floor. Also against the verify floor alone.
(c) Peak traced memory (tracemalloc) deriving N = 4,096 triggers in batches
    of 256 and dropping each batch, against keeping all of them: streaming
    must be O(batch), not O(N).

Times are CPU seconds of this process (``time.process_time``): other work
on a shared machine inflates neither side much. In every round each side
runs once, in alternating order; each ratio is the median of the per-round
ratios (``benchmarks/cputime.py``), printed with the range of the rounds.

Run: python3 benchmarks/derivation.py [--rounds N]
"""

from __future__ import annotations

import argparse
import hashlib
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone

import numpy as np
from cputime import compare, load_average
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from vrf_floor import prepare

from secmark.crypto import IdentityKeys
from secmark.messages.commitment import create_commitment
from secmark.messages.families import NoiseFamily
from secmark.messages.labels import ClassLabels
from secmark.messages.reveal import RevealContents, RevealedTrigger
from secmark.protocol.reveals import revealed_triggers
from secmark.triggers import iter_triggers, trigger_alpha
from secmark.triggers.sampling import INPUT_STREAM_INFO, LABEL_STREAM_INFO

ROUNDS = 15
DERIVED = 512
REVEALED = 128
STREAMED = 4096
BATCH = 256
TARGET = 1.2
FAMILIES = {
    "float32": NoiseFamily((3, 32, 32), "float32", 0.0, 1.0),
    "uint8": NoiseFamily((3, 32, 32), "uint8", 0, 255),
}
# Keystream bytes one trigger's input reads (specs/derivation.md 7.3.3 and
# 7.3.5: three bytes per float32 value; U(256) takes one byte per value).
INPUT_BYTES = {"float32": 3 * 3 * 32 * 32, "uint8": 3 * 32 * 32}
LABEL_BYTES = 64  # one ChaCha20 block: U(10) needs a byte or two of it
_SHA256 = hashes.SHA256()
_ZERO_COUNTER_AND_NONCE = bytes(16)


def streams_floor(betas: list[bytes], input_bytes: int) -> Callable[[], None]:
    """The two HKDF derivations and the two keystreams of each beta, bare."""
    streams = ((INPUT_STREAM_INFO, bytes(input_bytes)), (LABEL_STREAM_INFO, bytes(LABEL_BYTES)))

    def run() -> None:
        for beta in betas:
            for info, zeros in streams:
                key = HKDF(algorithm=_SHA256, length=32, salt=None, info=info).derive(beta)
                cipher = Cipher(algorithms.ChaCha20(key, _ZERO_COUNTER_AND_NONCE), mode=None)
                cipher.encryptor().update(zeros)

    return run


def seed(part: str) -> bytes:
    return hashlib.sha256(f"secmark derivation benchmark {part}".encode()).digest()


def peak_bytes(run: Callable[[], None]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure_family(keys: IdentityKeys, name: str, family: NoiseFamily, rounds: int) -> None:
    signed = create_commitment(
        keys,
        family=family,
        labels=ClassLabels(10),
        size=STREAMED,
        model_label="benchmark",
        nonce=seed(f"nonce {name}"),
        created=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )
    commitment_id = bytes.fromhex(signed.digest)
    alphas = [trigger_alpha(commitment_id, i) for i in range(DERIVED)]
    revealed = list(range(0, DERIVED, DERIVED // REVEALED))[:REVEALED]
    proofs = [keys.vrf.prove(alphas[i]) for i in revealed]
    floors = prepare(keys.vrf, alphas, [])
    reveal_floors = prepare(keys.vrf, [alphas[i] for i in revealed], proofs)
    streams = streams_floor([keys.vrf.hash(alpha) for alpha in alphas], INPUT_BYTES[name])
    reveal_streams = streams_floor([keys.vrf.hash(alphas[i]) for i in revealed], INPUT_BYTES[name])
    contents = RevealContents(
        signed.digest,
        tuple(RevealedTrigger(index, proof) for index, proof in zip(revealed, proofs)),
    )
    challenged = tuple(revealed)

    def derive() -> None:
        for _batch in iter_triggers(keys, signed, range(DERIVED), batch_size=BATCH):
            pass  # inputs and labels are made with the batch

    def derive_with_proofs() -> None:
        for batch in iter_triggers(keys, signed, range(DERIVED), batch_size=BATCH):
            batch.proofs  # noqa: B018  (made when first read)

    def beta_and_streams() -> None:
        floors.beta()
        streams()

    def prove_beta_and_streams() -> None:
        floors.prove()
        floors.beta()
        streams()

    def verify_and_streams() -> None:
        reveal_floors.verify()
        reveal_streams()

    def check_reveal() -> None:
        revealed_triggers(signed, contents, challenged)

    derived = compare(
        derive,
        {
            "beta + streams floors": beta_and_streams,
            "beta floor alone": floors.beta,
            "bare prove": floors.prove,
        },
        items=DERIVED,
        rounds=rounds,
    )
    with_proofs = compare(
        derive_with_proofs,
        {"prove + beta + streams floors": prove_beta_and_streams},
        items=DERIVED,
        rounds=rounds,
    )
    checked = compare(
        check_reveal,
        {"verify + streams floors": verify_and_streams, "verify floor alone": reveal_floors.verify},
        items=REVEALED,
        rounds=rounds,
    )
    print(
        f"noise 3x32x32 {name}, K = 10\n"
        f"  (a) derive {DERIVED}, inputs and labels: {derived.per_item_us():6.1f} us CPU/trigger\n"
        f"        {derived.describe('beta + streams floors', TARGET)}\n"
        f"        {derived.describe('beta floor alone')}\n"
        f"        {derived.describe('bare prove')}\n"
        f"      the same with proofs read (secmark derive): "
        f"{with_proofs.per_item_us():6.1f} us CPU/trigger\n"
        f"        {with_proofs.describe('prove + beta + streams floors')}\n"
        f"  (b) revealed_triggers, {REVEALED} indices: "
        f"{checked.per_item_us():6.1f} us CPU/index\n"
        f"        {checked.describe('verify + streams floors', TARGET)}\n"
        f"        {checked.describe('verify floor alone')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds",
        type=int,
        default=ROUNDS,
        help=f"interleaved rounds per ratio (default {ROUNDS})",
    )
    rounds = parser.parse_args().rounds
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    keys = IdentityKeys(seed("signing"), seed("vrf"), seed("encryption"))
    print(
        f"{rounds} interleaved rounds, CPU time (process_time), median of per-round ratios; "
        f"per-item times are medians; {load_average()}"
    )
    for name, family in FAMILIES.items():
        measure_family(keys, name, family, rounds)
    print(f"after (a) and (b): {load_average()}")

    signed = create_commitment(
        keys,
        family=FAMILIES["uint8"],
        labels=ClassLabels(10),
        size=STREAMED,
        model_label="benchmark",
        nonce=seed("nonce"),
        created=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )
    checksum = hashlib.sha256()

    def stream() -> None:
        for batch in iter_triggers(keys, signed, range(STREAMED), batch_size=BATCH):
            checksum.update(batch.inputs.tobytes())

    kept: list[np.ndarray] = []

    def materialise() -> None:
        batches = list(iter_triggers(keys, signed, range(STREAMED), batch_size=BATCH))
        kept.append(np.concatenate([b.inputs for b in batches]))

    streamed, materialised = peak_bytes(stream), peak_bytes(materialise)
    input_bytes = 3 * 32 * 32
    print(
        f"(c) peak traced memory, N = {STREAMED} uint8 triggers of {input_bytes} bytes\n"
        f"    streamed in batches of {BATCH}: {streamed / 2**20:6.2f} MiB "
        f"(one batch of inputs is {BATCH * input_bytes / 2**20:.2f} MiB)\n"
        f"    materialised:                {materialised / 2**20:6.2f} MiB "
        f"(all inputs are {STREAMED * input_bytes / 2**20:.2f} MiB)\n"
        f"    ratio {materialised / streamed:.1f}x: streaming is O(batch)"
    )


if __name__ == "__main__":
    main()
