"""Hot standby: two engines, one Redis lease; only the holder takes calls.

Each engine runs :class:`HotStandby`. The lease is ``SET <prefix>:lease <holder> NX PX
<ttl>``; whoever sets it also takes a **fencing token**, in the same Lua script so both
happen or neither: ``<n>:<epoch>``, ``n`` from ``INCR <prefix>:fence_seq`` and ``epoch``
a random value of the acquiring node, written to ``<prefix>:fence``. The random part
keeps tokens from ever repeating, even when Redis loses its data (a restart without
persistence, a failover to a replica that missed the last writes) and the counter starts
again at 1: the token of a node that held the lease before is never current again. The
active engine renews every ttl/3 with a script that extends the lease only if it still
holds it *and* the fence is still its token; a renew answered "no" — or no successful
renew for a whole ttl (Redis out of reach: the other node may already hold it) — makes
it step down at once (``engine.accepting = False``). A passive engine tries to acquire
every ttl/6, so it takes over at most ≈ ttl + ttl/6 after the active one died.

The lease's age counts from when the acquire (or renew) was **sent**, not answered: a
slow answer must not stretch the time this node believes it holds the lease. Activating
the engine (loading the store: up to 3 × ``store.timeout``, longer than the default
ttl) runs in its own task while the lease keeps being renewed; stepping down before it
finished cancels it.

The token also **fences the store**: every store write checks it in the same Lua script
that applies it (acd.runtime.store), so a node that lost the lease without noticing (paused,
cut off from Redis longer than the ttl) cannot overwrite the new active node's state; its
first refused write makes it step down. Nor does it ring an agent once its lease may
have run out (no successful renew for ``VALID_FRACTION`` of the ttl): that offer becomes
a hand-back and the node steps down, before Redis or its renew loop tell it. Stepping
down hands the callers who only wait back to the dialplan at once (they re-enter at the
active node with their place); calls ringing or talking on this node finish here.

While passive the engine's FastAGI server refuses every session at once: the dialplan
then tries the next URL in ``ACD_AGI_URLS``. A graceful stop releases the lease, so the
standby takes over without waiting for the ttl (upgrades: start the new version as
standby, then stop the old one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
import uuid
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger("acd.runtime.ha")

#: The part of the ttl after the last successful renew during which the holder still acts
#: as active (the rest is the margin for clock rate differences and the renew's trip).
VALID_FRACTION = 0.8

#: KEYS: lease, fence, fence sequence. ARGV: holder, ttl (ms), this acquire's epoch.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local token = redis.call('INCR', KEYS[3]) .. ':' .. ARGV[3]
  redis.call('SET', KEYS[2], token)
  return token
end
return false
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """The lease of one node. ``holder`` is ``<node_id>:<incarnation>``: a restarted
    process with the same node id is a new holder and waits for the old lease."""

    def __init__(self, client: aioredis.Redis, node_id: str, ttl: float,
                 prefix: str = "acd") -> None:
        self.client = client
        self.node_id = node_id
        self.holder = f"{node_id}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.ttl_ms = max(1, int(ttl * 1000))
        self.key = f"{prefix}:lease"
        self.fence_key = f"{prefix}:fence"
        self.fence_seq_key = f"{prefix}:fence_seq"
        #: The fencing token (``<n>:<epoch>``) of the lease we hold, or None.
        self.token: str | None = None

    async def acquire(self) -> bool:
        raw = await self.client.eval(_ACQUIRE, 3, self.key, self.fence_key,
                                     self.fence_seq_key, self.holder, str(self.ttl_ms),
                                     secrets.token_hex(8))
        self.token = _text(raw) if raw else None
        return self.token is not None

    async def renew(self) -> bool:
        """Extend our lease; False (and token dropped) when we no longer hold it."""
        if self.token is None:
            return False
        ok = int(await self.client.eval(_RENEW, 2, self.key, self.fence_key,
                                        self.holder, str(self.token), str(self.ttl_ms)))
        if not ok:
            self.token = None
        return bool(ok)

    async def release(self) -> None:
        self.token = None
        await self.client.eval(_RELEASE, 1, self.key, self.holder)

    async def current_fence(self) -> str | None:
        raw = await self.client.get(self.fence_key)
        return _text(raw) if raw is not None else None


def _text(raw: bytes | str | int) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class Activatable(Protocol):
    """What the lease drives: the engine, which takes calls only while active."""

    async def activate(self) -> None: ...

    async def deactivate(self, *, hand_over: bool = False) -> None: ...


class HotStandby:
    """Runs the lease for an engine: activates it on acquire, deactivates on loss."""

    def __init__(self, engine: Activatable, lease: Lease, ttl: float) -> None:
        self.engine = engine
        self.lease = lease
        self.ttl = ttl
        self.active = False
        self._task: asyncio.Task[None] | None = None
        self._redis_down = False
        self._last_renew = 0.0
        #: Wall-clock time of the last takeover (logged as "lease acquired ... at").
        self.acquired_at: float | None = None
        self._stepping: asyncio.Future[None] | None = None
        #: ``engine.activate()`` after a takeover, renewed around (see the docstring).
        self._activating: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="acd-ha")

    @property
    def activating(self) -> bool:
        return self._activating is not None and not self._activating.done()

    async def _cancel_activation(self) -> None:
        task, self._activating = self._activating, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._cancel_activation()
        if self.active:
            self.active = False
            try:
                await asyncio.wait_for(self.lease.release(), self.ttl)
                log.info("lease released by %s", self.lease.node_id)
            except Exception as exc:
                log.warning("lease not released (%s): the standby waits for its ttl", exc)

    async def abandon(self) -> None:
        """Stop renewing without releasing, as if this node had died (tests, drills)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._cancel_activation()
        if self.active:
            self.active = False
            self.lease.token = None
            await self.engine.deactivate()

    async def run(self) -> None:
        while True:
            if self.active:
                await self._renew_once()
                await asyncio.sleep(self.ttl / 3)
            elif await self._try_acquire():
                await asyncio.sleep(self.ttl / 3)  # then renew, while activate() runs
            else:
                await asyncio.sleep(self.ttl / 6)

    async def _try_acquire(self) -> bool:
        sent = time.monotonic()
        try:
            got = await asyncio.wait_for(self.lease.acquire(), self.ttl / 2)
        except Exception as exc:
            self._down(exc)
            return False
        self._up()
        if not got:
            return False
        self.active = True
        self._last_renew = sent  # the lease's ttl runs from the send, not the answer
        self.acquired_at = time.time()
        log.info("lease acquired by %s (fence %s) at %.3f", self.lease.node_id,
                 self.lease.token, self.acquired_at)
        self._activating = asyncio.create_task(self._activate(), name="acd-activate")
        return True

    async def _activate(self) -> None:
        try:
            await self.engine.activate()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("activation failed")
            self.step_down_soon(f"activation failed ({type(exc).__name__})")

    async def _renew_once(self) -> None:
        sent = time.monotonic()
        try:
            ok = await asyncio.wait_for(self.lease.renew(), self.ttl / 3)
        except Exception as exc:
            self._down(exc)
            if not self.lease_valid():
                await self._step_down("no renew for a whole lease time")
            return
        self._up()
        if ok:
            self._last_renew = sent
        else:
            await self._step_down("lease lost (another node holds it)")

    def lease_valid(self) -> bool:
        """Whether this node may still act as the active one: it holds the lease and
        its last successful renew (counted from when it was *sent*) is less than
        ``VALID_FRACTION`` of the ttl ago. Past that, Redis may already have expired it
        and granted it to the standby, even if this process has not heard yet (it was
        paused, or cut off)."""
        return (self.active
                and time.monotonic() - self._last_renew < self.ttl * VALID_FRACTION)

    def step_down_soon(self, why: str) -> None:
        """Step down now rather than at the next renew, from synchronous code: the engine
        found :meth:`lease_valid` false while about to ring someone, or the store refused
        a write with our fencing token (another node holds the lease)."""
        if self.active:
            self._stepping = asyncio.ensure_future(self._step_down(why))

    async def _step_down(self, why: str) -> None:
        if not self.active:
            return
        self.active = False
        self.lease.token = None
        log.warning("%s steps down: %s", self.lease.node_id, why)
        if self._activating is not asyncio.current_task():
            await self._cancel_activation()
        await self.engine.deactivate(hand_over=True)

    def _down(self, exc: BaseException) -> None:
        if not self._redis_down:
            log.warning("lease: Redis unreachable (%s: %s)", type(exc).__name__, exc)
            self._redis_down = True

    def _up(self) -> None:
        if self._redis_down:
            log.info("lease: Redis reachable again")
            self._redis_down = False
