"""The suspect a claim names, built from its reference and the arbiter's defaults.

A claim names a remote suspect by its canonical reference: ``oip:`` and the
model's URL (server root, model name, version), or ``json:`` and the URL
posted to. What the reference does not say (the JSON API's request template
and answer pointers, batch size, timeout, headers from the environment...)
comes from the arbiter's defaults per protocol, a JSON object
``{"oip": {...}, "json": {...}}`` whose members are those of a suspect
config (:class:`~secmark.models.SuspectConfig`, ``specs/suspects.md``)
without ``url``, ``model`` and ``model_version``. The suspect is then built
as ``secmark arbiter query --suspect-config`` builds it, and its reference
must come out as the claim's, character for character.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from secmark.errors import EncodingError, ProtocolError
from secmark.files import read_regular_file
from secmark.messages.families import TriggerFamily, WeightsFamily
from secmark.models import Suspect, SuspectConfig
from secmark.models.config import MAX_CONFIG_SIZE
from secmark.models.http import load_json

__all__ = ["ReferenceSuspects", "SuspectFactory"]

SuspectFactory = Callable[[str, TriggerFamily], Suspect]
"""Builds the suspect of a claim's reference, for a commitment's family.
Nothing is sent yet; the caller closes the suspect (its ``close``, if any)."""

_FROM_REFERENCE = ("url", "model", "model_version", "protocol")
_PLACEHOLDER = {
    "oip": {"url": "http://127.0.0.1", "model": "m"},
    "json": {"url": "http://127.0.0.1"},
}


class ReferenceSuspects:
    """A :data:`SuspectFactory` over per-protocol defaults (module docstring);
    relative paths in them are read from ``base``.

    Raises:
        EncodingError: defaults that are not an object of ``oip`` and
            ``json`` members, that set what the reference says, or that are
            no valid config once a URL is added.
    """

    def __init__(self, defaults: Mapping[str, Any] | None = None, *, base: Path) -> None:
        defaults = dict(defaults or {})
        for protocol, members in defaults.items():
            if protocol not in _PLACEHOLDER:
                raise EncodingError(
                    f"suspect defaults are given per protocol (oip, json), not {protocol!r}"
                )
            if not isinstance(members, dict):
                raise EncodingError(f"the {protocol} suspect defaults must be a JSON object")
            named = sorted(set(members) & set(_FROM_REFERENCE))
            if named:
                raise EncodingError(
                    f"the {protocol} suspect defaults must not set {', '.join(named)}: the claim's "
                    "reference says what is queried"
                )
            # Refuse a bad default now, not at the first query job.
            SuspectConfig.from_mapping(
                {**members, **_PLACEHOLDER[protocol], "protocol": protocol}, base=base
            )
        self._defaults: dict[str, dict[str, Any]] = defaults
        self._base = base

    @classmethod
    def from_file(cls, path: Path) -> ReferenceSuspects:
        """The defaults in the JSON file ``path`` (paths in it read from its folder).

        Raises:
            SecmarkError: the file cannot be read.
            EncodingError: as the constructor, or no strict JSON.
        """
        data = read_regular_file(path, max_size=MAX_CONFIG_SIZE, what="suspect defaults")
        try:
            value = load_json(data, f"suspect defaults {path}", finite=True)
        except ValueError as error:
            raise EncodingError(str(error)) from None
        if not isinstance(value, dict):
            raise EncodingError(f"suspect defaults {path} must be a JSON object")
        return cls(value, base=path.parent)

    def __call__(self, reference: str, family: TriggerFamily) -> Suspect:
        """The adapter querying ``reference``.

        Raises:
            ProtocolError: a weights commitment (checked on weights, never
                queried), a reference that is not ``oip:`` or ``json:``, or
                one the built adapter would not query.
            EncodingError, SuspectError, KeyMaterialError: as
                :class:`~secmark.models.SuspectConfig` (an invalid setting,
                a credential missing from the environment).
        """
        if isinstance(family, WeightsFamily):
            raise ProtocolError(
                "a weights commitment is checked on the suspect's weights, not queried"
            )
        scheme, _, rest = reference.partition(":")
        if scheme == "oip":
            root, found, model = rest.rpartition("/v2/models/")
            name, _, version = model.partition("/versions/")
            if not found:
                raise ProtocolError(f"{reference!r} names no Open Inference Protocol model")
            members = {"url": root, "model": unquote(name)}
            if version:
                members["model_version"] = unquote(version)
        elif scheme == "json":
            members = {"url": rest}
        else:
            raise ProtocolError(
                f"the service queries remote suspects (oip: or json:), not {scheme}: suspects; "
                "query those with secmark arbiter query"
            )
        config = SuspectConfig.from_mapping(
            {**self._defaults.get(scheme, {}), **members, "protocol": scheme}, base=self._base
        )
        if config.reference() != reference:
            raise ProtocolError(
                f"the suspect built for {reference!r} would query {config.reference()!r}"
            )
        return config.build()
