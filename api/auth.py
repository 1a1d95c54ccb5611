"""Bearer tokens and roles.

Tokens come from the environment variables the config names (``api.tokens[].env``),
never from the file, and are never logged. A presented token is hashed (SHA-256) and
compared with **every** known token's hash by ``hmac.compare_digest``, so the time taken
depends neither on how much of a token matched nor on which entry matched.

* no token, or an unknown one → **401** (``WWW-Authenticate: Bearer``);
* a valid token whose role may not do this → **403**;
* an ``agent`` token acts for exactly one agent: its own state and its own calls.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from acd.config import ApiConfig, ApiRole

log = logging.getLogger("acd.api")

#: Shortest token accepted (generate with ``python -c "import secrets;
#: print(secrets.token_urlsafe(32))"``).
MIN_TOKEN_LENGTH = 16
#: Characters a token may use to travel in ``Sec-WebSocket-Protocol`` (RFC 7230 tchar).
_SUBPROTOCOL_SAFE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name (never its value), role and bound agent; for a
    supervisor, its id and scope (``None``: everything)."""

    name: str
    role: ApiRole
    agent_id: str | None = None
    supervisor: str | None = None
    queues: frozenset[str] | None = None
    sites: frozenset[str] | None = None
    agents: frozenset[str] | None = None
    #: Signed in on a page (a session cookie) rather than a bearer token.
    session: bool = False

    @property
    def is_agent(self) -> bool:
        return self.role is ApiRole.AGENT

    @property
    def scoped(self) -> bool:
        return self.queues is not None or self.sites is not None

    def sees_queue(self, queue_id: str) -> bool:
        return self.queues is None or queue_id in self.queues

    def sees_agent(self, agent_id: str) -> bool:
        if self.is_agent:
            return agent_id == self.agent_id
        return self.agents is None or agent_id in self.agents

    def sees_site(self, site_id: str) -> bool:
        return self.sites is None or site_id in self.sites


class TokenStore:
    def __init__(self, entries: Iterable[tuple[str, Principal]] = ()) -> None:
        self._entries: list[tuple[bytes, Principal]] = []
        for token, principal in entries:
            self._entries.append((_digest(token), principal))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<TokenStore {len(self._entries)} tokens>"

    @classmethod
    def from_config(cls, api: ApiConfig | None,
                    environ: Mapping[str, str] | None = None, *,
                    scopes: Mapping[str, Principal] | None = None) -> TokenStore:
        """Read each configured token from its environment variable. A missing or too
        short token is left out with a warning naming the variable (not the value): the
        engine keeps taking calls rather than refusing to start over one token."""
        entries: list[tuple[str, Principal]] = []
        seen: set[bytes] = set()
        for cfg in api.tokens if api is not None else []:
            secret = cfg.secret(environ)
            if secret is None:
                log.warning("API token %r: environment variable %s is not set; left out",
                            cfg.name, cfg.env)
                continue
            value = secret.get_secret_value()
            if len(value) < MIN_TOKEN_LENGTH:
                log.warning("API token %r: %s is shorter than %d characters; left out",
                            cfg.name, cfg.env, MIN_TOKEN_LENGTH)
                continue
            if _digest(value) in seen:
                log.warning("API token %r: %s holds the same token as another entry; "
                            "left out", cfg.name, cfg.env)
                continue
            if not _SUBPROTOCOL_SAFE.match(value):
                log.warning("API token %r: %s has characters a browser cannot send in "
                            "Sec-WebSocket-Protocol; the wallboard cannot use it",
                            cfg.name, cfg.env)
            seen.add(_digest(value))
            scope = (scopes or {}).get(cfg.supervisor or "")
            entries.append((value, Principal(
                cfg.name, cfg.role, cfg.agent, supervisor=cfg.supervisor,
                queues=scope.queues if scope else None, sites=scope.sites if scope else None,
                agents=scope.agents if scope else None)))
        return cls(entries)

    def authenticate(self, token: str | None) -> Principal | None:
        if not token:
            return None
        digest = _digest(token)
        found: Principal | None = None
        for known, principal in self._entries:  # no early exit: constant work
            if hmac.compare_digest(known, digest) and found is None:
                found = principal
        return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def bearer_from_header(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if it is one."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


#: Prefix of the WebSocket subprotocol that carries the token from a browser.
WS_TOKEN_PREFIX = "bearer."
#: The subprotocol the server selects (the client must offer it alongside the token).
WS_PROTOCOL = "acd.v1"


def bearer_from_subprotocols(protocols: Iterable[str]) -> str | None:
    for proto in protocols:
        if proto.startswith(WS_TOKEN_PREFIX):
            return proto[len(WS_TOKEN_PREFIX):] or None
    return None
