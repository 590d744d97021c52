"""The suspect a claim names, built from its reference and the arbiter's defaults.

A claim names a remote suspect by its canonical reference: ``oip:`` and the
model's URL (server root, model name, version), ``json:`` and the URL
posted to, or ``openai:``, the ``/v1/completions`` or
``/v1/chat/completions`` URL posted to, ``#`` and the model. What the
reference does not say (the JSON API's request template and answer
pointers, a language model's tokenizer, batch size, timeout, headers from
the environment...) comes from the arbiter's defaults per kind of
reference, a JSON object ``{"oip": {...}, "json": {...}, "openai": {...}}``
whose members are those of a suspect config
(:class:`~secmark.models.SuspectConfig`, ``specs/suspects.md``) without
``url``, ``model``, ``model_version`` and ``protocol``; paths in them
(``tokenizer``, TLS and headers files) are read from the defaults file's
folder. An ``openai:`` suspect is of protocol ``openai-completions`` or
``openai-chat`` as its URL's path says, asked for the commitment's target
tokens (its ``tokens`` labels' length), and needs ``openai.tokenizer``: the
tokenizer its text answers are re-encoded with; ``openai.system`` is sent to
``openai-chat`` suspects only. The suspect is then built
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
from secmark.messages.labels import LabelSpace
from secmark.messages.responses import ResponseList
from secmark.models import Suspect, SuspectConfig
from secmark.models.config import MAX_CONFIG_SIZE
from secmark.models.egress import EgressPolicy
from secmark.models.http import load_json
from secmark.models.prompts import answer_length as lm_answer_length
from secmark.models.reference import COMPLETIONS_PATH, split_openai_reference

__all__ = ["ReferenceSuspects", "SuspectFactory"]

SuspectFactory = Callable[[str, TriggerFamily, LabelSpace, ResponseList | None], Suspect]
"""Builds the suspect of a claim's reference, for a commitment's family and
label space, and the response list its reveal opened (None for labels other
than responses). Nothing is sent yet; the caller closes the suspect (its
``close``, if any)."""

PUBLIC_ONLY = EgressPolicy()
"""Globally routable addresses only: the service's default."""
_FROM_REFERENCE = ("url", "model", "model_version", "protocol")
_PLACEHOLDER = {
    "oip": {"url": "http://127.0.0.1", "model": "m", "protocol": "oip"},
    "json": {"url": "http://127.0.0.1", "protocol": "json"},
    "openai": {"url": "http://127.0.0.1", "model": "m", "protocol": "openai-chat"},
}


def _member_of(kind: str) -> Callable[[str], str]:
    """How an error names a member of the ``kind`` defaults."""
    return lambda key: f"the {kind} suspect defaults' {key!r}"


class ReferenceSuspects:
    """A :data:`SuspectFactory` over per-kind defaults (module docstring);
    relative paths in them are read from ``base``. Every suspect it builds
    sends requests only to the addresses ``egress`` permits: by default
    globally routable ones, since claimants choose the URLs
    (:mod:`secmark.models.egress`).

    Raises:
        EncodingError: defaults that are not an object of ``oip``, ``json``
            and ``openai`` members, that set what the reference says, or that
            are no valid config once a URL (and a model) is added.
    """

    def __init__(
        self,
        defaults: Mapping[str, Any] | None = None,
        *,
        base: Path,
        egress: EgressPolicy = PUBLIC_ONLY,
    ) -> None:
        defaults = dict(defaults or {})
        for kind, members in defaults.items():
            if kind not in _PLACEHOLDER:
                raise EncodingError(
                    f"suspect defaults are given per kind of reference (oip, json, openai), "
                    f"not {kind!r}"
                )
            if not isinstance(members, dict):
                raise EncodingError(f"the {kind} suspect defaults must be a JSON object")
            named = sorted(set(members) & set(_FROM_REFERENCE))
            if named:
                raise EncodingError(
                    f"the {kind} suspect defaults must not set {', '.join(named)}: the claim's "
                    "reference says what is queried"
                )
            # Refuse a bad default now, not at the first query job. The chat
            # placeholder admits every member of both openai protocols.
            SuspectConfig.from_mapping(
                {**members, **_PLACEHOLDER[kind]}, base=base, name=_member_of(kind)
            )
        self._defaults: dict[str, dict[str, Any]] = defaults
        self._base = base
        self._egress = egress

    @classmethod
    def from_file(cls, path: Path, *, egress: EgressPolicy = PUBLIC_ONLY) -> ReferenceSuspects:
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
        return cls(value, base=path.parent, egress=egress)

    def __call__(
        self,
        reference: str,
        family: TriggerFamily,
        labels: LabelSpace,
        responses: ResponseList | None = None,
    ) -> Suspect:
        """The adapter querying ``reference``, for a commitment to ``family``
        with ``labels`` (and, for responses labels, the revealed
        ``responses``).

        Raises:
            ProtocolError: a weights commitment (checked on weights, never
                queried), a reference that is not ``oip:``, ``json:`` or
                ``openai:``, an ``openai:`` one without ``openai`` defaults or
                for a commitment without token or response labels, or one the
                built adapter would not query.
            EncodingError, SuspectError, KeyMaterialError: as
                :class:`~secmark.models.SuspectConfig` (an invalid setting,
                a credential missing from the environment, a tokenizer that
                cannot be read).
        """
        if isinstance(family, WeightsFamily):
            raise ProtocolError(
                "a weights commitment is checked on the suspect's weights, not queried"
            )
        scheme, _, rest = reference.partition(":")
        defaults = dict(self._defaults.get(scheme, {}))
        answer_length = None
        if scheme == "oip":
            root, found, model = rest.rpartition("/v2/models/")
            name, _, version = model.partition("/versions/")
            if not found:
                raise ProtocolError(f"{reference!r} names no Open Inference Protocol model")
            members = {"url": root, "model": unquote(name), "protocol": "oip"}
            if version:
                members["model_version"] = unquote(version)
        elif scheme == "json":
            members = {"url": rest, "protocol": "json"}
        elif scheme == "openai":
            if "openai" not in self._defaults:
                raise ProtocolError(
                    f"the service cannot query {reference!r}: a language model's text answers "
                    "are re-encoded with the commitment's tokenizer, which the service's suspect "
                    "defaults must name as openai.tokenizer"
                )
            answer_length = lm_answer_length(labels)
            if answer_length is None:
                raise ProtocolError(
                    f"{reference!r} is a language model, asked for target tokens or responses: "
                    "it answers a commitment with token or response labels only"
                )
            root, path, model = split_openai_reference(reference)
            protocol = "openai-completions" if path == COMPLETIONS_PATH else "openai-chat"
            members = {"url": root, "model": model, "protocol": protocol}
            if protocol == "openai-completions":
                defaults.pop("system", None)  # a chat setting (module docstring)
        else:
            raise ProtocolError(
                f"the service queries remote suspects (oip:, json: or openai:), not {scheme}: "
                "suspects; query those with secmark arbiter query"
            )
        config = SuspectConfig.from_mapping({**defaults, **members}, base=self._base)
        if config.reference() != reference:
            raise ProtocolError(
                f"the suspect built for {reference!r} would query {config.reference()!r}"
            )
        return config.build(answer_length=answer_length, responses=responses, egress=self._egress)
