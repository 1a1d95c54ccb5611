"""The history database: SQLite (one file, WAL) or PostgreSQL, through SQLAlchemy Core.

Blocking calls: the writer and the API run them in a worker thread
(``asyncio.to_thread``), never on the engine's loop.

**Idempotent, monotone writes.** A call leg's row is keyed by (call id, leg) and written
as a whole snapshot. An upsert replaces the stored row only when the new one is at least
as far along — final beats open, then the later ``updated_at`` wins — so the same
snapshot written twice (spool replay after a crash), an older one arriving late, or the
two engines of a pair writing the same call around a takeover, all leave one row: the
latest. Offers are keyed by (call id, leg, time, target); agent intervals by (agent,
start).

**Pre-aggregates.** Each write marks the 15-minute buckets it touched in
``rollup_dirty``; :meth:`HistoryDB.refresh` rebuilds those buckets' ``call_rollup`` and
``agent_rollup`` rows from the records (the pure :mod:`acd.history.rollup`), so a report
reads sums per bucket instead of every call. Reports refresh first: they are exact.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.sql.elements import ColumnElement

from acd.history.periods import BUCKET, bucket_of, local_periods
from acd.history.rollup import agent_rollup as agent_sums
from acd.history.rollup import rollup
from acd.runtime.history.tables import (
    ROLLUP_SUMS,
    agent_intervals,
    agent_rollup,
    agent_rollup_day,
    call_rollup,
    call_rollup_day,
    calls,
    meta,
    offers,
    recording_access,
    rollup_dirty,
)

log = logging.getLogger("acd.history")

MIGRATIONS = Path(__file__).parent / "migrations"

#: An interval marks at most this many buckets dirty (a week): longer ones are cut.
_MAX_SPAN_BUCKETS = 7 * 96

_CALL_COLUMNS = tuple(c.name for c in calls.columns)


def engine_url(url: str) -> str:
    """``postgresql://`` means psycopg 3; SQLite paths stay as they are."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = engine_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 10})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4,
                         connect_args={"connect_timeout": 5})


class HistoryDB:
    """The database of one engine (or of a report command)."""

    def __init__(self, url: str, *, timezone: str = "Asia/Shanghai",
                 short_abandon: float = 0.0, writer_id: str = "") -> None:
        self.url = url
        self.engine = make_engine(url)
        self.timezone = timezone
        self.short_abandon = short_abandon
        self.writer_id = writer_id
        self.postgres = self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    # -- schema ----------------------------------------------------------------------

    def upgrade(self) -> None:
        """Apply the migrations up to the newest (Alembic). Two engines starting at once
        on one PostgreSQL take turns (an advisory lock)."""
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            if self.postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(1414014)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        self._check_settings()

    def _check_settings(self) -> None:
        """The pre-aggregates depend on the short-abandon threshold and the time zone:
        when either changed, every bucket is rebuilt."""
        wanted = json.dumps({"short_abandon": self.short_abandon, "tz": self.timezone})
        with self.engine.begin() as conn:
            have = conn.execute(select(meta.c.value).where(meta.c.key == "rollup")).scalar()
            if have == wanted:
                return
            conn.execute(delete(meta).where(meta.c.key == "rollup"))
            conn.execute(meta.insert().values(key="rollup", value=wanted))
            buckets = [b for (b,) in conn.execute(select(calls.c.bucket).distinct())]
            buckets += [b for (b,) in conn.execute(select(agent_intervals.c.bucket)
                                                   .distinct())]
            self._mark_dirty(conn, buckets)
        if have is not None:
            log.info("history: rollup settings changed; %d buckets to rebuild",
                     len(set(buckets)))

    # -- writing ---------------------------------------------------------------------

    def _insert(self) -> Any:
        return postgresql.insert if self.postgres else sqlite.insert

    def write(self, call_rows: Sequence[Mapping[str, Any]],
              interval_rows: Sequence[Mapping[str, Any]],
              closes: Sequence[Mapping[str, Any]] = ()) -> None:
        """Write a batch of call snapshots and agent intervals, then close what the
        CDR says ended unseen (``closes``), in one transaction."""
        if not call_rows and not interval_rows and not closes:
            return
        with self.engine.begin() as conn:
            self.write_in(conn, call_rows, interval_rows)
            for close in closes:
                if close.get("kind") == "recording":
                    conn.execute(update(calls).where(calls.c.call_id == close["call_id"],
                                                     calls.c.leg == close["leg"])
                                 .values(recording=dict(close["recording"])))
                else:
                    self._close(conn, close)

    def _close(self, conn: Connection, c: Mapping[str, Any]) -> None:
        """Close the open record of a call that ended unseen (or create it: a call no
        engine saw, e.g. served by the app_queue fallback), from its CDR
        (:func:`acd.history.orphans.close_from_cdr`). A final record is left alone."""
        row = conn.execute(select(calls).where(calls.c.call_id == c["call_id"])
                           .order_by(calls.c.leg.desc()).limit(1)).first()
        if row is not None and row.final:
            return
        ended = float(c["ended_at"])
        answered = c.get("answered_by") is not None
        decision = {"closed_by": "cdr", "fallback": bool(c.get("fallback"))}
        if row is None:
            entry = ended - float(c.get("duration") or 0.0)
            answered_at = ended - float(c["talk"]) if answered else None
            values = self._call_values({
                "call_id": c["call_id"], "leg": 1, "offered": True, "entry_time": entry,
                "queue": c.get("queue") or "", "first_queue": c.get("queue") or "",
                "caller": c.get("caller") or "", "server": c.get("server") or "",
                "sl_target": c.get("sl_target") or 0.0,
                "outcome": "completed" if answered else "abandoned", "final": True,
                "answered_at": answered_at, "ended_at": ended,
                "agent": c.get("agent"), "site": c.get("site"),
                "agent_site": c.get("agent_site"),
                "wait": max(0.0, (answered_at or ended) - entry),
                "talk": float(c["talk"]) if answered else None,
                "decision": decision, "updated_at": float(c.get("at") or ended)})
            conn.execute(calls.insert().values(**values))
            self._mark_dirty(conn, [values["bucket"]])
            return
        update_values: dict[str, Any] = {
            "final": True, "ended_at": ended, "decision": {**(row.decision or {}),
                                                           **decision},
            "updated_at": max(float(row.updated_at), float(c.get("at") or ended))}
        if answered:
            answered_at = row.answered_at if row.answered_at is not None \
                else ended - float(c["talk"])
            update_values.update(
                outcome="completed", answered_at=answered_at,
                talk=max(0.0, ended - answered_at),
                wait=max(0.0, answered_at - row.entry_time),
                agent=row.agent or c.get("agent"), site=row.site or c.get("site"))
            offer_outcome = "answered"
        else:
            update_values.update(outcome="abandoned",
                                 wait=max(0.0, ended - row.entry_time))
            offer_outcome = "abandoned"
        conn.execute(update(calls).where(calls.c.call_id == row.call_id,
                                         calls.c.leg == row.leg).values(**update_values))
        conn.execute(update(offers).where(offers.c.call_id == row.call_id,
                                          offers.c.leg == row.leg,
                                          offers.c.outcome == "pending")
                     .values(outcome=offer_outcome, ended=ended))
        self._mark_dirty(conn, [row.bucket])

    def write_in(self, conn: Connection, call_rows: Sequence[Mapping[str, Any]],
                 interval_rows: Sequence[Mapping[str, Any]]) -> None:
        insert = self._insert()
        dirty: set[int] = set()
        # Several snapshots of one leg in a batch: the last one (they are in order).
        latest: dict[tuple[str, int], Mapping[str, Any]] = {}
        for row in call_rows:
            latest[(row["call_id"], int(row.get("leg", 1)))] = row
        values: list[dict[str, Any]] = []
        offer_values: list[dict[str, Any]] = []
        for (call_id, leg), row in latest.items():
            values.append(self._call_values(row))
            dirty.add(values[-1]["bucket"])
            for o in row.get("offers") or ():
                offer_values.append({"call_id": call_id, "leg": leg, "at": o["at"],
                                     "target": o["target"], "kind": o["kind"],
                                     "stage": o["stage"], "wait": o["wait"],
                                     "outcome": o["outcome"],
                                     "dialstatus": o.get("dialstatus") or "",
                                     "ended": o.get("ended")})
        if values:
            stmt = insert(calls)
            ex = stmt.excluded
            newer = or_(ex.final > calls.c.final,
                        and_(ex.final == calls.c.final,
                             ex.updated_at >= calls.c.updated_at))
            stmt = stmt.on_conflict_do_update(
                index_elements=[calls.c.call_id, calls.c.leg],
                set_={c: getattr(ex, c) for c in _CALL_COLUMNS
                      if c not in ("call_id", "leg", "recording", "disposition", "note")}
                | {"recording": func.coalesce(ex.recording, calls.c.recording),
                   "disposition": func.coalesce(ex.disposition, calls.c.disposition),
                   "note": func.coalesce(ex.note, calls.c.note)},
                where=newer)
            for chunk in _chunks(values, 200):
                conn.execute(stmt, chunk)
        if offer_values:
            stmt = insert(offers)
            ex = stmt.excluded
            stmt = stmt.on_conflict_do_update(
                index_elements=[offers.c.call_id, offers.c.leg, offers.c.at,
                                offers.c.target],
                set_={"outcome": ex.outcome, "dialstatus": ex.dialstatus,
                      "ended": ex.ended},
                where=or_(offers.c.outcome == "pending", ex.outcome != "pending"))
            for chunk in _chunks(offer_values, 300):
                conn.execute(stmt, chunk)
        if interval_rows:
            ivals = []
            for r in interval_rows:
                ivals.append({**{k: r[k] for k in ("agent", "start", "end", "status",
                                                  "reason", "state", "call_id")},
                              "bucket": bucket_of(float(r["start"]))})
                first, last = bucket_of(float(r["start"])), bucket_of(float(r["end"]))
                last = min(last, first + _MAX_SPAN_BUCKETS * BUCKET)
                dirty.update(range(first, last + 1, BUCKET))
            stmt = insert(agent_intervals)
            ex = stmt.excluded
            stmt = stmt.on_conflict_do_update(
                index_elements=[agent_intervals.c.agent, agent_intervals.c.start],
                set_={"end": ex.end, "status": ex.status, "reason": ex.reason,
                      "state": ex.state, "call_id": ex.call_id})
            for chunk in _chunks(ivals, 300):
                conn.execute(stmt, chunk)
        self._mark_dirty(conn, dirty)

    def _call_values(self, row: Mapping[str, Any]) -> dict[str, Any]:
        entry = float(row["entry_time"])
        bucket = bucket_of(entry)
        p = local_periods(bucket, self.timezone)
        out = {c: row.get(c) for c in _CALL_COLUMNS if c in row}
        out.update(bucket=bucket, day=p.day, week=p.week, month=p.month,
                   leg=int(row.get("leg", 1)), writer=self.writer_id,
                   transfers=list(row.get("transfers") or []) or None,
                   exits=list(row.get("exits") or []) or None)
        for key, default in (("caller", ""), ("region", ""), ("region_source", ""),
                             ("segment", ""), ("did", ""), ("menu_choice", ""),
                             ("server", ""), ("priority", 0), ("stage", 0),
                             ("sl_target", 0.0), ("wait", 0.0), ("reentries", 0),
                             ("region_known", False), ("offered", True)):
            if out.get(key) is None:
                out[key] = default
        for key in _CALL_COLUMNS:
            out.setdefault(key, None)
        return out

    def _mark_dirty(self, conn: Connection, buckets: Iterable[int]) -> None:
        rows = [{"bucket": int(b)} for b in set(buckets)]
        if rows:
            stmt = self._insert()(rollup_dirty).on_conflict_do_nothing()
            for chunk in _chunks(rows, 500):
                conn.execute(stmt, chunk)

    # -- pre-aggregates ----------------------------------------------------------------

    def refresh(self, limit: int | None = None) -> int:
        """Rebuild the dirty buckets' pre-aggregates; returns how many. Safe to run from
        several processes at once (a bucket rebuilt twice is the same)."""
        done = 0
        while limit is None or done < limit:
            with self.engine.connect() as conn:
                todo = [b for (b,) in conn.execute(
                    select(rollup_dirty.c.bucket).order_by(rollup_dirty.c.bucket)
                    .limit(200))]
            if not todo:
                break
            days: set[int] = set()
            for bucket in todo:
                self._retry(lambda b=bucket: self._rebuild_in_tx(b))
                days.add(local_periods(bucket, self.timezone).day)
                done += 1
            for day in sorted(days):
                self._retry(lambda d=day: self._rebuild_day_in_tx(d))
        return done

    def _retry(self, fn: Any) -> None:
        for attempt in range(3):
            try:
                fn()
                return
            except (IntegrityError, OperationalError):
                if attempt == 2:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _rebuild_in_tx(self, bucket: int) -> None:
        with self.engine.begin() as conn:
            self._rebuild(conn, bucket)

    def _rebuild_day_in_tx(self, day: int) -> None:
        """A local day's rows: its buckets' sums (SQL does the adding)."""
        sums = [c.name for c in call_rollup_day.columns
                if c.name not in ("day", "dim", "key", "week", "month")]
        with self.engine.begin() as conn:
            conn.execute(delete(call_rollup_day).where(call_rollup_day.c.day == day))
            cols = [call_rollup.c.day, call_rollup.c.dim, call_rollup.c.key,
                    func.max(call_rollup.c.week), func.max(call_rollup.c.month)]
            cols += [(func.max if c == "wait_max" else func.sum)(call_rollup.c[c])
                     for c in sums]
            conn.execute(call_rollup_day.insert().from_select(
                ["day", "dim", "key", "week", "month", *sums],
                select(*cols).where(call_rollup.c.day == day)
                .group_by(call_rollup.c.day, call_rollup.c.dim, call_rollup.c.key)))
            conn.execute(delete(agent_rollup_day).where(agent_rollup_day.c.day == day))
            conn.execute(agent_rollup_day.insert().from_select(
                ["day", "agent", "what", "week", "month", "seconds"],
                select(agent_rollup.c.day, agent_rollup.c.agent, agent_rollup.c.what,
                       func.max(agent_rollup.c.week), func.max(agent_rollup.c.month),
                       func.sum(agent_rollup.c.seconds))
                .where(agent_rollup.c.day == day)
                .group_by(agent_rollup.c.day, agent_rollup.c.agent, agent_rollup.c.what)))

    def _rebuild(self, conn: Connection, bucket: int) -> None:
        conn.execute(delete(rollup_dirty).where(rollup_dirty.c.bucket == bucket))
        p = local_periods(bucket, self.timezone)
        rows = [dict(r._mapping) for r in conn.execute(
            select(calls).where(calls.c.bucket == bucket))]
        by_leg: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
        if rows:
            for o in conn.execute(
                    select(offers).join(calls, and_(offers.c.call_id == calls.c.call_id,
                                                    offers.c.leg == calls.c.leg))
                    .where(calls.c.bucket == bucket)):
                by_leg[(o.call_id, o.leg)].append(dict(o._mapping))
        for r in rows:
            r["offers"] = by_leg.get((r["call_id"], r["leg"]), [])
        conn.execute(delete(call_rollup).where(call_rollup.c.bucket == bucket))
        sums = rollup(rows, self.short_abandon)
        values = [{"bucket": bucket, "dim": dim, "key": key, "day": p.day, "week": p.week,
                   "month": p.month, **totals.as_dict()}
                  for (dim, key), totals in sums.items()]
        for chunk in _chunks(values, 300):
            conn.execute(call_rollup.insert(), chunk)
        end = bucket + BUCKET
        ivals = [dict(r._mapping) for r in conn.execute(
            select(agent_intervals).where(agent_intervals.c.end > bucket,
                                          agent_intervals.c.start < end))]
        conn.execute(delete(agent_rollup).where(agent_rollup.c.bucket == bucket))
        seconds = agent_sums(ivals, bucket, end)
        avalues = [{"bucket": bucket, "agent": agent, "what": what, "day": p.day,
                    "week": p.week, "month": p.month, "seconds": s}
                   for (agent, what), s in seconds.items()]
        for chunk in _chunks(avalues, 300):
            conn.execute(agent_rollup.insert(), chunk)

    # -- reading ---------------------------------------------------------------------

    def period_column(self, table: Any, granularity_seconds: int | None,
                      granularity: str) -> Any:
        if granularity_seconds is not None:
            return (table.c.bucket // granularity_seconds) * granularity_seconds
        return {"day": table.c.day, "week": table.c.week, "month": table.c.month}[
            granularity]

    def call_sums(self, dim: str, start: float, end: float, granularity: str,
                  granularity_seconds: int | None, keys: Sequence[str] = (),
                  ) -> list[dict[str, Any]]:
        """Sums per (period, key) of one dimension over [start, end) (local midnights
        for day, week and month: those read the per-day rows)."""
        span: ColumnElement[bool]
        if granularity_seconds is None:
            t = call_rollup_day
            span = t.c.day.between(local_periods(bucket_of(start), self.timezone).day,
                                   local_periods(bucket_of(end - 1), self.timezone).day)
        else:
            t = call_rollup
            span = and_(t.c.bucket >= bucket_of(start), t.c.bucket < end)
        period = self.period_column(t, granularity_seconds, granularity)
        cols = [period.label("period"), t.c.key]
        cols += [(func.max(t.c[c]) if c == "wait_max" else func.sum(t.c[c])).label(c)
                 for c in ROLLUP_SUMS]
        q = (select(*cols).where(t.c.dim == dim, span)
             .group_by(period, t.c.key).order_by(period, t.c.key))
        if keys:
            q = q.where(t.c.key.in_(list(keys)))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def agent_sums(self, start: float, end: float, granularity: str,
                   granularity_seconds: int | None, keys: Sequence[str] = (),
                   ) -> list[dict[str, Any]]:
        span: ColumnElement[bool]
        if granularity_seconds is None:
            t = agent_rollup_day
            span = t.c.day.between(local_periods(bucket_of(start), self.timezone).day,
                                   local_periods(bucket_of(end - 1), self.timezone).day)
        else:
            t = agent_rollup
            span = and_(t.c.bucket >= bucket_of(start), t.c.bucket < end)
        period = self.period_column(t, granularity_seconds, granularity)
        q = (select(period.label("period"), t.c.agent, t.c.what,
                    func.sum(t.c.seconds).label("seconds"))
             .where(span).group_by(period, t.c.agent, t.c.what))
        if keys:
            q = q.where(t.c.agent.in_(list(keys)))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def calls_between(self, start: float, end: float, *, limit: int = 1000,
                      offset: int = 0, filters: Mapping[str, str] | None = None,
                      with_offers: bool = True) -> list[dict[str, Any]]:
        """Call rows with their offers, oldest first."""
        q = select(calls).where(calls.c.entry_time >= start, calls.c.entry_time < end)
        for key, value in (filters or {}).items():
            q = q.where(calls.c[key] == value)
        q = q.order_by(calls.c.entry_time, calls.c.call_id, calls.c.leg)
        q = q.limit(limit).offset(offset)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
            if with_offers and rows:
                keys = [(r["call_id"], r["leg"]) for r in rows]
                by_leg: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
                for chunk in _chunks(keys, 300):
                    for o in conn.execute(
                            select(offers).where(tuple_(offers.c.call_id, offers.c.leg)
                                                 .in_(chunk)).order_by(offers.c.at)):
                        by_leg[(o.call_id, o.leg)].append(dict(o._mapping))
                for r in rows:
                    r["offers"] = by_leg.get((r["call_id"], r["leg"]), [])
        return rows

    def call(self, call_id: str) -> list[dict[str, Any]]:
        """Every leg of one call, with offers."""
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                select(calls).where(calls.c.call_id == call_id).order_by(calls.c.leg))]
            for r in rows:
                r["offers"] = [dict(o._mapping) for o in conn.execute(
                    select(offers).where(offers.c.call_id == call_id,
                                         offers.c.leg == r["leg"]).order_by(offers.c.at))]
        return rows

    def intervals_between(self, start: float, end: float) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(agent_intervals).where(agent_intervals.c.end > start,
                                              agent_intervals.c.start < end)
                .order_by(agent_intervals.c.start))]

    def count_calls(self, start: float | None = None, end: float | None = None) -> int:
        q = select(func.count()).select_from(calls)
        if start is not None:
            q = q.where(calls.c.entry_time >= start)
        if end is not None:
            q = q.where(calls.c.entry_time < end)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    # -- recordings, retention ---------------------------------------------------------

    def set_recording(self, call_id: str, leg: int, recording: Mapping[str, Any]) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(update(calls).where(calls.c.call_id == call_id,
                                                    calls.c.leg == leg)
                                .values(recording=dict(recording)))
            return bool(done.rowcount)

    def audit_recording(self, call_id: str, leg: int, who: str, role: str,
                        action: str, at: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(recording_access.insert().values(
                at=at, call_id=call_id, leg=leg, who=who, role=role, action=action))

    def recording_audit(self, call_id: str | None = None) -> list[dict[str, Any]]:
        q = select(recording_access).order_by(recording_access.c.id)
        if call_id is not None:
            q = q.where(recording_access.c.call_id == call_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def purge(self, now: float, *, records_days: float | None,
              numbers_days: float | None, notes_days: float | None,
              recordings_days: float | None) -> dict[str, Any]:
        """Apply the retention: delete old records (and their offers and intervals),
        blank old caller numbers and notes, and forget old recordings (the caller deletes
        the files listed in ``recording_files``)."""
        out: dict[str, Any] = {"calls": 0, "numbers": 0, "notes": 0, "recordings": 0,
                               "recording_files": []}
        with self.engine.begin() as conn:
            if recordings_days is not None:
                cutoff = now - recordings_days * 86_400
                rows = conn.execute(select(calls.c.call_id, calls.c.leg, calls.c.recording)
                                    .where(calls.c.entry_time < cutoff,
                                           calls.c.recording.is_not(None))).all()
                for r in rows:
                    rec = r.recording if isinstance(r.recording, dict) else {}
                    if rec.get("file"):
                        out["recording_files"].append(rec["file"])
                    conn.execute(update(calls).where(calls.c.call_id == r.call_id,
                                                     calls.c.leg == r.leg)
                                 .values(recording=None))
                out["recordings"] = len(rows)
            if records_days is not None:
                cutoff = now - records_days * 86_400
                old = select(calls.c.call_id).where(calls.c.entry_time < cutoff)
                conn.execute(delete(offers).where(offers.c.call_id.in_(old)))
                out["calls"] = conn.execute(
                    delete(calls).where(calls.c.entry_time < cutoff)).rowcount
                conn.execute(delete(agent_intervals).where(agent_intervals.c.end < cutoff))
                conn.execute(delete(call_rollup).where(call_rollup.c.bucket
                                                       < bucket_of(cutoff)))
                conn.execute(delete(agent_rollup).where(agent_rollup.c.bucket
                                                        < bucket_of(cutoff)))
                first_day = local_periods(bucket_of(cutoff), self.timezone).day
                conn.execute(delete(call_rollup_day).where(call_rollup_day.c.day
                                                           < first_day))
                conn.execute(delete(agent_rollup_day).where(agent_rollup_day.c.day
                                                            < first_day))
            if numbers_days is not None:
                cutoff = now - numbers_days * 86_400
                out["numbers"] = conn.execute(
                    update(calls).where(calls.c.entry_time < cutoff, calls.c.caller != "")
                    .values(caller="")).rowcount
            if notes_days is not None:
                cutoff = now - notes_days * 86_400
                out["notes"] = conn.execute(
                    update(calls).where(calls.c.entry_time < cutoff,
                                        calls.c.note.is_not(None))
                    .values(note=None)).rowcount
        return out


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
