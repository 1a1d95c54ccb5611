"""The Asterisk sandbox: a Debian sid chroot with Asterisk 22 and per-test instances.

``provision()`` makes (once) the chroot ``<cache>/sid-chroot`` holding Asterisk, its
modules and the hold music. :class:`AsteriskInstance` renders the product's
``asterisk_conf/`` templates (plus generated files such as ``pjsip_acd.conf``) into its own
directory inside the chroot and runs one Asterisk on its own ports, so several instances
run side by side::

    ports = SandboxPorts.free()
    with AsteriskInstance("t1", ports, {"ACD_RETRIES": "2"}) as ast:
        print(ast.cli("core show version"))

The instance runs ``chroot <chroot> /usr/sbin/asterisk -C <etc>/asterisk.conf -f`` as root,
without ``-U`` (Asterisk would drop its capabilities and fail to read its own files). It
needs no /proc inside the chroot. ``start()`` returns once AMI answered a Login with
``Event: FullyBooted``.

Command line (for humans): ``python -m harness.sandbox provision|start|stop|status|clean``
(``scripts/sandbox``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from types import TracebackType

from acd.config.asterisk import GENERATED_INCLUDES as GENERATED_INCLUDES
from acd.config.asterisk import TemplateError as TemplateError
from acd.config.asterisk import carrier_block
from acd.config.asterisk import render_template as render_template
from acd.config.asterisk import template_files as _template_files
from acd.config.asterisk import template_placeholders as _template_placeholders
from harness.ports import SandboxPorts, port_free, udp_bound

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "asterisk_conf"

PACKAGES = ("asterisk", "asterisk-modules", "asterisk-moh-opsound-wav")
DEBIAN_SUITE = "sid"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MOH_DIR = "usr/share/asterisk/moh"
ASTERISK_BIN = "/usr/sbin/asterisk"
#: Where instances live, as Asterisk sees it (inside the chroot).
INSTANCES_DIR = PurePosixPath("/srv/hotline-acd")
#: Files the shipped config ``#include``s that ``acd asterisk-config`` generates
#: (``GENERATED_INCLUDES``) are created empty when not supplied, so an instance starts
#: with no agents at all.
#: What such an empty stand-in holds besides its comment: the contexts the shipped config
#: refers to ([acd-agents] includes [acd-transfer]).
_EMPTY_GENERATED = {"extensions_acd.conf": "[acd-transfer]\n"}

#: The sandbox's test callers: SIPp UACs on 127.0.0.1, like the agents' phones, so not
#: told apart by address — by their User-Agent (harness/sipp/caller*.xml). The product
#: has no anonymous inbound endpoint: a real carrier is identified by its address.
TEST_CALLERS_ENDPOINT = "carrier-sandbox"
TEST_CALLERS_HEADER = "User-Agent: /^SIPp hotline caller/"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SUBDIRS = ("etc", "run", "log/cdr-csv", "spool", "db", "lib/keys", "cache")
_CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}


# --------------------------------------------------------------------------- provision


def default_cache_dir() -> Path:
    env = os.environ.get("ACD_SANDBOX_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hotline-acd"


def default_chroot() -> Path:
    return default_cache_dir() / "sid-chroot"


def chroot_ready(chroot: Path) -> bool:
    """True when ``chroot`` holds Asterisk and the hold-music files."""
    moh = chroot / MOH_DIR
    return (chroot / ASTERISK_BIN.lstrip("/")).is_file() and moh.is_dir() and any(
        moh.glob("*.wav"))


def provision(cache_dir: Path | None = None, mirror: str | None = None) -> Path:
    """The chroot ``<cache_dir>/sid-chroot``, built if missing (needs root + debootstrap).

    A ready chroot is reused at once. A build goes to a temporary directory that is renamed
    into place only when complete, so an interrupted build never leaves a half chroot where
    a later run would take it for a good one.
    """
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    target = cache / "sid-chroot"
    if chroot_ready(target):
        return target
    _check_can_build()
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / "sid-chroot.lock"):
        if chroot_ready(target):  # built by a concurrent run while we waited
            return target
        _remove_stale_builds(cache)
        tmp = cache / f"sid-chroot.tmp-{os.getpid()}"
        try:
            _build_chroot(tmp, mirror or os.environ.get("ACD_DEBIAN_MIRROR", DEFAULT_MIRROR))
            if target.exists():  # an incomplete chroot from an older, non-atomic build
                _remove_tree(target)
            tmp.rename(target)
        except BaseException:
            _remove_tree(tmp)
            raise
    return target


def sync_host_files(chroot: Path) -> None:
    """Give the chroot the host's /etc/hosts and /etc/resolv.conf (as schroot does):
    Asterisk resolves the host name when it binds RTP to 0.0.0.0, and without it logs
    errors on every call. Atomic, so instances already running never see a torn file."""
    for name in ("hosts", "resolv.conf"):
        src, dst = Path("/etc") / name, chroot / "etc" / name
        try:
            text = src.read_bytes()
            if dst.is_file() and not dst.is_symlink() and dst.read_bytes() == text:
                continue
        except OSError:
            continue
        tmp = dst.with_name(f".{name}.{os.getpid()}")
        tmp.write_bytes(text)
        tmp.chmod(0o644)
        tmp.replace(dst)


def _check_can_build() -> None:
    if os.geteuid() != 0:
        raise RuntimeError("building the Asterisk sandbox needs root (debootstrap and chroot); "
                           "run scripts/bootstrap as root")
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap); "
                           "it is needed to build the Asterisk sandbox")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build_chroot(tmp: Path, mirror: str) -> None:
    print(f"sandbox: debootstrap {DEBIAN_SUITE} into {tmp} (a few minutes)", file=sys.stderr)
    _run(["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(tmp), mirror])
    # No service may start inside the chroot during package installation.
    policy = tmp / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    # Package scripts may look at /proc; Asterisk itself does not need it later.
    proc_dir = tmp / "proc"
    mounted = _run(["mount", "-t", "proc", "proc", str(proc_dir)], check=False)
    try:
        env = {**_CLEAN_ENV, "DEBIAN_FRONTEND": "noninteractive"}
        _run(["chroot", str(tmp), "apt-get", "-o", "Acquire::Check-Valid-Until=false",
              "update"], env=env)
        _run(["chroot", str(tmp), "apt-get", "install", "-y", "--no-install-recommends",
              *PACKAGES], env=env)
        _run(["chroot", str(tmp), "apt-get", "clean"], env=env)
    finally:
        if mounted:
            _run(["umount", str(proc_dir)], check=False)
    if not chroot_ready(tmp):
        raise RuntimeError(f"sandbox build finished but {tmp} lacks {ASTERISK_BIN} or the "
                           f"hold music in /{MOH_DIR}")


def _run(cmd: Sequence[str], env: Mapping[str, str] | None = None,
         check: bool = True) -> bool:
    """Run a build step (output to the terminal); True when it succeeded."""
    result = subprocess.run(list(cmd), env=dict(env) if env is not None else None,
                            stdin=subprocess.DEVNULL, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"sandbox build step failed (exit {result.returncode}): "
                           f"{' '.join(cmd)}")
    return result.returncode == 0


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    mounts = []
    with open("/proc/self/mounts") as fh:
        for line in fh:
            point = line.split()[1].replace("\\040", " ")
            if point.startswith(prefix) or point == prefix[:-1]:
                mounts.append(point)
    return sorted(mounts, key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    """``rm -rf path`` — but never through a mount point (a /dev or /proc bind mount)."""
    if not path.exists():
        return
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False)
    left = _mounts_under(path)
    if left:
        raise RuntimeError(f"not removing {path}: still mounted: {', '.join(left)}")
    shutil.rmtree(path)


def _remove_stale_builds(cache: Path) -> None:
    for stale in cache.glob("sid-chroot.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and Path(f"/proc/{pid}").exists() and int(pid) != os.getpid():
            continue  # another build in progress (we hold the lock, so this is paranoia)
        _remove_tree(stale)


# --------------------------------------------------------------------------- rendering


def template_placeholders(conf_dir: Path = CONF_DIR) -> dict[str, list[str]]:
    """Placeholder name → template files using it."""
    return _template_placeholders(conf_dir)


def _module_dir(chroot: Path) -> PurePosixPath:
    for candidate in sorted(chroot.glob("usr/lib/*/asterisk/modules")):
        return PurePosixPath("/") / candidate.relative_to(chroot)
    return PurePosixPath("/usr/lib/asterisk/modules")


# --------------------------------------------------------------------------- AMI probe


class AMIError(RuntimeError):
    pass


def _ami_messages(sock: socket.socket) -> Iterator[dict[str, str]]:
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise AMIError("AMI closed the connection")
            buf += chunk
        raw, buf = buf.split(b"\r\n\r\n", 1)
        msg: dict[str, str] = {}
        for line in raw.decode("utf-8", "replace").split("\r\n"):
            key, sep, val = line.partition(":")
            if sep:
                msg.setdefault(key.strip(), val.strip())
        yield msg


def ami_wait_fully_booted(host: str, port: int, user: str, secret: str,
                          timeout: float) -> None:
    """Log in over a raw socket and wait for ``Event: FullyBooted``.

    Raises ``ConnectionRefusedError``/``OSError`` when nothing listens yet, ``AMIError`` on
    a refused login, ``TimeoutError`` when FullyBooted does not come in time.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        banner = b""
        while not banner.endswith(b"\r\n"):
            chunk = sock.recv(1)
            if not chunk:
                raise AMIError("AMI closed the connection before its banner")
            banner += chunk
        if not banner.startswith(b"Asterisk Call Manager/"):
            raise AMIError(f"port {port} is not AMI (banner {banner!r})")
        sock.sendall((f"Action: Login\r\nActionID: sandbox-boot\r\nUsername: {user}\r\n"
                      f"Secret: {secret}\r\nEvents: system\r\n\r\n").encode())
        for msg in _ami_messages(sock):
            if msg.get("Response") == "Error" and msg.get("ActionID") == "sandbox-boot":
                raise AMIError(f"AMI login as {user!r} on port {port} refused: "
                               f"{msg.get('Message', '')}")
            if msg.get("Event") == "FullyBooted":
                with contextlib.suppress(OSError):
                    sock.sendall(b"Action: Logoff\r\n\r\n")
                return


def ami_action(host: str, port: int, user: str, secret: str, action: str,
               headers: Mapping[str, str] | None = None,
               timeout: float = 10.0) -> list[dict[str, str]]:
    """Log in, send one action, return its response and, for a list action
    (``EventList: start``), every item up to ``EventList: Complete``. Other events are
    skipped. For tests and tooling; the engine has its own AMI client."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        messages = _ami_messages(sock)
        sock.sendall((f"Action: Login\r\nActionID: login\r\nUsername: {user}\r\n"
                      f"Secret: {secret}\r\nEvents: off\r\n\r\n").encode())
        login = _response_to(messages, "login")
        if login.get("Response") != "Success":
            raise AMIError(f"AMI login as {user!r} refused: {login.get('Message', '')}")
        lines = [f"Action: {action}", "ActionID: act"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        first = _response_to(messages, "act")
        out = [first]
        if first.get("EventList", "").lower() == "start":
            for msg in messages:
                if msg.get("ActionID") != "act":
                    continue
                out.append(msg)
                if msg.get("EventList", "").lower() == "complete":
                    break
        with contextlib.suppress(OSError):
            sock.sendall(b"Action: Logoff\r\n\r\n")
        return out


def _response_to(messages: Iterator[dict[str, str]], action_id: str) -> dict[str, str]:
    for msg in messages:
        if "Response" in msg and msg.get("ActionID") == action_id:
            return msg
    raise AMIError("AMI connection ended before the response")  # pragma: no cover


# --------------------------------------------------------------------------- instance


@dataclasses.dataclass(frozen=True)
class _Layout:
    """The directories of one instance, on the host and as Asterisk sees them."""

    chroot: Path
    name: str

    @property
    def inner_root(self) -> PurePosixPath:
        return INSTANCES_DIR / self.name

    @property
    def root(self) -> Path:
        return self.chroot / str(self.inner_root).lstrip("/")

    def host(self, sub: str) -> Path:
        return self.root / sub

    def inner(self, sub: str) -> str:
        return str(self.inner_root / sub)


class PortInUse(RuntimeError):
    """A port the instance needs is taken."""


class AsteriskInstance:
    """One Asterisk of the sandbox, with its own config, directories and ports.

    ``conf_vars`` fill the templates' ``@@NAME@@`` placeholders; the ports and the
    directories are filled in from ``ports`` and the instance's layout, and these have
    defaults: ``BIND_ADDR`` 127.0.0.1, ``AMI_USER`` acd, ``AMI_SECRET`` random,
    ``AMI_PERMIT`` <bind addr>/255.255.255.255, ``ACD_AGI_URLS`` agi://<bind>:<ports.agi>,
    ``ACD_RETRIES`` 3, ``ACD_RETRY_PAUSE`` 2, ``FALLBACK_TIMEOUT`` 300.
    ``extra_files`` (file name → content) are written verbatim next to the rendered ones.
    ``test_callers``: the SIPp callers of the harness (``caller*.xml``) may call in, as
    the endpoint ``carrier-sandbox`` (``pjsip_sandbox.conf``, included at the end of
    ``pjsip.conf``); the product config itself lets no unknown source call in.
    """

    def __init__(self, name: str, ports: SandboxPorts, conf_vars: Mapping[str, str],
                 extra_files: Mapping[str, str] | None = None, chroot: Path | None = None,
                 conf_dir: Path = CONF_DIR, test_callers: bool = True,
                 environ: Mapping[str, str] | None = None) -> None:
        if not _NAME.match(name):
            raise ValueError(f"bad instance name {name!r} (letters, digits, _ . -)")
        self.name = name
        self.ports = ports
        self.chroot = chroot if chroot is not None else default_chroot()
        self.conf_dir = conf_dir
        self._layout = _Layout(self.chroot, name)
        self.extra_files: dict[str, str] = dict(extra_files or {})
        #: Asterisk's process environment on top of a clean one (``ACD_AGI_SECRET``,
        #: read by the engine's secret check through ``${ENV()}``).
        self.environ: dict[str, str] = dict(environ or {})
        self.vars = self._variables(conf_vars)
        self.test_callers = test_callers
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self.boot_seconds: float | None = None
        #: The process responsible for stopping this instance; ``reap_orphans()`` stops
        #: instances whose owner died (a test run killed with SIGKILL). ``None``: started
        #: for a human (``scripts/sandbox start``), never reaped.
        self.owner_pid: int | None = os.getpid()

    # -- configuration ------------------------------------------------------------------

    def _variables(self, conf_vars: Mapping[str, str]) -> dict[str, str]:
        lay = self._layout
        bind = conf_vars.get("BIND_ADDR", "127.0.0.1")
        local = "127.0.0.1" if bind in ("0.0.0.0", "") else bind
        variables = {
            "BIND_ADDR": bind,
            "AMI_USER": "acd",
            "AMI_SECRET": secrets.token_hex(12),
            "AMI_PERMIT": f"{local}/255.255.255.255",
            "ACD_AGI_URLS": f"agi://{local}:{self.ports.agi}",
            "ACD_RETRIES": "3",
            "ACD_RETRY_PAUSE": "2",
            "FALLBACK_TIMEOUT": "300",
            "SERVER_NAME": "main",
            **self.ports.as_vars(),
            "AST_ETC_DIR": lay.inner("etc"),
            "AST_RUN_DIR": lay.inner("run"),
            "AST_LOG_DIR": lay.inner("log"),
            "AST_SPOOL_DIR": lay.inner("spool"),
            "AST_DB_DIR": lay.inner("db"),
            "AST_VAR_DIR": lay.inner("lib"),
            "AST_CACHE_DIR": lay.inner("cache"),
            "AST_MOD_DIR": str(_module_dir(self.chroot)),
            "AST_DATA_DIR": "/usr/share/asterisk",
        }
        variables.update(conf_vars)
        return variables

    @property
    def ami_host(self) -> str:
        bind = self.vars["BIND_ADDR"]
        return "127.0.0.1" if bind in ("0.0.0.0", "") else bind

    @property
    def ami_user(self) -> str:
        return self.vars["AMI_USER"]

    @property
    def ami_secret(self) -> str:
        return self.vars["AMI_SECRET"]

    @property
    def root(self) -> Path:
        """The instance directory on the host (inside the chroot)."""
        return self._layout.root

    @property
    def etc_dir(self) -> Path:
        return self._layout.host("etc")

    @property
    def log_path(self) -> Path:
        """Asterisk's full log (logger.conf ``messages.log``)."""
        return self._layout.host("log") / "messages.log"

    @property
    def console_log_path(self) -> Path:
        """Asterisk's own stdout/stderr (startup failures land here)."""
        return self._layout.host("log") / "console.log"

    @property
    def queue_log_path(self) -> Path:
        return self._layout.host("log") / "queue_log"

    def render(self) -> None:
        """Write the rendered templates, the extra files and empty generated includes."""
        etc = self.etc_dir
        etc.mkdir(parents=True, exist_ok=True)
        rendered: dict[str, str] = {}
        for path in _template_files(self.conf_dir):
            source = f"{self.conf_dir.name}/{path.name}"
            rendered[path.name] = render_template(path.read_text(), self.vars, source)
        if self.test_callers and "pjsip.conf" in rendered:
            rendered["pjsip.conf"] += "\n; sandbox only: the harness's SIPp callers\n" \
                                       "#include pjsip_sandbox.conf\n"
            rendered["pjsip_sandbox.conf"] = carrier_block(
                TEST_CALLERS_ENDPOINT, "the sandbox's test callers (SIPp, by User-Agent)",
                match_header=TEST_CALLERS_HEADER)
        for name, text in rendered.items():
            (etc / name).write_text(text)
        self._write_extra(self.extra_files)

    def update_files(self, extra_files: Mapping[str, str]) -> None:
        """Replace/add generated files (e.g. a new ``pjsip_acd.conf``); call ``reload()``
        afterwards for Asterisk to read them."""
        self.extra_files.update(extra_files)
        self._write_extra(extra_files)

    def _write_extra(self, files: Mapping[str, str]) -> None:
        for name, text in files.items():
            if "/" in name or name.startswith("."):
                raise ValueError(f"extra file name {name!r} must be a plain file name")
            (self.etc_dir / name).write_text(text)
        for name in GENERATED_INCLUDES:
            path = self.etc_dir / name
            if not path.exists():
                path.write_text("; (generated by `acd asterisk-config`; empty)\n"
                                + _EMPTY_GENERATED.get(name, ""))

    # -- process ------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._pid

    def running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self._pid is not None and _pid_is_ours(self._pid, self._asterisk_conf())

    def _asterisk_conf(self) -> str:
        return self._layout.inner("etc") + "/asterisk.conf"

    def _base_cmd(self) -> list[str]:
        return ["chroot", str(self.chroot), ASTERISK_BIN, "-C", self._asterisk_conf()]

    def start(self, timeout: float = 30.0) -> None:
        """Render the config, start Asterisk and wait for AMI's FullyBooted."""
        if not chroot_ready(self.chroot):
            raise RuntimeError(f"no Asterisk sandbox at {self.chroot}: run "
                               "`scripts/sandbox provision` (or scripts/bootstrap) first")
        sync_host_files(self.chroot)
        other = _running_pid(self._layout)
        if other is not None:
            raise RuntimeError(f"sandbox instance {self.name!r} is already running "
                               f"(pid {other}); stop it first")
        self._check_ports_free()
        self._prepare_dirs()
        self.render()
        begin = time.monotonic()
        with self.console_log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                [*self._base_cmd(), "-f"], stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env={**self.environ, **_CLEAN_ENV},
                start_new_session=True)
        self._pid = self._proc.pid
        self._write_metadata()
        try:
            self._wait_booted(begin + timeout, timeout)
            self._check_sip_bound()
        except BaseException:
            self.stop()
            raise
        self.boot_seconds = time.monotonic() - begin
        self._write_metadata()

    def _check_ports_free(self) -> None:
        """One clear line when a port Asterisk needs is taken (another instance, a real
        Asterisk), rather than a boot that times out with the log's tail."""
        host = self.vars["BIND_ADDR"] or "0.0.0.0"
        for what, port in (("SIP", self.ports.sip), ("AMI", self.ports.ami)):
            if not port_free(port, host):
                raise PortInUse(f"port {port} ({what}) on {host} is already in use: another "
                                "sandbox instance (`scripts/sandbox status`) or an Asterisk? "
                                "Stop it, or start with --free-ports")

    def _prepare_dirs(self) -> None:
        if self.root.exists():
            _remove_tree(self.root)
        for sub in _SUBDIRS:
            self._layout.host(sub).mkdir(parents=True, exist_ok=True)

    def _wait_booted(self, deadline: float, timeout: float) -> None:
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"Asterisk exited with code {self._proc.returncode} "
                                   f"during start; last log lines:\n{self.log_tail()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"Asterisk did not send FullyBooted within {timeout:g} s; "
                                   f"last log lines:\n{self.log_tail()}")
            try:
                ami_wait_fully_booted(self.ami_host, self.ports.ami, self.ami_user,
                                      self.ami_secret, timeout=min(left, 5.0))
                return
            except AMIError as exc:
                if "refused" in str(exc):
                    raise RuntimeError(f"{exc} (is another process on port "
                                       f"{self.ports.ami}?)") from exc
                time.sleep(0.05)
            except OSError:  # not listening yet, or no FullyBooted within this try
                time.sleep(0.05)

    def _check_sip_bound(self) -> None:
        if not udp_bound(self.ports.sip, self.ami_host):
            raise RuntimeError(f"Asterisk booted but its SIP transport is not bound to UDP "
                               f"{self.ports.sip}; last log lines:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.console_log_path, self.log_path):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            if text:
                parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts) or "(no log output)"

    def cli(self, command: str, timeout: float = 15.0) -> str:
        """Run one CLI command (``asterisk -rx``) and return its output."""
        try:
            result = subprocess.run([*self._base_cmd(), "-rx", command], capture_output=True,
                                    text=True, timeout=timeout, env=_CLEAN_ENV, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"asterisk -rx {command!r} did not return within "
                               f"{timeout:g} s") from exc
        if result.returncode != 0:
            raise RuntimeError(f"asterisk -rx {command!r} failed (exit {result.returncode}): "
                               f"{(result.stderr or result.stdout).strip()}")
        return result.stdout

    def ami(self, action: str, headers: Mapping[str, str] | None = None,
            timeout: float = 10.0) -> list[dict[str, str]]:
        """One AMI action as the instance's AMI user (see :func:`ami_action`)."""
        return ami_action(self.ami_host, self.ports.ami, self.ami_user, self.ami_secret,
                          action, headers, timeout)

    async def acli(self, command: str, time_limit: float = 15.0) -> str:
        """``cli()`` for async code: runs in a thread, never blocks the event loop."""
        return await asyncio.to_thread(self.cli, command, time_limit)

    def reload(self, modules: Sequence[str] = ()) -> str:
        """``core reload``, or ``module reload <m>`` for each of ``modules`` (e.g.
        ``("res_pjsip.so", "app_queue.so")``). Call ``update_files()`` first to change
        generated files."""
        if not modules:
            return self.cli("core reload")
        return "".join(self.cli(f"module reload {m}") for m in modules)

    def stop(self, timeout: float = 10.0) -> None:
        """``core stop now``; SIGTERM then SIGKILL if Asterisk does not exit. Always reaps."""
        pid = self._pid
        if pid is None:
            return
        if self.running():
            with contextlib.suppress(RuntimeError):
                self.cli("core stop now", timeout=timeout)
            if not self._wait_exit(timeout):
                self._signal(signal.SIGTERM)
                if not self._wait_exit(5.0):
                    self._signal(signal.SIGKILL)
                    self._wait_exit(5.0)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1.0)
        self._pid = None
        self._proc = None

    def _signal(self, sig: signal.Signals) -> None:
        if self._pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            if self._proc is not None:
                os.killpg(self._pid, sig)  # our own session: Asterisk and any System() child
            elif _pid_is_ours(self._pid, self._asterisk_conf()):
                os.kill(self._pid, sig)

    def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                return True
            time.sleep(0.05)
        return not self.running()

    # -- metadata (for the CLI: stop/status from another process) ------------------------

    def _write_metadata(self) -> None:
        data = {"name": self.name, "pid": self._pid, "owner_pid": self.owner_pid,
                "ports": _ports_dict(self.ports),
                "vars": {k: v for k, v in self.vars.items() if not k.startswith("AST_")}}
        path = self.root / "instance.json"
        path.write_text(json.dumps(data, indent=2))
        path.chmod(0o600)  # holds the AMI secret

    @classmethod
    def attach(cls, name: str, chroot: Path | None = None) -> AsteriskInstance:
        """An instance started by another process (reads its ``instance.json``)."""
        layout = _Layout(chroot if chroot is not None else default_chroot(), name)
        try:
            data = json.loads((layout.root / "instance.json").read_text())
        except OSError as exc:
            raise RuntimeError(f"no sandbox instance {name!r} under {layout.root}") from exc
        ports = SandboxPorts(**data["ports"])
        inst = cls(name, ports, data["vars"], chroot=layout.chroot)
        inst._pid = _running_pid(layout)
        inst.owner_pid = data.get("owner_pid")
        return inst

    def save_logs(self, dest: Path) -> Path:
        """Copy the instance's logs (messages, console, queue_log, CDRs) and its rendered
        config into ``dest/<name>/`` (e.g. a test's artifacts), returning that directory."""
        target = dest / self.name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for sub in ("log", "etc"):
            src = self._layout.host(sub)
            if src.is_dir():
                shutil.copytree(src, target / sub)
        return target

    def remove(self) -> None:
        """Delete the instance directory (configs and logs); the instance must be stopped."""
        if self.running():
            raise RuntimeError(f"instance {self.name!r} is running; stop() it first")
        _remove_tree(self.root)

    def __enter__(self) -> AsteriskInstance:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _ports_dict(ports: SandboxPorts) -> dict[str, int]:
    return {f.name: getattr(ports, f.name) for f in dataclasses.fields(ports)}


def _pid_is_ours(pid: int, conf: str) -> bool:
    """True when ``pid`` is alive and is the Asterisk of the config file ``conf``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and conf.encode() in cmdline


def _running_pid(layout: _Layout) -> int | None:
    try:
        pid = int((layout.host("run") / "asterisk.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_is_ours(pid, layout.inner("etc") + "/asterisk.conf") else None


def reap_orphans(chroot: Path | None = None) -> list[str]:
    """Stop and remove instances whose owner process is gone (a test run that was killed
    before its finalizers ran). Instances started for humans have no owner and are kept.
    Returns the names reaped."""
    reaped = []
    for name in list_instances(chroot):
        try:
            inst = AsteriskInstance.attach(name, chroot)
        except (RuntimeError, KeyError, TypeError, ValueError):
            continue
        owner = inst.owner_pid
        if owner is None or owner == os.getpid() or Path(f"/proc/{owner}").exists():
            continue
        inst.stop()
        inst.remove()
        reaped.append(name)
    return reaped


def list_instances(chroot: Path | None = None) -> list[str]:
    base = (chroot if chroot is not None else default_chroot()) / str(INSTANCES_DIR).lstrip("/")
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


# --------------------------------------------------------------------------- command line


def _cmd_provision(args: argparse.Namespace) -> int:
    begin = time.monotonic()
    chroot = provision(Path(args.cache) if args.cache else None)
    print(f"sandbox ready: {chroot} ({time.monotonic() - begin:.1f} s)")
    return 0


def _read_generated(directory: str | None) -> dict[str, str]:
    if not directory:
        return {}
    return {name: (Path(directory) / name).read_text()
            for name in GENERATED_INCLUDES if (Path(directory) / name).is_file()}


def _cmd_start(args: argparse.Namespace) -> int:
    chroot = provision()
    ports = SandboxPorts.free() if args.free_ports else SandboxPorts.default()
    conf_vars = {"ACD_RETRIES": str(args.retries), "ACD_RETRY_PAUSE": str(args.retry_pause),
                 "FALLBACK_TIMEOUT": str(args.fallback_timeout)}
    if args.agi_urls:
        conf_vars["ACD_AGI_URLS"] = args.agi_urls
    if args.ami_secret:
        conf_vars["AMI_SECRET"] = args.ami_secret
    inst = AsteriskInstance(args.name, ports, conf_vars, _read_generated(args.generated),
                            chroot=chroot)
    inst.owner_pid = None  # runs on after this command: only `stop` ends it
    inst.start(timeout=args.timeout)
    print(f"instance {inst.name!r} running (pid {inst.pid}, booted in "
          f"{inst.boot_seconds or 0:.2f} s)")
    _print_instance(inst)
    return 0


def _print_instance(inst: AsteriskInstance) -> None:
    p = inst.ports
    print(f"  SIP      udp {inst.ami_host}:{p.sip}   (hotline: sip:<DID>@{inst.ami_host}:{p.sip})")
    print(f"  AMI      tcp {inst.ami_host}:{p.ami}   user {inst.ami_user}")
    print(f"  FastAGI  dialplan calls {inst.vars['ACD_AGI_URLS']} (engine listens on {p.agi})")
    print(f"  RTP      {p.rtp_start}-{p.rtp_end}; free pool for SIPp {p.pool_start}-"
          f"{p.pool_end - 1}")
    print(f"  config   {inst.etc_dir}")
    print(f"  log      {inst.log_path}")
    print(f"  export ACD_AMI_SECRET={inst.ami_secret}")
    named = "" if inst.name == "default" else f" --name {inst.name}"
    print(f"next: scripts/sandbox load CONFIG{named}   (agents, carriers, dialplan of an "
          "ACD config)")
    print(f"      scripts/sandbox call --from 13926012345 --to 4008001234{named}")


def _running(name: str) -> AsteriskInstance:
    inst = AsteriskInstance.attach(name)
    if inst.pid is None:
        named = "" if name == "default" else f" --name {name}"
        raise RuntimeError(f"sandbox instance {name!r} is not running: "
                           f"`scripts/sandbox start{named}`")
    return inst


def _cmd_load(args: argparse.Namespace) -> int:
    """Render the Asterisk side of an ACD config into a running instance and reload it:
    agents, partner trunks, carriers, DIDs' languages, transfer codes, and the
    dialplan's engine address and retries from the config."""
    from acd.config import ConfigError, check_file
    from acd.config import asterisk as asterisk_config

    inst = _running(args.name)
    report = check_file(args.config)
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    if report.config is None or report.errors:
        for line in report.errors:
            print(line, file=sys.stderr)
        return 2
    config = report.config
    try:
        files = asterisk_config.render(config, os.environ)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    host = config.fastagi.host
    engine = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    inst.vars.update({
        "ACD_AGI_URLS": f"agi://{engine}:{config.fastagi.port}",
        "ACD_RETRIES": str(config.asterisk.agi_retries),
        "ACD_RETRY_PAUSE": str(config.asterisk.agi_retry_pause),
        "FALLBACK_TIMEOUT": str(config.asterisk.fallback_timeout),
        "SERVER_NAME": config.asterisk.server_list[0].name})
    inst.render()
    inst.update_files(files)
    inst._write_metadata()
    inst.reload()
    partners = config.partners()
    print(f"loaded {args.config} into sandbox instance {inst.name!r} (core reload): "
          f"{len(config.agents)} agent(s), {len(partners)} partner trunk(s), "
          f"{len(config.carriers)} carrier(s), {len(config.dids)} DID(s)")
    print(f"  the dialplan calls the engine at {inst.vars['ACD_AGI_URLS']}")
    ami = config.asterisk.server_list[0].ami
    if (ami.port, ami.username) != (inst.ports.ami, inst.ami_user) or ami.host not in (
            "127.0.0.1", "localhost", inst.ami_host):
        print(f"  note: this sandbox's AMI is {inst.ami_host}:{inst.ports.ami} user "
              f"{inst.ami_user}; the config says {ami.host}:{ami.port} user {ami.username}: "
              "set asterisk.ami to it for the engine to connect")
    print(f"  engine:  {ami.secret_env}={inst.ami_secret} acd serve -c {args.config}")
    print(f"  a call:  scripts/sandbox call --from 13926012345 --to "
          f"{next(iter(config.dids), '4008001234')}")
    return 0


def _cmd_call(args: argparse.Namespace) -> int:
    """One test call from a SIPp caller: to ``--to`` (a DID), from ``--from`` (the
    caller's number), pressing ``--digits`` once answered (the IVR)."""
    from harness.sipp import SippError, dtmf_caller_scenario, run_uac

    inst = _running(args.name)
    if not re.fullmatch(r"[0-9*#+]{1,32}", args.to):
        raise ValueError(f"--to {args.to!r}: digits, *, # or + only")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    artifacts = default_cache_dir() / "sandbox-calls" / f"{stamp}-{os.getpid()}"
    artifacts.mkdir(parents=True, exist_ok=True)
    scenario: str | Path = "caller"
    if args.digits:
        scenario = dtmf_caller_scenario(args.digits, artifacts, delay_ms=args.delay_ms)
    print(f"calling sip:{args.to}@{inst.ami_host}:{inst.ports.sip} from {args.from_}"
          + (f", pressing {args.digits} {args.delay_ms} ms after the answer"
             if args.digits else "") + f" (gives up after {args.time_limit:g} s) …",
          flush=True)
    begin = time.time()
    try:
        result = asyncio.run(run_uac(
            scenario, inst.ami_host, inst.ports.sip, args.to, [args.from_], artifacts,
            SandboxPorts.free(), name="call", rate=1, time_limit=args.time_limit,
            recv_timeout_ms=int(args.time_limit * 1000)))
    except SippError:
        print(f"no answer within {args.time_limit:g} s: hung up. Traces: {artifacts}")
        return 1
    answered = result.by_event("answered")
    ended = result.by_event("ended")
    if answered:
        line = f"answered after {answered[0].time - begin:.1f} s"
        if ended:
            line += f"; the far end hung up {ended[0].time - answered[0].time:.1f} s later"
        print(line)
    if result.failed or not answered:
        first = next((x for x in result.errors_text(600).splitlines()
                      if x and not x.startswith("---")), "")
        print(f"the call failed{': ' + first if first else ''}")
    print(f"traces: {artifacts}; Asterisk's log: {inst.log_path}")
    return 0 if answered and not result.failed else 1


def _cmd_stop(args: argparse.Namespace) -> int:
    names = list_instances() if args.all else [args.name]
    for name in names:
        inst = AsteriskInstance.attach(name)
        was = inst.pid
        inst.stop()
        print(f"instance {name!r}: " + (f"stopped (pid {was})" if was else "not running"))
    return 0


def _cmd_clean(args: argparse.Namespace) -> int:
    """Remove the directories of stopped instances (their configs and logs)."""
    chroot = default_chroot()
    for name in list_instances(chroot):
        layout = _Layout(chroot, name)
        if _running_pid(layout) is not None:
            print(f"- {name}: running, kept")
            continue
        _remove_tree(layout.root)
        print(f"- {name}: removed")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    chroot = default_chroot()
    print(f"sandbox chroot: {chroot} ({'ready' if chroot_ready(chroot) else 'NOT provisioned'})")
    for name in list_instances(chroot):
        try:
            inst = AsteriskInstance.attach(name, chroot)
        except (RuntimeError, KeyError, TypeError, ValueError):
            print(f"- {name}: (no metadata)")
            continue
        state = f"running, pid {inst.pid}" if inst.pid else "stopped"
        print(f"- {name}: {state}")
        if inst.pid:
            _print_instance(inst)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("provision", help="build the sid chroot with Asterisk (once)")
    p.add_argument("--cache", help="cache dir (default $ACD_SANDBOX_CACHE or "
                                   "~/.cache/hotline-acd)")
    p.set_defaults(func=_cmd_provision)
    p = sub.add_parser("start", help="start an instance (stays running)")
    p.add_argument("--name", default="default")
    p.add_argument("--free-ports", action="store_true",
                   help="a random free port block instead of SIP 25000 / AMI 25001")
    p.add_argument("--agi-urls", help="ACD_AGI_URLS (default agi://127.0.0.1:<agi port>)")
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--retry-pause", type=int, default=2)
    p.add_argument("--fallback-timeout", type=int, default=300)
    p.add_argument("--ami-secret", help="default: random")
    p.add_argument("--generated", metavar="DIR",
                   help="directory with pjsip_acd.conf / queues_acd.conf / "
                        "extensions_acd.conf "
                        "(from `acd asterisk-config`)")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=_cmd_start)
    p = sub.add_parser("stop", help="stop an instance")
    p.add_argument("--name", default="default")
    p.add_argument("--all", action="store_true")
    p.set_defaults(func=_cmd_stop)
    p = sub.add_parser("load", help="render the Asterisk side of an ACD config into a "
                       "running instance and reload it")
    p.add_argument("config", help="the ACD config (YAML)")
    p.add_argument("--name", default="default")
    p.set_defaults(func=_cmd_load)
    p = sub.add_parser("call", help="place a test call with a SIPp caller")
    p.add_argument("--from", dest="from_", default="13926012345", metavar="NUMBER",
                   help="the caller's number (default 13926012345, Guangdong mobile)")
    p.add_argument("--to", default="4008001234", metavar="DID",
                   help="the number dialled (default 4008001234)")
    p.add_argument("--digits", help="keys pressed once answered (the IVR), e.g. 2")
    p.add_argument("--delay-ms", type=int, default=1500,
                   help="wait before pressing --digits (default 1500)")
    p.add_argument("--time-limit", type=float, default=120.0,
                   help="hang up after this many seconds without an end (default 120)")
    p.add_argument("--name", default="default")
    p.set_defaults(func=_cmd_call)
    p = sub.add_parser("status", help="the chroot and the instances")
    p.set_defaults(func=_cmd_status)
    p = sub.add_parser("clean", help="remove the directories of stopped instances")
    p.set_defaults(func=_cmd_clean)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"sandbox: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
