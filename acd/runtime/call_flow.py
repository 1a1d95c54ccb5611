"""One caller's FastAGI session, from arrival to the end of the call (ACD_SPEC §3).

The dialplan runs ``AGI(agi://engine/inbound,<entry time>,<call id>,<DID>,<server>)``.
The session only does I/O: it answers, gathers what the entry plan needs from the caller
(``acd.domain.admission``: the IVR key when the DID or segment does not decide the queue,
an area code when the number tells no province), plays hold music and reports the call
(``CallArrived``, with the caller's number normalised once). The core admits it (or
closes it: ``CloseCall``) in the single writer. Then the session waits with **no command
pending** — so Asterisk's out-of-band ``HANGUP`` reaches it at once if the caller gives
up. When the engine offers an agent it runs ``EXEC Dial`` from here (``m``: the caller
keeps hearing music while the agent's phone rings) and reports ``DIALSTATUS``.

Before closing a session that handled the call it sets ``ACD_RESULT=DONE``. Any other end
(engine stopped, crashed, session dropped) leaves ACD_RESULT empty and the dialplan
retries the engine with the original entry time, then falls back to app_queue.

The session talks to the engine through :class:`CallHost` only (the engine implements
it); it never imports the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

from acd.domain import (
    CallArrived,
    CallerKey,
    CallHungUp,
    CloseCall,
    DialFinished,
    Event,
    ExitCall,
    Offer,
    Settings,
)
from acd.domain.admission import entry_queue, menu_queue
from acd.domain.callbacks import allowed
from acd.domain.ewt import spoken_minutes
from acd.domain.settings import AreaCodePrompt, MenuSettings, QueueSettings
from acd.protocol.agi import quote
from acd.runtime.fastagi import AGIHangupError, AGISession, AGITimeoutError
from acd.runtime.session import Release, SessionItem, SessionQueue, SessionTaken
from routing.numbers import normalise_did, normalise_number
from routing.regions import RegionResolver, RegionResult

log = logging.getLogger("acd.call")


class CallHost(Protocol):
    """What a caller's session needs from the engine."""

    settings: Settings
    regions: RegionResolver
    accepting: bool
    releasing: bool
    clock: Callable[[], float]

    def post(self, event: Event) -> None: ...

    def open_session(self, call_id: str,
                     live: Callable[[], bool] | None = None) -> SessionQueue: ...

    def close_session(self, call_id: str, q: SessionQueue) -> None: ...

    def qualify_call_id(self, raw: str, server: str) -> str: ...

    async def announcement(self, call_id: str) -> tuple[int | None, float | None]:
        """The waiting caller's place in line and its sure expected wait (None, None:
        not waiting)."""
        ...

    def announcing(self, call_id: str, on: bool) -> None:
        """The session plays (or stopped playing) prompts: an offer must stop them."""
        ...

    async def request_callback(self, call_id: str, number: str) -> bool:
        """The caller confirmed the number to call back: the callback takes its place
        in line (False: refused)."""
        ...

    def recording(self, call_id: str) -> tuple[str, str | None] | None:
        """Record the conversation: (MixMonitor file, a sound the caller hears first),
        asked before each dial; None: not recorded (or already being recorded)."""
        ...


#: ``fastagi.max_entry_age``'s default: the dialplan's ACD_MAX_CALL_TIME (4 h).
MAX_ENTRY_AGE = 14_400.0


def parse_entry_time(raw: str | None, now: float, max_age: float = MAX_ENTRY_AGE) -> float:
    """The first-entry time stamped by the dialplan, never trusted further than it can
    be true: garbage → now, in the future → now, older than ``max_age`` → ``now -
    max_age`` (a forged old time cannot jump the queue past that)."""
    try:
        value = float(raw) if raw else math.nan
    except ValueError:
        return now
    if not math.isfinite(value):
        return now
    return min(max(value, now - max_age), now)


async def handle_call(host: CallHost, session: AGISession, *,
                      max_entry_age: float = MAX_ENTRY_AGE) -> None:
    env = session.env
    if env.script != "inbound":
        log.warning("FastAGI request for unknown script %r; refusing", env.script)
        await session.close()
        return
    if not host.accepting:
        await session.close()  # ACD_RESULT stays empty: the dialplan tries elsewhere
        return
    settings = host.settings
    args = env.args
    now = host.clock()
    entry_time = parse_entry_time(args[0] if args else None, now, max_entry_age)
    raw_id = (args[1] if len(args) > 1 and args[1] else env.uniqueid) or f"agi-{id(session)}"
    did = normalise_did(args[2] if len(args) > 2 else env.extension) \
        or (args[2] if len(args) > 2 else env.extension)
    server = args[3] if len(args) > 3 else ""  # ${ACD_SERVER}: which Asterisk this is
    call_id = host.qualify_call_id(raw_id, server)
    caller = normalise_number(env.callerid) if env.callerid not in ("", "unknown") else ""
    segment = settings.entry.segments.classify(caller) if caller else None
    region = host.regions.resolve(caller)

    _log_clamped(args[0] if args else "", entry_time, now, max_entry_age, session.peer)
    try:
        items = host.open_session(call_id, live=lambda: not session.hung_up)
    except SessionTaken:
        log.warning("call %s: a second FastAGI session (from %s) for a call whose session "
                    "is live; refused, the first keeps the call", call_id, session.peer)
        await session.close()  # no ACD_RESULT: a real retry comes back once it is gone
        return
    reported = released = False
    try:
        await session.answer()
        chosen = await session.get_variable("ACD_QUEUE")
        queue_id = entry_queue(settings.entry, settings.queues, chosen=chosen,
                               segment=segment, did=did)
        menu_choice = ""
        if queue_id is None:
            assert settings.entry.menu is not None
            menu_choice = await _menu(session, settings.entry.menu)
            queue_id = menu_queue(settings.entry, menu_choice)
            log.info("IVR: key %r -> %s", menu_choice, queue_id)
        await session.set_variable("ACD_QUEUE", queue_id)
        ask = settings.regions.ask_area_code
        if not region.known and ask is not None:
            region = await _ask_area_code(host, session, caller, region, ask)
        queue = settings.queues[queue_id]
        if queue.language is not None:  # else the DID's or the hotline's (dialplan)
            await session.set_variable("CHANNEL(language)", queue.language)
        await session.set_music(True, queue.moh_class)
        host.post(CallArrived(call_id, queue_id, caller, entry_time, host.clock(),
                              env.channel, env.uniqueid,
                              segment.priority if segment else 0,
                              segment.segment_id if segment else "",
                              region.region, region.known, region.source, server, did,
                              menu_choice))
        reported = True
        hangup = asyncio.ensure_future(session.wait_hangup())
        announcer = Announcer(host, session, call_id, queue)
        next_item: asyncio.Future[SessionItem] | None = None
        try:
            while True:
                if next_item is None:
                    next_item = asyncio.ensure_future(items.get())
                waiters: set[asyncio.Future[Any]] = {hangup, next_item}
                done, _ = await asyncio.wait(waiters, timeout=announcer.due_in(host.clock()),
                                             return_when=asyncio.FIRST_COMPLETED)
                if hangup in done:
                    next_item.cancel()
                    return  # caller hung up while waiting (finally reports it)
                if next_item not in done:
                    await announcer.announce()  # time for it (an offer stops it)
                    continue
                item = next_item.result()
                next_item = None
                if isinstance(item, Release):
                    released = True
                    log.info("call %s: handed back to the dialplan (engine stopping or "
                             "stepping down)", call_id)
                    return
                if isinstance(item, ExitCall) and item.callback:
                    await _confirm_callback(host, session, call_id, caller)
                    return
                if isinstance(item, CloseCall | ExitCall):
                    await _closed(session, item)
                    return
                if await _ring(host, session, call_id, item):
                    await session.set_variable("ACD_RESULT", "DONE")
                    return
                if session.hung_up:
                    return
                if host.releasing:  # not answered while stopping: back to the dialplan
                    released = True
                    return
                # back to waiting: the music of the queue it is in now (it may have moved)
                await session.set_music(True, item.moh_class or queue.moh_class)
        finally:
            hangup.cancel()
            if next_item is not None:
                next_item.cancel()
    except AGIHangupError:
        pass
    except AGITimeoutError as exc:  # the peer went silent: one line, no traceback
        log.warning("call %s: FastAGI peer %s stopped answering (%s); session closed",
                    call_id, session.peer, exc)
    except Exception:
        log.exception("call %s: session failed", call_id)
    finally:
        host.close_session(call_id, items)
        # Any offer still queued for this session goes back to the engine.
        while not items.empty():
            left = items.get_nowait()
            if isinstance(left, Offer):
                host.post(DialFinished(call_id, left.agent_id, "CANCEL", host.clock(),
                                       site_id=left.site_id))
        if reported:  # a released caller re-enters elsewhere: not an abandon
            host.post(CallHungUp(call_id, host.clock(), released=released))
        with contextlib.suppress(Exception):
            await session.close()


def _log_clamped(raw: str, entry_time: float, now: float, max_age: float,
                 peer: str) -> None:
    """One line when the dialplan's entry time was not taken as given."""
    try:
        value = float(raw)
    except ValueError:
        return
    if value > now + 1:
        log.warning("FastAGI %s: entry time %.3f is in the future; now taken instead",
                    peer, value)
    elif value < entry_time:
        log.warning("FastAGI %s: entry time %.3f is more than fastagi.max_entry_age (%gs) "
                    "ago; clamped", peer, value, max_age)


#: No announcement when the caller's expected wait is shorter: it would only delay
#: the caller's own answer (an offer would stop it at once anyway).
ANNOUNCE_SKIP_BELOW = 12.0


class Announcer:
    """What a waiting caller is told, when (ACD_SPEC §8): its place in line and its
    expected wait (only when sure), the key that takes it out of the line; at
    ``first_after`` seconds, then every ``every``.

    The prompts are played with the caller's exit key and ``#`` as escape digits: the
    caller's key is reported as a ``CallerKey``; ``#`` is how the engine stops the
    prompt the moment an offer (or an exit) comes for this call — it queues a ``#`` on
    the caller's channel over AMI (``PlayDTMF``, ``Receive: true``) while the session
    says it is announcing."""

    def __init__(self, host: CallHost, session: AGISession, call_id: str,
                 queue: QueueSettings) -> None:
        self.host, self.session, self.call_id, self.queue = host, session, call_id, queue
        self.settings = queue.announce
        exits = queue.exits
        self.key = exits.key if exits.key_action is not None else None
        now = host.clock()
        self.next_at: float | None = None
        if self.settings is not None:
            self.next_at = now + self.settings.first_after
        elif self.key is not None:
            self.next_at = now  # the key alone is announced once

    def due_in(self, now: float) -> float | None:
        return None if self.next_at is None else max(0.0, self.next_at - now)

    def _schedule_next(self, now: float) -> None:
        every = self.settings.every if self.settings is not None else 0.0
        self.next_at = now + every if every > 0 else None

    def parts(self, position: int | None, ewt: float | None) -> list[tuple[str, str]]:
        """("file", name) / ("number", n) / ("digit", d) in the order they are said."""
        out: list[tuple[str, str]] = []
        a = self.settings
        if a is not None:
            sounds = a.sounds
            if a.position and position is not None:
                if position == 1:
                    out.append(("file", sounds["first_in_line"]))
                else:
                    out += [("file", sounds["position_before"]), ("number", str(position)),
                            ("file", sounds["position_after"])]
            if a.ewt and ewt is not None:
                minutes = spoken_minutes(ewt)
                out.append(("file", sounds["wait_before"]))
                if minutes == 0:
                    out += [("file", sounds["less_than"]), ("number", "1"),
                            ("file", sounds["minute"])]
                else:
                    out += [("number", str(minutes)),
                            ("file", sounds["minute" if minutes == 1 else "minutes"])]
        if self.key is not None:
            for name in self.queue.exits.key_prompt:
                out.append(("digit", self.key) if name == "{key}" else ("file", name))
        if a is not None and out:
            out.append(("file", a.sounds["thanks"]))
        return out

    async def announce(self) -> None:
        host, session = self.host, self.session
        self._schedule_next(host.clock())
        position, ewt = await host.announcement(self.call_id)
        if position is None:
            return  # no longer waiting (an offer is on its way)
        if ewt is not None and ewt < ANNOUNCE_SKIP_BELOW:
            return  # about to be served: the hold music goes on
        parts = self.parts(position, ewt)
        if not parts:
            return
        escape = quote("#" + (self.key or ""))
        host.announcing(self.call_id, True)
        try:
            await session.set_music(False)
            for kind, arg in parts:
                if kind == "file":
                    cmd = f"STREAM FILE {quote(arg)} {escape}"
                elif kind == "number":
                    cmd = f"SAY NUMBER {arg} {escape}"
                else:
                    cmd = f"SAY DIGITS {arg} {escape}"
                reply = await session.command(cmd, timeout=60)
                pressed = reply.result_int or 0
                if pressed < 0:
                    raise AGIHangupError("caller hung up during an announcement")
                if pressed > 0:
                    digit = chr(pressed)
                    if digit != "#":
                        host.post(CallerKey(self.call_id, digit, host.clock()))
                    break  # stopped: by the engine ("#": an offer) or by the caller
        finally:
            host.announcing(self.call_id, False)
        if not session.hung_up:
            await session.set_music(True, self.queue.moh_class)


async def _menu(session: AGISession, menu: MenuSettings) -> str:
    """The IVR: one key chooses the queue ("" when the caller pressed nothing)."""
    reply = await session.command(
        f"GET DATA {quote(menu.prompt)} {int(menu.timeout * 1000)} 1",
        timeout=menu.timeout + 30)
    if reply.result_int == -1:
        raise AGIHangupError("caller hung up in the IVR")
    return reply.result or ""


async def _ask_area_code(host: CallHost, session: AGISession, caller: str,
                         region: RegionResult, ask: AreaCodePrompt) -> RegionResult:
    """The number told us nothing: the caller keys an area code (``#`` ends it)."""
    reply = await session.command(
        f"GET DATA {quote(ask.prompt)} {int(ask.timeout * 1000)} {ask.max_digits}",
        timeout=ask.timeout + 30)
    if reply.result_int == -1:
        raise AGIHangupError("caller hung up at the area-code prompt")
    keyed = reply.result or ""
    better = host.regions.resolve(caller, ivr_area_code=keyed) if keyed else region
    log.info("area code %r keyed -> %s (%s)", keyed, better.region, better.source)
    return better


async def _closed(session: AGISession, close: CloseCall | ExitCall) -> None:
    """The queue is closed for this caller, or it leaves the line by an exit: the sound,
    the voicemail if any, then the dialplan hangs up. Before a voicemail the sound is the
    greeting, and the caller goes straight to the tone (VoiceMail ``s``); with no sound
    the mailbox greets (``u``: its recorded unavailable greeting, or Asterisk's)."""
    await session.set_music(False)
    if close.sound:
        await session.command(f"STREAM FILE {quote(close.sound)} \"\"", timeout=120)
    if close.mailbox:
        options = "s" if close.sound else "u"
        await session.exec("VoiceMail", f"{close.mailbox},{options}", timeout=None)
    await session.set_variable("ACD_RESULT", "DONE")


async def _prompt(session: AGISession, parts: list[tuple[str, str]], keys: str,
                  wait: float) -> str:
    """Say ``parts`` (("file", name) / ("digits", d)) with ``keys`` as escape digits,
    then wait ``wait`` seconds for one of them. The key pressed, or ""."""
    escape = quote(keys)
    for kind, arg in parts:
        cmd = (f"STREAM FILE {quote(arg)} {escape}" if kind == "file"
               else f"SAY DIGITS {arg} {escape}")
        reply = await session.command(cmd, timeout=60)
        pressed = reply.result_int or 0
        if pressed < 0:
            raise AGIHangupError("caller hung up during the callback prompt")
        if pressed > 0 and chr(pressed) in keys:
            return chr(pressed)
    reply = await session.command(f"WAIT FOR DIGIT {int(wait * 1000)}", timeout=wait + 30)
    pressed = reply.result_int or 0
    if pressed < 0:
        raise AGIHangupError("caller hung up during the callback prompt")
    return chr(pressed) if pressed > 0 and chr(pressed) in keys else ""


async def _confirm_callback(host: CallHost, session: AGISession, call_id: str,
                            caller: str) -> None:
    """The caller left the line to be called back (acd.domain.callbacks): its number is
    said back, it confirms (or keys another, ``#`` ends it), hears the confirmation and
    the call ends. Confirmed, the callback takes the caller's place in line."""
    cb = host.settings.callbacks
    await session.set_music(False)
    if cb is None:
        await session.set_variable("ACD_RESULT", "DONE")
        return
    number = caller if allowed(caller, cb.allow) else ""
    keys = cb.confirm_key + cb.other_key
    for _round in range(3):
        if not number:
            reply = await session.command(
                f"GET DATA {quote(cb.enter_number)} {int(cb.confirm_timeout * 1000)} 20",
                timeout=cb.confirm_timeout + 60)
            if reply.result_int == -1:
                raise AGIHangupError("caller hung up keying a number")
            keyed = normalise_number(reply.result or "")
            if not allowed(keyed, cb.allow):
                await session.command(f"STREAM FILE {quote(cb.invalid)} \"\"", timeout=60)
                continue
            number = keyed
        parts = [("file", cb.number_is), ("digits", number)] + [
            ("digits", cb.confirm_key) if name == "{confirm}"
            else ("digits", cb.other_key) if name == "{other}" else ("file", name)
            for name in cb.confirm_prompt]
        key = await _prompt(session, parts, keys, cb.confirm_timeout)
        if key == cb.confirm_key:
            if await host.request_callback(call_id, number):
                log.info("call %s: callback confirmed", call_id)
                # handled from now on: an engine that dies during the last words must
                # not have the dialplan queue the caller again
                await session.set_variable("ACD_RESULT", "DONE")
                await session.command(f"STREAM FILE {quote(cb.confirmed)} \"\"", timeout=60)
            else:
                await session.command(f"STREAM FILE {quote(cb.invalid)} \"\"", timeout=60)
            break
        if key == cb.other_key:
            number = ""
    else:
        log.info("call %s: callback not confirmed", call_id)
    await session.set_variable("ACD_RESULT", "DONE")


#: Dial attempts of this process: names each answer stamp (``ACD_ANSWERED_<n>``).
_RINGS = itertools.count(1)


async def _ring(host: CallHost, session: AGISession, call_id: str, offer: Offer) -> bool:
    """Dial the offered agent or partner site; report the outcome. True when answered."""
    try:
        record = host.recording(call_id)
        if record is not None:
            # MixMonitor option b: only while bridged — the conversation, not the music.
            path, announce = record
            if announce:
                await session.command(f"STREAM FILE {quote(announce)} \"\"", timeout=60)
            await session.exec("MixMonitor", f"{path},b", timeout=10)
        # m(class): the queue's hold music goes on while the phone rings (a bare "m"
        # would play the channel's class, which the dialplan set to "default");
        # U(acd-answered^n) stamps the answer on the caller's channel as ACD_ANSWERED_n
        music = f"m({offer.moh_class})" if offer.moh_class else "m"
        ring = next(_RINGS)
        await session.exec("Dial", f"{offer.dial},{offer.timeout},{music}"
                           f"U(acd-answered^{ring})", timeout=None)
        # in one round trip (the agent is released the sooner): the outcome, the answer
        # stamp and Asterisk's clock now (ANSWEREDTIME would count from the engine's
        # answer of the caller at entry, the whole wait included)
        outcome = await session.get_full_variable(
            f"${{DIALSTATUS}}|${{ACD_ANSWERED_{ring}}}|${{STRFTIME(,,%s.%3q)}}") or ""
    except AGIHangupError:
        host.post(DialFinished(call_id, offer.agent_id, "CANCEL", host.clock(),
                               site_id=offer.site_id))
        raise
    status, answered, ended = [*outcome.split("|"), "", "", ""][:3]
    status = status or "CANCEL"
    try:
        talk = max(0.0, float(ended) - float(answered)) if answered else 0.0
    except ValueError:
        talk = 0.0
    host.post(DialFinished(call_id, offer.agent_id, status, host.clock(), talk,
                           site_id=offer.site_id))
    return status == "ANSWER"
