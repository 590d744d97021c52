"""The service's limits: request size, request rate, concurrent jobs.

Rates are token buckets per caller: a verified signer's key id, or the
client address of an unsigned request. A bucket holds ``burst`` requests
and refills at ``rate`` per second; an empty one answers 429 with the
seconds until a token is back (``Retry-After``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from secmark.errors import EncodingError
from secmark.messages.claim import MAX_CLAIM_SIZE

__all__ = ["RateLimiter", "ServiceLimits"]

_MAX_BUCKETS = 100_000


@dataclass(frozen=True)
class ServiceLimits:
    """``max_body``: bytes of one request body (413 above; the largest
    document submitted is a reveal of a big challenge, which this bounds
    too); ``rate`` and ``burst``: requests per second per caller and how
    many may come at once (429 above); ``query_workers``: query jobs run at
    once (the others wait, queued).

    Raises:
        EncodingError: a limit that is not positive.
    """

    max_body: int = 64 * MAX_CLAIM_SIZE
    rate: float = 20.0
    burst: int = 100
    query_workers: int = 2

    def __post_init__(self) -> None:
        if not (
            self.max_body > 0 and self.rate > 0 and self.burst >= 1 and self.query_workers >= 1
        ):
            raise EncodingError("the service's limits must be positive")


class RateLimiter:
    """Token buckets by caller (thread-safe)."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, caller: str) -> int | None:
        """Spend one of ``caller``'s tokens; None when there was one, else
        the whole seconds to wait."""
        now = self._clock()
        with self._lock:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._forget_full(now)
            tokens, then = self._buckets.get(caller, (self._burst, now))
            tokens = min(self._burst, tokens + (now - then) * self._rate)
            if tokens < 1:
                self._buckets[caller] = (tokens, now)
                return max(1, math.ceil((1 - tokens) / self._rate))
            self._buckets[caller] = (tokens - 1, now)
            return None

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: forgetting
        # those bounds the memory without letting anyone past their rate.
        for caller, (tokens, then) in list(self._buckets.items()):
            if tokens + (now - then) * self._rate >= self._burst:
                del self._buckets[caller]
