"""The history of one engine: record builder, spool, writer, database, purge job.

Built by the composition root (``app.node``) when the config has ``history:``; one
entry of its exit stack::

    history = History.from_config(config, engine)
    await stack.enter_async_context(history.running())

Inside, the writer is one of the engine's ``fact_hooks``; on the way out it writes what
is left (agents' open intervals closed at that moment) and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import wave
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acd.domain.facts import AgentChanged, CallAbandoned, CallCompleted
from acd.history import RecordBuilder
from acd.history.orphans import close_from_cdr, is_caller_leg
from acd.history.recording import chosen, file_name, wav_seconds
from acd.runtime.history.db import HistoryDB
from acd.runtime.history.spool import Spool
from acd.runtime.history.writer import HistoryWriter

if TYPE_CHECKING:
    from acd.config import Config, HistoryConfig
    from acd.protocol.ami import AMIEvent
    from acd.runtime.engine import Engine

log = logging.getLogger("acd.history")

#: Seconds after a caller channel's first ``Cdr`` event before its record is closed from
#: the CDR (the engine may still be reporting the same end, and every leg arrives).
CDR_SETTLE = 2.0
#: Seconds after a recorded call completes before its file is measured.
RECORDING_SETTLE = 1.0
#: How long the start waits for the database's migrations.
UPGRADE_TIMEOUT = 10.0
#: The interpreter's thread switch interval while history runs (seconds).
SWITCH_INTERVAL = 0.001


def agent_sites(config: Config) -> dict[str, str]:
    """Agent → its own site: the first of its groups that is a site."""
    sites = {s.id for s in config.sites}
    out: dict[str, str] = {}
    for a in config.agents:
        site = next((g for g in a.groups if g in sites), None)
        if site is not None:
            out[a.id] = site
    return out


class History:
    def __init__(self, settings: HistoryConfig, db: HistoryDB, builder: RecordBuilder,
                 spool: Spool, *, active: Callable[[], bool] = lambda: True,
                 seed: Callable[[], list[AgentChanged]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.db = db
        self.builder = builder
        self.clock = clock
        self._seed = seed
        self._was_active = False
        self._active = active
        self.writer = HistoryWriter(builder, db, spool,
                                    flush_interval=settings.flush_interval,
                                    batch_size=settings.batch_size,
                                    active=self._is_active, clock=clock)
        self._purge: asyncio.Task[None] | None = None
        #: The time of the event whose facts are being published (the engine's core).
        self.event_time: Callable[[], float] | None = None
        self._engine: Engine | None = None
        #: Cdr legs of callers' channels, collected until they settle.
        self._cdr: dict[str, list[dict[str, str]]] = {}
        self._default_queue = ""
        #: Calls being recorded: call id → (leg, file name).
        self._recordings: dict[str, tuple[int, str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_config(cls, config: Config, engine: Engine | None = None, *,
                    environ: Mapping[str, str] | None = None,
                    clock: Callable[[], float] = time.time) -> History:
        settings = config.history
        assert settings is not None
        node_id = config.ha.node_id if config.ha is not None else ""
        db = HistoryDB(settings.database_url(environ), timezone=config.timezone,
                       short_abandon=settings.short_abandon, writer_id=node_id)
        builder = RecordBuilder({q.id: float(q.sl_target) for q in config.queues},
                                agent_sites(config))
        if engine is None:
            return cls(settings, db, builder, Spool(Path(settings.spool_dir)), clock=clock)
        pair = config.ha is not None

        def active() -> bool:
            # Only the active engine of a pair records (the passive one has no calls and
            # its agents' states are not the truth).
            return not pair or engine.core.routing or engine.releasing

        history = cls(settings, db, builder, Spool(Path(settings.spool_dir)),
                      active=active, seed=lambda: agent_facts(engine), clock=clock)
        # Facts are timed as the core applied them (the event's ``now``), exactly as
        # the live figures count them — not when the engine got round to publishing.
        history.event_time = lambda: engine.core._now
        history._engine = engine
        history._default_queue = config.default_queue or config.queues[0].id
        return history

    def _is_active(self) -> bool:
        active = self._active()
        if active and not self._was_active:
            self._was_active = True
            # Becoming active: every agent's state as it is now opens its interval.
            if self._seed is not None:
                now = self.event_time() if self.event_time is not None else self.clock()
                for fact in self._seed():
                    self.builder.observe(fact, now)
        elif not active:
            self._was_active = False
        return active

    # -- orphans: calls that ended while no engine saw it (AMI Cdr) -----------------

    def on_ami(self, server: str, ev: AMIEvent) -> None:
        """An AMI observer (``AsteriskLink.observers``): collects the ``Cdr`` events of
        a hotline caller's channel; :data:`CDR_SETTLE` seconds after the first one, if
        this engine never saw the call end, the record is closed from them."""
        if ev.name != "Cdr" or self._engine is None or not self._active():
            return
        headers = dict(ev.headers)
        if not is_caller_leg(headers):
            return
        channel = headers.get("Channel", "")
        core = self._engine.core
        base = channel.rsplit("-", 1)[0]
        if core.agent_for_device(base) is not None or core.partner_for_device(base):
            return  # an agent's or a partner's own leg
        call_id = self._engine.qualify_call_id(headers.get("UniqueID", ""), server)
        if not call_id:
            return
        legs = self._cdr.get(call_id)
        if legs is None:
            self._cdr[call_id] = legs = []
            asyncio.get_running_loop().call_later(CDR_SETTLE, self._close_unseen,
                                                  call_id, server, self.clock())
        legs.append(headers)

    def _close_unseen(self, call_id: str, server: str, ended_at: float) -> None:
        legs = self._cdr.pop(call_id, [])
        if not legs or self.builder.knows(call_id) or self._engine is None:
            return
        close = close_from_cdr(call_id, legs, ended_at)
        core = self._engine.core
        endpoint = close["answered_by"]
        if endpoint:
            agent = core.agent_for_device(f"PJSIP/{endpoint}")
            close["agent"] = agent.agent_id if agent is not None else None
            close["site"] = None if agent is not None else (
                core.partner_for_device(f"PJSIP/{endpoint}") or endpoint)
            close["agent_site"] = self.builder.agent_sites.get(close["agent"] or "")
        queue = self._default_queue
        close.update(queue=queue, sl_target=self.builder.sl_targets.get(queue, 0.0),
                     server=server, at=self.clock())
        log.info("history: call %s ended unseen by this engine (%s): closed from the "
                 "CDR", call_id, "answered by " + endpoint if endpoint else "not answered")
        self.writer.add_close(close)

    def observe(self, fact: Any, now: float) -> None:
        self.writer.observe(fact, now if self.event_time is None else self.event_time())
        if self._recordings and isinstance(fact, CallCompleted | CallAbandoned):
            self._recording_done(fact.call_id, isinstance(fact, CallCompleted))

    # -- recordings: MixMonitor on the caller's channel while it is bridged -------------

    def recording_for(self, call_id: str) -> tuple[str, str | None] | None:
        """``Engine.recording_hook``: asked by the caller's session before each dial.
        A recorded queue's call gets MixMonitor once (option ``b``: it records only
        while the caller is bridged with an agent or a partner, so the hold music and a
        ring-no-answer are not in the file), after the queue's announcement."""
        if self._engine is None or not self.settings.recording or not self._active():
            return None
        call = self._engine.core.calls.get(call_id)
        rec = self.builder.calls.get(call_id)
        if call is None or rec is None or call_id in self._recordings:
            return None
        policy = self.settings.recording.get(call.queue_id)
        if policy is None or not chosen(call_id, policy.mode.value, policy.sample_percent):
            return None
        name = file_name(call_id, rec.leg)
        self._recordings[call_id] = (rec.leg, name)
        return f"{self.settings.recording_path.rstrip('/')}/{name}", policy.announce

    def _recording_done(self, call_id: str, talked: bool) -> None:
        found = self._recordings.pop(call_id, None)
        if found is None or not talked:
            return  # never bridged: MixMonitor wrote (at most) an empty file
        leg, name = found
        # MixMonitor closes the file when the channel leaves the bridge: read it a little
        # later, in a thread.
        asyncio.get_running_loop().call_later(
            RECORDING_SETTLE, lambda: self._spawn(self._measure(call_id, leg, name)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _measure(self, call_id: str, leg: int, name: str) -> None:
        path = Path(self.settings.recordings_dir) / name
        info = await asyncio.to_thread(recording_info, path)
        self.writer.add_close({"kind": "recording", "call_id": call_id, "leg": leg,
                               "recording": {"file": name, **info}})


    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[History]:
        # The schema before the engine takes calls (imports and migrations cost hundreds
        # of ms, not to be paid on a caller's time); a database that is down does not
        # hold up the start: the writer retries, records spool meanwhile.
        try:
            await asyncio.wait_for(asyncio.to_thread(self.db.upgrade), UPGRADE_TIMEOUT)
            self.writer.ready = True
        except Exception as exc:
            log.warning("history database not ready at start (%s: %s): records spool "
                        "until it is", type(exc).__name__, exc)
        # The writer's thread must not hold the interpreter lock for long stretches
        # while the inbox wants it (default switch interval: 5 ms).
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        await self.writer.start()
        self._purge = asyncio.create_task(self._purge_loop(), name="acd-history-purge")
        try:
            yield self
        finally:
            self._purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purge
            for task in list(self._tasks):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.writer.stop()
            await asyncio.to_thread(self.db.close)

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.purge_interval)
            if not self._active():
                continue
            try:
                await self.purge()
            except Exception as exc:
                log.warning("history purge failed (%s: %s)", type(exc).__name__, exc)

    async def purge(self) -> dict[str, Any]:
        return await asyncio.to_thread(purge, self.db, self.settings, self.clock())


def purge(db: HistoryDB, settings: HistoryConfig, now: float) -> dict[str, Any]:
    """The retention job: old records, numbers, notes and recordings (files too)."""
    r = settings.retention
    done = db.purge(now, records_days=r.records_days, numbers_days=r.numbers_days,
                    notes_days=r.notes_days, recordings_days=r.recordings_days)
    base = Path(settings.recordings_dir)
    removed = 0
    for name in done.pop("recording_files"):
        path = base / Path(str(name)).name  # a file name, never a path from the row
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    done["recording_files_removed"] = removed
    if any(done.values()):
        log.info("history purge: %s", done)
    return done


def recording_info(path: Path) -> dict[str, Any]:
    """Length and size of a recording file (None when this engine cannot read it)."""
    try:
        size = path.stat().st_size
        with wave.open(str(path), "rb") as w:
            seconds = wav_seconds((w.getnframes(), w.getframerate(), w.getnchannels(),
                                   w.getsampwidth()))
        return {"seconds": round(seconds, 3), "bytes": size}
    except (OSError, EOFError, wave.Error) as exc:
        log.warning("recording %s not readable here (%s)", path, exc)
        return {"seconds": None, "bytes": None}


def agent_facts(engine: Engine) -> list[AgentChanged]:
    """Every agent's state now, as the facts the builder reads."""
    return [AgentChanged(a.agent_id, a.status.value, a.reason, a.state.value,
                         a.device_shown, a.call_id)
            for a in engine.core.agents.by_id.values()]
