"""The scan finding: a platform's signed note that a hosted model answered a deposit.

A platform that scanned its hosted models against owners' deposits
(``specs/scan.md``) signs one finding per hit. It names the deposit (the
claim the owner filed with the platform), its commitment and owner, the
model by its canonical suspect reference, and the figures of the test:
trials, matches, threshold, the null probability ``p0`` and the scan's
multiple-testing level (``alpha`` over ``models x deposits`` pairs).

A finding is the platform's word and nothing more: it proves no ownership
and decides no dispute. It tells the owner which model to file an ordinary
claim on, with an arbiter of his choice, who challenges afresh.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any, ClassVar

from secmark.crypto.keys import PublicKeys
from secmark.encoding import format_time
from secmark.errors import EncodingError
from secmark.messages.claim import MAX_SUSPECT_REFERENCE
from secmark.messages.document import Fields, SignedDocument, open_document

__all__ = ["MAX_SCAN_ID", "ScanFinding", "open_finding", "parse_probability"]

MAX_SCAN_ID = 128
"""Longest scan id: printable text the platform chooses."""
_MAX_TRIALS = 1 << 24
_MAX_COUNT = 1 << 32
_MAX_FINDING_SIZE = 16 * 1024
_FRACTION = re.compile(r"[1-9][0-9]{0,127}/[1-9][0-9]{0,127}|1/1")


def parse_probability(text: str, what: str) -> Fraction:
    """A probability in (0, 1) written as ``str(Fraction)`` ("n/d", lowest terms).

    Raises:
        EncodingError: another spelling, or a value outside (0, 1).
    """
    value = Fraction(text) if _FRACTION.fullmatch(text) else None
    if value is None or str(value) != text or not 0 < value < 1:
        raise EncodingError(
            f"{what} must be a fraction n/d in (0, 1), in lowest terms, n and d of at most "
            f"128 digits each, not {text[:64]!r}"
        )
    return value


@dataclass(frozen=True)
class ScanFinding:
    """``secmark.scan-finding`` version 1, signed by the platform.

    Raises:
        EncodingError: an empty or over-long scan id or model reference,
            counts out of range, more matches than trials, matches below
            the threshold (a finding is a hit), or a probability outside
            (0, 1).
    """

    TYPE: ClassVar[str] = "secmark.scan-finding"
    VERSION: ClassVar[int] = 1

    scan_id: str
    deposit_id: str
    commitment_id: str
    owner: str
    model: str
    p0: Fraction
    alpha: Fraction
    models: int
    deposits: int
    trials: int
    threshold: int
    matches: int
    scanned: datetime

    def __post_init__(self) -> None:
        if not 1 <= len(self.scan_id) <= MAX_SCAN_ID or not self.scan_id.isprintable():
            raise EncodingError(f"a scan id has 1 to {MAX_SCAN_ID} printable characters")
        if not 1 <= len(self.model) <= MAX_SUSPECT_REFERENCE:
            raise EncodingError(
                f"the model reference must have 1 to {MAX_SUSPECT_REFERENCE} characters"
            )
        for value, what in ((self.p0, "p0"), (self.alpha, "alpha")):
            if not isinstance(value, Fraction) or not 0 < value < 1:
                raise EncodingError(f"{what} must be a Fraction in (0, 1)")
        if not 1 <= self.models <= _MAX_COUNT or not 1 <= self.deposits <= _MAX_COUNT:
            raise EncodingError(f"models and deposits must be in [1, {_MAX_COUNT}]")
        if not 1 <= self.trials <= _MAX_TRIALS:
            raise EncodingError(f"trials must be in [1, {_MAX_TRIALS}]")
        if not 1 <= self.threshold <= self.matches <= self.trials:
            raise EncodingError(
                "a finding reports a hit: 1 <= threshold <= matches <= trials, not "
                f"{self.threshold} <= {self.matches} <= {self.trials}"
            )

    @property
    def per_pair_alpha(self) -> Fraction:
        """The level each (model, deposit) pair of the scan was tested at."""
        return self.alpha / (self.models * self.deposits)

    def to_fields(self) -> dict[str, Any]:
        return {
            "alpha": str(self.alpha),
            "commitment_id": self.commitment_id,
            "deposit_id": self.deposit_id,
            "deposits": self.deposits,
            "matches": self.matches,
            "model": self.model,
            "models": self.models,
            "owner": self.owner,
            "p0": str(self.p0),
            "scan_id": self.scan_id,
            "scanned": format_time(self.scanned),
            "threshold": self.threshold,
            "trials": self.trials,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> ScanFinding:
        return cls(
            scan_id=fields.text("scan_id", max_length=MAX_SCAN_ID),
            deposit_id=fields.hex_digest("deposit_id"),
            commitment_id=fields.hex_digest("commitment_id"),
            owner=fields.hex_digest("owner"),
            model=fields.text("model", max_length=MAX_SUSPECT_REFERENCE),
            p0=parse_probability(fields.text("p0", max_length=260), "p0"),
            alpha=parse_probability(fields.text("alpha", max_length=260), "alpha"),
            models=fields.integer("models", minimum=1, maximum=_MAX_COUNT),
            deposits=fields.integer("deposits", minimum=1, maximum=_MAX_COUNT),
            trials=fields.integer("trials", minimum=1, maximum=_MAX_TRIALS),
            threshold=fields.integer("threshold", minimum=1, maximum=_MAX_TRIALS),
            matches=fields.integer("matches", minimum=1, maximum=_MAX_TRIALS),
            scanned=fields.time("scanned"),
        )


def open_finding(data: bytes, platform: PublicKeys) -> SignedDocument[ScanFinding]:
    """Parse a finding and verify that ``platform`` signed it (not its
    figures: :func:`secmark.scan.findings.verify_finding` does both)."""
    return open_document(data, ScanFinding, platform, max_size=_MAX_FINDING_SIZE)
