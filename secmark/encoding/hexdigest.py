"""SHA-256 digests as documents and references spell them: 64 lower-case hex digits."""

from __future__ import annotations

from typing import TypeGuard

__all__ = ["is_hex_digest"]

_HEX_DIGITS = frozenset("0123456789abcdef")


def is_hex_digest(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a string of exactly 64 lower-case hex digits (the
    one spelling of a SHA-256 digest, an id, a key id or a client account)."""
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX_DIGITS
