"""ECVRF prove and verify against their libsodium floor.

The floor of an operation is the time of the libsodium group operations it
performs, with the same arguments, replayed back to back: the calls are
recorded while the operation runs once, then timed alone. The ratio says how
much the Python composition (hashing, scalar arithmetic, encoding checks)
adds on top. Targets: prove <= 1.3x its floor, verify <= 1.3x its floor.

Run: python3 benchmarks/ecvrf.py
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable
from typing import Any

from nacl.exceptions import RuntimeError as SodiumRuntimeError

from secmark.crypto import VrfSecretKey, ecvrf

ROUNDS = 7
ALPHAS = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(200)]


def record_sodium_calls(
    operation: Callable[[], Any],
) -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
    """Run ``operation`` once and return the libsodium calls it made."""
    calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
    original = ecvrf.sodium

    class Recorder:
        def __getattr__(self, name: str) -> Any:
            function = getattr(original, name)

            def recorded(*args: Any) -> Any:
                calls.append((function, args))
                return function(*args)

            return recorded

    ecvrf.sodium = Recorder()  # type: ignore[assignment]
    try:
        operation()
    finally:
        ecvrf.sodium = original
    return calls


def replay(calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> None:
    for function, args in calls:
        try:
            function(*args)
        except SodiumRuntimeError:
            pass  # a try-and-increment candidate that is not a curve point


def per_item_seconds(run: Callable[[], None], items: int) -> float:
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) / items)
    return statistics.median(samples)


def main() -> None:
    secret = VrfSecretKey(hashlib.sha256(b"benchmark key").digest())
    public = secret.public_key
    proofs = [secret.prove(alpha) for alpha in ALPHAS]

    prove_calls = [
        c for alpha in ALPHAS for c in record_sodium_calls(lambda a=alpha: secret.prove(a))
    ]
    verify_calls = [
        c
        for alpha, proof in zip(ALPHAS, proofs)
        for c in record_sodium_calls(lambda a=alpha, p=proof: public.verify(a, p))
    ]

    def prove_all() -> None:
        for alpha in ALPHAS:
            secret.prove(alpha)

    def verify_all() -> None:
        for alpha, proof in zip(ALPHAS, proofs):
            public.verify(alpha, proof)

    prove = per_item_seconds(prove_all, len(ALPHAS))
    prove_floor = per_item_seconds(lambda: replay(prove_calls), len(ALPHAS))
    verify = per_item_seconds(verify_all, len(ALPHAS))
    verify_floor = per_item_seconds(lambda: replay(verify_calls), len(ALPHAS))

    print(f"libsodium calls per prove:  {len(prove_calls) / len(ALPHAS):.2f}")
    print(f"libsodium calls per verify: {len(verify_calls) / len(ALPHAS):.2f}")
    print(
        f"prove   median {prove * 1e6:7.1f} us   floor {prove_floor * 1e6:7.1f} us   ratio {prove / prove_floor:.3f}  (target <= 1.3)"
    )
    print(
        f"verify  median {verify * 1e6:7.1f} us   floor {verify_floor * 1e6:7.1f} us   ratio {verify / verify_floor:.3f}  (target <= 1.3)"
    )


if __name__ == "__main__":
    main()
