"""Mutations: byte-level (any input) and JSON-level (canonical documents).

Every operator takes a :class:`random.Random`, so the same operators serve
the seeded long run, hypothesis (``st.randoms()``) and atheris (a Random
seeded from its input).
"""

from __future__ import annotations

import copy
import random
from typing import Any

from secmark.encoding import canonical_json
from secmark.errors import EncodingError

__all__ = ["mutate_bytes", "mutate_json"]

# Values that broke or stressed parsers before, and type confusions.
_INTERESTING: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    255,
    256,
    (1 << 31) - 1,
    1 << 31,
    (1 << 53) - 1,
    -(1 << 53) + 1,
    1e300,
    -1e-300,
    0.5,
    1.5,
    "",
    "0",
    "1",
    "1e-5000",
    "1e-99999999",
    "1/0",
    "0/1",
    "1/1",
    "-1/2",
    " 1/2",
    "1/2\n",
    "\x1b[2Jkey id: " + "a" * 64,
    "\u202e",
    "\ud800",
    "x" * 4097,
    "a" * 64,
    "0" * 64,
    "A" * 44,
    "AAAA",
    "=",
    "2026-02-30T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "0000-01-01T00:00:00Z",
    [],
    [0],
    [None],
    [[[[[[[[[[[]]]]]]]]]]],
    {},
    {"type": "x"},
)


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One to four byte-level edits of ``data``."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if not out:
            out += bytes([rng.randrange(256)])
            continue
        at = rng.randrange(len(out))
        if op == 0:  # bit flip
            out[at] ^= 1 << rng.randrange(8)
        elif op == 1:  # byte replaced
            out[at] = rng.randrange(256)
        elif op == 2:  # byte inserted
            out.insert(at, rng.choice(b'"\\{}[],:0aA=\x00\xff/ '))
        elif op == 3:  # bytes deleted
            del out[at : at + rng.randint(1, 8)]
        elif op == 4:  # truncated
            del out[at:]
        elif op == 5:  # a run duplicated
            out[at:at] = out[at : at + rng.randint(1, 16)]
        else:  # a byte set to a JSON-significant or boundary value
            out[at] = rng.choice(b'"\\{}[],:-+.eE0129\x7f\x80')
    return bytes(out)


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _nodes(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:8]):
            found += _nodes(item, (*path, index))
    return found


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _new_value(old: Any, rng: random.Random) -> Any:
    choice = rng.randrange(6)
    if choice == 0 or old is None:
        return copy.deepcopy(rng.choice(_INTERESTING))
    if isinstance(old, bool):
        return rng.choice((not old, int(old), str(old).lower()))
    if isinstance(old, int):
        return rng.choice(
            (old + 1, old - 1, -old, old * 2, float(old) + 0.5, bool(old), str(old), old ^ 1)
        )
    if isinstance(old, float):
        return rng.choice((old * 2, -old, int(old), old + 1e-9, 0.0, str(old)))
    if isinstance(old, str):
        if not old:
            return rng.choice(("a", " ", "\n"))
        at = rng.randrange(len(old))
        return rng.choice(
            (
                old[:at] + old[at + 1 :],
                old[:at] + rng.choice("0aA_-=/\n\x1b") + old[at:],
                old[:at] + chr(ord(old[at]) ^ 1) + old[at + 1 :],
                old.upper(),
                old + old,
                old[: len(old) // 2],
            )
        )
    if isinstance(old, list):
        edited = copy.deepcopy(old)
        if edited and rng.random() < 0.5:
            index = rng.randrange(len(edited))
            edited.insert(index, copy.deepcopy(edited[index]))
        elif edited:
            del edited[rng.randrange(len(edited))]
        else:
            edited.append(copy.deepcopy(rng.choice(_INTERESTING)))
        return edited if rng.random() < 0.8 else list(reversed(edited))
    if isinstance(old, dict):
        edited = copy.deepcopy(old)
        if edited and rng.random() < 0.5:
            del edited[rng.choice(sorted(edited))]
        else:
            edited[rng.choice(("extra", "type", "version", "a"))] = copy.deepcopy(
                rng.choice(_INTERESTING)
            )
        return edited
    return None


def mutate_json(value: Any, rng: random.Random) -> bytes | None:
    """The canonical JSON of ``value`` after one to three structural edits
    (a value replaced, a key added or removed, a list edited), or None when
    the result is not representable in canonical JSON."""
    edited = copy.deepcopy(value)
    for _ in range(rng.randint(1, 3)):
        paths = _nodes(edited)
        path = rng.choice(paths)
        if not path:
            edited = _new_value(edited, rng)
            continue
        parent = _get(edited, path[:-1])
        parent[path[-1]] = _new_value(parent[path[-1]], rng)
    try:
        return canonical_json(edited)
    except EncodingError:
        return None
