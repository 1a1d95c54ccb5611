"""From the validated YAML to the domain's frozen settings (``acd.domain.settings``).

The one place that knows both sides: the domain never imports pydantic, and the schema
never decides policy.
"""

from __future__ import annotations

from acd.config.schema import (
    AnnounceConfig,
    Config,
    ExitActionConfig,
    ExitsConfig,
    PartnerMode,
    StageConfig,
)
from acd.domain.settings import (
    AgentSettings,
    AnnounceSettings,
    AreaCodePrompt,
    ClosedAction,
    ClosedSettings,
    DeskSettings,
    EngineSettings,
    EntrySettings,
    ExitAction,
    ExitSettings,
    ExitTo,
    MenuSettings,
    QueueSettings,
    RegionSettings,
    Settings,
    SiteSettings,
)
from routing.hours import Schedule
from routing.numbers import normalise_did
from routing.partners import PartnerSite, PartnerStages


def settings_from(config: Config) -> Settings:
    tz = config.timezone
    queues = {
        q.id: QueueSettings(
            id=q.id, name=q.name, skills=dict(q.skills), priority=q.priority,
            sl_target=float(q.sl_target), wrap_up=q.wrap_up, moh_class=q.moh_class,
            spec=q.spec(), schedule=Schedule.build(tz, q.hours, q.holidays, q.workdays),
            closed=ClosedSettings(
                q.closed.action,
                _sound(q.closed.sound, q.closed.action is ClosedAction.VOICEMAIL),
                q.closed.mailbox),
            expected_handle_time=q.expected_handle_time,
            exits=_exits(q.exits), announce=_announce(q.announce), language=q.language,
            partner_stages=_partner_stages(q.stages), last_resort=_last_resort(q.stages),
            on_close=q.on_close)
        for q in config.queues
    }
    agents = {
        a.id: AgentSettings(
            id=a.id, name=a.name, device=f"PJSIP/{a.sip_endpoint}",
            server=config.agent_server(a), skills=dict(a.skills), groups=frozenset(a.groups),
            starts_available=a.status == "available")
        for a in config.agents
    }
    sites = {}
    for s in config.sites:
        partner = None
        trunk_device = ""
        if s.trunk is not None and s.number:
            partner = PartnerSite(s.id, f"PJSIP/{s.number}@{s.trunk_endpoint}", s.capacity,
                                  frozenset(s.regions), frozenset(s.services), s.preference)
            trunk_device = f"PJSIP/{s.trunk_endpoint}"
        sites[s.id] = SiteSettings(
            id=s.id, name=s.name, kind=s.kind, capacity=s.capacity,
            regions=frozenset(s.regions), services=frozenset(s.services),
            preference=s.preference,
            schedule=Schedule.build(tz, s.hours, s.holidays, s.workdays),
            partner=partner if s.kind.value == "partner" else None,
            trunk_device=trunk_device if s.kind.value == "partner" else "")
    regions = config.regions
    ask = regions.ask_area_code
    region_settings = RegionSettings(
        default=regions.default, overflow_after=regions.overflow_after,
        any_partner_after=regions.any_partner_after,
        primary=frozenset(code for code, p in regions.policies.items()
                          if p.mode is PartnerMode.PRIMARY),
        overflow_waits={code: p.after for code, p in regions.policies.items()
                        if p.after is not None},
        policy_regions=tuple(sorted(regions.policies)),
        ask_area_code=None if ask is None else AreaCodePrompt(ask.prompt, ask.timeout,
                                                              ask.max_digits),
        overrides=dict(regions.overrides))
    ivr = config.ivr
    default_queue = config.default_queue or config.queues[0].id
    entry = EntrySettings(
        dids={(normalise_did(did) or did): d.queue for did, d in config.dids.items()
              if d.queue is not None},
        default_queue=default_queue,
        menu=None if ivr is None else MenuSettings(ivr.prompt, ivr.timeout, dict(ivr.options)),
        segments=config.segment_table())
    engine = config.engine
    return Settings(
        queues=queues, agents=agents, sites=sites, entry=entry, regions=region_settings,
        engine=EngineSettings(
            ring_timeout=engine.ring_timeout, rona_action=engine.rona_action,
            rona_pause_reason=engine.rona_pause_reason, rona_limit=engine.rona_limit,
            pause_reasons=tuple(engine.pause_reasons),
            unreachable_retry=engine.unreachable_retry, explain_offers=engine.explain_offers),
        servers=tuple(s.name for s in config.asterisk.server_list),
        timezone=tz,
        desk=DeskSettings(
            wrap_up_extend=config.desktop.wrap_up_extend,
            wrap_up_max=config.desktop.wrap_up_max,
            dispositions=tuple(d.code for d in config.desktop.dispositions),
            note_max=config.desktop.note_max),
        callbacks=(config.callbacks.settings(config.timezone)
                   if config.callbacks is not None else None))


def _action(a: ExitActionConfig | None) -> ExitAction | None:
    if a is None:
        return None
    return ExitAction(a.to, a.queue, a.mailbox, _sound(a.sound, a.to is ExitTo.VOICEMAIL))


def _partner_stages(stages: list[StageConfig]) -> PartnerStages | None:
    """When the stages add partners; None when none does (the regions' defaults)."""
    if not any(st.partners is not None for st in stages):
        return None
    covering = next((st.after for st in stages if st.partners == "covering"), None)
    any_after = next((st.after for st in stages if st.partners == "any"), None)
    sites = tuple(sorted(((st.after, frozenset(st.partners)) for st in stages
                          if isinstance(st.partners, list)), key=lambda step: step[0]))
    return PartnerStages(covering, any_after, sites)


def _last_resort(stages: list[StageConfig]) -> tuple[float, ExitAction] | None:
    for st in stages:
        action = _action(st.action)
        if action is not None:
            return st.after, action
    return None


def _exits(e: ExitsConfig) -> ExitSettings:
    return ExitSettings(max_wait=e.max_wait, max_waiting=e.max_waiting, max_ewt=e.max_ewt,
                        action=_action(e.action), key=e.key, key_action=_action(e.key_action),
                        key_prompt=tuple(e.key_prompt))


def _announce(a: AnnounceConfig | None) -> AnnounceSettings | None:
    if a is None:
        return None
    return AnnounceSettings(position=a.position, ewt=a.ewt, first_after=a.first_after,
                            every=a.every, sounds=a.sounds.model_dump())


def _sound(sound: str | None, voicemail: bool) -> str:
    """The sound before the call ends: the configured one; unset, ``vm-goodbye`` for a
    closing message and nothing before a voicemail (the mailbox greets the caller)."""
    if sound is not None:
        return sound
    return "" if voicemail else "vm-goodbye"
