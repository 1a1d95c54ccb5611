"""Agents' phone feature codes (issue 13.3): ``*50`` log in, ``*51`` log out, ``*52``
pause (the first of ``engine.pause_reasons``), ``*53`` ready — configurable
(``desktop.feature_codes``).

The dialplan (``[acd-features]``, generated into ``extensions_acd.conf`` and included in
the agents' context ``[acd-agents]``) runs ``AGI(<engine>/feature,<action>)``. Here the
agent is identified by the **endpoint its channel belongs to** (``CHANNEL(endpoint)``,
as Asterisk authenticated it) — never by anything it dialled — and the same domain
command the API uses goes through the engine's inbox. A prompt confirms the new state
(``desktop.feature_sounds``), or says it was not taken; ``ACD_FEATURE_RESULT`` is set
to ``OK`` or ``REFUSED`` for the dialplan.

I/O only: no policy here (the domain decides, as for ``POST /agents/{id}/state``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping

from acd.config import Config
from acd.domain import AgentLogin, AgentStatus, DomainError, Event, SetAgentStatus
from acd.runtime.engine import Engine
from acd.runtime.fastagi import AGISession

log = logging.getLogger("acd.features")

ACTIONS = ("login", "logout", "pause", "ready")
#: ``PJSIP/agent8001-0000002a`` → ``agent8001`` (when CHANNEL(endpoint) is unavailable).
_CHANNEL = re.compile(r"^PJSIP/(?P<endpoint>[A-Za-z0-9_.:-]+)-[0-9a-f]+$")
COMMAND_TIMEOUT = 5.0


class FeatureCodes:
    """Endpoint → agent, and what each action does, from the config."""

    def __init__(self, config: Config) -> None:
        self.agents: Mapping[str, str] = {a.sip_endpoint: a.id for a in config.agents}
        reasons = config.engine.pause_reasons
        self.pause_reason = reasons[0] if reasons else "break"
        self.sounds = config.desktop.feature_sounds

    def event(self, action: str, agent_id: str, now: float) -> Event | None:
        match action:
            case "login":
                return AgentLogin(agent_id, now, "")
            case "logout":
                return SetAgentStatus(agent_id, AgentStatus.LOGGED_OUT, now)
            case "pause":
                return SetAgentStatus(agent_id, AgentStatus.PAUSED, now, self.pause_reason)
            case "ready":
                return SetAgentStatus(agent_id, AgentStatus.AVAILABLE, now)
        return None

    def sound(self, action: str, ok: bool) -> str:
        return str(getattr(self.sounds, action)) if ok else self.sounds.refused


async def endpoint_of(session: AGISession) -> str | None:
    """The endpoint Asterisk matched the calling phone to."""
    value = await session.get_full_variable("${CHANNEL(endpoint)}")
    if value:
        return value
    match = _CHANNEL.match(session.env.channel)
    return match["endpoint"] if match else None


async def handle_feature(engine: Engine, codes: FeatureCodes, session: AGISession) -> None:
    args = session.env.args
    action = args[0] if args else ""
    ok = False
    try:
        endpoint = await endpoint_of(session)
        agent_id = codes.agents.get(endpoint or "")
        event = codes.event(action, agent_id, engine.clock()) if agent_id else None
        if event is None:
            log.warning("feature code %r from %s (endpoint %r): not an agent's phone or "
                        "not an action; refused", action, session.env.channel, endpoint)
        else:
            try:
                await asyncio.wait_for(engine.command(event), COMMAND_TIMEOUT)
                ok = True
                log.info("agent %s: %s from its phone (%s)", agent_id, action, endpoint)
            except DomainError as exc:
                log.info("agent %s: %s from its phone refused: %s", agent_id, action, exc)
            except TimeoutError:
                log.warning("agent %s: %s from its phone: the engine did not answer",
                            agent_id, action)
        await session.set_variable("ACD_FEATURE_RESULT", "OK" if ok else "REFUSED")
        await session.answer()
        await session.exec("Playback", codes.sound(action, ok), timeout=30)
    finally:
        await session.close()


def agi_handler(engine: Engine, config: Config,
                call_handler: Callable[[AGISession], Awaitable[None]]
                ) -> Callable[[AGISession], Awaitable[None]]:
    """The FastAGI handler: ``/feature`` sessions here, every other to the call flow."""
    codes = FeatureCodes(config)

    async def handle(session: AGISession) -> None:
        if session.env.script == "feature":
            await handle_feature(engine, codes, session)
        else:
            await call_handler(session)
    return handle
