"""Trigger derivation and verification against their VRF floor, and memory.

(a) Deriving 1,024 triggers (noise 3x32x32 uint8, K = 10) against 1,024
    bare ``prove_and_hash`` calls on the same inputs: the ratio is what the
    expansion (HKDF, two ChaCha20 streams, sampling, batching) adds to the
    proofs it cannot avoid. Target <= 1.2.
(b) Verifying a reveal of 128 indices (VRF verify, then re-derivation)
    against 128 bare VRF verifies. Target <= 1.2.
(c) Peak traced memory (tracemalloc) deriving N = 4,096 triggers in batches
    of 256 and dropping each batch, against keeping all of them: streaming
    must be O(batch), not O(N).

Times are CPU seconds of this process (``time.process_time``), so other
work on a shared machine inflates neither side; wall-clock medians are
printed beside them. The two sides of each ratio run interleaved, round by
round, and each ratio is the median of the per-round ratios.

Run: python3 benchmarks/derivation.py
"""

from __future__ import annotations

import hashlib
import statistics
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone

import numpy as np

from secmark.crypto import IdentityKeys
from secmark.messages.commitment import create_commitment
from secmark.messages.families import NoiseFamily
from secmark.messages.labels import ClassLabels
from secmark.triggers import iter_triggers, trigger_alpha, verify_trigger

ROUNDS = 7
DERIVED = 1024
REVEALED = 128
STREAMED = 4096
BATCH = 256


def seed(part: str) -> bytes:
    return hashlib.sha256(f"secmark derivation benchmark {part}".encode()).digest()


def timed(run: Callable[[], None]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.process_time() - cpu, time.perf_counter() - wall


def compare(
    label: str, subject: Callable[[], None], floor: Callable[[], None], items: int, target: float
) -> None:
    ratios, subject_cpu, floor_cpu, subject_wall, floor_wall = [], [], [], [], []
    for _ in range(ROUNDS):
        f_cpu, f_wall = timed(floor)
        s_cpu, s_wall = timed(subject)
        ratios.append(s_cpu / f_cpu)
        subject_cpu.append(s_cpu)
        floor_cpu.append(f_cpu)
        subject_wall.append(s_wall)
        floor_wall.append(f_wall)
    ratio = statistics.median(ratios)
    print(
        f"{label}\n"
        f"    per item: {statistics.median(subject_cpu) / items * 1e6:7.1f} us CPU "
        f"(wall {statistics.median(subject_wall) / items * 1e6:7.1f}) vs floor "
        f"{statistics.median(floor_cpu) / items * 1e6:7.1f} us CPU "
        f"(wall {statistics.median(floor_wall) / items * 1e6:7.1f})\n"
        f"    ratio {ratio:.3f} (rounds: {', '.join(f'{r:.3f}' for r in sorted(ratios))})  "
        f"target <= {target}: {'met' if ratio <= target else 'NOT MET'}"
    )


def peak_bytes(run: Callable[[], None]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    keys = IdentityKeys(seed("signing"), seed("vrf"), seed("encryption"))
    signed = create_commitment(
        keys,
        family=NoiseFamily((3, 32, 32), "uint8", 0, 255),
        labels=ClassLabels(10),
        size=STREAMED,
        model_label="benchmark",
        nonce=seed("nonce"),
        created=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )
    commitment_id = bytes.fromhex(signed.digest)
    alphas = [trigger_alpha(commitment_id, i) for i in range(DERIVED)]

    def derive_all() -> None:
        for _ in iter_triggers(keys, signed, range(DERIVED), batch_size=BATCH):
            pass

    def prove_all() -> None:
        for alpha in alphas:
            keys.vrf.prove_and_hash(alpha)

    compare(
        f"(a) derive {DERIVED} noise 3x32x32 uint8 triggers, K = 10, vs bare prove_and_hash",
        derive_all,
        prove_all,
        DERIVED,
        1.2,
    )

    revealed = list(range(0, DERIVED, DERIVED // REVEALED))[:REVEALED]
    proofs = [keys.vrf.prove(alphas[i]) for i in revealed]
    public = keys.public_keys.vrf_key

    def verify_reveal() -> None:
        for index, proof in zip(revealed, proofs):
            verify_trigger(signed, index, proof)

    def verify_bare() -> None:
        for index, proof in zip(revealed, proofs):
            public.verify(alphas[index], proof)

    compare(
        f"(b) verify a reveal of {REVEALED} indices (VRF verify + re-derivation) vs bare verify",
        verify_reveal,
        verify_bare,
        REVEALED,
        1.2,
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
        f"(c) peak traced memory, N = {STREAMED} triggers of {input_bytes} bytes\n"
        f"    streamed in batches of {BATCH}: {streamed / 2**20:6.2f} MiB "
        f"(one batch of inputs is {BATCH * input_bytes / 2**20:.2f} MiB)\n"
        f"    materialised:                {materialised / 2**20:6.2f} MiB "
        f"(all inputs are {STREAMED * input_bytes / 2**20:.2f} MiB)\n"
        f"    ratio {materialised / streamed:.1f}x: streaming is O(batch)"
    )


if __name__ == "__main__":
    main()
