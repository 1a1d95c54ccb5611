"""The history database's tables (SQLAlchemy Core). Alembic's migrations create them
(``migrations/versions``); this module is what the code reads and writes through, and
what ``alembic check`` compares the migrations with.

* ``calls`` — one row per call leg (``call_id``, ``leg``), the record as
  :class:`acd.history.CallRecord` holds it; ``bucket`` and the local ``day``/``week``/
  ``month`` of its first entry are stored with it;
* ``offers`` — every ring of an agent and every dial to a partner, with its outcome;
* ``agent_intervals`` — agents' status and state history;
* ``call_rollup`` / ``agent_rollup`` — the pre-aggregates reports read: per 15-minute
  bucket and dimension key, rebuilt from the rows of a bucket each time one of them is
  written (``rollup_dirty`` lists the buckets to rebuild); ``call_rollup_day`` /
  ``agent_rollup_day`` sum them per local day (reports by day, week and month);
* ``recording_access`` — who played or downloaded which recording, when;
* ``meta`` — settings the pre-aggregates were built with (short-abandon threshold,
  time zone).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

calls = Table(
    "calls", metadata,
    Column("call_id", String(128), primary_key=True),
    Column("leg", Integer, primary_key=True, default=1),
    Column("offered", Boolean, nullable=False),
    Column("entry_time", Float, nullable=False),
    Column("bucket", BigInteger, nullable=False),
    Column("day", Integer, nullable=False),
    Column("week", Integer, nullable=False),
    Column("month", Integer, nullable=False),
    Column("queue", String(64), nullable=False),
    Column("first_queue", String(64), nullable=False),
    Column("caller", String(64), nullable=False, default=""),
    Column("region", String(16), nullable=False, default=""),
    Column("region_known", Boolean, nullable=False, default=False),
    Column("region_source", String(16), nullable=False, default=""),
    Column("segment", String(64), nullable=False, default=""),
    Column("did", String(64), nullable=False, default=""),
    Column("menu_choice", String(8), nullable=False, default=""),
    Column("server", String(64), nullable=False, default=""),
    Column("priority", Integer, nullable=False, default=0),
    Column("stage", Integer, nullable=False, default=0),
    Column("sl_target", Float, nullable=False, default=0.0),
    Column("outcome", String(16), nullable=False),
    Column("final", Boolean, nullable=False),
    Column("answered_at", Float),
    Column("ended_at", Float),
    Column("agent", String(64)),
    Column("site", String(64)),
    Column("agent_site", String(64)),
    Column("wait", Float, nullable=False, default=0.0),
    Column("talk", Float),
    Column("wrap_up", Float),
    Column("reentries", Integer, nullable=False, default=0),
    Column("exit", String(64)),
    Column("exits", JSON(none_as_null=True)),
    Column("transfers", JSON(none_as_null=True)),
    Column("decision", JSON(none_as_null=True)),
    Column("recording", JSON(none_as_null=True)),
    Column("disposition", String(64)),
    Column("note", Text),
    Column("callback", JSON(none_as_null=True)),
    Column("updated_at", Float, nullable=False),
    Column("writer", String(64), nullable=False, default=""),
    Index("ix_calls_bucket", "bucket"),
    Index("ix_calls_entry_time", "entry_time"),
    Index("ix_calls_agent_entry", "agent", "entry_time"),
    Index("ix_calls_open", "final", "updated_at"),
)

offers = Table(
    "offers", metadata,
    Column("call_id", String(128), primary_key=True),
    Column("leg", Integer, primary_key=True),
    Column("at", Float, primary_key=True),
    Column("target", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("stage", Integer, nullable=False, default=0),
    Column("wait", Float, nullable=False, default=0.0),
    Column("outcome", String(16), nullable=False),
    Column("dialstatus", String(32), nullable=False, default=""),
    Column("ended", Float),
)

agent_intervals = Table(
    "agent_intervals", metadata,
    Column("agent", String(64), primary_key=True),
    Column("start", Float, primary_key=True),
    Column("end", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", String(64), nullable=False, default=""),
    Column("state", String(16), nullable=False),
    Column("call_id", String(128)),
    Column("bucket", BigInteger, nullable=False),
    Index("ix_agent_intervals_bucket", "bucket"),
    Index("ix_agent_intervals_end", "end"),
)

call_rollup = Table(
    "call_rollup", metadata,
    Column("bucket", BigInteger, primary_key=True),
    Column("dim", String(16), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("day", Integer, nullable=False),
    Column("week", Integer, nullable=False),
    Column("month", Integer, nullable=False),
    Column("offered", Integer, nullable=False, default=0),
    Column("answered", Integer, nullable=False, default=0),
    Column("answered_within", Integer, nullable=False, default=0),
    Column("abandoned", Integer, nullable=False, default=0),
    Column("abandoned_after", Integer, nullable=False, default=0),
    Column("abandoned_short", Integer, nullable=False, default=0),
    Column("closed", Integer, nullable=False, default=0),
    Column("exited", Integer, nullable=False, default=0),
    Column("handled", Integer, nullable=False, default=0),
    Column("transferred", Integer, nullable=False, default=0),
    Column("wait_answered", Float, nullable=False, default=0.0),
    Column("wait_abandoned", Float, nullable=False, default=0.0),
    Column("wait_max", Float, nullable=False, default=0.0),
    Column("talk", Float, nullable=False, default=0.0),
    Column("wrap_up", Float, nullable=False, default=0.0),
    Column("agent_offers", Integer, nullable=False, default=0),
    Column("rona", Integer, nullable=False, default=0),
    Column("overflowed", Integer, nullable=False, default=0),
    Column("partner_answered", Integer, nullable=False, default=0),
    Column("partner_wait", Float, nullable=False, default=0.0),
    Column("callbacks_requested", Integer, nullable=False, default=0),
    Column("callbacks_completed", Integer, nullable=False, default=0),
    Column("callbacks_failed", Integer, nullable=False, default=0),
    Column("callbacks_cancelled", Integer, nullable=False, default=0),
    Column("callbacks_answered", Integer, nullable=False, default=0),
    Column("callback_delay", Float, nullable=False, default=0.0),
    Index("ix_call_rollup_dim_bucket", "dim", "bucket"),
    Index("ix_call_rollup_dim_day", "dim", "day"),
)

agent_rollup = Table(
    "agent_rollup", metadata,
    Column("bucket", BigInteger, primary_key=True),
    Column("agent", String(64), primary_key=True),
    Column("what", String(80), primary_key=True),
    Column("day", Integer, nullable=False),
    Column("week", Integer, nullable=False),
    Column("month", Integer, nullable=False),
    Column("seconds", Float, nullable=False),
    Index("ix_agent_rollup_day", "day"),
)

# Per local day: the bucket rows summed (reports by day, week, month read these).
call_rollup_day = Table(
    "call_rollup_day", metadata,
    *(Column(c.name, c.type, primary_key=c.name in ("day", "dim", "key"),
             nullable=c.nullable, default=c.default)
      for c in call_rollup.columns if c.name != "bucket"),
    Index("ix_call_rollup_day_dim_day", "dim", "day"),
)

agent_rollup_day = Table(
    "agent_rollup_day", metadata,
    *(Column(c.name, c.type, primary_key=c.name in ("day", "agent", "what"),
             nullable=c.nullable)
      for c in agent_rollup.columns if c.name != "bucket"),
    Index("ix_agent_rollup_day_day", "day"),
)

rollup_dirty = Table(
    "rollup_dirty", metadata,
    Column("bucket", BigInteger, primary_key=True),
)

recording_access = Table(
    "recording_access", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("call_id", String(128), nullable=False),
    Column("leg", Integer, nullable=False),
    Column("who", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(16), nullable=False),
)

meta = Table(
    "meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

#: The call_rollup columns that are sums (all but the keys and periods).
ROLLUP_SUMS = tuple(c.name for c in call_rollup.columns
                    if c.name not in ("bucket", "dim", "key", "day", "week", "month"))
