"""Listen / whisper / barge (issue 13.4): originate a call to the supervisor's own phone
that runs ``ChanSpy`` on the agent's channel, through the **separate** AMI account
``supervision.ami`` (it may only Originate, into ``[acd-spy]``: ``acd.config.spy``).

One short AMI connection per request (login, Originate with ``Async: true``, logoff):
listening is rare, and the engine's own AMI links never carry an Originate. Nothing is
retried: a failed Originate is reported, never replayed (a retry could ring twice).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping

from acd.config import Config
from acd.runtime.ami_client import AMIClient, AMIError

log = logging.getLogger("acd.spy")

MODES = ("listen", "whisper", "barge")


class SpyFailed(Exception):
    """The Originate could not be placed (AMI down, refused, bad config)."""


async def originate_spy(config: Config, supervisor_id: str, agent_id: str, mode: str,
                        environ: Mapping[str, str] | None = None) -> str:
    """Ring the supervisor's phone into ChanSpy on the agent's channel; the ActionID."""
    sup_cfg = config.supervision
    sup = sup_cfg.supervisor(supervisor_id) if sup_cfg is not None else None
    agent = next((a for a in config.agents if a.id == agent_id), None)
    if sup_cfg is None or sup is None or not sup.endpoint or agent is None \
            or mode not in MODES:
        raise SpyFailed("no phone configured for this supervisor, or no such agent")
    server = next(s for s in config.asterisk.server_list
                  if s.name == config.supervisor_server(sup))
    secret = sup_cfg.ami.secret(environ).get_secret_value()
    client = AMIClient(server.ami.host, server.ami.port, sup_cfg.ami.username, secret,
                       on_event=lambda _ev: None, events="off", connect_timeout=3.0,
                       action_timeout=5.0, ping_interval=60.0)
    await client.start()
    try:
        await client.wait_connected(5.0)
        response = await client.action("Originate", [
            ("Channel", f"PJSIP/{sup.endpoint}"), ("Context", "acd-spy"),
            ("Exten", mode), ("Priority", "1"),
            ("Timeout", str(sup_cfg.ring_timeout * 1000)),
            ("CallerID", f'"{mode} {agent.id}" <{agent.id}>'),
            ("Variable", f"ACD_SPY_TARGET=PJSIP/{agent.sip_endpoint}-"),
            ("Async", "true")])
    except (AMIError, TimeoutError, OSError) as exc:
        raise SpyFailed(f"the Originate was not placed: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    log.info("supervisor %s: %s on agent %s (phone %s)", supervisor_id, mode, agent_id,
             sup.endpoint)
    return response.action_id or ""
