"""Several Asterisk servers feeding one engine.

An agent is dialled from the caller's own channel, so a call may only go to agents on
its own Asterisk. With more than one server each queue is split into one router queue
per server (``<queue>@<server>``) and every group is qualified by server
(``<group>@<server>``; every agent also carries ``@<server>``), so stages still only
widen. Uniqueids and call ids (the caller channel's Uniqueid) are unique per Asterisk
only: they are qualified by the server too. With one server nothing is renamed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from acd.domain.settings import AgentSettings
from routing.model import AgentSpec, QueueSpec


class Servers:
    def __init__(self, names: Sequence[str]) -> None:
        if not names:
            raise ValueError("at least one Asterisk server")
        self.names = tuple(names)
        self._known = frozenset(self.names)
        self.default = self.names[0]
        self.split = len(self.names) > 1

    def of(self, name: str) -> str:
        """The server a name stands for ("" or unknown: the default)."""
        return name if name in self._known else self.default

    def router_queue(self, queue_id: str, server: str) -> str:
        """The router's queue for a call of ``queue_id`` on ``server``."""
        return f"{queue_id}@{server}" if self.split else queue_id

    def channel_key(self, server: str, uniqueid: str) -> str:
        return f"{server}/{uniqueid}" if self.split else uniqueid

    def qualify_call_id(self, raw: str, server: str) -> str:
        """The engine-wide id of a call (ACD_CALL_ID is the caller channel's Uniqueid,
        unique per Asterisk only: with several servers it is qualified by the server)."""
        return f"{self.of(server)}/{raw}" if self.split else raw

    def router_specs(self, queues: Iterable[QueueSpec], agents: Iterable[AgentSettings],
                     ) -> tuple[list[QueueSpec], list[AgentSpec]]:
        """The router's queues and agents (split per server when there are several)."""
        queue_specs = list(queues)
        agent_list = list(agents)
        if not self.split:
            return (queue_specs,
                    [AgentSpec(a.id, dict(a.skills), a.groups) for a in agent_list])
        all_groups = {g for a in agent_list for g in a.groups}
        for q in queue_specs:
            all_groups |= set(q.groups or ()) | {g for st in q.stages for g in st.groups or ()}

        def qualify(groups: frozenset[str] | None, srv: str) -> frozenset[str]:
            # None (every agent) → every agent of that server; a set → the same groups on
            # that server.
            if groups is None:
                return frozenset({f"@{srv}"} | {f"{g}@{srv}" for g in all_groups})
            return frozenset(f"{g}@{srv}" for g in groups)

        split_queues = [
            replace(spec, queue_id=self.router_queue(spec.queue_id, srv),
                    groups=qualify(spec.groups, srv),
                    stages=tuple(replace(st, groups=qualify(st.groups, srv))
                                 for st in spec.stages))
            for spec in queue_specs for srv in self.names
        ]
        split_agents = [
            AgentSpec(a.id, dict(a.skills),
                      frozenset({f"@{a.server}"} | {f"{g}@{a.server}" for g in a.groups}))
            for a in agent_list
        ]
        return split_queues, split_agents
