"""Sign-in sessions for the agent desktop and the supervisor console (issue 13.1).

A person signs in with its id and PIN/password (hashes in the config:
``agents[].pin_hash``, ``supervision.supervisors[].password_hash``) and gets a session:

* a random 256-bit id in an **HttpOnly, SameSite=Strict** cookie (``Secure`` behind TLS),
  kept server-side only as its SHA-256 digest; a new id at every sign-in (no fixation:
  a cookie the browser already had is never promoted to a session);
* it expires after ``desktop.session_ttl`` and is revocable (sign-out, a supervisor's
  logout of the agent, a sign-in elsewhere with ``second_sign_in: replace``);
* **one per person**: a second sign-in ends the first, or is refused
  (``second_sign_in: refuse`` → 409 ``signed_in_elsewhere``);
* **CSRF**: every state-changing request made with the cookie must carry the session's
  CSRF token in ``X-CSRF-Token`` (the page reads it from ``GET /api/v1/session``); a
  cross-site page can neither read it nor set the header without a CORS preflight the
  API never grants. Sign-in itself must be ``application/json`` (no HTML form can post
  it) and comes from the same origin (``Origin``, when the browser sends it).

Bearer tokens (``api.tokens``) stay for integrations; they need no CSRF token (a browser
never attaches them by itself).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from acd.config import ApiRole, Config
from acd.config.schema import SecondSignIn
from acd.domain import DomainError
from api.auth import Principal

COOKIE = "acd_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SignInRefused(DomainError):
    """The person is signed in elsewhere and ``second_sign_in`` is ``refuse``."""

    code = "signed_in_elsewhere"


@dataclass(slots=True)
class Session:
    digest: bytes
    principal: Principal
    csrf: str
    created: float
    expires: float


@dataclass(frozen=True, slots=True)
class Credential:
    """Who may sign in: the principal the session acts as, and the hash to check."""

    principal: Principal
    hashed: str | None


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).digest()


def person_key(principal: Principal) -> str:
    return principal.name


@dataclass
class SessionStore:
    ttl: float = 43_200.0
    second_sign_in: SecondSignIn = SecondSignIn.REPLACE
    clock: Callable[[], float] = time.time
    _by_digest: dict[bytes, Session] = field(default_factory=dict)
    _by_person: dict[str, bytes] = field(default_factory=dict)
    #: Sessions ended because the person signed in elsewhere: their page says so.
    replaced: int = 0

    def __len__(self) -> int:
        self._sweep()
        return len(self._by_digest)

    def create(self, principal: Principal) -> tuple[str, Session]:
        """A new session (new random id) for ``principal``; check first: the rules on a
        second sign-in, then end the old session if it is replaced."""
        self._sweep()
        key = person_key(principal)
        old = self._by_person.get(key)
        if old is not None and self.second_sign_in is SecondSignIn.REFUSE:
            raise SignInRefused(f"{principal.name} is signed in elsewhere; sign out there "
                                "first (or ask a supervisor)")
        if old is not None:
            self._drop(old)
            self.replaced += 1
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(_digest(session_id), principal, secrets.token_urlsafe(24), now,
                          now + self.ttl)
        self._by_digest[session.digest] = session
        self._by_person[key] = session.digest
        return session_id, session

    def lookup(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 128:
            return None
        session = self._by_digest.get(_digest(session_id))
        if session is None:
            return None
        if session.expires <= self.clock():
            self._drop(session.digest)
            return None
        return session

    def end(self, session_id: str | None) -> bool:
        session = self.lookup(session_id)
        if session is None:
            return False
        self._drop(session.digest)
        return True

    def end_for(self, name: str) -> bool:
        """End the session of the person (``agent:1001``, ``supervisor:zhang``)."""
        digest = self._by_person.get(name)
        if digest is None:
            return False
        self._drop(digest)
        return True

    def signed_in(self) -> list[str]:
        self._sweep()
        return sorted(self._by_person)

    def _drop(self, digest: bytes) -> None:
        session = self._by_digest.pop(digest, None)
        if session is not None:
            self._by_person.pop(person_key(session.principal), None)

    def _sweep(self) -> None:
        now = self.clock()
        for digest in [d for d, s in self._by_digest.items() if s.expires <= now]:
            self._drop(digest)


def csrf_ok(session: Session, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(
        presented.encode("utf-8", "surrogateescape"), session.csrf.encode("ascii"))


class Credentials:
    """The people who may sign in on a page, from the config (hashes only)."""

    def __init__(self, config: Config) -> None:
        self._people: dict[tuple[str, str], Credential] = {}
        for agent in config.agents:
            self._people[("agent", agent.id)] = Credential(
                Principal(f"agent:{agent.id}", ApiRole.AGENT, agent.id), agent.pin_hash)
        for sup in config.supervisors:
            self._people[("supervisor", sup.id)] = Credential(
                scoped_principal(config, f"supervisor:{sup.id}", sup.role, sup.id),
                sup.password_hash)

    def get(self, kind: str, person_id: str) -> Credential | None:
        return self._people.get((kind, person_id))


def scoped_principal(config: Config, name: str, role: ApiRole,
                     supervisor_id: str | None) -> Principal:
    """A supervisor's (or admin's) principal with its scope from the config: the queues
    and sites it covers, and the agents those take in (all when unscoped)."""
    sup = config.supervision.supervisor(supervisor_id) if (
        config.supervision is not None and supervisor_id) else None
    if sup is None or (sup.queues is None and sup.sites is None):
        return Principal(name, role, None, supervisor=supervisor_id)
    queues = frozenset(sup.queues) if sup.queues is not None else frozenset(
        q.id for q in config.queues)
    sites = frozenset(sup.sites) if sup.sites is not None else None
    agents = frozenset(
        a.id for a in config.agents
        if (sites is None or sites & set(a.groups))
        and any(all(a.skills.get(s, 0) >= lvl for s, lvl in config.queue(q).skills.items())
                for q in queues))
    return Principal(name, role, None, supervisor=supervisor_id, queues=queues,
                     sites=sites, agents=agents)


def scope_map(config: Config) -> Mapping[str, Principal]:
    """Supervisor id → its scoped principal (tokens bound to a supervisor use it)."""
    return {s.id: scoped_principal(config, s.id, s.role, s.id) for s in config.supervisors}
