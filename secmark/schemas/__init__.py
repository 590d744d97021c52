"""The JSON Schemas (draft 2020-12) of every secmark document payload and file
format, shipped with the package so that other tools can check what secmark
writes without a checkout of the specification.

Each schema is the file ``NAME.schema.json`` in this package, and its ``$id``
is ``https://secmark.invalid/schemas/NAME.schema.json``; schemas refer to each
other by those ids, so a validator needs all of them (:func:`load_all`). The
specification (``specs/``) links to these files: they are the only copy.

A schema describes the shape of a document, not its meaning: a payload that
validates may still carry a bad signature or proof. Only the readers in
:mod:`secmark.messages` and :mod:`secmark.protocol` decide whether a document
is acceptable.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any, Final

from secmark.errors import SecmarkError

__all__ = ["SCHEMA_SUFFIX", "load", "load_all", "names"]

SCHEMA_SUFFIX: Final = ".schema.json"


def names() -> tuple[str, ...]:
    """The names of the shipped schemas (``bundle``, ``claim``, ...), sorted."""
    return tuple(
        sorted(
            entry.name[: -len(SCHEMA_SUFFIX)]
            for entry in files(__name__).iterdir()
            if entry.name.endswith(SCHEMA_SUFFIX)
        )
    )


def load(name: str) -> dict[str, Any]:
    """The schema ``name`` (``"bundle"``, ``"reveal-contents"``, ...) as parsed JSON.

    Only the names of :func:`names` are looked up, so ``name`` never reaches
    the file system as a path.

    Raises:
        SecmarkError: no schema has that name; the message lists the names.
    """
    known = names()
    if name not in known:
        raise SecmarkError(f"no schema is named {name!r}; the schemas are {', '.join(known)}")
    schema: dict[str, Any] = json.loads(
        files(__name__).joinpath(name + SCHEMA_SUFFIX).read_text(encoding="utf-8")
    )
    return schema


def load_all() -> dict[str, dict[str, Any]]:
    """Every shipped schema by name: what a validator needs to resolve the
    ``$ref`` from one schema to another (by ``$id``)."""
    return {name: load(name) for name in names()}
