"""Who may open a FastAGI session (docs/security.md, "FastAGI").

Whoever can open a FastAGI session acts as Asterisk: it reports calls with the entry
time and call id it likes, and answers the engine's ``Dial`` with the status it likes.
So before a connection becomes a caller's session, :class:`AGIGuard` checks, in order:

1. **the peer's address** against ``fastagi.allow`` (addresses and networks; default
   loopback only) — at accept, before a byte is read;
2. **a rate of new connections per peer** (token bucket: ``fastagi.limits.peer_rate``/s,
   ``peer_burst`` at once); the cap on sessions open at once (``fastagi.max_sessions``)
   is the server's own (:class:`acd.runtime.fastagi.FastAGIServer`);
3. after the ``agi_*`` environment, **the shared secret**, when ``fastagi.secret_env``
   names one: the engine asks the session ``GET FULL VARIABLE ${ENV(<name>)}`` — the
   real Asterisk evaluates it from its own environment — and compares the answer with
   ``hmac.compare_digest``. The secret never travels in the dialplan, so it reaches
   neither Asterisk's verbose log (``Executing ... AGI(...)``) nor ``core show
   channel``; it never reaches a log line here either.

A refused connection is closed without a word: to the dialplan it looks like an engine
that cannot be reached, so the caller hears hold music and is retried (another engine,
then app_queue) — never dropped. Each refusal is counted by reason
(``acd_fastagi_refused_total``) and logged at most once a minute per peer and reason,
naming the peer, with how many were left out since.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from acd.protocol.agi import quote
from acd.runtime.fastagi import AGIError
from acd.runtime.ratelimit import KeyedBuckets, LogLimiter

if TYPE_CHECKING:
    from acd.runtime.fastagi import AGISession, FastAGIServer

log = logging.getLogger("acd.runtime.fastagi")

#: Why a connection was refused (the ``reason`` label of ``acd_fastagi_refused_total``).
REFUSALS = ("not_allowed", "max_sessions", "peer_rate", "secret", "duplicate_call")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def peer_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The peer's address; an IPv4-mapped IPv6 address (``::ffff:10.0.0.5``) as IPv4."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


class AGIGuard:
    """The checks of the module docstring, and their counters."""

    def __init__(self, allow: Sequence[str], *, peer_rate: float = 0.0, peer_burst: int = 1,
                 secret: str | None = None, secret_env: str = "ACD_AGI_SECRET",
                 secret_timeout: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.networks = parse_networks(allow)
        self.rates = KeyedBuckets(peer_rate, peer_burst, clock=clock) if peer_rate > 0 \
            else None
        self._secret = secret.encode("utf-8") if secret else None
        self._ask = f"GET FULL VARIABLE {quote('${ENV(' + secret_env + ')}')}"
        self.secret_env = secret_env
        self.secret_timeout = secret_timeout
        self.lines = LogLimiter(60.0, clock=clock)
        self.refused = dict.fromkeys(REFUSALS, 0)

    def __repr__(self) -> str:  # never the secret
        return (f"<AGIGuard allow={[str(n) for n in self.networks]} "
                f"secret={'yes' if self._secret else 'no'}>")

    @property
    def asks_secret(self) -> bool:
        return self._secret is not None

    def allowed(self, host: str) -> bool:
        addr = peer_address(host)
        return addr is not None and any(addr in net for net in self.networks)

    def admit(self, host: str) -> str | None:
        """At accept: None to go on, else the reason to refuse (counted and logged)."""
        if not self.allowed(host):
            return self.refuse("not_allowed", host, "not in fastagi.allow")
        if self.rates is not None and not self.rates.take(host):
            return self.refuse("peer_rate", host, "too many new connections "
                               "(fastagi.limits.peer_rate/peer_burst)")
        return None

    async def authenticate(self, session: AGISession) -> bool:
        """After the environment: does the peer know the shared secret? (True when no
        secret is configured.)"""
        if self._secret is None:
            return True
        peer = session.peer
        try:
            reply = await session.command(self._ask, timeout=self.secret_timeout)
        except AGIError as exc:
            self.refuse("secret", peer, f"no answer to the secret check ({exc})")
            return False
        value = reply.data if reply.code == 200 and reply.result == "1" else None
        if not value:
            self.refuse("secret", peer, f"the peer has no {self.secret_env} (set it in "
                                        "Asterisk's environment)")
            return False
        if not hmac.compare_digest(value.encode("utf-8", "surrogateescape"), self._secret):
            self.refuse("secret", peer, f"wrong {self.secret_env}")
            return False
        return True

    def refuse(self, reason: str, peer: str, why: str) -> str:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        left_out = self.lines.allow(f"{reason} {peer} {why}")
        if left_out is not None:
            more = f" ({left_out} more since left out of the log)" if left_out else ""
            log.warning("FastAGI: refused a session from %s: %s%s", peer or "?", why, more)
        return reason


class AGICollector:
    """``acd_fastagi_sessions``, ``acd_fastagi_max_sessions`` (gauges) and
    ``acd_fastagi_refused_total{reason}``: the guard's refusals, the server's
    (``max_sessions``) and the engine's (``duplicate_call``)."""

    def __init__(self, guard: AGIGuard, server: Callable[[], FastAGIServer | None],
                 duplicates: Callable[[], int]) -> None:
        self.guard = guard
        self.server = server
        self.duplicates = duplicates

    def describe(self) -> Iterator[Metric]:
        yield from self.collect()

    def collect(self) -> Iterator[Metric]:
        server = self.server()
        yield GaugeMetricFamily("acd_fastagi_sessions", "FastAGI connections being served "
                                "now (each waiting caller holds one).",
                                value=float(server.active if server is not None else 0))
        yield GaugeMetricFamily("acd_fastagi_max_sessions", "The cap on FastAGI sessions "
                                "open at once (fastagi.max_sessions).",
                                value=float(server.max_sessions if server is not None else 0))
        fam = CounterMetricFamily(
            "acd_fastagi_refused", "FastAGI connections refused: peer not in "
            "fastagi.allow, too many sessions, too many new connections from the peer, "
            "wrong or missing shared secret, a second session for a live call.",
            labels=["reason"])
        counts = dict(self.guard.refused)
        counts["duplicate_call"] = counts.get("duplicate_call", 0) + self.duplicates()
        counts["max_sessions"] = counts.get("max_sessions", 0) + (
            server.refused if server is not None else 0)
        for reason in REFUSALS:
            fam.add_metric([reason], float(counts.get(reason, 0)))
        yield fam
