"""A real PostgreSQL server per test session: Debian's ``postgresql`` (15), started by the
harness as the ``postgres`` user, its data and its unix socket in a temp directory; never
left running.

::

    server = PostgresServer(); server.start()
    url = server.url("acd")   # postgresql://postgres@/acd?host=/tmp/acd-pg-…&port=…
    server.restart()          # stop (fast) and start again: "the database came back"
    server.stop()             # and the data directory is removed

Trust authentication over the socket only (``listen_addresses=''``): nothing outside
this machine — or this test — can reach it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

PG_BIN = Path(os.environ.get("ACD_PG_BIN", "/usr/lib/postgresql/15/bin"))


def postgres_available() -> str | None:
    """Why a PostgreSQL server cannot be started here (None: it can)."""
    if not (PG_BIN / "initdb").exists():
        return f"no {PG_BIN}/initdb: install postgresql (scripts/bootstrap)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user (the postgresql package creates it)"
    return None


class PostgresServer:
    def __init__(self, port: int | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="acd-pg-"))
        self.data = self.dir / "data"
        self.port = port or _free_port()
        self.started = False
        user = pwd.getpwnam("postgres")
        self._uid, self._gid = user.pw_uid, user.pw_gid
        os.chown(self.dir, self._uid, self._gid)
        os.chmod(self.dir, 0o755)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@/{db}?host={self.dir}&port={self.port}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        as_root = os.geteuid() == 0
        return subprocess.run(list(args), check=check, capture_output=True,
                              user=self._uid if as_root else None,
                              group=self._gid if as_root else None,
                              cwd=self.dir, timeout=60)

    def start(self) -> PostgresServer:
        why = postgres_available()
        if why is not None:
            raise RuntimeError(why)
        if not self.data.exists():
            self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
                      "-U", "postgres", "--no-sync", "-E", "UTF8")
        opts = (f"-c listen_addresses='' -c unix_socket_directories={self.dir} "
                f"-p {self.port} -c fsync=on -c max_connections=50 "
                f"-c shared_buffers=128MB")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.dir / "postgres.log"), "-o", opts, "-w", "-t", "30", "start")
        self.started = True
        return self

    def create_database(self, name: str) -> str:
        self._run(str(PG_BIN / "psql") if (PG_BIN / "psql").exists() else "psql",
                  "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", "-c",
                  f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, mode: str = "fast") -> None:
        if self.started:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                      "stop", check=False)
            self.started = False

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.remove()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
