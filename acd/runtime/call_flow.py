"""One caller's FastAGI session, from arrival to the end of the call (ACD_SPEC §3).

The dialplan runs ``AGI(agi://engine/inbound,<entry time>,<call id>,<DID>)``. Here we
answer, report the call to the engine, play hold music and then wait with **no command
pending** — so Asterisk's out-of-band ``HANGUP`` reaches us at once if the caller gives
up. When the engine offers an agent we ``EXEC Dial`` from this session (``m``: the caller
keeps hearing music while the agent's phone rings) and report ``DIALSTATUS``.

Before closing a session that handled the call we set ``ACD_RESULT=DONE``. Any other end
(engine stopped, crashed, session dropped) leaves ACD_RESULT empty and the dialplan
retries the engine with the original entry time, then falls back to app_queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from acd.config import ClosedAction, QueueConfig
from acd.domain.core import CallArrived, CallClosed, CallHungUp, DialFinished, Offer
from acd.protocol.agi import quote
from acd.runtime.fastagi import AGIHangupError, AGISession
from routing.regions import RegionResult
from routing.segments import Segment

if TYPE_CHECKING:
    from acd.runtime.engine import Engine

log = logging.getLogger("acd.call")

#: Put on a session's offer queue by ``Engine.release_waiting`` (graceful shutdown): the
#: waiting caller goes back to the dialplan, which retries another engine (standby).
RELEASE = Offer("", "", "", 0)


def parse_entry_time(raw: str | None, now: float) -> float:
    """The first-entry time stamped by the dialplan; bad or future values → now."""
    try:
        value = float(raw) if raw else math.nan
    except ValueError:
        return now
    if not math.isfinite(value) or value > now + 5 or value < now - 86_400:
        return now
    return min(value, now)


async def handle_call(engine: Engine, session: AGISession) -> None:
    env = session.env
    if env.script != "inbound":
        log.warning("FastAGI request for unknown script %r; refusing", env.script)
        await session.close()
        return
    if not engine.accepting:
        await session.close()  # ACD_RESULT stays empty: the dialplan tries elsewhere
        return
    args = env.args
    now = engine.clock()
    entry_time = parse_entry_time(args[0] if args else None, now)
    call_id = (args[1] if len(args) > 1 and args[1] else env.uniqueid) or f"agi-{id(session)}"
    did = args[2] if len(args) > 2 else env.extension
    server = args[3] if len(args) > 3 else ""  # ${ACD_SERVER}: which Asterisk this is
    call_id = engine.core.qualify_call_id(call_id, server)
    caller = env.callerid if env.callerid not in ("", "unknown") else ""
    segment = engine.segments.classify(caller) if caller else None
    region = engine.regions.resolve(caller)

    offers = engine.open_session(call_id)
    reported = released = False
    try:
        await session.answer()
        queue = await _choose_queue(engine, session, did, segment)
        if not region.known and engine.config.regions.ask_area_code is not None:
            region = await _ask_area_code(engine, session, caller, region)
        partner_first = False
        if not engine.schedules[queue.id].is_open(
                datetime.fromtimestamp(engine.clock(), UTC)):
            # Closed: a partner open now (e.g. 24×7) that covers the caller's region and
            # offers this service takes the call; else the queue's closed action.
            if not engine.open_partner_covers(region.region, queue.id):
                await _closed(engine, session, call_id, queue, caller)
                return
            partner_first = True
        await session.set_music(True, queue.moh_class)
        engine.post(CallArrived(call_id, queue.id, caller, entry_time, engine.clock(),
                                env.channel, env.uniqueid,
                                segment.priority if segment else 0,
                                segment.segment_id if segment else "",
                                region.region, region.known, partner_first, server))
        reported = True
        hangup = asyncio.ensure_future(session.wait_hangup())
        try:
            while True:
                next_offer = asyncio.ensure_future(offers.get())
                done, _ = await asyncio.wait({hangup, next_offer},
                                             return_when=asyncio.FIRST_COMPLETED)
                if next_offer not in done:
                    next_offer.cancel()
                    return  # caller hung up while waiting (finally reports it)
                offer = next_offer.result()
                if offer is RELEASE:
                    released = True
                    log.info("call %s: handed back to the dialplan (engine stopping or "
                             "stepping down)", call_id)
                    return
                if await _ring_agent(engine, session, call_id, offer):
                    await session.set_variable("ACD_RESULT", "DONE")
                    return
                if session.hung_up:
                    return
                if engine.releasing:  # not answered while stopping: back to the dialplan
                    released = True
                    return
                await session.set_music(True, queue.moh_class)
        finally:
            hangup.cancel()
    except AGIHangupError:
        pass
    except Exception:
        log.exception("call %s: session failed", call_id)
    finally:
        engine.close_session(call_id, offers)
        # Any offer still queued for this session goes back to the engine.
        while not offers.empty():
            left = offers.get_nowait()
            if left is RELEASE:
                continue
            engine.post(DialFinished(call_id, left.agent_id, "CANCEL", engine.clock(),
                                     site_id=left.site_id))
        if reported:  # a released caller re-enters elsewhere: not an abandon
            engine.post(CallHungUp(call_id, engine.clock(), released=released))
        with contextlib.suppress(Exception):
            await session.close()


async def _choose_queue(engine: Engine, session: AGISession, did: str,
                        segment: Segment | None) -> QueueConfig:
    """Which queue serves this call: a choice already made (re-entry after an engine
    restart, transfer), the caller's dedicated segment queue, the DID, the IVR menu, or
    the default queue — in that order. The choice is stored on the channel."""
    config = engine.config
    chosen = await session.get_variable("ACD_QUEUE")
    if chosen and config.has_queue(chosen):
        return config.queue(chosen)
    queue = None
    if segment is not None and segment.queue_id is not None:
        queue = config.queue(segment.queue_id)
    if queue is None:
        queue = config.did_queue(did)
    if queue is None and config.ivr is not None and config.ivr.options:
        ivr = config.ivr
        reply = await session.command(
            f"GET DATA {quote(ivr.prompt)} {int(ivr.timeout * 1000)} 1",
            timeout=ivr.timeout + 30)
        if reply.result_int == -1:
            raise AGIHangupError("caller hung up in the IVR")
        digit = reply.result or ""
        if digit in ivr.options:
            queue = config.queue(ivr.options[digit])
        log.info("IVR: key %r -> %s", digit, queue.id if queue else "default")
    if queue is None:
        queue = config.queue_for_did(None)
    await session.set_variable("ACD_QUEUE", queue.id)
    return queue


async def _ask_area_code(engine: Engine, session: AGISession, caller: str,
                         region: RegionResult) -> RegionResult:
    """The number told us nothing: the caller keys an area code (``#`` ends it)."""
    ask = engine.config.regions.ask_area_code
    assert ask is not None
    reply = await session.command(
        f"GET DATA {quote(ask.prompt)} {int(ask.timeout * 1000)} {ask.max_digits}",
        timeout=ask.timeout + 30)
    if reply.result_int == -1:
        raise AGIHangupError("caller hung up at the area-code prompt")
    keyed = reply.result or ""
    better = engine.regions.resolve(caller, ivr_area_code=keyed) if keyed else region
    log.info("area code %r keyed -> %s (%s)", keyed, better.region, better.source)
    return better


async def _closed(engine: Engine, session: AGISession, call_id: str, queue: QueueConfig,
                  caller: str) -> None:
    """The queue is closed: its closed action, then the dialplan hangs up."""
    engine.post(CallClosed(call_id, queue.id, caller, engine.clock()))
    action = queue.closed
    await session.command(f"STREAM FILE {quote(action.sound)} \"\"", timeout=120)
    if action.action is ClosedAction.VOICEMAIL and action.mailbox:
        await session.exec("VoiceMail", f"{action.mailbox},u", timeout=None)
    await session.set_variable("ACD_RESULT", "DONE")


async def _ring_agent(engine: Engine, session: AGISession, call_id: str,
                      offer: Offer) -> bool:
    """Dial the offered agent; report the outcome. True when the call was answered."""
    try:
        await session.exec("Dial", f"{offer.dial},{offer.timeout},m", timeout=None)
        status = (await session.get_variable("DIALSTATUS")) or "CANCEL"
        talk_raw = await session.get_variable("ANSWEREDTIME")
    except AGIHangupError:
        engine.post(DialFinished(call_id, offer.agent_id, "CANCEL", engine.clock(),
                                 site_id=offer.site_id))
        raise
    try:
        talk = float(talk_raw) if talk_raw else 0.0
    except ValueError:
        talk = 0.0
    engine.post(DialFinished(call_id, offer.agent_id, status, engine.clock(), talk,
                             site_id=offer.site_id))
    return status == "ANSWER"
