"""Suite-wide settings.

Under CI (``CI`` set) hypothesis runs derandomized: the same examples every run, so a
green CI means the same thing twice. Locally it explores new examples each run.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


# -- a real PostgreSQL for the history tests (harness/postgres.py) -------------------------

import itertools  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from harness.postgres import PostgresServer, postgres_available  # noqa: E402

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (a missing server is a failure, not a
    skip: scripts/bootstrap installs it)."""
    why = postgres_available()
    if why is not None:
        pytest.fail(f"the history tests need a real PostgreSQL: {why}")
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh database on the session's server."""
    return postgres_server.create_database(f"acd_test_{os.getpid()}_{next(_databases)}")
