"""One caller's session (``acd.runtime.call_flow``) end to end in the engine, without
Asterisk: the FastAGI fake plays Asterisk's side of the call against a real node (the
product's composition root: engine, FastAGI server, no AMI) and answers each command as
Asterisk 22 does (``200 result=…``)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from acd.config import Config, parse_config
from acd.domain import AgentStatus, CallState
from app.node import Node
from tests.unit.test_fastagi_server import FakeAsterisk

CONFIG = """
fastagi: {host: 127.0.0.1, port: 0}
queues:
  - {id: consult, skills: {consult: 1}, wrap_up: 0, moh_class: calm}
  - {id: repair, skills: {repair: 1}, wrap_up: 0}
  - id: night
    skills: {consult: 1}
    hours: {daily: "00:00-00:01"}
    closed: {sound: custom/closed-zh}
agents:
  - {id: a1, endpoint: agent1, skills: {consult: 1, repair: 1}, contact: "sip:a@h"}
dids: {"4008001234": consult, "4008009999": night}
ivr: {prompt: custom/menu, options: {"2": repair}}
segments:
  - {id: vip, numbers: ["13900139000"], priority: 50}
"""


def env(*, callerid: str = "13800138000", did: str = "", call_id: str = "1700000000.1",
        entry: float | None = None) -> bytes:
    """The agi_* environment the shipped dialplan sends (``inbound,<entry>,<id>,<DID>,
    <server>``)."""
    entry = time.time() if entry is None else entry
    lines = {
        "agi_network": "yes", "agi_network_script": "inbound",
        "agi_request": "agi://127.0.0.1/inbound", "agi_channel": "PJSIP/carrier-00000001",
        "agi_uniqueid": call_id, "agi_callerid": callerid, "agi_extension": did or "s",
        "agi_arg_1": f"{entry:.3f}", "agi_arg_2": call_id, "agi_arg_3": did,
        "agi_arg_4": "main",
    }
    return "".join(f"{k}: {v}\n" for k, v in lines.items()).encode() + b"\n"


class Caller(FakeAsterisk):
    """Asterisk's side of one call: answers what the session asks, as Asterisk would."""

    variables: dict[str, str]

    async def play(self, *, dial_status: str = "ANSWER", digit: str = "",
                   until: str = 'SET VARIABLE "ACD_RESULT"', within: float = 3.0,
                   answer_last: bool = True) -> list[str]:
        """Answer commands until one starts with ``until`` (not that one unless
        ``answer_last``: an ``EXEC Dial`` left unanswered is a conversation going on);
        return them all."""
        if not hasattr(self, "variables"):
            self.variables = {}
        seen: list[str] = []
        while True:
            cmd = await self.command(within)
            seen.append(cmd)
            if cmd.startswith(until) and not answer_last:
                return seen
            await self.send(self.reply(cmd, dial_status, digit))
            if cmd.startswith(until):
                return seen

    def reply(self, cmd: str, dial_status: str, digit: str) -> bytes:
        words = shlex.split(cmd)
        known = {"DIALSTATUS": dial_status, "ANSWEREDTIME": "3"}
        if cmd.startswith("GET VARIABLE"):
            name = words[2]
            value = known.get(name, self.variables.get(name))
            return (f"200 result=1 ({value})\n" if value is not None
                    else "200 result=0\n").encode()
        if cmd.startswith("GET FULL VARIABLE"):  # ${…}s expanded, unset ones empty
            def expand(m: re.Match[str]) -> str:
                name = m.group(1)
                if name.startswith("STRFTIME("):  # Asterisk's clock
                    return f"{time.time():.3f}"
                return known.get(name, self.variables.get(name, ""))
            value = re.sub(r"\$\{([^}]*)\}", expand, words[3])
            return f"200 result=1 ({value})\n".encode()
        if cmd.startswith("EXEC Dial") and dial_status == "ANSWER":
            # the dialplan's [acd-answered] stamps the answer: a 3 s conversation
            stamp = re.search(r"U\(acd-answered\^(\d+)\)", cmd)
            if stamp:
                self.variables[f"ACD_ANSWERED_{stamp.group(1)}"] = f"{time.time() - 3:.3f}"
        if cmd.startswith("SET VARIABLE"):
            self.variables[words[2]] = words[3]
            return b"200 result=1\n"
        if cmd.startswith("GET DATA"):
            return f"200 result={digit}\n".encode() if digit else b"200 result= (timeout)\n"
        return b"200 result=0\n"


#: 10:40 in Shanghai on a Monday: queue "night" (open 00:00-00:01) is closed.
MORNING = 1_770_000_000.0


@contextlib.asynccontextmanager
async def node(config: Config | None = None, **kwargs: Any) -> AsyncIterator[Node]:
    async with Node(config or parse_config(CONFIG), ami_secrets=None, **kwargs) as n:
        yield n


async def call(n: Node, environment: bytes) -> Caller:
    reader, writer = await asyncio.open_connection("127.0.0.1", n.agi_port)
    caller = Caller(reader, writer)
    await caller.send(environment)
    return caller


async def test_a_call_to_a_did_waits_with_music_and_is_put_through() -> None:
    async with node() as n:
        caller = await call(n, env(did="4008001234"))
        seen = await caller.play()
        assert seen[0] == "ANSWER"
        assert 'SET VARIABLE "ACD_QUEUE" "consult"' in seen  # the DID chose the queue
        assert 'SET MUSIC ON "calm"' in seen  # the queue's hold music
        dial = next(c for c in seen if c.startswith("EXEC Dial"))
        # the queue's music, ringing too; the answer stamped on the caller's channel
        assert re.fullmatch(r'EXEC Dial "PJSIP/agent1,15,m\(calm\)U\(acd-answered\^\d+\)"', dial)
        assert caller.variables["ACD_RESULT"] == "DONE"
        # the talk time is the conversation's (the stamp: 3 s), not the caller's time up
        await n.engine.flushed()
        done = n.engine.core.finished[-1]
        assert done.answered_at is not None and done.ended_at is not None
        assert done.ended_at - done.answered_at == pytest.approx(3, abs=0.5)
        await caller.close()
        await n.engine.flushed()
        figures = n.engine.core.figures.total("consult")
        assert (figures.offered, figures.answered) == (1, 1)


async def test_the_menu_decides_when_nothing_else_does_and_the_key_is_kept() -> None:
    async with node() as n:
        await n.engine.set_agent_status("a1", AgentStatus.LOGGED_OUT)
        caller = await call(n, env(did="", call_id="17.2"))
        seen = await caller.play(digit="2", until="SET MUSIC")
        assert any(c.startswith('GET DATA "custom/menu"') for c in seen)
        assert 'SET VARIABLE "ACD_QUEUE" "repair"' in seen
        await n.engine.flushed()
        await asyncio.sleep(0.05)
        await n.engine.flushed()
        read = n.engine.view.call("17.2", n.engine.clock())
        assert read is not None and (read.queue, read.menu_choice) == ("repair", "2")
        await caller.close()


async def test_a_closed_queue_plays_its_message_and_nobody_is_rung() -> None:
    async with node(clock=lambda: MORNING) as n:
        caller = await call(n, env(did="4008009999", call_id="17.3"))
        seen = await caller.play()
        assert 'STREAM FILE "custom/closed-zh" ""' in seen
        assert not [c for c in seen if c.startswith("EXEC Dial")]
        assert caller.variables["ACD_RESULT"] == "DONE"
        await n.engine.flushed()
        assert n.engine.core.figures.total("night").closed == 1
        assert n.engine.core.figures.total("night").offered == 0
        assert "17.3" not in n.engine.core.calls
        await caller.close()


@pytest.mark.parametrize("raw", ["+86 139-0013-9000", "008613900139000", "１３９００１３９０００"])
async def test_the_caller_number_is_normalised_once_for_segment_and_views(raw: str) -> None:
    async with node() as n:
        await n.engine.set_agent_status("a1", AgentStatus.LOGGED_OUT)
        caller = await call(n, env(did="4008001234", callerid=raw, call_id="17.4"))
        await caller.play(until="SET MUSIC")
        await asyncio.sleep(0.05)
        await n.engine.flushed()
        c = n.engine.core.calls["17.4"]
        assert (c.caller, c.segment) == ("13900139000", "vip")  # the VIP list matched
        assert c.priority == 50
        await caller.close()


async def test_an_engine_that_does_not_accept_leaves_the_call_to_the_dialplan() -> None:
    async with node() as n:
        n.engine.accepting = False  # standby, or stopping
        caller = await call(n, env(did="4008001234"))
        assert await caller.closed_by_server(2.0)
        assert caller.commands == []  # not even answered: ACD_RESULT stays empty
        await caller.close()


async def test_stopping_hands_a_waiting_caller_back_without_counting_an_abandon() -> None:
    n = Node(parse_config(CONFIG), ami_secrets=None)
    await n.__aenter__()
    try:
        await n.engine.set_agent_status("a1", AgentStatus.LOGGED_OUT)
        caller = await call(n, env(did="4008001234", call_id="17.6"))
        await caller.play(until="SET MUSIC")
        await asyncio.sleep(0.05)
        await n.engine.flushed()
        assert n.engine.core.calls["17.6"].state is CallState.WAITING
    finally:
        await n.__aexit__(None, None, None)
    assert await caller.closed_by_server(2.0)
    assert "ACD_RESULT" not in caller.variables  # the dialplan retries the standby
    released = [c for c in n.engine.core.finished if c.call_id == "17.6"]
    assert released and released[0].state is CallState.RELEASED
    assert n.engine.core.figures.total("consult").abandoned == 0
    await caller.close()


ANNOUNCING = """
fastagi: {host: 127.0.0.1, port: 0}
queues:
  - id: consult
    skills: {consult: 1}
    expected_handle_time: 300
    wrap_up: 0
    announce: {first_after: 0, every: 15}
    exits:
      key: "1"
      key_action: {to: voicemail, mailbox: "100@default", sound: custom/leave}
agents:
  - {id: a1, endpoint: agent1, skills: {consult: 1}, contact: "sip:a@h"}
dids: {"4008001234": consult}
"""


class Announced(Caller):
    """Answers STREAM FILE / SAY with the caller pressing ``press`` at the n-th prompt."""

    press: str = ""
    at_prompt: int = -1
    prompts = 0

    def reply(self, cmd: str, dial_status: str, digit: str) -> bytes:
        if cmd.startswith(("STREAM FILE", "SAY ")):
            self.prompts += 1
            if self.prompts == self.at_prompt and self.press:
                return f"200 result={ord(self.press)} endpos=100\n".encode()
            return b"200 result=0 endpos=8000\n"
        return super().reply(cmd, dial_status, digit)


async def call_announced(n: Node, call_id: str) -> Announced:
    reader, writer = await asyncio.open_connection("127.0.0.1", n.agi_port)
    caller = Announced(reader, writer)
    await caller.send(env(did="4008001234", call_id=call_id))
    return caller


async def test_a_waiting_caller_hears_its_place_and_expected_wait() -> None:
    async with node(parse_config(ANNOUNCING)) as n:
        talking = await call_announced(n, "t1")  # a1 takes this one and talks
        await talking.play(until="EXEC Dial", answer_last=False)
        waiting = await call_announced(n, "w1")
        seen = await waiting.play(until='STREAM FILE "queue-thankyou"')
        said = [c for c in seen if c.startswith(("STREAM FILE", "SAY "))]
        # "you are first in line", "the estimated hold time is currently 5 minutes",
        # "press 1 …", "thank you"
        assert said[0] == 'STREAM FILE "queue-youarenext" "#1"'
        assert said[1:4] == ['STREAM FILE "queue-holdtime" "#1"', 'SAY NUMBER 5 "#1"',
                             'STREAM FILE "queue-minutes" "#1"']
        assert 'SAY DIGITS 1 "#1"' in said  # the exit key, said as a digit
        assert said[-1] == 'STREAM FILE "queue-thankyou" "#1"'
        assert seen[seen.index(said[0]) - 1] == "SET MUSIC OFF"
        await talking.close()
        await waiting.close()


async def test_the_callers_key_during_an_announcement_takes_it_out_of_the_line() -> None:
    async with node(parse_config(ANNOUNCING)) as n:
        talking = await call_announced(n, "t1")
        await talking.play(until="EXEC Dial", answer_last=False)
        waiting = await call_announced(n, "w1")
        waiting.press, waiting.at_prompt = "1", 2
        seen = await waiting.play()  # … until ACD_RESULT DONE
        assert 'STREAM FILE "custom/leave" ""' in seen
        assert 'EXEC VoiceMail "100@default,s"' in seen  # the sound greeted: to the tone
        await n.engine.flushed()
        totals = n.engine.core.figures.total("consult")
        assert (totals.exits, totals.abandoned) == (1, 0)
        await talking.close()
        await waiting.close()
