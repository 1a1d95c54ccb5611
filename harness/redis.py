"""A real ``redis-server`` per test: started and stopped by the harness, never left running.

::

    server = RedisServer(tmp_path)
    server.start()        # redis-server --port 0 --unixsocket <dir>/redis.sock ...
    url = server.url      # unix:///.../redis.sock
    server.stop()         # and start() again on the same socket (Redis "comes back")

No persistence by default (``--save ''``, ``--appendonly no``): a restarted server is
empty, the worst case for the engine's store (it must write its whole state again).
``persistent=True`` keeps the data across a restart (append-only file, fsync always), as
a production Redis does.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)


class RedisServer:
    """One ``redis-server``. Options for the store's security and failover tests:
    ``port`` (TCP on 127.0.0.1 besides the unix socket), ``password`` (``requirepass``),
    ``tls`` (certificate, key: the TCP port speaks TLS only), ``replica_of`` (a master's
    TCP port), ``extra`` (more command-line options)."""

    def __init__(self, directory: Path, *, persistent: bool = False, port: int = 0,
                 password: str | None = None, tls: tuple[Path, Path] | None = None,
                 replica_of: int | None = None, extra: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.persistent = persistent
        self.port = port
        self.password = password
        self.tls = tls
        self.replica_of = replica_of
        self.extra = extra
        # A short path: a unix socket path must fit in 107 bytes.
        self._sock_dir = Path(tempfile.mkdtemp(prefix="acd-redis-"))
        self.socket_path = self._sock_dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/bootstrap)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._sock_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [binary, *self._network_args(), "--unixsocket", str(self.socket_path),
             "--unixsocketperm", "700", "--save", "",
             *(["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
               else ["--appendonly", "no"]),
             *(["--requirepass", self.password, "--masterauth", self.password]
               if self.password else []),
             *(["--replicaof", "127.0.0.1", str(self.replica_of)]
               if self.replica_of else []),
             "--dir", str(self.directory), *self.extra],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("redis-server exited; see "
                                   f"{self.directory / 'redis.log'}")
            if self._ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not answer PING in time")

    def _network_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port), "--bind", "127.0.0.1"]
        cert, key = self.tls
        return ["--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
                "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                s.connect(str(self.socket_path))
                if self.password:
                    s.sendall(f"AUTH {self.password}\r\n".encode())
                    if not s.recv(16).startswith(b"+OK"):
                        return False
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def tcp_url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """SIGKILL, as a crashed host (no goodbye to clients or replicas)."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            shutil.rmtree(self._sock_dir, ignore_errors=True)
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(self._sock_dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class SentinelServer:
    """A real ``redis-sentinel`` (the Debian package's, else ``redis-server
    --sentinel``) watching one master on 127.0.0.1, quorum 1, quick failover."""

    def __init__(self, directory: Path, port: int, master: str, master_port: int, *,
                 down_after_ms: int = 500, failover_timeout_ms: int = 2000,
                 password: str | None = None) -> None:
        self.directory = directory
        self.port = port
        self.master = master
        self.master_port = master_port
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> SentinelServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "sentinel.conf"  # sentinel rewrites it: its own copy
        lines = [f"port {self.port}", "bind 127.0.0.1", f"dir {self.directory}",
                 f"sentinel monitor {self.master} 127.0.0.1 {self.master_port} 1",
                 f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}",
                 f"sentinel failover-timeout {self.master} {self.failover_timeout_ms}",
                 f"sentinel parallel-syncs {self.master} 1"]
        if self.password:
            lines.append(f"sentinel auth-pass {self.master} {self.password}")
        conf.write_text("\n".join(lines) + "\n")
        sentinel = shutil.which("redis-sentinel")
        server = redis_server_binary()
        if sentinel is not None:
            cmd = [sentinel, str(conf)]
        elif server is not None:
            cmd = [server, str(conf), "--sentinel"]
        else:
            raise RuntimeError("redis-sentinel is not installed (scripts/bootstrap)")
        log = (self.directory / "sentinel.log").open("ab")
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-sentinel exited; see {self.directory}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-sentinel did not answer PING in time")

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
