"""The service's append-only audit log: every request and every transition.

One row per HTTP request (time, method, path, status, case id, identity)
and one per case transition the service drives (claim filed, challenge
issued, reveal received, query job started, queried, job failed, decided),
in the service's database (:mod:`secmark.service.db`). The log is only ever
inserted into: this module offers no update or delete.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from secmark.encoding import format_time, parse_time, utc_now
from secmark.service.db import AUDIT, ServiceDatabase

__all__ = ["AuditLog"]


class AuditLog:
    """Appends to the audit table of ``database``."""

    def __init__(self, database: ServiceDatabase) -> None:
        self._database = database

    def request(
        self, method: str, path: str, status: int, case_id: str | None, identity: str | None
    ) -> None:
        """Record one answered request; ``identity`` is the verified signer's
        key id, or ``addr:`` and the client address of an unsigned request."""
        self._append(
            kind="request",
            method=_text(method, 16),
            path=_text(path, 2048),
            status=status,
            case_id=case_id,
            identity=identity,
        )

    def transition(self, case_id: str, event: str, identity: str | None = None) -> None:
        """Record that case ``case_id`` moved on (``event`` says how)."""
        self._append(
            kind="transition", case_id=case_id, event=_text(event, 4096), identity=identity
        )

    def history(self, case_id: str) -> list[tuple[datetime, str]]:
        """The transitions of one case, oldest first: (time, what happened)."""
        with self._database.transaction(write=False) as connection:
            rows = connection.execute(
                select(AUDIT.c.time, AUDIT.c.event)
                .where(AUDIT.c.kind == "transition", AUDIT.c.case_id == case_id)
                .order_by(AUDIT.c.seq)
            ).all()
        return [(parse_time(time), event or "") for time, event in rows]

    def entries(self) -> list[dict[str, Any]]:
        """Every row, oldest first (for operators and tests)."""
        with self._database.transaction(write=False) as connection:
            rows = connection.execute(select(AUDIT).order_by(AUDIT.c.seq)).all()
        return [dict(row._mapping) for row in rows]

    def _append(self, **values: Any) -> None:
        with self._database.transaction(write=True) as connection:
            connection.execute(AUDIT.insert().values(time=format_time(utc_now()), **values))


def _text(value: str, size: int) -> str:
    """``value`` as a column of ``size`` characters holds it: cut, and no
    NUL (which PostgreSQL's text refuses; a request path may carry one)."""
    return value.replace("\x00", "\ufffd")[:size]
