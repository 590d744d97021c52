"""ECVRF prove, verify and beta-only hash against their libsodium floor.

The floor of an operation is the least libsodium work RFC 9381 leaves it
(``benchmarks/vrf_floor.py`` gives the count and why): encode_to_curve, then
prove: three scalar multiplications; verify: four, two subtractions and the
cofactor clearing of Gamma; beta alone: one. It is timed as bare PyNaCl calls
on prepared arguments, so the ratio is what the Python composition (hashing,
scalar arithmetic, encoding checks, error handling) and any redundant
library call add. Targets: each <= 1.3x its floor.

Also printed: the libsodium calls each operation actually makes (recorded
once), against the floor's count.

Times are CPU seconds (``time.process_time``), subject and floor interleaved
round by round; each ratio is the median of the per-round ratios.

Run: python3 benchmarks/ecvrf.py
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from cputime import compare, load_average
from vrf_floor import prepare

from secmark.crypto import VrfSecretKey, ecvrf

ROUNDS = 9
ALPHAS = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(200)]
TARGET = 1.3


def count_sodium_calls(operation: Callable[[], Any]) -> int:
    """The libsodium group operations ``operation`` makes (attempts included)."""
    calls = 0
    original = ecvrf.sodium

    class Counter:
        def __getattr__(self, name: str) -> Any:
            function = getattr(original, name)

            def counted(*args: Any) -> Any:
                nonlocal calls
                calls += 1
                return function(*args)

            return counted

    ecvrf.sodium = Counter()  # type: ignore[assignment]
    try:
        operation()
    finally:
        ecvrf.sodium = original
    return calls


def main() -> None:
    secret = VrfSecretKey(hashlib.sha256(b"benchmark key").digest())
    public = secret.public_key
    proofs = [secret.prove(alpha) for alpha in ALPHAS]
    floors = prepare(secret, ALPHAS, proofs)
    items = len(ALPHAS)

    def hash_all() -> None:
        for alpha in ALPHAS:
            secret.hash(alpha)

    def prove_all() -> None:
        for alpha in ALPHAS:
            secret.prove(alpha)

    def verify_all() -> None:
        for alpha, proof in zip(ALPHAS, proofs):
            public.verify(alpha, proof)

    print(
        f"{items} inputs, {ROUNDS} interleaved rounds, CPU time; median of per-round ratios; "
        f"{load_average()}\n"
        "libsodium calls per operation (encode_to_curve's attempts included):"
    )
    encode = (
        count_sodium_calls(
            lambda: [ecvrf._encode_to_curve(public.public_bytes_raw(), a) for a in ALPHAS]
        )
        / items
    )
    for name, operation, floor_count in (
        ("hash  ", hash_all, 1),
        ("prove ", prove_all, 3),
        ("verify", verify_all, 4 + 2 + 3),
    ):
        made = count_sodium_calls(operation) / items
        print(
            f"  {name} {made:5.2f}; floor {encode:.2f} (encode_to_curve) + {floor_count}"
            f" = {encode + floor_count:.2f}"
        )

    hashing = compare(hash_all, {"beta floor": floors.beta}, items=items, rounds=ROUNDS)
    proving = compare(prove_all, {"prove floor": floors.prove}, items=items, rounds=ROUNDS)
    verifying = compare(
        verify_all,
        {
            "verify floor": floors.verify,
            "verify, multiplications only": floors.verify_multiplications,
        },
        items=items,
        rounds=ROUNDS,
    )
    print(
        f"hash    {hashing.per_item_us():7.1f} us CPU: "
        f"{hashing.describe('beta floor', TARGET)}\n"
        f"prove   {proving.per_item_us():7.1f} us CPU: "
        f"{proving.describe('prove floor', TARGET)}\n"
        f"verify  {verifying.per_item_us():7.1f} us CPU: "
        f"{verifying.describe('verify floor', TARGET)}\n"
        f"                             "
        f"{verifying.describe('verify, multiplications only')}"
    )


if __name__ == "__main__":
    main()
