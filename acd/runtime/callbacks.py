"""The outbound dialer of callbacks: carries the core's ``Offer`` of a callback out as an
AMI ``Originate`` through the separate outbound account (docs/operations.md, "Callbacks").

Each callback in the core has a session queue here, as a caller has one in its FastAGI
session: the engine delivers the callback's ``Offer`` to it like any other. The dialer

1. rings the reserved agent first: ``Originate`` (``Async: true``) of the agent's device
   into the originate-only context (``callbacks.context``) at the customer's number,
   with ``ACD_CB_ID``/``ACD_CB_ATTEMPT`` on the channel; the agent's phone shows
   "Callback <number>";
2. learns the agent's side from ``OriginateResponse`` (by its ``ActionID``): not
   answered, busy, unreachable → ``DialFinished`` with the agent's status (the core's
   ring-no-answer: the callback keeps its place);
3. learns the customer's side from the dialplan's ``UserEvent``s (by ``ACD_CB_ID``):
   ``ACDCallbackAnswered`` → ``CallAnswered``; ``ACDCallback`` (the agent channel's
   hangup handler, with ``DIALSTATUS``) → ``DialFinished`` ``ANSWER`` or
   ``CUSTOMER_<status>`` (an attempt: the core retries or fails it).

**Never replayed.** An Originate whose reply did not come (connection lost, timeout) is
*in doubt*: it may be ringing. It is never sent again; the dialer waits for the
dialplan's events of that callback and, if none comes, reports ``IN_DOUBT`` (the core
ends the callback as failed: a customer is never called twice for one callback). An
Originate that could not be sent (the account is down) is ``OUTBOUND_DOWN``: not an
attempt, back in line shortly. Originates through the trunk are rate-limited
(``callbacks.trunk.per_minute``); every one is logged with who and why (the number
masked at INFO).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from acd.domain import CallAnswered, DialFinished, DomainError, Fact, Offer
from acd.domain.callbacks import (
    CUSTOMER,
    IN_DOUBT,
    OUTBOUND_DOWN,
    CallbackFinished,
    CallbackSettings,
)
from acd.domain.events import RequestCallback
from acd.protocol.ami import AMIEvent
from acd.runtime.ami_client import (
    AMIActionError,
    AMIClient,
    AMIConnectionLostError,
    AMINotConnectedError,
    AMITimeoutError,
)
from acd.runtime.backoff import ExponentialBackoff
from acd.runtime.campaigns import runner_of
from acd.runtime.engine import Engine
from acd.runtime.ratelimit import TokenBucket
from acd.runtime.session import SessionQueue

log = logging.getLogger("acd.outbound")

#: OriginateResponse ``Reason`` (Asterisk's AST_CONTROL_*) → the agent leg's status.
_REASONS = {"0": "CHANUNAVAIL", "1": "NOANSWER", "3": "NOANSWER", "5": "BUSY",
            "8": "CONGESTION"}
#: Extra seconds an in-doubt originate is given for its events to come.
IN_DOUBT_GRACE = 10.0
#: Seconds an originate waits for the store to hear of it first.
STORE_WAIT = 1.0
#: Seconds a restore waits for the main AMI account to settle a callback being dialled.
SETTLE_WAIT = 5.0


def dial_key(callback_id: str) -> str:
    """A callback id as the dialplan names its marks (``FILTER(0-9A-Za-z,…)``)."""
    return "".join(c for c in callback_id if c.isascii() and c.isalnum())


def masked(number: str) -> str:
    """A number for the INFO log: the last four digits only."""
    return "*" * max(0, len(number) - 4) + number[-4:]


@dataclass(slots=True)
class _Dial:
    callback_id: str
    agent_id: str
    attempt: int
    answered_at: float | None = None
    in_doubt: bool = False
    timer: asyncio.TimerHandle | None = None


class CallbackDialer:
    """Originates the callbacks the core hands to agents; one outbound AMI account."""

    def __init__(self, engine: Engine, settings: CallbackSettings, client: AMIClient | None,
                 *, per_minute: int = 30, ring_timeout: int = 15) -> None:
        self.engine = engine
        self.settings = settings
        self.client = client
        self.ring_timeout = ring_timeout
        self._bucket = TokenBucket(per_minute / 60.0, float(per_minute), engine.clock())
        self._queues: dict[str, SessionQueue] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: ActionID of an Originate → its dial; callback id → its dial.
        self._by_action: dict[str, _Dial] = {}
        self._by_callback: dict[str, _Dial] = {}
        #: OriginateResponses that came before their ActionID was recorded.
        self._early: dict[str, AMIEvent] = {}
        #: Originates sent, in doubt (figures); stored callbacks found already dialled.
        self.originated = 0
        self.in_doubt = 0
        self.settled_dialled = 0
        #: (count, sum) of completed callbacks' delays (request → answer) and of their
        #: callers' expected waits when they asked (the promise it is held against).
        self.delays: tuple[int, float] = (0, 0.0)
        self.ewts: tuple[int, float] = (0, 0.0)

    # -- callbacks in and out of the core ---------------------------------------------

    def open(self, callback_id: str) -> None:
        """A session queue for a callback (before the core may offer it)."""
        if callback_id in self._queues:
            return
        q = self.engine.open_session(callback_id)
        self._queues[callback_id] = q
        self._tasks[callback_id] = asyncio.get_running_loop().create_task(
            self._serve(callback_id, q), name=f"acd-callback-{callback_id}")

    def close(self, callback_id: str) -> None:
        q = self._queues.pop(callback_id, None)
        if q is not None:
            self.engine.close_session(callback_id, q)
        task = self._tasks.pop(callback_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def request(self, event: RequestCallback) -> str:
        """Put a callback in the core's line; returns its id. Raises the core's
        DomainError (nothing is kept then)."""
        cb_id = event.callback_id or f"{event.origin_call_id}-cb"
        event = replace(event, callback_id=cb_id)
        self.open(cb_id)
        try:
            await self.engine.command(event)
        except DomainError:
            self.close(cb_id)
            raise
        if cb_id not in self.engine.core.callbacks.by_id:
            self.close(cb_id)  # already finished or a duplicate
        return cb_id

    def observe(self, fact: Fact, now: float) -> None:
        """Engine fact hook: a finished callback's queue is closed."""
        if isinstance(fact, CallbackFinished):
            if fact.outcome == "completed" and fact.delay is not None:
                self.delays = (self.delays[0] + 1, self.delays[1] + fact.delay)
                if fact.ewt is not None:
                    self.ewts = (self.ewts[0] + 1, self.ewts[1] + fact.ewt)
            dial = self._by_callback.pop(fact.callback_id, None)
            if dial is not None and dial.timer is not None:
                dial.timer.cancel()
            self.close(fact.callback_id)

    # -- after a restart or a takeover (acd.runtime.engine.Engine.activate) ------------

    async def restore(self, records: Mapping[str, Mapping[str, Any]]) -> int:
        """Put the stored callbacks back in line; returns how many.

        The dial the last engine may have sent (the one stored as being dialled, else
        the next) is settled with Asterisk first: voided (global ``ACD_CBV_<id>_<dial>``
        through the main AMI account's ``Setvar``), then its start mark read (``Getvar
        ACD_CBS_<id>_<dial>``; the dialplan writes that first, then reads the void). If
        the customer's leg had started, the callback is **not** dialled again (it was,
        once); else it goes back in line with its place. A callback stored as being
        dialled whose dial Asterisk cannot tell about (AMI down) is not dialled again
        either: never twice."""
        restored = 0
        for cb_id, rec in records.items():
            try:
                event = self._restored_event(cb_id, rec)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("stored callback %s not restored (bad record: %s)", cb_id, exc)
                continue
            # The dial the last engine may have sent: the one stored as being dialled,
            # else the next (sent before the store heard of it)
            dialing = rec.get("state") in ("dialing", "connected")
            dial = event.dials if dialing else event.dials + 1
            verdict = await self._settle(cb_id, dial)
            if verdict == "started" or (verdict is None and dialing):
                self.settled_dialled += 1
                log.warning("callback %s: its dial %d %s before this engine took over; "
                            "not dialled again", cb_id, dial,
                            "had started" if verdict == "started"
                            else "cannot be checked (AMI down)")
                continue
            if verdict == "void":
                event = replace(event, dials=dial)
            try:
                await self.request(event)
            except DomainError as exc:
                log.warning("stored callback %s not restored: %s", cb_id, exc)
                continue
            restored += 1
        if records:
            log.info("callbacks: %d of %d stored back in line", restored, len(records))
        return restored

    def _restored_event(self, cb_id: str, rec: Mapping[str, Any]) -> RequestCallback:
        now = self.engine.clock()
        retry_at = rec.get("retry_at")
        not_before = float(rec.get("not_before") or 0.0)
        if rec.get("state") == "retry" and retry_at:
            not_before = max(not_before, float(retry_at))
        ewt = rec.get("ewt")
        return RequestCallback(
            str(rec.get("call_id") or ""), str(rec["number"]), now, callback_id=cb_id,
            queue_id=str(rec["queue"]), entry_time=float(rec["entry_time"]),
            requested_at=float(rec.get("requested_at") or now),
            server=str(rec.get("server") or ""),
            ewt=None if ewt is None else float(ewt), not_before=not_before,
            attempts=int(rec.get("attempts") or 0), dials=int(rec.get("dials") or 0),
            reason=str(rec.get("reason") or ""), restored=True,
            max_attempts=int(rec.get("max_attempts") or 0))

    async def _settle(self, cb_id: str, dial: int) -> str | None:
        """"void" (this dial will never reach the customer), "started" (it did or is),
        or None (Asterisk could not be asked)."""
        if dial <= 0:
            return "void"
        main = self.engine.ami
        if main is None:
            return None
        key = f"{dial_key(cb_id)}_{dial}"
        try:
            await main.wait_connected(SETTLE_WAIT)
            await main.action("Setvar", {"Variable": f"ACD_CBV_{key}", "Value": "1"})
            reply = await main.action("Getvar", {"Variable": f"ACD_CBS_{key}"})
        except Exception as exc:
            log.warning("callback %s: could not settle dial %d with Asterisk: %s", cb_id,
                        dial, exc)
            return None
        return "started" if (reply.get("Value") or "").strip() == "1" else "void"

    async def stop(self) -> None:
        for cb_id in list(self._tasks):
            self.close(cb_id)
        for dial in self._by_callback.values():
            if dial.timer is not None:
                dial.timer.cancel()

    async def _serve(self, callback_id: str, q: SessionQueue) -> None:
        while True:
            item = await q.get()
            if isinstance(item, Offer):
                try:
                    await self._originate(callback_id, item)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("callback %s: originate failed", callback_id)
                    self._post(DialFinished(callback_id, item.agent_id, IN_DOUBT,
                                            self.engine.clock()))
            # a Release (stepping down) or anything else: the callback stays in the core

    def _post(self, event: DialFinished | CallAnswered) -> None:
        self.engine.post(event)

    # -- the originate -------------------------------------------------------------------

    async def _originate(self, callback_id: str, offer: Offer) -> None:
        engine, settings = self.engine, self.settings
        cb = engine.core.callbacks.by_id.get(callback_id)
        if cb is None:
            return
        attempt = cb.dials  # this originate's number (the core counted it at the offer)
        client = self.client
        if client is None or not client.connected:
            log.warning("callback %s: the outbound AMI account is not connected; back in "
                        "line, retried in %gs", callback_id, settings.down_retry)
            self._post(DialFinished(callback_id, offer.agent_id, OUTBOUND_DOWN, engine.clock()))
            return
        if getattr(engine.store, "durable", False) and engine.store_loaded:
            # the store hears of this dial first (a takeover settles it with Asterisk)
            await engine.store_writer.drained(STORE_WAIT)
        wait = self._bucket.wait(engine.clock())
        if wait > 0:
            log.info("callback %s: trunk rate limit, originate in %.1fs", callback_id, wait)
            await asyncio.sleep(wait)
        self._bucket.take(engine.clock())
        number = cb.number
        log.info("originate: callback %s attempt %d (call %s, queue %s, reason %s): agent "
                 "%s on %s, then %s", callback_id, attempt, cb.origin_call_id or "-",
                 cb.queue_id, cb.reason, offer.agent_id, offer.dial, masked(number))
        fields = (("Channel", offer.dial), ("Context", settings.context),
                  ("Exten", number), ("Priority", "1"), ("Async", "true"),
                  ("Timeout", str(max(1, offer.timeout) * 1000)),
                  ("CallerID", f'"Callback {number}" <{number}>'),
                  ("Variable", f"ACD_CB_ID={callback_id}"),
                  ("Variable", f"ACD_CB_ATTEMPT={attempt}"))
        dial = _Dial(callback_id, offer.agent_id, attempt)
        self._by_callback[callback_id] = dial
        try:
            response = await client.action("Originate", fields)
        except AMINotConnectedError:
            self._by_callback.pop(callback_id, None)
            self._post(DialFinished(callback_id, offer.agent_id, OUTBOUND_DOWN, engine.clock()))
            return
        except AMIActionError as exc:
            self._by_callback.pop(callback_id, None)
            log.error("callback %s: Asterisk refused the originate: %s", callback_id, exc)
            self._post(DialFinished(callback_id, offer.agent_id, f"{CUSTOMER}REFUSED",
                                    engine.clock()))
            return
        except (AMIConnectionLostError, AMITimeoutError) as exc:
            # It may have reached Asterisk: never sent again. Its dialplan events may
            # still come; if none does, the callback ends in doubt.
            self.in_doubt += 1
            dial.in_doubt = True
            limit = offer.timeout + settings.customer_ring + IN_DOUBT_GRACE
            log.warning("callback %s: originate in doubt (%s); not resent, waiting %gs "
                        "for its events", callback_id, exc, limit)
            dial.timer = asyncio.get_running_loop().call_later(
                limit, self._doubt_expired, dial)
            return
        self.originated += 1
        action_id = response.action_id or ""
        self._by_action[action_id] = dial
        early = self._early.pop(action_id, None)
        if early is not None:
            self.on_event(early)

    def _doubt_expired(self, dial: _Dial) -> None:
        if self._by_callback.get(dial.callback_id) is dial and dial.answered_at is None:
            self._by_callback.pop(dial.callback_id, None)
            log.error("callback %s: no sign of the in-doubt originate; ended, not "
                      "dialled again", dial.callback_id)
            self._post(DialFinished(dial.callback_id, dial.agent_id, IN_DOUBT,
                                    self.engine.clock()))

    # -- events of the outbound account --------------------------------------------------

    def on_event(self, event: AMIEvent) -> None:
        now = self.engine.clock()
        if event.name == "OriginateResponse":
            action_id = event.action_id or ""
            dial = self._by_action.pop(action_id, None)
            if dial is None:
                if action_id:
                    self._early[action_id] = event
                    while len(self._early) > 100:
                        self._early.pop(next(iter(self._early)))
                return
            if (event.get("Response") or "").lower() == "success":
                log.info("callback %s attempt %d: agent %s answered; the customer is "
                         "dialled", dial.callback_id, dial.attempt, dial.agent_id)
                return
            if self._by_callback.get(dial.callback_id) is dial:
                del self._by_callback[dial.callback_id]
            status = _REASONS.get(event.get("Reason") or "", "NOANSWER")
            log.info("callback %s attempt %d: agent %s did not take it (%s)",
                     dial.callback_id, dial.attempt, dial.agent_id, status)
            self._post(DialFinished(dial.callback_id, dial.agent_id, status, now))
            return
        if event.name != "UserEvent":
            return
        kind = event.get("UserEvent") or ""
        if kind not in ("ACDCallback", "ACDCallbackAnswered"):
            return
        cb_id = (event.get("Id") or "").strip()
        dial = self._by_callback.get(cb_id)
        if dial is None or (event.get("Attempt") or "").strip() != str(dial.attempt):
            return  # not ours, or an older attempt
        if kind == "ACDCallbackAnswered":
            dial.answered_at = now
            log.info("callback %s attempt %d: the customer answered", cb_id, dial.attempt)
            self._post(CallAnswered(cb_id, dial.agent_id, now))
            return
        del self._by_callback[cb_id]
        if dial.timer is not None:
            dial.timer.cancel()
        status = (event.get("Status") or "").strip().upper()
        if status == "ANSWER":
            talk = now - dial.answered_at if dial.answered_at is not None else 0.0
            self._post(DialFinished(cb_id, dial.agent_id, "ANSWER", now, talk))
        else:
            log.info("callback %s attempt %d: customer not reached (%s)", cb_id,
                     dial.attempt, status or "CANCEL")
            self._post(DialFinished(cb_id, dial.agent_id, f"{CUSTOMER}{status or 'CANCEL'}",
                                    now))


def outbound_client(host: str, port: int, username: str, secret: str,
                    on_event: Callable[[AMIEvent], None], *, connect_timeout: float = 5.0,
                    action_timeout: float = 10.0, ping_interval: float = 10.0,
                    ) -> AMIClient:
    """The outbound account's AMI client (reconnects with backoff, never replays)."""
    return AMIClient(host, port, username, secret, on_event=on_event,
                     backoff=ExponentialBackoff(cap=5.0), connect_timeout=connect_timeout,
                     action_timeout=action_timeout, ping_interval=ping_interval)


async def closing(dialer: CallbackDialer) -> None:
    await dialer.stop()
    if dialer.client is not None:
        with contextlib.suppress(Exception):
            await dialer.client.close()


class CallbackCollector:
    """Prometheus: the callbacks' figures from the core's totals and the dialer's
    counters, read at scrape time (an injected registry, as the engine's collector)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        core, dialer = self.engine.core, dialer_of(self.engine)
        totals = core.callbacks.totals
        fam = CounterMetricFamily("acd_callbacks", "Callbacks by stage: offered (left "
                                  "the line for one), requested (confirmed or "
                                  "scheduled), completed, failed, cancelled.",
                                  labels=["stage"])
        for stage in ("offered", "requested", "completed", "failed", "cancelled"):
            fam.add_metric([stage], totals[stage])
        yield fam
        yield CounterMetricFamily("acd_callback_attempts", "Customer legs tried.",
                                  value=totals["attempts"])
        yield GaugeMetricFamily("acd_callbacks_pending", "Callbacks not finished yet.",
                                value=len(core.callbacks.pending()))
        orig = CounterMetricFamily("acd_callback_originates", "AMI Originates of "
                                   "callbacks: sent, or in doubt (reply lost: never "
                                   "resent).", labels=["result"])
        orig.add_metric(["sent"], dialer.originated if dialer else 0)
        orig.add_metric(["in_doubt"], dialer.in_doubt if dialer else 0)
        yield orig
        runner = runner_of(self.engine)
        if runner is not None:
            contacts = GaugeMetricFamily(
                "acd_campaign_contacts", "Campaign contacts by state (pending, dialing, "
                "reached, failed, do_not_call, refused).", labels=["campaign", "state"])
            attempted = CounterMetricFamily(
                "acd_campaign_attempted_contacts", "Campaign contacts tried at least once.",
                labels=["campaign"])
            for cid, campaign in runner.campaigns.items():
                progress = campaign.progress()
                for state, n in progress["states"].items():
                    contacts.add_metric([cid, state], n)
                attempted.add_metric([cid], progress["attempted"])
            yield contacts
            yield attempted
            yield CounterMetricFamily("acd_campaign_guard_holds", "Rounds in which the "
                                      "blending guard held a campaign back.",
                                      value=runner.held_by_guard)
        if dialer is not None:
            delay = SummaryMetricFamily(
                "acd_callback_delay_seconds", "From the request to the customer's answer, "
                "completed callbacks.", count_value=dialer.delays[0],
                sum_value=dialer.delays[1])
            yield delay
            yield SummaryMetricFamily(
                "acd_callback_promised_ewt_seconds", "The callers' expected wait when "
                "they asked, completed callbacks with a sure estimate.",
                count_value=dialer.ewts[0], sum_value=dialer.ewts[1])


def dialer_of(engine: Engine) -> CallbackDialer | None:
    """The engine's callback dialer (None: callbacks are off)."""
    dialer = engine.callback_dialer
    return dialer if isinstance(dialer, CallbackDialer) else None
