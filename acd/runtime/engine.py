"""The asyncio engine: one ordered inbox, one writer, adapters that carry out effects.

Everything that changes state — a FastAGI session reporting a call, an AMI event, a
timer, an operator command — is posted to :attr:`Engine.inbox`. A single task takes
events in order and hands each to :class:`acd.domain.EngineCore`, which returns effects.
The engine then carries them out without waiting: an ``Offer`` or ``CloseCall`` goes to
the call's own session queue, a ``StartTimer`` to ``loop.call_later``, a fact to the
log, the observers (store writer, metrics, history) and the subscribers (WebSocket). No
I/O happens inside a transition and no lock is needed.

The engine knows nothing of FastAGI, AMI or the HA lease: the composition root
(``app.node``) builds those around it and wires them through small callables
(``lease_valid``, ``step_down``) and the session queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from acd.domain import (
    AgentStatus,
    CallHungUp,
    CallState,
    CloseCall,
    DomainError,
    Effect,
    EngineCore,
    Event,
    ExitCall,
    Fact,
    Offer,
    SetAgentStatus,
    Settings,
    StartTimer,
)
from acd.domain.events import RequestCallback
from acd.domain.facts import CallOffered, CallOverflowed
from acd.domain.figures import Counts
from acd.domain.views import LiveView
from acd.runtime.ami_client import AMIClient
from acd.runtime.backoff import Backoff, ExponentialBackoff
from acd.runtime.estimates import EstimateRefresher
from acd.runtime.session import RELEASE, SessionQueue, SessionTaken
from acd.runtime.store import MemoryStore, Restorer, Store, StoredState, StoreWriter
from routing.regions import RegionResolver


class CallbackPort(Protocol):
    """What the engine asks of the outbound dialer (``acd.runtime.callbacks``, wired by
    the composition root): a caller's callback into line, the stored ones back."""

    async def request(self, event: RequestCallback) -> str: ...

    async def restore(self, records: Mapping[str, Mapping[str, Any]]) -> int: ...


class CampaignPort(Protocol):
    """What the engine asks of the campaigns (``acd.runtime.campaigns``): the stored
    progress back on activation."""

    def restore(self, records: Mapping[str, Mapping[str, Any]]) -> int: ...


log = logging.getLogger("acd.engine")
events_log = logging.getLogger("acd.events")


@dataclass(frozen=True, slots=True)
class _Baseline:
    """What the engine started with when the store could not be read: agents' (status,
    reason) and queues' process totals, to tell later what it changed since."""

    agents: dict[str, tuple[AgentStatus, str]]
    figures: dict[str, Counts]

    @classmethod
    def of(cls, engine: Engine) -> _Baseline:
        core = engine.core
        return cls({a.agent_id: (a.status, a.reason) for a in core.agents.values()},
                   {qid: copy.copy(core.figures.total(qid)) for qid in engine.settings.queues})


@dataclass(slots=True)
class _Command:
    """An operator command: applied in inbox order, its result or error returned
    (``None``: nothing to apply, only a mark that everything before it was)."""

    event: Event | None
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop()
                                       .create_future())


#: How long an announcement waits for a replay that walked its caller (seconds).
ANNOUNCE_ESTIMATE_WAIT = 1.0


class TransferFailed(Exception):
    """A desktop transfer could not be carried out (no AMI, the call ended, Asterisk
    said no)."""


class Engine:
    """The core, its inbox, the sessions' queues, the store writer and the observers."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time,
                 store: Store | None = None, device_state_servers: Iterable[str] = (),
                 store_load_timeout: float = 3.0, restore_grace: float = 4.0) -> None:
        self.settings = settings
        self.clock = clock
        self.core = EngineCore(settings, device_state_servers=device_state_servers)
        self.core.routing = False  # until this engine is the active one (activate)
        self.view = LiveView(self.core)
        #: Expected waits replayed off the routing path while the engine runs.
        self.estimates = EstimateRefresher(self.core, clock)
        self._estimates_task: asyncio.Task[None] | None = None
        self.regions = RegionResolver(settings.regions.default, settings.regions.overrides)
        self.inbox: asyncio.Queue[Event | _Command] = asyncio.Queue()
        self._sessions: dict[str, SessionQueue] = {}
        self._session_live: dict[str, Callable[[], bool]] = {}
        #: Sessions refused because their call id already had a live one.
        self.refused_sessions = 0
        #: Sessions playing prompts now: an offer for them stops the prompt (AMI).
        self._announcing: set[str] = set()
        self._interrupts: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._subscribers: set[asyncio.Queue[Fact]] = set()
        #: Observers called synchronously, in inbox order: each fact with the engine's
        #: clock, and each applied event with the seconds ``core.apply`` took (metrics).
        #: An observer that raises is logged and never stops routing.
        self.fact_hooks: list[Callable[[Fact, float], None]] = []
        self.apply_hooks: list[Callable[[Event, float], None]] = []
        self._loop_task: asyncio.Task[None] | None = None
        self.accepting = False
        #: Set when stopping or stepping down: sessions of callers who only wait go back
        #: to the dialplan.
        self.releasing = False
        #: AMI clients by Asterisk server (filled by the AMI links; read by /readyz and
        #: the metrics); ``ami`` is the first one's.
        self.amis: dict[str, AMIClient] = {}
        #: Restart state (acd.runtime.store): written behind routing by a background
        #: writer, loaded when this engine becomes active.
        self.store: Store = store if store is not None else MemoryStore()
        self.store_writer = StoreWriter(self.store, self.core)
        self.fact_hooks.append(self.store_writer.observe)
        self.restorer = Restorer()
        self.store_load_timeout = store_load_timeout
        self.restore_grace = restore_grace
        self._writer_task: asyncio.Task[None] | None = None
        #: Whether the stored state was read since this engine last became active
        #: (until then it writes nothing: acd_store_loaded).
        self.store_loaded = False
        self.store_load_backoff: Backoff = ExponentialBackoff(base=0.05, cap=1.0)
        self.store_retry_backoff: Backoff = ExponentialBackoff(base=0.2, cap=5.0)
        self._late_load: asyncio.Task[None] | None = None
        self._baseline: _Baseline | None = None
        self._grace: asyncio.TimerHandle | None = None
        #: Hot standby (wired by the composition root): whether this node may still act
        #: as the active one, and how to step down from synchronous code.
        self.lease_valid: Callable[[], bool] | None = None
        self.step_down: Callable[[str], None] | None = None
        #: Call recording (wired by the composition root when history records): call id
        #: → (MixMonitor file, sound for the caller first) or None.
        self.recording_hook: Callable[[str], tuple[str, str | None] | None] | None = None
        #: The outbound dialer of callbacks (acd.runtime.callbacks; wired by the
        #: composition root when the config has ``callbacks``).
        self.callback_dialer: CallbackPort | None = None
        #: The campaigns (acd.runtime.campaigns; with ``campaigns`` in the config).
        self.campaign_runner: CampaignPort | None = None

    @property
    def ami(self) -> AMIClient | None:
        return next(iter(self.amis.values()), None)

    # -- lifecycle ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Engine]:
        """The inbox loop runs inside; on the way out timers and the loop are cancelled."""
        if self.settings.engine.explain_offers:
            # Each stage's roster for the offers' exclusions (≈ 0.5 s at 10k agents),
            # before the inbox runs.
            self.core.router.prepare_exclusions()
        self._loop_task = asyncio.create_task(self._run(), name="acd-inbox")
        self._estimates_task = asyncio.create_task(self.estimates.run(),
                                                   name="acd-estimates")
        self.core.estimates_in_background = True
        self._carry_out(self.core.initial_effects(self.clock()))
        try:
            yield self
        finally:
            self._estimates_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._estimates_task
            self._estimates_task = None
            for handle in self._timers:
                handle.cancel()
            self._timers.clear()
            if self._grace is not None:
                self._grace.cancel()
                self._grace = None
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None

    async def activate(self) -> None:
        """Become the engine that takes calls: load the store first (agent statuses
        through the inbox, waiting calls' places for their re-entry), then accept.

        The load is retried with backoff for ``store_load_timeout`` (a stale pooled
        connection after a Redis restart fails once, then works). If it still fails,
        the engine takes calls from the config alone and **writes nothing** — the store
        may hold what an operator or the previous engine set — while it keeps trying in
        the background; when a load succeeds, :meth:`_merge_late` takes what this engine
        has not changed since, and only then does the writer start.

        Without a list of who waited (a store that does not survive a restart, or one
        not loaded) the restart is blind: re-entries are held from the first one for
        ``restore_grace`` and released in entry order."""
        blind = not getattr(self.store, "durable", False)
        state = await self._load_store()
        self.store_loaded = state is not None
        if state is None:
            self._baseline = _Baseline.of(self)
            self._late_load = asyncio.create_task(self._load_later(),
                                                  name="acd-store-load")
            state = StoredState()
            blind = True
        restored = 0
        for agent_id, rec in state.agents.items():
            try:
                await self.command(SetAgentStatus(agent_id, AgentStatus(rec.status),
                                                  self.clock(), rec.reason))
                restored += 1
            except (ValueError, DomainError) as exc:
                log.warning("stored status of agent %s not restored: %s", agent_id, exc)
        stats_restored = self.core.figures.restore(state.stats, self.clock())
        # Blind (no list of who waited): re-entries stamped before now are held from the
        # first one on, for the grace period, and released in entry order.
        self.restorer.begin(state.calls, blind_since=self.clock() if blind else None)
        if self.restorer.holding or self.restorer.blind_since is not None:
            self._grace = asyncio.get_running_loop().call_later(
                self.restore_grace, self._release_held)
        self.releasing = False
        self.core.routing = True
        if self.callback_dialer is not None and state.callbacks:
            # before the writer's first resync: it would write the core's (empty) list
            await self.callback_dialer.restore(state.callbacks)
        if self.campaign_runner is not None and state.campaigns:
            self.campaign_runner.restore(state.campaigns)
        if self.store_loaded:
            self._start_writer()
        self.accepting = True
        log.info("engine active: %d agent statuses, %d waiting calls and %d queues' "
                 "figures from the store", restored, len(state.calls), stats_restored)

    def _start_writer(self) -> None:
        self.store_writer.request_resync()
        if self._writer_task is None:
            self._writer_task = asyncio.create_task(self.store_writer.run(),
                                                    name="acd-store-writer")

    async def _load_store(self) -> StoredState | None:
        """The stored state, retried with backoff within ``store_load_timeout``; None
        (logged once) when it could not be read."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.store_load_timeout
        failures = 0
        while True:
            try:
                return await asyncio.wait_for(self.store.load(),
                                              max(0.05, deadline - loop.time()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = self.store_load_backoff.compute(failures)
                if loop.time() + delay >= deadline:
                    log.warning("store not loaded after %d attempt(s) (%s: %s): taking "
                                "calls from the config; nothing is written to the store "
                                "until it loads", failures, type(exc).__name__, exc)
                    return None
                await asyncio.sleep(delay)

    async def _load_later(self) -> None:
        """Keep trying to load the store; merge what it holds once it answers."""
        failures = 0
        while True:
            try:
                state = await asyncio.wait_for(self.store.load(), self.store_load_timeout)
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                await asyncio.sleep(self.store_retry_backoff.compute(failures))
                continue
            await self._merge_late(state)
            return

    async def _merge_late(self, state: StoredState) -> None:
        """A load that succeeded after the engine started from the config: take from it
        what this engine has not changed since (docs/operations.md, "Redis"):

        * an agent's stored status, if its status and reason are still those it started
          with (nobody — the agent, a supervisor, a ring-no-answer — changed them);
        * a waiting call's stored queue and priority, for calls that re-enter from now
          on (those already in line keep what they got; their place is their entry
          time anyway);
        * a queue's stored figures, if it has seen no call since.

        Then the writer starts and writes the merged state (a full resync)."""
        await self.flushed()
        baseline = self._baseline
        now = self.clock()
        agents = 0
        for agent_id, rec in state.agents.items():
            agent = self.core.agents.get(agent_id)
            if agent is None or baseline is None or baseline.agents.get(agent_id) != (
                    agent.status, agent.reason):
                continue
            try:
                self.post(SetAgentStatus(agent_id, AgentStatus(rec.status), now, rec.reason))
                agents += 1
            except ValueError:
                log.warning("stored status of agent %s not restored", agent_id)
        untouched = {qid: dump for qid, dump in state.stats.items()
                     if baseline is not None and qid in baseline.figures
                     and self.core.figures.total(qid) == baseline.figures[qid]}
        queues = self.core.figures.restore(untouched, now)
        later = {cid: rec for cid, rec in state.calls.items() if cid not in self.core.calls}
        self.restorer.expect(later)
        await self.flushed()
        self.store_loaded = True
        self._baseline = None
        self._start_writer()
        log.warning("store loaded late: %d agent statuses, %d queues' figures and %d "
                    "waiting calls' places taken (what this engine changed since it "
                    "started stays); writing the store again", agents, queues, len(later))

    async def _cancel_late_load(self) -> None:
        task, self._late_load = self._late_load, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def deactivate(self, *, hand_over: bool = False) -> None:
        """Stop taking calls and stop writing the store (another node is active).

        ``hand_over`` (the lease was lost while this process runs on): callers who only
        wait go back to the dialplan at once, which retries the active engine with their
        ``ACD_ENTRY``; there they get their place back from the store. Kept here, they
        could be offered to an agent the active engine offers a call to as well."""
        self.accepting = False
        # From now on the core offers no call to anyone (set here, between two events, so
        # even events already in the inbox cannot make this node ring an agent).
        self.core.routing = False
        if hand_over:
            released = self.release_waiting()
            if released:
                log.warning("stepped down: %d waiting call(s) handed back to the dialplan "
                            "for the active engine", released)
        await self._cancel_late_load()
        if self._writer_task is not None:
            self._writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer_task
            self._writer_task = None

    async def quiesce(self) -> None:
        """The first step of a graceful stop: take no new call, write what the store
        has not seen yet (so the standby takes over with the latest state)."""
        self.accepting = False
        if self._writer_task is not None:
            await self.store_writer.drained(1.0)

    def _release_held(self) -> None:
        """End of the restore hold: held arrivals go to the inbox, oldest first."""
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        now = self.clock()
        for ev in self.restorer.release():
            self.post(replace(ev, now=now))

    # -- the inbox ---------------------------------------------------------------------

    def post(self, event: Event) -> None:
        """Queue an event; safe from any coroutine or callback on the loop."""
        self.inbox.put_nowait(event)

    async def command(self, event: Event) -> None:
        """Apply an operator command in inbox order; raises its DomainError, if any."""
        cmd = _Command(event)
        self.inbox.put_nowait(cmd)
        await cmd.done

    async def flushed(self) -> None:
        """Return once every event posted before this call has been applied."""
        cmd = _Command(None)
        self.inbox.put_nowait(cmd)
        await cmd.done

    async def set_agent_status(self, agent_id: str, status: AgentStatus,
                               reason: str = "") -> None:
        await self.command(SetAgentStatus(agent_id, status, self.clock(), reason))

    async def _run(self) -> None:
        while True:
            item = await self.inbox.get()
            if isinstance(item, _Command):
                if item.event is None:
                    if not item.done.done():
                        item.done.set_result(None)
                    continue
                event = item.event
            else:
                event = item
            if self.restorer.watching:
                held = self.restorer.intercept(event)
                if self.restorer.complete:
                    self._release_held()
                if held is None:
                    continue
                event = held
            try:
                started = time.perf_counter()
                effects = self.core.apply(event)
                self._notify(self.apply_hooks, event, time.perf_counter() - started)
            except DomainError as exc:
                if isinstance(item, _Command) and not item.done.done():
                    item.done.set_exception(exc)
                else:
                    log.warning("rejected %s: %s", type(event).__name__, exc)
                continue
            except Exception:
                # A bug must not stop routing for every other caller.
                log.exception("engine failed to apply %r", event)
                if isinstance(item, _Command) and not item.done.done():
                    item.done.set_exception(RuntimeError("internal error"))
                continue
            self._carry_out(effects)
            if isinstance(item, _Command) and not item.done.done():
                item.done.set_result(None)

    def _carry_out(self, effects: list[Effect]) -> None:
        loop = asyncio.get_running_loop()
        for eff in effects:
            try:
                self._carry_out_one(eff, loop)
            except Exception:
                # A bug in one adapter step must not stop the inbox (every other caller).
                log.exception("engine failed to carry out %r", eff)

    def _carry_out_one(self, eff: Effect, loop: asyncio.AbstractEventLoop) -> None:
        if isinstance(eff, Fact):
            self._publish(eff)
        elif isinstance(eff, Offer):
            self._deliver_offer(eff)
        elif isinstance(eff, CloseCall | ExitCall):
            q = self._sessions.get(eff.call_id)
            if q is not None:
                q.put_nowait(eff)
                self._interrupt(eff.call_id)
        elif isinstance(eff, StartTimer):
            self._start_timer(loop, eff.delay, eff.event)

    def _deliver_offer(self, eff: Offer) -> None:
        q = self._sessions.get(eff.call_id)
        if q is not None and self.lease_valid is not None and not self.lease_valid():
            # Our lease may have run out (this process was paused or cut off): the
            # standby may be active and ringing the same agents. Never ring anyone on a
            # lease we may no longer hold.
            q.put_nowait(RELEASE)
            self.releasing = True
            if self.step_down is not None:
                self.step_down("lease ran out before a renew (process paused or cut off)")
        elif q is None and self.releasing:
            pass  # stopping: a released call re-enters elsewhere; no retry
        elif q is None:
            # Nobody on the line to dial (every live call has a session; this one's is
            # gone): the call ends here. Put back in line it would be offered again at
            # once, to the same free agent, in a loop that starves every other caller.
            log.warning("call %s: offered to %s but has no session; ended as hung up",
                        eff.call_id, eff.agent_id or eff.site_id)
            self.post(CallHungUp(eff.call_id, self.clock()))
        else:
            q.put_nowait(eff)
            self._interrupt(eff.call_id)

    def _interrupt(self, call_id: str) -> None:
        """Stop the prompt the call's session is playing (if any): queue a ``#`` on the
        caller's channel over AMI (``PlayDTMF`` with ``Receive``), which the session's
        ``STREAM FILE``/``SAY`` has as an escape digit. The session then runs the offer."""
        if call_id not in self._announcing:
            return
        call = self.core.calls.get(call_id)
        client = self.amis.get(call.server) if call is not None else None
        if call is None or client is None or not call.channel:
            return  # no AMI: the prompt ends on its own (a second or two)
        task = asyncio.get_running_loop().create_task(
            self._play_dtmf(client, call.channel), name=f"acd-interrupt-{call_id}")
        self._interrupts.add(task)
        task.add_done_callback(self._interrupts.discard)

    async def _play_dtmf(self, client: AMIClient, channel: str) -> None:
        try:
            await client.action("PlayDTMF", {"Channel": channel, "Digit": "#",
                                             "Receive": "true", "Duration": "80"})
        except Exception as exc:  # the prompt ends on its own anyway
            log.warning("could not stop the prompt on %s: %s", channel, exc)

    # -- what a waiting caller is told (acd.runtime.call_flow.Announcer) ---------------

    async def announcement(self, call_id: str) -> tuple[int | None, float | None]:
        """Place and expected wait: the caller's own estimate from a replay that walked
        it, waiting up to a second for one (the replays run in the background)."""
        if self.core.estimates_in_background:
            await self.estimates.covering(call_id, ANNOUNCE_ESTIMATE_WAIT)
        call = self.core.calls.get(call_id)
        if call is None or call.state is not CallState.WAITING:
            return None, None
        now = self.clock()
        return self.core.router.position(call_id), self.view.ewt(call_id, now)

    async def transfer_connected(self, call_id: str, queue_id: str) -> None:
        """An agent's transfer from the desktop: the caller's channel leaves the
        conversation for the hotline context with ``ACD_QUEUE`` set (AMI ``Setvar`` and
        ``Redirect``, both in the engine account's ``call`` class) — what the agent's
        phone does with a blind transfer (SIP REFER) to the queue's code. The caller's
        next FastAGI session re-enters the core with its first entry time and call id:
        the answered leg completes, the caller lines up in ``queue_id`` with its place.
        Raises :class:`TransferFailed` (nothing was moved, or the redirect's answer was
        lost)."""
        call = self.core.calls.get(call_id)
        if call is None or call.state is not CallState.CONNECTED:
            raise TransferFailed("the call is not in conversation")
        client = self.amis.get(call.server)
        if client is None or not call.channel:
            raise TransferFailed("no AMI link to the caller's Asterisk")
        try:
            await client.action("Setvar", {"Channel": call.channel,
                                           "Variable": "ACD_QUEUE", "Value": queue_id})
            await client.action("Redirect", {"Channel": call.channel,
                                             "Context": "hotline-acd", "Exten": "s",
                                             "Priority": "1"})
        except Exception as exc:
            raise TransferFailed(f"Asterisk refused the transfer: {exc}") from None
        log.info("call %s: transferred to %s from the agent desktop", call_id, queue_id)

    async def request_callback(self, call_id: str, number: str) -> bool:
        """The caller of ``call_id`` confirmed ``number``: its callback takes its place
        in line. False when callbacks are off or the core refused it."""
        dialer = self.callback_dialer
        if dialer is None:
            log.warning("call %s: callback asked for, but callbacks are not running",
                        call_id)
            return False
        try:
            await dialer.request(RequestCallback(call_id, number, self.clock()))
        except DomainError as exc:
            log.warning("call %s: callback refused: %s", call_id, exc)
            return False
        return True

    def recording(self, call_id: str) -> tuple[str, str | None] | None:
        """Whether to record this call's conversation (asked before each dial)."""
        if self.recording_hook is None:
            return None
        try:
            return self.recording_hook(call_id)
        except Exception:  # a recording must never hold up a dial
            log.exception("call %s: recording decision failed", call_id)
            return None

    def announcing(self, call_id: str, on: bool) -> None:
        if on:
            self._announcing.add(call_id)
        else:
            self._announcing.discard(call_id)

    def _publish(self, fact: Fact) -> None:
        if events_log.isEnabledFor(logging.INFO):
            events_log.info("%s %s", fact.name, json.dumps(_loggable(fact), default=str))
        if isinstance(fact, CallOffered | CallOverflowed):
            try:
                _log_decision(fact.data)
            except Exception:  # a log line must not stop carrying out
                log.exception("decision line of %s not logged", fact.name)
        for sub in self._subscribers:
            sub.put_nowait(fact)
        self._notify(self.fact_hooks, fact, self.clock())

    def _notify(self, hooks: list[Callable[[Any, float], None]], item: Any,
                value: float) -> None:
        for hook in hooks:
            try:
                hook(item, value)
            except Exception:
                log.exception("observer %r failed", hook)

    def _start_timer(self, loop: asyncio.AbstractEventLoop, delay: float,
                     event: Event) -> None:
        def fire() -> None:
            self._timers.discard(handle)
            self.post(event)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    # -- sessions (used by acd.runtime.call_flow) --------------------------------------

    def qualify_call_id(self, raw: str, server: str) -> str:
        return self.core.qualify_call_id(raw, server)

    def open_session(self, call_id: str,
                     live: Callable[[], bool] | None = None) -> SessionQueue:
        """The queue of a new session for ``call_id``. ``live`` tells whether the
        session's connection is still up; a call id whose session is live (or says
        nothing) raises :class:`SessionTaken`: a second session — a forged one reusing a
        live call's id — never takes the call from the first."""
        if call_id in self._sessions:
            alive = self._session_live.get(call_id)
            if alive is None or alive():
                self.refused_sessions += 1
                raise SessionTaken(call_id)
        q: SessionQueue = asyncio.Queue()
        self._sessions[call_id] = q
        if live is None:
            self._session_live.pop(call_id, None)
        else:
            self._session_live[call_id] = live
        return q

    def close_session(self, call_id: str, q: SessionQueue) -> None:
        if self._sessions.get(call_id) is q:
            del self._sessions[call_id]
            self._session_live.pop(call_id, None)

    def has_session(self, call_id: str) -> bool:
        return call_id in self._sessions

    def release_waiting(self) -> int:
        """Release every session whose call is not offered or connected (waiting, or
        not yet routed): it returns without ACD_RESULT and is not counted abandoned."""
        self.releasing = True
        released = 0
        for call_id, q in list(self._sessions.items()):
            call = self.core.calls.get(call_id)
            if call is None or call.state is CallState.WAITING:
                q.put_nowait(RELEASE)
                released += 1
        return released

    # -- observers ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Fact]]:
        q: asyncio.Queue[Fact] = asyncio.Queue()
        self._subscribers.add(q)
        try:
            yield q
        finally:
            self._subscribers.discard(q)

    def snapshot(self) -> dict[str, Any]:
        return self.view.snapshot(self.clock())


def _loggable(fact: Fact) -> Mapping[str, Any]:
    """A fact for the INFO log: a caller's number stays out (ids and regions are enough;
    ``acd.events`` at DEBUG has it)."""
    data = fact.data
    if "caller" in data and not events_log.isEnabledFor(logging.DEBUG):
        data["caller"] = "*" if data["caller"] else ""
    return data


#: One line per offer: the decision and why the other agents did not get the call.
decision_log = logging.getLogger("acd.decision")


def _log_decision(d: Mapping[str, Any]) -> None:
    """The ``acd.decision`` line of one offer (ids only: never a caller number)."""
    if not decision_log.isEnabledFor(logging.INFO):
        return
    excluded = d.get("excluded")
    why = named = ""
    if isinstance(excluded, Mapping):
        why = f"; {excluded.get('summary', '')}"
        texts = [str(r.get("text")) for r in excluded.get("runners_up") or ()]
        named = f"; runners-up: {'; '.join(texts)}" if texts else ""
    sites = d.get("excluded_sites")
    if sites:
        why += "; other sites: " + "; ".join(f"{e.get('site')}: {e.get('reason')}"
                                              for e in sites)
    target = f"agent {d.get('agent')}" if d.get("agent") else f"site {d.get('site')}"
    decision_log.info("call %s queue %s stage %s attempt %s -> %s by %s among %s "
                      "candidate(s)%s%s", d.get("call_id"), d.get("queue"), d.get("stage"),
                      d.get("attempt"), target, d.get("strategy"), d.get("candidates"),
                      why, named)
