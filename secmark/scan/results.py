"""A platform scan's results in a database (SQLite or PostgreSQL).

:class:`ScanResults` keeps, over SQLAlchemy Core (the engines of
:mod:`secmark.database`: ``sqlite:///path`` or
``postgresql+psycopg://...``), two tables:

- ``secmark_scans``: one row per scan id with its :class:`ScanPlan` (alpha
  as an exact fraction, the numbers of models and deposits), written when
  the scan starts and compared when it resumes, so a resumed scan cannot
  change the level its first models were tested at;
- ``secmark_scan_results``: one row per (scan id, model id, deposit id):
  trials, threshold, matches, failures, log2 p-value, hit and error.

A model's rows are written in one transaction (:meth:`ScanResults.record_model`),
so a scan killed at any point leaves each model either wholly recorded or
not at all, and :meth:`ScanResults.done_models` tells a resumed scan which
models to skip. A model is recorded once: recording it again is refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateTable

from secmark.database import WRITE, database_errors, open_engine
from secmark.errors import EncodingError, ProtocolError
from secmark.scan.engine import PairResult, ScanPlan
from secmark.scan.probes import MAX_ID_LENGTH, checked_id

__all__ = ["ScanResults"]

_WHAT = "the scan results"
_ALPHA_TEXT = 4096
"""Room for alpha as ``numerator/denominator``: 2^-64 takes 22 characters."""

_metadata = MetaData()
_scans = Table(
    "secmark_scans",
    _metadata,
    Column("scan_id", String(MAX_ID_LENGTH), primary_key=True),
    Column("alpha", String(_ALPHA_TEXT), nullable=False),
    Column("n_models", Integer, nullable=False),
    Column("n_deposits", Integer, nullable=False),
)
_results = Table(
    "secmark_scan_results",
    _metadata,
    Column("scan_id", String(MAX_ID_LENGTH), primary_key=True),
    Column("model_id", String(MAX_ID_LENGTH), primary_key=True),
    Column("deposit_id", String(MAX_ID_LENGTH), primary_key=True),
    Column("trials", Integer, nullable=False),
    Column("threshold", Integer, nullable=False),
    Column("matches", Integer, nullable=True),
    Column("failures", Integer, nullable=True),
    Column("log2_p", Float(precision=53), nullable=True),
    Column("hit", Boolean, nullable=False),
    Column("error", Text, nullable=True),
)


def _read_alpha(text: str, scan_id: str) -> Fraction:
    try:
        alpha = Fraction(text)
    except (ValueError, ZeroDivisionError):
        alpha = Fraction(-1)
    if str(alpha) != text:
        raise EncodingError(f"scan {scan_id!r}: the stored alpha {text!r:.40} is damaged")
    return alpha


class ScanResults:
    """The results table of platform scans (module documentation).

    Open it with :meth:`open`, close it with :meth:`close`. Several
    processes may write one database; every method raises
    :class:`~secmark.errors.SecmarkError` when the database fails, besides
    the errors it names.
    """

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        self._url = url

    @classmethod
    def open(cls, url: str) -> ScanResults:
        """Open the results database at ``url``, creating its tables on first use.

        Raises:
            EncodingError: an unusable URL (an SQLite database in memory
                included: results must outlive the process).
        """
        engine = open_engine(url, what=_WHAT)
        try:
            with database_errors(_WHAT, "create the scan tables"), engine.begin() as conn:
                for table in _metadata.sorted_tables:
                    conn.execute(CreateTable(table, if_not_exists=True))
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, make_url(url).render_as_string(hide_password=True))

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def describe(self) -> str:
        return f"the scan results in {self._url}"

    @contextmanager
    def _transaction(self, action: str, *, write: bool) -> Iterator[Connection]:
        with database_errors(_WHAT, action), self._engine.connect() as conn:
            conn.execution_options(**{WRITE: write})
            with conn.begin():
                yield conn

    @staticmethod
    def _read_plan(conn: Connection, scan_id: str) -> ScanPlan | None:
        row = conn.execute(
            select(_scans.c.alpha, _scans.c.n_models, _scans.c.n_deposits).where(
                _scans.c.scan_id == scan_id
            )
        ).one_or_none()
        if row is None:
            return None
        return ScanPlan(_read_alpha(row[0], scan_id), row[1], row[2])

    def plan(self, scan_id: str) -> ScanPlan | None:
        """The plan stored for ``scan_id``, or None for a scan not started.

        Raises:
            EncodingError: the stored plan is damaged.
        """
        checked_id(scan_id, "a scan id")
        with self._transaction("read a scan's plan", write=False) as conn:
            return self._read_plan(conn, scan_id)

    def start(self, scan_id: str, plan: ScanPlan) -> bool:
        """Record ``plan`` as the plan of ``scan_id``; return whether the scan
        is new (False: it was started before with this very plan).

        Raises:
            ProtocolError: the scan was started with another plan (another
                alpha, or other numbers of models or deposits).
        """
        checked_id(scan_id, "a scan id")
        with self._transaction("start a scan", write=True) as conn:
            stored = self._read_plan(conn, scan_id)
            if stored is None:
                try:
                    conn.execute(
                        insert(_scans).values(
                            scan_id=scan_id,
                            alpha=str(plan.alpha),
                            n_models=plan.n_models,
                            n_deposits=plan.n_deposits,
                        )
                    )
                except IntegrityError:
                    raise ProtocolError(
                        f"scan {scan_id!r} was started by another process meanwhile"
                    ) from None
                return True
        if stored != plan:
            raise ProtocolError(
                f"scan {scan_id!r} was started with {stored}, not {plan}: resume it with the "
                "same alpha, models and deposits, or start another scan"
            )
        return False

    def record_model(self, scan_id: str, results: Sequence[PairResult]) -> None:
        """Store one model's results, all in one transaction.

        Raises:
            EncodingError: no results, results of several models, a deposit
                twice, or another number of deposits than the plan's.
            ProtocolError: the scan was not started, was started with
                another plan, or has this model recorded already.
        """
        checked_id(scan_id, "a scan id")
        if not results:
            raise EncodingError("a model's results hold one result per deposit, at least one")
        model_id, plan = results[0].model_id, results[0].plan
        deposits = {result.deposit_id for result in results}
        if any(r.model_id != model_id or r.plan != plan for r in results) or len(deposits) != len(
            results
        ):
            raise EncodingError("record one model's results at a time, one per deposit")
        if len(results) != plan.n_deposits:
            raise EncodingError(
                f"model {model_id!r} has {len(results)} results; the plan has "
                f"{plan.n_deposits} deposits"
            )
        rows = [
            {
                "scan_id": scan_id,
                "model_id": r.model_id,
                "deposit_id": r.deposit_id,
                "trials": r.trials,
                "threshold": r.threshold,
                "matches": r.matches,
                "failures": r.failures,
                "log2_p": r.log2_p_value,
                "hit": r.hit,
                "error": r.error,
            }
            for r in results
        ]
        with self._transaction("record a model's results", write=True) as conn:
            if self._read_plan(conn, scan_id) != plan:
                raise ProtocolError(
                    f"scan {scan_id!r} was not started with the results' plan ({plan}): "
                    "call start() with it first"
                )
            try:
                conn.execute(insert(_results), rows)
            except IntegrityError:
                raise ProtocolError(
                    f"model {model_id!r} is recorded in scan {scan_id!r} already: a model is "
                    "scanned once per scan"
                ) from None

    def done_models(self, scan_id: str) -> frozenset[str]:
        """The models of ``scan_id`` whose results are stored."""
        with self._transaction("list the scanned models", write=False) as conn:
            return frozenset(
                conn.execute(
                    select(_results.c.model_id)
                    .where(_results.c.scan_id == checked_id(scan_id, "a scan id"))
                    .distinct()
                ).scalars()
            )

    def results(self, scan_id: str) -> list[PairResult]:
        """Every stored result of ``scan_id``, by model id then deposit id.

        Raises:
            EncodingError: a stored row or plan is damaged (its figures
                contradict one another).
        """
        plan = self.plan(scan_id)
        if plan is None:
            return []
        columns = _results.c
        with self._transaction("read a scan's results", write=False) as conn:
            rows = conn.execute(
                select(
                    columns.model_id,
                    columns.deposit_id,
                    columns.trials,
                    columns.threshold,
                    columns.matches,
                    columns.failures,
                    columns.log2_p,
                    columns.hit,
                    columns.error,
                )
                .where(columns.scan_id == scan_id)
                .order_by(columns.model_id, columns.deposit_id)
            ).all()
        return [
            PairResult(
                model_id=row.model_id,
                deposit_id=row.deposit_id,
                plan=plan,
                trials=row.trials,
                threshold=row.threshold,
                matches=row.matches,
                failures=row.failures,
                log2_p_value=row.log2_p,
                hit=bool(row.hit),
                error=row.error,
            )
            for row in rows
        ]
