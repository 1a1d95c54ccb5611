"""The agents: the person's status, the engine's state, the phone — and the router's view.

:class:`AgentBook` holds every agent record and keeps the router in step with it: after
any change, ``refresh`` tells the router whether the agent may be offered a call now
(available, idle, phone free). Every change is announced with an
:class:`~acd.domain.facts.AgentChanged` fact in ``out``.

**Phones.** A phone is free when Asterisk says ``NOT_INUSE``. ``UNKNOWN`` (the engine has
not heard of the device) counts as free only on a server whose device state the engine
cannot learn (no AMI, or AMI lost): with AMI up, a device nobody told us about is not
free. A dial that fails with ``CHANUNAVAIL``/``CONGESTION`` marks the phone unreachable —
not the agent's fault, no pause — until Asterisk reports it coming back (a transition
from not free to free, e.g. it registers) or ``engine.unreachable_retry`` passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from acd.domain.effects import Effect, StartTimer
from acd.domain.errors import UnknownAgent, UnknownPauseReason
from acd.domain.events import DeviceSnapshot, PhoneRecheck, WrapUpDone
from acd.domain.facts import AgentChanged
from acd.domain.records import Agent, AgentState, AgentStatus
from acd.domain.settings import AgentSettings, EngineSettings, RonaAction
from routing import Router

#: Asterisk device states that may count as free (UNKNOWN only without device state).
FREE_DEVICE_STATES = frozenset({"NOT_INUSE", "UNKNOWN"})


class AgentBook(Mapping[str, Agent]):
    """Every agent, by id (a read-only mapping) and by device; mutated only by the core's
    inbox step."""

    def __init__(self, agents: Iterable[AgentSettings], router: Router,
                 engine: EngineSettings, *, device_state_servers: Iterable[str] = ()) -> None:
        self.router = router
        self.engine = engine
        #: Servers whose device state comes over AMI: until it is lost, an UNKNOWN device
        #: there is not free (the engine learns every agent's device at each resync).
        self.device_state_known: set[str] = set(device_state_servers)
        self._agents: dict[str, Agent] = {}
        self._by_device: dict[str, Agent] = {}
        for a in agents:
            agent = Agent(a.id, a.device, server=a.server)
            self._agents[a.id] = agent
            self._by_device[a.device.upper()] = agent
        for agent in self._agents.values():
            agent.phone_free = self.phone_free(agent)
        self._sites_of: dict[str, frozenset[str]] = {}

    # -- lookups ---------------------------------------------------------------------

    @property
    def by_id(self) -> Mapping[str, Agent]:
        return self._agents

    def __getitem__(self, agent_id: str) -> Agent:
        return self._agents[agent_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._agents)

    def __len__(self) -> int:
        return len(self._agents)

    def for_device(self, device: str) -> Agent | None:
        """The agent whose phone is ``device`` (``PJSIP/<endpoint>``, any case)."""
        return self._by_device.get(device.upper())

    def fact(self, agent: Agent) -> AgentChanged:
        return AgentChanged(agent.agent_id, agent.status.value, agent.reason,
                            agent.state.value, agent.device_shown, agent.call_id,
                            agent.site_open)

    # -- own sites' hours --------------------------------------------------------------

    def set_sites(self, sites_of: Mapping[str, frozenset[str]]) -> None:
        """Agent → the own sites it works at (its groups that are own sites' ids)."""
        self._sites_of = {aid: sites for aid, sites in sites_of.items() if sites}

    def sites_open(self, open_sites: frozenset[str], out: list[Effect]) -> None:
        """The own sites open now: an agent of no open site is offered no call (its
        record says why); an agent at no own site is never gated."""
        for agent_id, sites in self._sites_of.items():
            agent = self._agents.get(agent_id)
            if agent is None:
                continue
            now_open = not sites.isdisjoint(open_sites)
            if now_open != agent.site_open:
                agent.site_open = now_open
                self._changed(agent, out)

    # -- the router's view -----------------------------------------------------------

    def phone_free(self, agent: Agent) -> bool:
        """Whether the agent's phone may be rung (see the module docstring)."""
        if agent.unreachable:
            return False
        state = agent.device_state
        return state == "NOT_INUSE" or (state == "UNKNOWN"
                                        and agent.server not in self.device_state_known)

    def refresh(self, agent: Agent) -> None:
        """Keep the router's view of one agent in step with its record."""
        agent.phone_free = self.phone_free(agent)
        if agent.routable:
            self.router.set_routable(agent.agent_id, agent.idle_since,
                                     calls_today=agent.answered)
        else:
            self.router.set_unroutable(agent.agent_id)

    def _changed(self, agent: Agent, out: list[Effect]) -> None:
        self.refresh(agent)
        out.append(self.fact(agent))

    # -- the person's status -----------------------------------------------------------

    def check_status(self, agent_id: str, status: AgentStatus, reason: str) -> Agent:
        """Check first: the agent exists and the pause reason is configured."""
        agent = self._agents.get(agent_id)
        if agent is None:
            raise UnknownAgent(f"unknown agent {agent_id!r}")
        allowed = self.engine.allowed_pause_reasons
        if status is AgentStatus.PAUSED and reason not in allowed:
            raise UnknownPauseReason(
                f"pause reason {reason!r} is not configured (one of: "
                f"{', '.join(sorted(allowed))})")
        return agent

    def set_status(self, agent_id: str, status: AgentStatus, reason: str, now: float,
                   out: list[Effect]) -> None:
        if status is AgentStatus.PAUSED and not reason:
            reason = self.default_pause_reason
        agent = self.check_status(agent_id, status, reason)
        if status is AgentStatus.AVAILABLE:
            agent.consecutive_missed = 0
            # The person says it is there: its phone is worth another try.
            agent.unreachable = False
        self.change_status(agent, status, reason, now, out)

    @property
    def default_pause_reason(self) -> str:
        """A pause with no reason given: the first configured one."""
        reasons = self.engine.pause_reasons
        return reasons[0] if reasons else self.engine.rona_pause_reason

    def login(self, agent_id: str, reason: str, now: float, out: list[Effect]) -> None:
        """Sign in: available, or paused with ``reason``; no change when signed in."""
        agent = self._agents.get(agent_id)
        if agent is None:
            raise UnknownAgent(f"unknown agent {agent_id!r}")
        if agent.status is not AgentStatus.LOGGED_OUT:
            return
        status = AgentStatus.PAUSED if reason else AgentStatus.AVAILABLE
        self.set_status(agent_id, status, reason, now, out)

    def change_status(self, agent: Agent, status: AgentStatus, reason: str, now: float,
                      out: list[Effect]) -> None:
        if agent.status is AgentStatus.LOGGED_OUT and status is not AgentStatus.LOGGED_OUT:
            agent.idle_since = now
        agent.status = status
        agent.reason = reason if status is AgentStatus.PAUSED else ""
        self._changed(agent, out)

    # -- the engine's state ------------------------------------------------------------

    def ring(self, agent: Agent, call_id: str, out: list[Effect]) -> None:
        """The router matched the agent with a call: its phone rings."""
        agent.move(AgentState.RINGING)
        agent.call_id = call_id
        out.append(self.fact(agent))  # the router already took it out of its rings

    def release(self, agent: Agent, now: float, out: list[Effect]) -> None:
        """An offer that ended without fault of the agent: back to idle, not penalised."""
        if agent.state is not AgentState.RINGING:
            return
        agent.call_id = None
        agent.move(AgentState.IDLE)
        agent.idle_since = now
        self._changed(agent, out)

    def connect(self, agent: Agent, out: list[Effect]) -> None:
        """The agent picked up."""
        agent.move(AgentState.ON_CALL)
        agent.answered += 1
        agent.consecutive_missed = 0
        out.append(self.fact(agent))

    def after_call(self, agent: Agent, wrap_up: float, now: float,
                   out: list[Effect]) -> None:
        """The agent's call ended: wrap-up (a timer ends it), or straight back to idle."""
        agent.call_id = None
        agent.wrap_token += 1
        if wrap_up > 0:
            agent.move(AgentState.WRAP_UP)
            agent.wrap_ends = now + wrap_up
            out.append(StartTimer(wrap_up, WrapUpDone(agent.agent_id, agent.wrap_token,
                                                      now + wrap_up)))
            out.append(self.fact(agent))
        else:
            agent.move(AgentState.IDLE)
            agent.idle_since = now
            self._changed(agent, out)

    def wrap_up_done(self, ev: WrapUpDone, out: list[Effect]) -> None:
        agent = self._agents.get(ev.agent_id)
        if agent is None or agent.wrap_token != ev.token or agent.state is not AgentState.WRAP_UP:
            return  # a timer of an earlier wrap-up
        agent.move(AgentState.IDLE)
        agent.idle_since = ev.now
        self._changed(agent, out)

    def no_answer(self, agent: Agent, now: float, out: list[Effect]) -> None:
        """Ring-no-answer: back to idle; after ``rona_limit`` in a row the ``rona_action``
        (pause with its reason) unless the person changed its own status meanwhile."""
        agent.missed += 1
        agent.call_id = None
        agent.move(AgentState.IDLE)
        agent.idle_since = now
        agent.consecutive_missed += 1
        engine = self.engine
        if (engine.rona_action is RonaAction.PAUSE
                and agent.status is AgentStatus.AVAILABLE
                and agent.consecutive_missed >= engine.rona_limit):
            self.change_status(agent, AgentStatus.PAUSED, engine.rona_pause_reason, now, out)
        else:
            self._changed(agent, out)

    def unreachable(self, agent: Agent, now: float, out: list[Effect]) -> None:
        """The phone could not be reached: unavailable until it comes back, no pause."""
        agent.call_id = None
        agent.move(AgentState.IDLE)
        agent.idle_since = now
        agent.unreachable = True
        agent.recheck_token += 1
        retry = self.engine.unreachable_retry
        out.append(StartTimer(retry, PhoneRecheck(agent.agent_id, agent.recheck_token,
                                                  now + retry)))
        self._changed(agent, out)

    def phone_recheck(self, ev: PhoneRecheck, out: list[Effect]) -> None:
        agent = self._agents.get(ev.agent_id)
        if agent is None or not agent.unreachable or agent.recheck_token != ev.token:
            return
        agent.unreachable = False
        self._changed(agent, out)

    # -- phones ------------------------------------------------------------------------

    def device_state(self, device: str, state: str, out: list[Effect]) -> None:
        agent = self.for_device(device)
        if agent is None or agent.device_state == state:
            return
        if agent.unreachable and state in FREE_DEVICE_STATES \
                and agent.device_state not in FREE_DEVICE_STATES:
            # Asterisk saw the phone come back (it registered): try it again now. A
            # plain "free" repeated after the failed dial is no such news.
            agent.unreachable = False
        agent.device_state = state
        self._changed(agent, out)

    def device_snapshot(self, ev: DeviceSnapshot, out: list[Effect]) -> None:
        if ev.server:
            self.set_device_state_known(ev.server, True, out)
        for device, state in ev.states.items():
            self.device_state(device, state, out)

    def set_device_state_known(self, server: str, known: bool, out: list[Effect]) -> None:
        if (server in self.device_state_known) == known:
            return
        if known:
            self.device_state_known.add(server)
        else:
            self.device_state_known.discard(server)
        for agent in self._agents.values():
            if agent.server == server and agent.device_state == "UNKNOWN":
                self._changed(agent, out)
