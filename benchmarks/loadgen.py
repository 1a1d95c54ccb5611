"""The Asterisk side of FastAGI and AMI, simulated, to load one real ``acd serve``.

Used by :mod:`benchmarks.engine_capacity`, which runs this module as one or more
**worker processes** (``python -m benchmarks.loadgen``), each driven over its stdin/stdout
by JSON lines. A worker plays one or more whole Asterisk servers — exactly what a real
Asterisk is to the engine:

* an **AMI server** per simulated Asterisk (banner ``Asterisk Call Manager/11.0.0``,
  ``Login``, ``Ping``, ``Events``, ``DeviceStateList``, ``CoreShowChannels``,
  ``CoreStatus``, ``Getvar DEVICE_STATE(...)``, ``Logoff``), which pushes the events a
  real Asterisk 22 pushes through the shipped ``asterisk_conf/manager.conf`` filter
  (``Newchannel``, ``DialBegin``, ``DialEnd``, ``DeviceStateChange``, ``BridgeEnter``,
  ``BridgeLeave``, ``Hangup``), with Asterisk's ``writetimeout`` (an engine that does not
  read its AMI socket for a second is disconnected, as Asterisk would);
* **callers**: one FastAGI connection per caller to the engine's port, opened the way
  ``res_agi`` opens it (non-blocking connect, given up after ``MAX_AGI_CONNECT`` = 2 s),
  with the ``agi_*`` environment the shipped dialplan produces
  (``agi_arg_1..4`` = ``ACD_ENTRY``, ``ACD_CALL_ID``, DID, ``ACD_SERVER``); each caller
  answers the engine's commands as ``res_agi`` does (``ANSWER``, ``GET VARIABLE``,
  ``SET VARIABLE``, ``SET MUSIC``, ``EXEC Dial``; ``511`` on a dead channel) and may give
  up after a patience (``HANGUP`` out of band, then the engine closes);
* **agents' phones**: ``EXEC Dial PJSIP/<endpoint>`` rings the phone
  (``DeviceStateChange RINGING``), which answers after a ring time (``DialEnd ANSWER``
  with the caller's ``Uniqueid``, ``DeviceStateChange INUSE``), talks for a random time,
  and hangs up (``DeviceStateChange NOT_INUSE``; Dial returns ``200 result=-1`` then
  ``HANGUP``, as app_dial without the ``g`` option does). Phones start **unregistered**
  (``UNAVAILABLE``) and register on command, so callers can be held with agents logged
  in but no phone free.

Measured here (all with ``time.monotonic``, inside the process that sees both ends):
connect, pickup (connect start → ``ANSWER``), setup (→ ``SET MUSIC``: the caller is
queued), hang-up → engine closes, and **agent free → next ``EXEC Dial`` for that agent**
(from the moment the phone hung up and Dial's result went out on the previous call's
session, to the Dial of that agent's next call arriving on another session).

Sockets are bound to several loopback addresses (127.0.<w>.2, .3 …) with
``IP_BIND_ADDRESS_NO_PORT`` so tens of thousands of connections never run out of
ephemeral ports; every process raises its ``RLIMIT_NOFILE`` soft limit to the hard one.

The protocol parsing reuses :mod:`acd.protocol`: :class:`~acd.protocol.ami.AMIConnection`
frames the engine's AMI actions (primed with our own banner, it reads actions like any
other message block) and :func:`~acd.protocol.agi.quote` is the inverse of
:func:`parse_agi_args` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gc
import json
import math
import random
import re
import resource
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from acd.protocol.ami import AMIConnection, AMIMessage, AMIProtocolError, NeedData

#: res_agi.c: ``#define MAX_AGI_CONNECT 2000`` (ms) — Asterisk gives up a FastAGI connect.
AGI_CONNECT_TIMEOUT = 2.0
#: manager.conf ``writetimeout = 1000`` (ms) in the shipped configuration.
AMI_WRITE_TIMEOUT = 1.0
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
ASTERISK_VERSION = "22.10.1"
#: Linux ``IP_BIND_ADDRESS_NO_PORT``: choose the source port at connect(), per 4-tuple.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
#: Chinese mobile prefixes: real callers, so the engine's region lookup does real work.
MOBILE_PREFIXES = ("130", "131", "132", "133", "134", "135", "136", "137", "138", "139",
                   "150", "151", "152", "153", "155", "156", "157", "158", "159", "180",
                   "181", "182", "183", "185", "186", "187", "188", "189")
DEAD_CHANNEL = b"511 Command Not Permitted on a dead channel or intercept routine\n"


def raise_nofile() -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ------------------------------------------------------------------------------ AGI text


def parse_agi_args(line: str) -> list[str]:
    """Split an AGI command line as res_agi's ``parse_args`` does: blanks separate words,
    double quotes group them (and may make an empty word), a backslash escapes the next
    character. The inverse of :func:`acd.protocol.agi.quote`."""
    words: list[str] = []
    cur: list[str] = []
    quoted = escaped = started = False
    for ch in line:
        if escaped:
            cur.append(ch)
            escaped = False
            started = True
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
            started = True
        elif ch in " \t" and not quoted:
            if started:
                words.append("".join(cur))
                cur, started = [], False
        else:
            cur.append(ch)
            started = True
    if started:
        words.append("".join(cur))
    return words


def agi_environment(pairs: Iterable[tuple[str, str]]) -> bytes:
    """The environment block Asterisk sends first: ``agi_key: value`` lines, blank line."""
    return ("".join(f"{k}: {v}\n" for k, v in pairs) + "\n").encode("utf-8")


# ------------------------------------------------------------------------------ AMI text


def ami_block(pairs: Iterable[tuple[str, str]]) -> bytes:
    """One AMI message: ``Key: Value`` lines (CRLF), ended by an empty line."""
    return ("".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n").encode("utf-8")


@dataclass(slots=True)
class Channel:
    """What Asterisk's channel snapshot says of one channel (the headers of its events)."""

    name: str
    uniqueid: str
    linkedid: str
    cid_num: str
    cid_name: str
    context: str
    exten: str
    state: str = "Ring"
    code: str = "4"
    created: float = field(default_factory=time.monotonic)

    def snapshot(self, prefix: str = "") -> list[tuple[str, str]]:
        """The channel's snapshot headers, as every channel event carries them."""
        return [
            (f"{prefix}Channel", self.name), (f"{prefix}ChannelState", self.code),
            (f"{prefix}ChannelStateDesc", self.state),
            (f"{prefix}CallerIDNum", self.cid_num or "<unknown>"),
            (f"{prefix}CallerIDName", self.cid_name or "<unknown>"),
            (f"{prefix}ConnectedLineNum", "<unknown>"),
            (f"{prefix}ConnectedLineName", "<unknown>"),
            (f"{prefix}Language", "en"), (f"{prefix}AccountCode", ""),
            (f"{prefix}Context", self.context), (f"{prefix}Exten", self.exten),
            (f"{prefix}Priority", "1"), (f"{prefix}Uniqueid", self.uniqueid),
            (f"{prefix}Linkedid", self.linkedid),
        ]

    def up(self) -> None:
        """The channel was answered."""
        self.state, self.code = "Up", "6"


def ami_event(name: str, privilege: str, pairs: Iterable[tuple[str, str]]) -> bytes:
    """An unsolicited event as Asterisk writes it with ``timestampevents = yes``."""
    return ami_block([("Event", name), ("Privilege", privilege),
                      ("Timestamp", f"{time.time():.6f}"), *pairs])


# --------------------------------------------------------------------------- statistics


class Phase(enum.IntEnum):
    """Where one simulated caller is (counted live in :attr:`LoadGen.phases`)."""

    CONNECTING = 0
    SETUP = 1  # connected, the engine has not put it on hold yet
    WAITING = 2  # on hold in the queue (SET MUSIC seen), no Dial yet
    RINGING = 3  # EXEC Dial is running, the agent's phone rings
    TALKING = 4
    HANGING_UP = 5  # the caller gave up: HANGUP sent, waiting for the engine to close
    AFTER_CALL = 6  # Dial returned; the engine finishes the session
    ENDED = 7


@dataclass
class Stats:
    """Counters and latency samples of one worker (reset on request)."""

    counts: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        """Record one latency sample."""
        self.samples.setdefault(name, []).append(value)


# ----------------------------------------------------------------------------- the phones


@dataclass(slots=True)
class Agent:
    """One agent's softphone on a simulated Asterisk."""

    agent_id: str
    endpoint: str
    server: SimServer
    state: str = "UNAVAILABLE"  # Asterisk device state; starts unregistered
    caller: Caller | None = None
    channel: Channel | None = None
    #: When the phone last hung up (its Dial result sent): the start of agent-free→Dial.
    freed_at: float | None = None
    chan_seq: int = 0

    @property
    def device(self) -> str:
        return f"PJSIP/{self.endpoint}"


# ------------------------------------------------------------------------ the AMI server


class AMISession(asyncio.Protocol):
    """One engine connection to a simulated Asterisk's AMI."""

    def __init__(self, server: SimServer) -> None:
        self.server = server
        # The engine's actions are message blocks like any other: the client-side framer
        # reads them once it has seen a banner, so give it ours.
        self.conn = AMIConnection()
        self.conn.receive_data(BANNER)
        self.conn.next_event()
        self.transport: asyncio.Transport | None = None
        self.logged_in = False
        self.events = False
        self.stuck_since: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(BANNER)
        self.server.sessions.add(self)
        self.server.gen.stats.counts["ami_connections"] += 1

    def data_received(self, data: bytes) -> None:
        try:
            self.conn.receive_data(data)
            while True:
                msg = self.conn.next_event()
                if isinstance(msg, NeedData) or not isinstance(msg, AMIMessage):
                    return
                self.server.action(self, msg)
        except AMIProtocolError:
            self.server.gen.stats.counts["ami_protocol_errors"] += 1
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.sessions.discard(self)

    def write(self, data: bytes) -> None:
        """Write to the engine unless the connection is closing."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        """Close this AMI connection (Asterisk side)."""
        if self.transport is not None:
            self.transport.close()


class SimServer:
    """One simulated Asterisk: its AMI server, its agents' phones, its live channels."""

    def __init__(self, gen: LoadGen, name: str, username: str, secret: str) -> None:
        self.gen = gen
        self.name = name
        self.username = username
        self.secret = secret
        self.agents: dict[str, Agent] = {}  # by device, upper case
        self.sessions: set[AMISession] = set()
        self.channels: dict[str, Channel] = {}
        self.started = time.localtime()
        self.epoch = int(time.time())
        self.seq = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self.device_state_lists = 0

    async def start(self) -> int:
        """Listen for the engine's AMI connections on a free loopback port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: AMISession(self), "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        """Close the AMI sessions and stop listening."""
        for s in list(self.sessions):
            s.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def next_uniqueid(self) -> str:
        """The next channel Uniqueid of this Asterisk (``<epoch>.<n>``)."""
        self.seq += 1
        return f"{self.epoch}.{self.seq}"

    # -- events --------------------------------------------------------------------

    def emit(self, *blocks: bytes) -> None:
        """Unsolicited events to every logged-in AMI session that asked for events."""
        data = b"".join(blocks)
        for s in self.sessions:
            if s.logged_in and s.events:
                s.write(data)
        self.gen.stats.counts["ami_events"] += len(blocks)

    def full_events(self) -> bool:
        """Whether the whole filtered event stream is pushed (not only the minimal one)."""
        return self.gen.events_profile == "filtered"

    def device_state(self, agent: Agent, state: str) -> None:
        """The phone's device state changed: a ``DeviceStateChange`` event."""
        agent.state = state
        self.emit(ami_event("DeviceStateChange", "call,all",
                            [("Device", agent.device), ("State", state)]))

    def check_stuck(self, now: float) -> None:
        """Asterisk's ``writetimeout``: an engine that has not read its AMI socket for
        a second (our writes pile up) is disconnected."""
        for s in list(self.sessions):
            pending = s.transport.get_write_buffer_size() if s.transport else 0
            if pending == 0:
                s.stuck_since = None
            elif s.stuck_since is None:
                s.stuck_since = now
            elif now - s.stuck_since > AMI_WRITE_TIMEOUT:
                self.gen.stats.counts["ami_kicked"] += 1
                if s.transport is not None:
                    s.transport.abort()

    # -- actions -------------------------------------------------------------------

    def action(self, session: AMISession, msg: AMIMessage) -> None:
        """Answer one AMI action of the engine as Asterisk 22 does."""
        name = (msg.get("Action") or "").lower()
        aid = msg.get("ActionID") or ""
        head = [("ActionID", aid)] if aid else []
        self.gen.stats.counts[f"ami_action_{name}"] += 1
        if name == "login":
            if msg.get("Username") == self.username and msg.get("Secret") == self.secret:
                session.logged_in = True
                session.events = (msg.get("Events") or "on").lower() != "off"
                session.write(ami_block([("Response", "Success"), *head,
                                         ("Message", "Authentication accepted")])
                              + ami_block([("Event", "FullyBooted"),
                                           ("Privilege", "system,all"),
                                           ("Uptime", "700"), ("LastReload", "700"),
                                           ("Status", "Fully Booted")]))
            else:
                self.gen.stats.counts["ami_login_failed"] += 1
                session.write(ami_block([("Response", "Error"), *head,
                                         ("Message", "Authentication failed")]))
                session.close()
            return
        if not session.logged_in:
            session.write(ami_block([("Response", "Error"), *head,
                                     ("Message", "Permission denied")]))
            return
        if name == "ping":
            session.write(ami_block([("Response", "Success"), *head, ("Ping", "Pong"),
                                     ("Timestamp", f"{time.time():.6f}")]))
        elif name == "events":
            session.events = (msg.get("EventMask") or "on").lower() != "off"
            session.write(ami_block([("Response", "Success"), *head,
                                     ("Events", "On" if session.events else "Off")]))
        elif name == "devicestatelist":
            self.device_state_lists += 1
            items = [ami_block([("Event", "DeviceStateChange"), *head,
                                ("Device", a.device), ("State", a.state)])
                     for a in self.agents.values()]
            session.write(self._list(head, "Device State Changes will follow", items,
                                     "DeviceStateListComplete"))
        elif name == "coreshowchannels":
            now = time.monotonic()
            items = [ami_block([("Event", "CoreShowChannel"), *head, *ch.snapshot(),
                                ("Application", "AGI" if ch.name.startswith("PJSIP/carrier")
                                 else "AppDial"),
                                ("ApplicationData", ""), ("Duration",
                                                          _hms(now - ch.created)),
                                ("BridgeId", "")])
                     for ch in self.channels.values()]
            session.write(self._list(head, "Channels will follow", items,
                                     "CoreShowChannelsComplete"))
        elif name == "corestatus":
            date = time.strftime("%Y-%m-%d", self.started)
            clock = time.strftime("%H:%M:%S", self.started)
            session.write(ami_block([("Response", "Success"), *head,
                                     ("CoreStartupDate", date), ("CoreStartupTime", clock),
                                     ("CoreReloadDate", date), ("CoreReloadTime", clock),
                                     ("CoreCurrentCalls", str(len(self.channels)))]))
        elif name == "getvar":
            variable = msg.get("Variable") or ""
            value = ""
            if variable.upper().startswith("DEVICE_STATE(") and variable.endswith(")"):
                agent = self.agents.get(variable[13:-1].upper())
                value = agent.state if agent is not None else "INVALID"
            session.write(ami_block([("Response", "Success"), *head,
                                     ("Variable", variable), ("Value", value)]))
        elif name == "logoff":
            session.write(ami_block([("Response", "Goodbye"), *head,
                                     ("Message", "Thanks for all the fish.")]))
            session.close()
        else:
            session.write(ami_block([
                ("Response", "Error"), *head,
                ("Message", f"Invalid/unknown command: {msg.get('Action')}. Use Action: "
                            "ListCommands to show available commands.")]))

    @staticmethod
    def _list(head: list[tuple[str, str]], message: str, items: list[bytes],
              complete: str) -> bytes:
        """A list action's reply: the response, the items, the ``EventList: Complete`` event."""
        return (ami_block([("Response", "Success"), *head, ("EventList", "start"),
                           ("Message", message)])
                + b"".join(items)
                + ami_block([("Event", complete), *head, ("EventList", "Complete"),
                             ("ListItems", str(len(items)))]))


def _hms(seconds: float) -> str:
    """A duration as Asterisk prints it (``HH:MM:SS``)."""
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


# ------------------------------------------------------------------------------ callers


class Caller(asyncio.Protocol):
    """One caller's channel running ``AGI(agi://engine/inbound,...)``: its FastAGI
    connection, answered as res_agi answers, and what happens to the call."""

    def __init__(self, gen: LoadGen, server: SimServer, did: str,
                 patience: float | None) -> None:
        self.gen = gen
        self.server = server
        self.patience = patience
        self.phase = Phase.CONNECTING
        gen.phases[Phase.CONNECTING] += 1
        uniqueid = server.next_uniqueid()
        number = gen.caller_number()
        self.channel = Channel(f"PJSIP/carrier-{server.seq:08x}", uniqueid, uniqueid,
                               number, "", "hotline-acd", "s")
        server.channels[self.channel.name] = self.channel
        self.t_start = time.monotonic()
        self.t_queued: float | None = None
        self.t_hangup: float | None = None
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.vars: dict[str, str] = {}
        #: The caller-channel variable the dialplan stamps when the agent answers.
        self.answer_var = ""
        self.agent: Agent | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.dead = False  # the channel hung up (HANGUP sent)
        self.answered = False  # the engine sent ANSWER
        self.call_done = False  # a conversation happened and ended
        entry = f"{time.time():.3f}"
        self.env = agi_environment([
            ("agi_network", "yes"), ("agi_network_script", "inbound"),
            ("agi_request", f"agi://{gen.target[0]}:{gen.target[1]}/inbound"),
            ("agi_channel", self.channel.name), ("agi_language", "en"),
            ("agi_type", "PJSIP"), ("agi_uniqueid", uniqueid),
            ("agi_version", ASTERISK_VERSION),
            ("agi_callerid", number or "unknown"), ("agi_calleridname", "unknown"),
            ("agi_callingpres", "0"), ("agi_callingani2", "0"), ("agi_callington", "0"),
            ("agi_callingtns", "0"), ("agi_dnid", did), ("agi_rdnis", "unknown"),
            ("agi_context", "hotline-acd"), ("agi_extension", "s"), ("agi_priority", "12"),
            ("agi_enhanced", "0.0"), ("agi_accountcode", ""),
            ("agi_threadid", str(140000000000000 + server.seq)),
            ("agi_arg_1", entry), ("agi_arg_2", uniqueid), ("agi_arg_3", did),
            ("agi_arg_4", server.name),
        ])
        if server.full_events():
            server.emit(ami_event("Newchannel", "call,all", self.channel.snapshot()))

    # -- phases --------------------------------------------------------------------

    def _to(self, phase: Phase) -> None:
        self.gen.phases[self.phase] -= 1
        self.phase = phase
        self.gen.phases[phase] += 1

    def _end(self, outcome: str) -> None:
        """The caller is gone: count the outcome, release its channel (``Hangup`` event)."""
        if self.phase is Phase.ENDED:
            return
        self._to(Phase.ENDED)
        self.gen.stats.counts[outcome] += 1
        if self.timer is not None and self.agent is None:
            self.timer.cancel()
        self.server.channels.pop(self.channel.name, None)
        if self.server.full_events():
            self.server.emit(ami_event("Hangup", "call,all",
                                       [*self.channel.snapshot(), ("Cause", "16"),
                                        ("Cause-txt", "Normal Clearing")]))
        self.gen.callers.discard(self)

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.gen.stats.add("connect", time.monotonic() - self.t_start)
        self._to(Phase.SETUP)
        transport.write(self.env)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            idx = self.buf.find(b"\n")
            if idx < 0:
                return
            line = self.buf[:idx].decode("utf-8", errors="replace").rstrip("\r")
            del self.buf[:idx + 1]
            self._command(line)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        phase = self.phase
        if phase is Phase.SETUP:
            self._end("setup_dropped" if self.answered else "refused")
        elif phase is Phase.WAITING:
            self._end("released")  # closed while waiting: back to the dialplan
        elif phase in (Phase.RINGING, Phase.TALKING):
            # the session dropped during the Dial: the call goes on inside Asterisk
            self.gen.stats.counts["dropped_during_dial"] += 1
        elif phase is Phase.HANGING_UP:
            if self.t_hangup is not None:
                self.gen.stats.add("hangup_close", time.monotonic() - self.t_hangup)
            self._end("abandoned")
        elif phase is Phase.AFTER_CALL:
            self._end("completed" if self.call_done else "ended_other")

    # -- commands --------------------------------------------------------------------

    def _reply(self, data: bytes) -> None:
        """Write a reply unless the connection is closed."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _expand(self, expression: str) -> str:
        """One ``${…}`` of GET FULL VARIABLE: a variable, or the clock (STRFTIME)."""
        if expression.startswith("STRFTIME("):
            return f"{time.time():.3f}"
        return self.vars.get(expression, "")

    def _command(self, line: str) -> None:
        """Answer one AGI command as res_agi does (``511`` on a dead channel, except
        ``GET VARIABLE``)."""
        words = parse_agi_args(line)
        verb = " ".join(w.upper() for w in words[:2])
        counts = self.gen.stats.counts
        if verb == "GET FULL" and len(words) > 3:
            # allowed on a dead channel; ${NAME}s expanded, unset ones empty
            full = re.sub(r"\$\{([^}]*)\}", lambda m: self._expand(m.group(1)), words[3])
            self._reply(f"200 result=1 ({full})\n".encode())
            return
        if verb == "GET VARIABLE":
            # allowed on a dead channel
            name = words[2] if len(words) > 2 else ""
            value = self.vars.get(name)
            if value is None:
                self._reply(b"200 result=0\n")
            else:
                self._reply(f"200 result=1 ({value})\n".encode())
            return
        if self.dead:
            counts["agi_511"] += 1
            self._reply(DEAD_CHANNEL)
            return
        head = words[0].upper() if words else ""
        if head == "ANSWER":
            self.answered = True
            self.channel.up()
            self.gen.stats.add("pickup", time.monotonic() - self.t_start)
            self._reply(b"200 result=0\n")
        elif verb == "SET VARIABLE" and len(words) >= 4:
            self.vars[words[2]] = words[3]
            self._reply(b"200 result=1\n")
        elif verb == "SET MUSIC":
            self._reply(b"200 result=0\n")
            if self.phase is Phase.SETUP:
                now = time.monotonic()
                self.t_queued = now
                self.gen.stats.add("setup", now - self.t_start)
                self._to(Phase.WAITING)
                counts["queued"] += 1
                if self.patience is not None:
                    self.timer = asyncio.get_running_loop().call_later(
                        self.patience, self._give_up)
        elif head == "EXEC" and len(words) >= 2 and words[1].lower() == "dial":
            self._dial(words[2] if len(words) > 2 else "")
        else:
            counts["agi_unexpected"] += 1
            self._reply(b"510 Invalid or unknown command\n")

    def _give_up(self) -> None:
        """Patience is over: the caller hangs up; res_agi sends HANGUP out of band."""
        self.timer = None
        if self.phase is not Phase.WAITING:
            return
        self.dead = True
        self.t_hangup = time.monotonic()
        self._to(Phase.HANGING_UP)
        self._reply(b"HANGUP\n")
        # the engine should close at once; if it does not, Asterisk would wait forever
        self.timer = asyncio.get_running_loop().call_later(
            self.gen.hangup_close_timeout, self._close_unanswered_hangup)

    def _close_unanswered_hangup(self) -> None:
        """The engine never closed after HANGUP: close (counted as a failure)."""
        self.gen.stats.counts["hangup_not_closed"] += 1
        if self.transport is not None:
            self.transport.close()

    # -- the Dial --------------------------------------------------------------------

    def _dial(self, args: str) -> None:
        """``EXEC Dial PJSIP/<endpoint>,...``: measure agent free → Dial, then ring the
        agent's phone (or report a dial no correct engine would make)."""
        now = time.monotonic()
        gen = self.gen
        counts = gen.stats.counts
        counts["dials"] += 1
        if self.phase is Phase.WAITING and self.t_queued is not None:
            gen.stats.add("queue_wait", now - self.t_queued)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        target = args.split(",", 1)[0]
        stamp = re.search(r"U\(acd-answered\^(\d+)\)", args)
        self.answer_var = f"ACD_ANSWERED_{stamp.group(1)}" if stamp else ""
        agent = self.server.agents.get(target.upper())
        if agent is not None and agent.freed_at is not None:
            gen.stats.add("free_to_dial", now - agent.freed_at)
            agent.freed_at = None
        if agent is None or agent.state != "NOT_INUSE" or agent.caller is not None:
            # never rung by a correct engine: a phone that is busy, ringing, unregistered
            counts["double_offers" if agent is not None and agent.state != "UNAVAILABLE"
                   else "bad_dials"] += 1
            status = "CHANUNAVAIL" if agent is None or agent.state == "UNAVAILABLE" \
                else "BUSY"
            self.vars["DIALSTATUS"] = status
            self.vars["ANSWEREDTIME"] = ""
            asyncio.get_running_loop().call_later(0.05, self._reply, b"200 result=0\n")
            return
        was_waiting = self.phase is Phase.WAITING
        self._to(Phase.RINGING)
        if was_waiting:
            gen.left_queue(self)
        agent.caller = self
        agent.chan_seq += 1
        agent.channel = Channel(f"{agent.device}-{agent.chan_seq:08x}",
                                self.server.next_uniqueid(), self.channel.uniqueid,
                                agent.endpoint, "", "acd-agents", "s")
        self.agent = agent
        server = self.server
        if server.full_events():
            server.emit(ami_event("Newchannel", "call,all", agent.channel.snapshot()),
                        ami_event("DialBegin", "call,all",
                                  [*self.channel.snapshot(),
                                   *agent.channel.snapshot("Dest"),
                                   ("DialString", agent.endpoint)]))
        server.device_state(agent, "RINGING")
        server.channels[agent.channel.name] = agent.channel
        self.timer = asyncio.get_running_loop().call_later(gen.ring_time(), self._answer)

    def _answer(self) -> None:
        """The agent picks up: ``DialEnd ANSWER`` for the caller's channel, phone INUSE."""
        agent = self.agent
        assert agent is not None and agent.channel is not None
        self._to(Phase.TALKING)
        agent.channel.up()
        server = self.server
        server.emit(ami_event("DialEnd", "call,all",
                              [*self.channel.snapshot(), *agent.channel.snapshot("Dest"),
                               ("DialStatus", "ANSWER")]))
        server.device_state(agent, "INUSE")
        if server.full_events():
            server.emit(*(ami_event("BridgeEnter", "call,all",
                                    [("BridgeUniqueid", f"br-{self.channel.uniqueid}"),
                                     ("BridgeType", "basic"), *ch.snapshot()])
                          for ch in (self.channel, agent.channel)))
        self.gen.stats.counts["answered_by_agent"] += 1
        talk = self.gen.talk_time()
        if self.answer_var:  # the dialplan's [acd-answered] on the caller's channel
            self.vars[self.answer_var] = f"{time.time():.3f}"
        self.vars["ANSWEREDTIME"] = str(int(talk))
        self.vars["DIALEDTIME"] = str(int(talk + 1))
        self.timer = asyncio.get_running_loop().call_later(talk, self._hang_up_call)

    def _hang_up_call(self) -> None:
        """The conversation ends: the phone hangs up and is free; Dial returns -1 and
        the caller's channel is hung up (app_dial without ``g``)."""
        self.timer = None
        agent = self.agent
        assert agent is not None and agent.channel is not None
        server = self.server
        if server.full_events():
            server.emit(*(ami_event("BridgeLeave", "call,all",
                                    [("BridgeUniqueid", f"br-{self.channel.uniqueid}"),
                                     ("BridgeType", "basic"), *ch.snapshot()])
                          for ch in (self.channel, agent.channel)),
                        ami_event("Hangup", "call,all",
                                  [*agent.channel.snapshot(), ("Cause", "16"),
                                   ("Cause-txt", "Normal Clearing")]))
        server.channels.pop(agent.channel.name, None)
        agent.channel = None
        agent.caller = None
        self.agent = None
        self.vars["DIALSTATUS"] = "ANSWER"
        self.call_done = True
        self.dead = True
        server.device_state(agent, "NOT_INUSE" if not self.gen.unregistering
                            else "UNAVAILABLE")
        self._reply(b"200 result=-1\nHANGUP\n")
        agent.freed_at = time.monotonic()
        self.gen.stats.counts["talks_ended"] += 1
        if self.transport is None:  # the session had dropped; Asterisk hung up alone
            self._end("completed_without_session")
        else:
            self._to(Phase.AFTER_CALL)


# ------------------------------------------------------------------------ the generator


class LoadGen:
    """The simulated Asterisk servers of one process, their callers and their phones."""

    def __init__(self, seed: int = 1) -> None:
        self.rnd = random.Random(seed)
        self.servers: dict[str, SimServer] = {}
        self.stats = Stats()
        self.phases: Counter[Phase] = Counter()
        self.callers: set[Caller] = set()
        self.target: tuple[str, int] = ("127.0.0.1", 4573)
        self.local_addrs: list[str] = ["127.0.0.1"]
        self._addr_i = 0
        self.dids: list[tuple[str, float]] = [("4008001234", 1.0)]
        self.ring_mean = 0.5
        self.talk_mean = 30.0
        self.talk_dist = "exp"
        self.events_profile = "filtered"
        self.hangup_close_timeout = 10.0
        self.unknown_callers = 0.05
        self.replace = False
        self.replace_patience: float | None = None
        self.unregistering = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.arrivals_running = 0
        self._server_cycle = 0
        self._watch: asyncio.Task[None] | None = None
        self._lag: asyncio.Task[None] | None = None

    # -- configuration -------------------------------------------------------------

    async def setup(self, spec: dict[str, Any]) -> dict[str, int]:
        """Start the AMI servers; ``spec`` is the worker's ``setup`` command."""
        self.rnd.seed(spec.get("seed", 1))
        for srv in spec["servers"]:
            server = SimServer(self, srv["name"], srv.get("username", "acd"), srv["secret"])
            self.servers[server.name] = server
            await server.start()
        for a in spec.get("agents", []):
            server = self.servers[a["server"]]
            agent = Agent(a["id"], a["endpoint"], server)
            server.agents[agent.device.upper()] = agent
        if spec.get("dids"):
            self.dids = [(d, float(w)) for d, w in spec["dids"]]
        self.ring_mean = float(spec.get("ring", self.ring_mean))
        self.talk_mean = float(spec.get("talk", self.talk_mean))
        self.talk_dist = spec.get("talk_dist", self.talk_dist)
        self.events_profile = spec.get("events", self.events_profile)
        self.local_addrs = list(spec.get("local_addrs") or self.local_addrs)
        self.hangup_close_timeout = float(spec.get("hangup_close_timeout", 10.0))
        loop = asyncio.get_running_loop()
        self._watch = loop.create_task(self._watchdog())
        self._lag = loop.create_task(self._lag_sampler())
        return {name: s.port for name, s in self.servers.items()}

    async def _lag_sampler(self, every: float = 0.01) -> None:
        """This process's own event-loop lag (a sleep of 10 ms that took longer): if it
        is large, the generator — not the engine — would be what a latency shows."""
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(every)
            self.stats.add("generator_lag", loop.time() - t - every)

    async def _watchdog(self) -> None:
        """Apply Asterisk's AMI ``writetimeout`` to every session, four times a second."""
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for server in self.servers.values():
                server.check_stuck(now)

    # -- randomness ----------------------------------------------------------------

    def caller_number(self) -> str:
        """A caller number: a Chinese mobile, or none (withheld) now and then."""
        if self.rnd.random() < self.unknown_callers:
            return ""
        return self.rnd.choice(MOBILE_PREFIXES) + f"{self.rnd.randrange(10**8):08d}"

    def did(self) -> str:
        """The dialled number, by the configured shares of the queues."""
        x = self.rnd.random() * sum(w for _, w in self.dids)
        for d, w in self.dids:
            x -= w
            if x <= 0:
                return d
        return self.dids[-1][0]

    def ring_time(self) -> float:
        """How long the phone rings before the agent answers."""
        return self.rnd.uniform(0.0, 2 * self.ring_mean) if self.ring_mean > 0 else 0.0

    def talk_time(self) -> float:
        """One conversation's length (exponential, capped at 10× the mean, or fixed)."""
        if self.talk_dist == "fixed":
            return self.talk_mean
        return min(self.rnd.expovariate(1 / self.talk_mean), 10 * self.talk_mean)

    # -- callers -------------------------------------------------------------------

    def launch(self, server: SimServer | None = None,
               patience: float | None = None) -> None:
        """One new caller on ``server`` (round robin when None)."""
        if server is None:
            names = list(self.servers)
            server = self.servers[names[self._server_cycle % len(names)]]
            self._server_cycle += 1
        caller = Caller(self, server, self.did(), patience)
        self.callers.add(caller)
        self.stats.counts["arrivals"] += 1
        self._spawn(self._connect(caller))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, caller: Caller) -> None:
        """Open the caller's FastAGI connection as res_agi does (given up after 2 s)."""
        loop = asyncio.get_running_loop()
        addr = self.local_addrs[self._addr_i % len(self.local_addrs)]
        self._addr_i += 1
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((addr, 0))
            async with asyncio.timeout(AGI_CONNECT_TIMEOUT):
                await loop.sock_connect(sock, self.target)
            await loop.create_connection(lambda: caller, sock=sock)
        except TimeoutError:
            sock.close()
            caller._end("connect_timeout")
        except OSError as exc:
            sock.close()
            self.stats.counts[f"connect_error_{exc.errno}"] += 1
            caller._end("connect_failed")

    def left_queue(self, caller: Caller) -> None:
        """A waiting caller was dialled: in replace mode a new one takes its place."""
        if self.replace:
            self.launch(caller.server, self.replace_patience)

    def arrive(self, count: int | None, rate: float, duration: float | None,
               process: str, patience: float | None, patience_dist: str) -> None:
        """Start an arrival process in the background (open loop: arrival *i* leaves at
        its planned time whatever happened to the others)."""
        self._spawn(self._arrivals(count, rate, duration, process, patience,
                                   patience_dist))

    async def _arrivals(self, count: int | None, rate: float, duration: float | None,
                        process: str, patience: float | None, patience_dist: str) -> None:
        """The arrival loop behind :meth:`arrive`."""
        loop = asyncio.get_running_loop()
        self.arrivals_running += 1
        try:
            start = loop.time()
            at = start
            n = 0
            while (count is None or n < count) and (duration is None
                                                    or at - start < duration):
                delay = at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                p: float | None = None
                if patience is not None:
                    p = (self.rnd.expovariate(1 / patience) if patience_dist == "exp"
                         else patience)
                self.launch(patience=p)
                n += 1
                at += (self.rnd.expovariate(rate) if process == "poisson" else 1 / rate) \
                    if math.isfinite(rate) else 0.0
        finally:
            self.arrivals_running -= 1

    # -- phones --------------------------------------------------------------------

    def register(self, count: int, spread: float) -> int:
        """Register ``count`` more phones (UNAVAILABLE → NOT_INUSE), spread over
        ``spread`` seconds, as agents sign their softphones in."""
        todo = [a for s in self.servers.values() for a in s.agents.values()
                if a.state == "UNAVAILABLE" and a.caller is None][:count]
        loop = asyncio.get_running_loop()
        self.unregistering = False
        for i, agent in enumerate(todo):
            delay = spread * i / max(1, len(todo))
            loop.call_later(delay, self._register_one, agent)
        return len(todo)

    def _register_one(self, agent: Agent) -> None:
        """One phone registers: ``DeviceStateChange NOT_INUSE``."""
        if agent.state == "UNAVAILABLE" and agent.caller is None:
            agent.server.device_state(agent, "NOT_INUSE")

    def unregister_all(self) -> None:
        """Every free phone unregisters; busy ones do when their call ends."""
        self.unregistering = True
        for s in self.servers.values():
            for a in s.agents.values():
                if a.caller is None and a.state == "NOT_INUSE":
                    s.device_state(a, "UNAVAILABLE")
                a.freed_at = None

    # -- reporting and shutdown ------------------------------------------------------

    def report(self, reset: bool, with_samples: bool) -> dict[str, Any]:
        """Counters, live phases and (optionally) the latency samples, then reset them."""
        if reset:
            # The generator runs with its garbage collector off (a full collection over
            # tens of thousands of callers would pause it mid-measurement): cycles are
            # collected here, between measurement windows.
            gc.collect()
        out: dict[str, Any] = {
            "counts": dict(self.stats.counts),
            "phases": {p.name.lower(): self.phases[p] for p in Phase if p is not Phase.ENDED},
            "arrivals_running": self.arrivals_running,
            "ami_sessions": {n: sum(1 for x in s.sessions if x.logged_in)
                             for n, s in self.servers.items()},
            "device_state_lists": {n: s.device_state_lists for n, s in self.servers.items()},
            "registered": sum(1 for s in self.servers.values() for a in s.agents.values()
                              if a.state != "UNAVAILABLE"),
        }
        if with_samples:
            out["samples"] = {k: [round(v, 7) for v in vals]
                              for k, vals in self.stats.samples.items()}
        if reset:
            self.stats.samples = {}
        return out

    async def close(self) -> None:
        """Close every caller and AMI server."""
        for t in (self._watch, self._lag):
            if t is not None:
                t.cancel()
        for task in list(self._tasks):
            task.cancel()
        for caller in list(self.callers):
            if caller.timer is not None:
                caller.timer.cancel()
            if caller.transport is not None:
                caller.transport.abort()
        for server in self.servers.values():
            await server.close()
        await asyncio.sleep(0)


# ---------------------------------------------------------------------------- the worker


async def _handle(gen: LoadGen, cmd: dict[str, Any]) -> dict[str, Any]:
    """Carry out one command of the coordinator; its reply."""
    op = cmd.get("op")
    if op == "setup":
        return {"ami": await gen.setup(cmd)}
    if op == "target":
        gen.target = (cmd["host"], int(cmd["port"]))
        return {"ok": True}
    if op == "arrive":
        gen.arrive(cmd.get("count"), float(cmd.get("rate", math.inf)), cmd.get("duration"),
                   cmd.get("process", "poisson"), cmd.get("patience"),
                   cmd.get("patience_dist", "fixed"))
        return {"ok": True}
    if op == "replace":
        gen.replace = bool(cmd["on"])
        gen.replace_patience = cmd.get("patience")
        return {"ok": True}
    if op == "register":
        return {"registering": gen.register(int(cmd["count"]), float(cmd.get("spread", 0)))}
    if op == "unregister_all":
        gen.unregister_all()
        return {"ok": True}
    if op == "hangup_waiting":
        # every waiting caller gives up now (between phases of a benchmark)
        for caller in list(gen.callers):
            if caller.phase is Phase.WAITING:
                caller._give_up()
        return {"ok": True}
    if op == "stats":
        return gen.report(bool(cmd.get("reset")), bool(cmd.get("samples")))
    raise ValueError(f"unknown op {op!r}")


async def worker_main() -> None:
    """Serve JSON-line commands on stdin, one JSON-line reply each on stdout."""
    raise_nofile()
    gc.disable()  # see LoadGen.report: collected between measurement windows
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    gen = LoadGen()

    def out(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = json.loads(line)
            if cmd.get("op") == "close":
                out({"ok": True})
                break
            try:
                out(await _handle(gen, cmd))
            except Exception as exc:  # report, keep serving
                out({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        await gen.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(worker_main())
