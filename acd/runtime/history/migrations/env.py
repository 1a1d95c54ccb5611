"""Alembic environment of the history database.

The engine runs the migrations itself at start (``acd.runtime.history.db.upgrade``),
handing a connection in ``config.attributes["connection"]``; an operator can also run
them by hand: ``alembic -c acd/runtime/history/migrations/alembic.ini -x url=URL upgrade
head`` (see docs/operations.md).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from acd.runtime.history.tables import metadata

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") \
        or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database: -x url=sqlite:////var/lib/acd/history.db")
    engine = create_engine(url)
    with engine.begin() as conn:
        _migrate(conn)


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run()
