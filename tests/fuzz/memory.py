"""Peak memory of opening each large document type: ``python3 -m tests.fuzz.memory``.

Each document is made at a realistic large size (the sizes a big dispute
reaches, well under each type's limit), then opened under ``tracemalloc``;
the figure is the peak of Python allocations during the open, beyond the
input bytes themselves, as a multiple of the input's size.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from secmark.messages import sign_document
from secmark.messages.challenge import Challenge, open_challenge
from secmark.messages.document import decode_payload, encode_payload
from secmark.messages.reveal import Reveal, RevealContents, RevealedTrigger, open_reveal
from secmark.messages.transcript import Transcript, TranscriptEntry, open_transcript
from secmark.messages.verdict import CrossCheck, RivalClaim, TestFigures, Verdict, open_verdict
from secmark.protocol.bundle import MAX_BUNDLE_SIZE, Bundle
from tests.conftest import fixed_keys

_NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
_HEX = hashlib.sha256(b"x").hexdigest()


def _transcript(entries: int) -> Transcript:
    return Transcript(
        challenge_id=_HEX,
        suspect="sha256:" + _HEX,
        started=_NOW,
        finished=_NOW,
        queried="sha256:" + _HEX,
        entries=tuple(
            TranscriptEntry(
                i,
                hashlib.sha256(i.to_bytes(4, "big")).hexdigest(),
                i if i % 3 == 0 else None,
                i % 10,
                None,
            )
            for i in range(entries)
        ),
    )


def _reveal_contents(items: int, item_size: int) -> RevealContents:
    return RevealContents(
        _HEX,
        tuple(
            RevealedTrigger(i, os.urandom(80), os.urandom(item_size), (os.urandom(32),) * 20)
            for i in range(items)
        ),
    )


def _challenge(excluded: int) -> Challenge:
    return Challenge(
        claim_id=_HEX,
        commitment_id=_HEX,
        suspect="sha256:" + _HEX,
        indices=tuple(range(excluded, excluded + 16384)),
        vrf_proof=bytes(80),
        decoys=32768,
        prior_challenges=0,
        issued=_NOW,
        expires=_NOW + timedelta(days=7),
        alpha=__import__("fractions").Fraction(1, 1 << 64),
        excluded=tuple(range(excluded)),
    )


def _verdict(rivals: int) -> Verdict:
    figures = TestFigures(
        48, 40, "1/10", "1/18446744073709551616", 30, 1e-30, -99.0, 0.7, 0.9, 0, 0, 0, 0
    )
    return Verdict(
        claim_id=_HEX,
        challenge_id=_HEX,
        commitment_id=_HEX,
        transcript_id=_HEX,
        owner=_HEX,
        suspect="sha256:" + _HEX,
        commitment_time=_NOW,
        release=None,
        test=figures,
        prior_challenges=0,
        rivals=tuple(RivalClaim(_HEX, _HEX, _NOW, None, True) for _ in range(rivals)),
        cross_checks=tuple(
            CrossCheck(_HEX, _HEX, 48, 40, 30, -90.0, 0, 0, 48, 5, 12) for _ in range(rivals**2)
        ),
        outcome="ambiguous",
        reason="r",
        issued=_NOW,
    )


def measure(label: str, data: bytes, open_: Callable[[bytes], Any]) -> tuple[str, int, float]:
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    result = open_(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return label, len(data), (peak - base) / len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size")
    args = parser.parse_args()
    owner, arbiter = fixed_keys("owner"), fixed_keys("arbiter")
    n = lambda count: max(1, int(count * args.scale))
    cases = [
        (
            f"transcript ({n(200_000)} entries)",
            sign_document(_transcript(n(200_000)), arbiter).to_json(),
            lambda d: open_transcript(d, arbiter.public_keys),
        ),
        (
            f"reveal ({n(2048)} pool items of 16 KiB)",
            sign_document(
                Reveal(_HEX, _reveal_contents(n(2048), 16384).seal(arbiter.public_keys)), owner
            ).to_json(),
            lambda d: open_reveal(d, owner.public_keys).document.open(arbiter.encryption_key),
        ),
        (
            f"challenge ({n(1 << 19)} excluded)",
            sign_document(_challenge(n(1 << 19)), arbiter).to_json(),
            lambda d: open_challenge(d, arbiter.public_keys),
        ),
        (
            f"verdict ({n(64)} rivals, {n(64) ** 2} cross-checks)",
            sign_document(_verdict(n(64)), arbiter).to_json(),
            lambda d: open_verdict(d, arbiter.public_keys),
        ),
    ]
    transcript = cases[0][1]
    bundle = encode_payload(
        Bundle(
            arbiter_identity="{}",
            claim="{}",
            challenge=cases[2][1].decode(),
            reveal=cases[1][1].decode(),
            reveal_contents="{}",
            transcript=transcript.decode(),
            verdict=cases[3][1].decode(),
            tsa_roots=(),
        )
    )
    cases.append(
        (
            "bundle container (the members above)",
            bundle,
            lambda d: [
                m.encode()
                for m in decode_payload(d, Bundle, MAX_BUNDLE_SIZE).to_fields().values()
                if isinstance(m, str)
            ],
        )
    )
    cases.append(
        (
            "bundle: container, then its transcript opened",
            bundle,
            lambda d: open_transcript(
                decode_payload(d, Bundle, MAX_BUNDLE_SIZE).transcript.encode(), arbiter.public_keys
            ),
        )
    )
    print(f"{'document':<44} {'bytes':>12} {'peak / size':>12}")
    for label, data, open_ in cases:
        label, size, ratio = measure(label, data, open_)
        print(f"{label:<44} {size:>12} {ratio:>12.2f}", flush=True)


if __name__ == "__main__":
    main()
