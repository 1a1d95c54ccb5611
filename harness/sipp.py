"""SIPp runners: callers (UAC bursts) and agent softphones / partner sites (UAS).

Scenarios live in ``harness/sipp/`` (see each file's header for its contract). Every SIPp
process gets its own signalling, control and media ports (from a
:class:`~harness.ports.SandboxPorts` pool) and writes its traces into an artifacts
directory: statistics CSV, ``<log>`` lines, unexpected messages, the SIP messages and the
final screen. The ``<log>`` lines of the shipped scenarios are parsed into
:class:`SippEvent` records, so a test can tell which agent took which caller::

    async with await start_uas("agent_answer", ports, art, "agent1",
                               variables={"talk_min": 500, "talk_max": 1500}) as agent1:
        result = await run_uac("caller", ast.ami_host, ast.ports.sip, "4008001234",
                               ["13800000001", "13800000002"], art, ports)
    assert result.failed == 0
    answered = agent1.result().by_event("answered")

Everything is asyncio (the e2e tests run the engine in the same loop); a UAS is always
stopped (SIGUSR1, then SIGTERM, then SIGKILL) and reaped, never left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import shutil
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from harness.ports import SandboxPorts, udp_bound

SCENARIO_DIR = Path(__file__).resolve().parent / "sipp"
SIPP = "sipp"
#: Default -recv_timeout (ms): how long any expected message may take, e.g. a caller's
#: answer or the BYE that ends the call. A never-answered call fails after this.
DEFAULT_RECV_TIMEOUT_MS = 120_000


def scenario_path(name: str | Path) -> Path:
    """``"caller"`` → ``harness/sipp/caller.xml``; a path is returned as is."""
    if isinstance(name, str) and "/" not in name:
        return SCENARIO_DIR / (name if name.endswith(".xml") else f"{name}.xml")
    return Path(name)


def write_injection(path: Path, rows: Iterable[Sequence[str | int | float]],
                    order: str = "SEQUENTIAL") -> Path:
    """A SIPp injection CSV: ``order`` line, then one ``;``-separated line per call."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [order]
    for row in rows:
        cells = [str(c) for c in row]
        if any(";" in c or "\n" in c for c in cells):
            raise ValueError(f"injection field contains ';' or a newline: {cells!r}")
        lines.append(";".join(cells) + ";")
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class SippEvent:
    """One ``<log>`` line of the shipped scenarios.

    Callers log ``<timestamp>|<event>|<caller>|<Call-ID>`` (``agent`` is ``None``), agents
    ``<timestamp>|<event>|<agent>|<caller>|<Call-ID>``. ``time`` is epoch seconds.
    """

    time: float
    event: str
    caller: str
    call_id: str
    agent: str | None = None


def parse_log_line(line: str) -> SippEvent | None:
    parts = line.rstrip("\n").split("|")
    if len(parts) not in (4, 5):
        return None
    try:
        when = float(parts[0].split("\t")[-1])
    except ValueError:
        return None
    if len(parts) == 4:
        return SippEvent(when, parts[1], parts[2], parts[3])
    return SippEvent(when, parts[1], parts[3], parts[4], agent=parts[2])


def parse_stats(path: Path) -> dict[str, str]:
    """The last row of a SIPp ``-trace_stat`` CSV, as column → value."""
    try:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh, delimiter=";"))
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


@dataclass
class SippResult:
    name: str
    returncode: int | None
    successful: int
    failed: int
    events: list[SippEvent]
    stats: dict[str, str]
    artifacts: dict[str, Path] = field(default_factory=dict)

    def by_event(self, event: str) -> list[SippEvent]:
        return [e for e in self.events if e.event == event]

    def errors_text(self, limit: int = 4000) -> str:
        """Unexpected messages / errors SIPp logged (for assertion messages)."""
        parts = []
        for key in ("errors", "screen", "stdout"):
            path = self.artifacts.get(key)
            if path and path.exists():
                text = path.read_text(errors="replace").strip()
                if text:
                    parts.append(f"--- {path.name}\n{text[-limit:]}")
        return "\n".join(parts)

    def summary(self) -> str:
        return (f"sipp {self.name}: exit {self.returncode}, {self.successful} successful, "
                f"{self.failed} failed, {len(self.events)} log events")


#: SIPp's exit status when it cannot bind one of its sockets (SIP, media or control).
EXIT_BIND_ERROR = 254
BIND_ATTEMPTS = 3


class SippError(RuntimeError):
    pass


class SippProcess:
    """One SIPp process; ``start()`` it, then ``wait()`` (UAC) or ``stop()`` (UAS)."""

    def __init__(self, name: str, scenario: str | Path, artifacts_dir: Path, *,
                 port: int, media_port: int, control_port: int,
                 remote: str | None = None, service: str | None = None,
                 inject: Path | None = None, calls: int | None = None,
                 rate: float | None = None, rate_period_ms: int | None = None,
                 max_concurrent: int | None = None,
                 variables: Mapping[str, str | int | float] | None = None,
                 recv_timeout_ms: int = DEFAULT_RECV_TIMEOUT_MS,
                 ip: str = "127.0.0.1", trace_messages: bool = True,
                 trace_errors: bool = True, extra_args: Sequence[str] = ()) -> None:
        if shutil.which(SIPP) is None:
            raise SippError("sipp is not installed (apt-get install sip-tester)")
        self.name = name
        self.scenario = scenario_path(scenario)
        if not self.scenario.is_file():
            raise SippError(f"no SIPp scenario {self.scenario}")
        self.dir = artifacts_dir.resolve()
        self.port, self.media_port, self.control_port = port, media_port, control_port
        self.remote, self.service = remote, service
        self.inject = inject.resolve() if inject is not None else None
        self.calls, self.rate, self.rate_period_ms = calls, rate, rate_period_ms
        self.max_concurrent = max_concurrent
        self.variables = {k: str(v) for k, v in (variables or {}).items()}
        self.recv_timeout_ms = recv_timeout_ms
        self.ip = ip
        self.trace_messages = trace_messages
        self.trace_errors = trace_errors
        self.extra_args = list(extra_args)
        self._proc: asyncio.subprocess.Process | None = None
        self._result: SippResult | None = None

    # -- files ---------------------------------------------------------------------------

    def artifact(self, kind: str) -> Path:
        suffix = {"stats": "stats.csv", "log": "log.txt", "errors": "errors.log",
                  "messages": "messages.log", "screen": "screen.log",
                  "stdout": "stdout.log"}[kind]
        return self.dir / f"{self.name}.{suffix}"

    def command(self) -> list[str]:
        cmd = [SIPP]
        if self.remote:
            cmd.append(self.remote)
        cmd += ["-sf", str(self.scenario), "-i", self.ip, "-p", str(self.port),
                "-mp", str(self.media_port), "-cp", str(self.control_port),
                "-nostdin", "-aa", "-recv_timeout", str(self.recv_timeout_ms),
                "-trace_stat", "-stf", str(self.artifact("stats")), "-fd", "1",
                "-trace_logs", "-log_file", str(self.artifact("log")),
                "-trace_screen", "-screen_file", str(self.artifact("screen")),
                "-f", "5"]
        # Both grow with load (the scenarios' wait loops note every 100-200 ms tick in the
        # error file): switch them off for long benchmarks.
        if self.trace_errors:
            cmd += ["-trace_err", "-error_file", str(self.artifact("errors"))]
        if self.trace_messages:
            cmd += ["-trace_msg", "-message_file", str(self.artifact("messages"))]
        if self.service:
            cmd += ["-s", self.service]
        if self.inject:
            cmd += ["-inf", str(self.inject)]
        if self.calls is not None:
            cmd += ["-m", str(self.calls)]
        if self.rate is not None:
            cmd += ["-r", f"{self.rate:g}"]
        if self.rate_period_ms is not None:
            cmd += ["-rp", str(self.rate_period_ms)]
        if self.max_concurrent is not None:
            cmd += ["-l", str(self.max_concurrent)]
        for key, value in self.variables.items():
            cmd += ["-set", key, value]
        return cmd + self.extra_args

    # -- process -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self, listen_timeout: float = 5.0) -> SippProcess:
        """Start SIPp; for a UAS (no remote) wait until its SIP port is bound."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.artifact("stdout").open("wb") as out:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command(), stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                cwd=self.dir)  # files SIPp names itself (early exits) land here too
        if self.remote is None:
            await self._wait_listening(listen_timeout)
        return self

    async def _wait_listening(self, time_limit: float) -> None:
        deadline = time.monotonic() + time_limit
        while not udp_bound(self.port, self.ip, self.pid):
            if not self.running:
                await self._reap()
                raise SippError(f"sipp {self.name} exited ({self._returncode()}) at start:\n"
                                f"{self._stdout_tail()}")
            if time.monotonic() > deadline:
                await self.stop()
                raise SippError(f"sipp {self.name} did not bind UDP {self.port} within "
                                f"{time_limit:g} s")
            await asyncio.sleep(0.02)

    @property
    def returncode(self) -> int | None:
        return self._returncode()

    def _returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    def _stdout_tail(self, chars: int = 2000) -> str:
        try:
            return self.artifact("stdout").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def wait(self, time_limit: float) -> SippResult:
        """Wait for SIPp to exit by itself (a UAC after ``-m`` calls). On timeout it is
        stopped and ``SippError`` raised."""
        if self._proc is None:
            raise SippError(f"sipp {self.name} was not started")
        try:
            await asyncio.wait_for(self._proc.wait(), time_limit)
        except TimeoutError:
            result = await self.stop()
            raise SippError(f"sipp {self.name} did not finish within {time_limit:g} s; "
                            f"{result.summary()}\n{result.errors_text()}") from None
        return self.result()

    async def stop(self, grace: float = 3.0) -> SippResult:
        """SIGUSR1 (finish calls in progress, take no new ones), then SIGTERM, then SIGKILL;
        always reaped. Safe to call twice."""
        if self._proc is not None and self._proc.returncode is None:
            for sig, wait in ((signal.SIGUSR1, grace), (signal.SIGTERM, 2.0),
                              (signal.SIGKILL, 5.0)):
                self._signal(sig)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._proc.wait(), wait)
                    break
        await self._reap()
        return self.result()

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is None or self._proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._proc.pid, sig)

    async def _reap(self) -> None:
        if self._proc is not None:
            await self._proc.wait()

    def result(self) -> SippResult:
        """Counts and events as far as SIPp has written them (final once it exited)."""
        stats = parse_stats(self.artifact("stats"))
        events: list[SippEvent] = []
        with contextlib.suppress(OSError), self.artifact("log").open(errors="replace") as fh:
            events = [e for e in map(parse_log_line, fh) if e is not None]
        artifacts = {k: self.artifact(k) for k in
                     ("stats", "log", "errors", "messages", "screen", "stdout")}
        return SippResult(self.name, self._returncode(),
                          _int(stats.get("SuccessfulCall(C)")),
                          _int(stats.get("FailedCall(C)")), events, stats, artifacts)

    async def __aenter__(self) -> SippProcess:
        if self._proc is None:
            await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()


def _int(value: str | None) -> int:
    try:
        return int(value) if value else 0
    except ValueError:
        return 0


def _ports_for(ports: SandboxPorts) -> tuple[int, int, int]:
    sip, control = ports.alloc(2)
    (media,) = ports.alloc(1, step=4)
    return sip, media, control


async def start_uas(scenario: str | Path, ports: SandboxPorts, artifacts_dir: Path,
                    name: str, variables: Mapping[str, str | int | float] | None = None,
                    *, recv_timeout_ms: int = DEFAULT_RECV_TIMEOUT_MS,
                    trace_messages: bool = True, trace_errors: bool = True,
                    extra_args: Sequence[str] = ()) -> SippProcess:
    """Start a UAS (agent phone / partner site) on fresh ports from ``ports``; its SIP port
    is ``proc.port`` (put ``sip:<agent>@127.0.0.1:<proc.port>`` in the agent's AOR)."""
    for attempt in range(1, BIND_ATTEMPTS + 1):
        sip, media, control = _ports_for(ports)
        proc = SippProcess(name, scenario, artifacts_dir, port=sip, media_port=media,
                           control_port=control, variables=variables,
                           recv_timeout_ms=recv_timeout_ms, trace_messages=trace_messages,
                           trace_errors=trace_errors, extra_args=extra_args)
        try:
            return await proc.start()
        except SippError:
            # Another process took one of its ports between the block check and SIPp's
            # bind: try fresh ports from the pool rather than fail the test.
            if proc.returncode != EXIT_BIND_ERROR or attempt == BIND_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def run_uac(scenario: str | Path, host: str, port: int, service: str,
                  callers: Sequence[str], artifacts_dir: Path, ports: SandboxPorts, *,
                  name: str = "callers", rate: float = 10.0, patience_ms: Sequence[int] = (),
                  max_concurrent: int | None = None, time_limit: float = 120.0,
                  recv_timeout_ms: int = DEFAULT_RECV_TIMEOUT_MS,
                  variables: Mapping[str, str | int | float] | None = None,
                  trace_messages: bool = True, trace_errors: bool = True) -> SippResult:
    """Place ``len(callers)`` calls to ``sip:<service>@host:port`` at ``rate`` calls/s, one
    per caller number (injection field0; ``patience_ms`` gives field1 for
    ``caller_abandon``), wait for SIPp to finish (at most ``time_limit`` s, else
    ``SippError``) and return the result. Run it as a task to place calls while the engine
    works in the same loop."""
    if not callers:
        raise ValueError("run_uac needs at least one caller number")
    if patience_ms and len(patience_ms) != len(callers):
        raise ValueError("patience_ms needs one value per caller")
    rows: list[list[str | int]] = [[c] for c in callers]
    for row, ms in zip(rows, patience_ms, strict=False):
        row.append(ms)
    inject = write_injection(artifacts_dir / f"{name}.csv", rows)
    sip, media, control = _ports_for(ports)
    proc = SippProcess(name, scenario, artifacts_dir, port=sip, media_port=media,
                       control_port=control, remote=f"{host}:{port}", service=service,
                       inject=inject, calls=len(callers), rate=rate,
                       max_concurrent=max_concurrent, variables=variables,
                       recv_timeout_ms=recv_timeout_ms, trace_messages=trace_messages,
                       trace_errors=trace_errors)
    await proc.start()
    try:
        return await proc.wait(time_limit)
    finally:
        await proc.stop()


DTMF_PCAP_DIR = Path("/usr/share/sip-tester")


def _info_dtmf(digit: str, cseq: int) -> str:
    """An in-dialog SIP INFO carrying one key (application/dtmf-relay)."""
    return f"""  <send>
    <![CDATA[

      INFO sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} INFO
      Contact: <sip:[field0]@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={digit}
      Duration=160

    ]]>
  </send>
  <recv response="200"/>
  <pause milliseconds="300"/>
"""


def dtmf_caller_scenario(digit: str, dest_dir: Path, delay_ms: int = 1500) -> Path:
    """``caller.xml`` that, once answered, waits ``delay_ms`` and presses ``digit`` (one
    key, or several in turn: ``"0755#"``).

    One key goes as an RFC 2833/4733 telephone-event (``play_pcap_audio`` of the pcaps
    SIPp ships) — what the endpoints' ``dtmf_mode=rfc4733`` expects. Several keys go as
    SIP INFO (application/dtmf-relay), which Asterisk also accepts: the pcaps all replay
    the same RTP timestamps, so Asterisk would take a second pcap for the same key press.
    SIPp reads a pcap path when it loads the scenario, so each scenario is generated.
    """
    names = [{"*": "star", "#": "pound"}.get(d, d) for d in digit]
    text = scenario_path("caller").read_text()
    marker = "  <!-- Connected: wait"
    if marker not in text:
        raise SippError("caller.xml changed: no 'Connected' marker to insert DTMF at")
    press = f'  <pause milliseconds="{delay_ms}"/>\n'
    if len(digit) == 1:
        pcap = DTMF_PCAP_DIR / f"dtmf_2833_{names[0]}.pcap"
        if not pcap.is_file():
            raise SippError(f"no DTMF pcap for {digit!r}: {pcap}")
        press += f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
    else:
        if not all(d in "0123456789*#" for d in digit):
            raise SippError(f"not DTMF keys: {digit!r}")
        press += "".join(_info_dtmf(d, 2 + i) for i, d in enumerate(digit))
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"caller_dtmf_{''.join(names)}.xml"
    path.write_text(text.replace(marker, press + marker, 1))
    return path


def keys_caller_scenario(steps: Sequence[tuple[int, str]], dest_dir: Path,
                         name: str = "caller_keys") -> Path:
    """``caller.xml`` that, once answered, presses keys at moments of its own: ``steps``
    are (pause in ms before, key) pairs, each key as SIP INFO (application/dtmf-relay).
    E.g. ``[(1500, "1"), (3500, "1")]``: the callback key, then the confirmation."""
    text = scenario_path("caller").read_text()
    marker = "  <!-- Connected: wait"
    if marker not in text:
        raise SippError("caller.xml changed: no 'Connected' marker to insert DTMF at")
    press = ""
    for i, (pause_ms, key) in enumerate(steps):
        if key not in "0123456789*#" or len(key) != 1:
            raise SippError(f"not a DTMF key: {key!r}")
        press += f'  <pause milliseconds="{pause_ms}"/>\n' + _info_dtmf(key, 2 + i)
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"{name}.xml"
    path.write_text(text.replace(marker, press + marker, 1))
    return path


def slow_answer_scenario(ring_ms: int, dest_dir: Path) -> Path:
    """``agent_answer.xml`` that rings ``ring_ms`` before it answers (a CANCEL within
    that time still withdraws the call): a phone picked up late."""
    text = scenario_path("agent_answer").read_text()
    needle = '<recv request="CANCEL" timeout="500" ontimeout="answer"/>'
    if needle not in text:
        raise SippError("agent_answer.xml changed: no ring timeout to lengthen")
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"answer_after_{ring_ms}ms.xml"
    path.write_text(text.replace(needle, needle.replace('"500"', f'"{ring_ms}"'), 1))
    return path


#: The ``busy`` branch the derived scenarios add before ``end``: 486, then the ACK.
_BUSY_BRANCH = """  <label id="busy"/>
  <send>
    <![CDATA[

      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
    <action>
      <log message="[timestamp]|busy|[$agent]|[$caller]|[call_id]"/>
    </action>
  </send>
  <recv request="ACK" next="end"/>

"""


def busy_first_scenario(dest_dir: Path) -> Path:
    """``agent_answer.xml`` that answers ``486 Busy Here`` to its **first** INVITE and
    answers every later one (a customer busy, then reached on a retry). Start it with
    the variable ``seen`` set to 0 (``-set seen 0``) besides ``talk_min``/``talk_max``."""
    text = scenario_path("agent_answer").read_text()
    globals_line = '<Global variables="talk_min,talk_max"/>'
    offered = ('<log message="[timestamp]|offered|[$agent]|[$caller]|[call_id]"/>\n'
               '    </action>\n  </recv>\n')
    end = '  <label id="end"/>\n'
    if globals_line not in text or offered not in text or end not in text:
        raise SippError("agent_answer.xml changed: cannot derive busy_first")
    text = text.replace(globals_line, '<Global variables="talk_min,talk_max,seen"/>', 1)
    text = text.replace(offered, offered.replace("    </action>", (
        '      <add assign_to="seen" value="1"/>\n'
        '      <test assign_to="first" variable="seen" compare="equal" value="1"/>\n'
        "    </action>"), 1) + '  <nop next="busy" test="first"/>\n', 1)
    text = text.replace(end, _BUSY_BRANCH + end, 1)
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / "busy_first.xml"
    path.write_text(text)
    return path


def busy_once_scenario(number: str, dest_dir: Path) -> Path:
    """``agent_answer.xml`` (a customers' trunk) that answers ``486 Busy Here`` to the
    **first** INVITE for ``number`` (the request URI user) and answers every other one.
    Start it with ``seen`` set to 0 besides ``talk_min``/``talk_max``."""
    text = scenario_path("agent_answer").read_text()
    globals_line = '<Global variables="talk_min,talk_max"/>'
    offered = ('<log message="[timestamp]|offered|[$agent]|[$caller]|[call_id]"/>\n'
               '    </action>\n  </recv>\n')
    ringing = "  <send>\n    <![CDATA[\n\n      SIP/2.0 180 Ringing"
    end = '  <label id="end"/>\n'
    if not all(part in text for part in (globals_line, offered, ringing, end)):
        raise SippError("agent_answer.xml changed: cannot derive busy_once")
    text = text.replace(globals_line, '<Global variables="talk_min,talk_max,seen"/>', 1)
    text = text.replace(offered, offered.replace("    </action>", (
        f'      <strcmp assign_to="cmp" variable="agent" value="{number}"/>\n'
        '      <test assign_to="other" variable="cmp" compare="not_equal" value="0"/>\n'
        "    </action>"), 1) + (
        '  <nop next="ring" test="other"/>\n'
        '  <nop><action><add assign_to="seen" value="1"/>\n'
        '    <test assign_to="first" variable="seen" compare="equal" value="1"/>'
        "</action></nop>\n"
        '  <nop next="busy" test="first"/>\n'), 1)
    text = text.replace(ringing, '  <label id="ring"/>\n' + ringing, 1)
    text = text.replace(end, _BUSY_BRANCH + end, 1)
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"busy_once_{number}.xml"
    path.write_text(text)
    return path
