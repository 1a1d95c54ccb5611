"""What the domain needs to know of the configuration, as frozen values.

Built once from the validated YAML (``acd.config.settings.settings_from``); the domain
never sees pydantic. Lookups are dicts (a queue by id is O(1), not a scan of the list),
schedules are compiled (``routing.hours.Schedule``), numbers are normalised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from acd.domain.callbacks import CallbackSettings
from routing.hours import Schedule
from routing.model import QueueSpec
from routing.partners import PartnerSite, PartnerStages, RegionRule
from routing.segments import SegmentTable


class RonaAction(StrEnum):
    """What happens to an agent who does not answer an offered call."""

    PAUSE = "pause"  # paused with the configured reason until the agent makes itself ready
    READY = "ready"  # stays available (not recommended: the next caller rings the same void)


class ClosedAction(StrEnum):
    MESSAGE = "message"  # play a message, then hang up
    VOICEMAIL = "voicemail"  # leave a message in a mailbox


class OnClose(StrEnum):
    """What becomes of callers already waiting when their queue closes (its hours)."""

    STAY = "stay"  # they stay and are served by whoever is still open (sites, partners)
    CLOSED = "closed"  # they get the queue's closed action (message or voicemail)


class ExitTo(StrEnum):
    """Where a caller goes when it leaves a queue's line early."""

    QUEUE = "queue"  # another queue, keeping its entry time
    PARTNER = "partner"  # a partner site offering the service (covering the caller first)
    VOICEMAIL = "voicemail"  # leave a message in the queue's mailbox
    CALLBACK = "callback"  # be called back keeping its place (outbound callbacks)
    MESSAGE = "message"  # a closing message, then the call ends


class SiteKind(StrEnum):
    OWN = "own"
    PARTNER = "partner"


@dataclass(frozen=True, slots=True)
class ClosedSettings:
    action: ClosedAction = ClosedAction.MESSAGE
    sound: str = "vm-goodbye"
    mailbox: str | None = None


@dataclass(frozen=True, slots=True)
class ExitAction:
    to: ExitTo
    queue: str | None = None
    mailbox: str | None = None
    sound: str = "vm-goodbye"


@dataclass(frozen=True, slots=True)
class ExitSettings:
    """When a caller leaves the line early (limits, or its own key) and where it goes."""

    max_wait: float | None = None
    max_waiting: int | None = None
    max_ewt: float | None = None
    action: ExitAction | None = None
    key: str | None = None
    key_action: ExitAction | None = None
    key_prompt: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AnnounceSettings:
    """What waiting callers are told, and when."""

    position: bool = True
    ewt: bool = True
    first_after: float = 0.0
    every: float = 60.0
    #: Sound names: first_in_line, position_before, position_after, wait_before,
    #: less_than, minute, minutes, thanks.
    sounds: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueueSettings:
    id: str
    name: str
    #: Skill → minimum level at stage 0.
    skills: Mapping[str, int]
    priority: int
    sl_target: float
    wrap_up: float
    moh_class: str
    #: The routing core's view (stages, strategy, groups).
    spec: QueueSpec
    schedule: Schedule
    closed: ClosedSettings = ClosedSettings()
    #: Talk time to assume before enough calls are measured (EWT); None: unknown.
    expected_handle_time: float | None = None
    exits: ExitSettings = ExitSettings()
    announce: AnnounceSettings | None = None
    #: Asterisk's language of the queue's prompts (sounds/<language>/…, SAY NUMBER);
    #: None: the channel keeps the one the dialplan set (the DID's or the hotline's).
    language: str | None = None
    #: When the queue's stages add partner sites; None: its stages name none (the
    #: regions' defaults apply).
    partner_stages: PartnerStages | None = None
    #: The last stage's action: (seconds of waiting, what becomes of the caller).
    last_resort: tuple[float, ExitAction] | None = None
    #: Callers already waiting when the queue closes.
    on_close: OnClose = OnClose.STAY

    @property
    def label(self) -> str:
        return self.name or self.id


@dataclass(frozen=True, slots=True)
class AgentSettings:
    id: str
    name: str
    #: ``PJSIP/<endpoint>``.
    device: str
    server: str
    skills: Mapping[str, int]
    groups: frozenset[str] = frozenset()
    #: Logged in (available) when the engine starts.
    starts_available: bool = True


@dataclass(frozen=True, slots=True)
class SiteSettings:
    """An own centre or a partner site. ``partner`` is set for partner sites: what the
    routing policy needs (dial string, capacity, coverage, services, preference)."""

    id: str
    name: str
    kind: SiteKind
    capacity: int
    regions: frozenset[str]
    services: frozenset[str]
    preference: int
    schedule: Schedule
    partner: PartnerSite | None = None
    #: ``PJSIP/<trunk endpoint>`` of a partner site.
    trunk_device: str = ""


@dataclass(frozen=True, slots=True)
class AreaCodePrompt:
    prompt: str = "vm-enter-num-to-call"
    timeout: float = 6.0
    max_digits: int = 4


@dataclass(frozen=True, slots=True)
class RegionSettings:
    default: str = "CN-UNKNOWN"
    overflow_after: float = 30.0
    any_partner_after: float | None = None
    #: Regions whose partner is primary (partner first, own agents as backup).
    primary: frozenset[str] = frozenset()
    #: Region → its own overflow wait (else ``overflow_after``).
    overflow_waits: Mapping[str, float] = field(default_factory=dict)
    #: Regions with a configured policy (shown even before their first call).
    policy_regions: tuple[str, ...] = ()
    ask_area_code: AreaCodePrompt | None = None
    #: Normalised caller number → region.
    overrides: Mapping[str, str] = field(default_factory=dict)

    def rule(self, region: str, partner_first: bool = False,
             stages: PartnerStages | None = None) -> RegionRule:
        """The partners one caller may go to as it waits: when its queue's ``stages``
        add them (else the defaults ``overflow_after`` and ``any_partner_after``); the
        region's own wait, if it has one, wins for the covering partners.
        ``partner_first``: the queue was closed and an open partner covers the caller:
        partners go first."""
        primary = partner_first or region in self.primary
        if stages is None:
            stages = PartnerStages(self.overflow_after, self.any_partner_after)
        covering, any_after, sites = stages.covering, stages.any, stages.sites
        return RegionRule(primary=primary,
                          overflow_after=self.overflow_waits.get(region, covering),
                          any_after=any_after, sites=sites)


@dataclass(frozen=True, slots=True)
class MenuSettings:
    """The IVR: one DTMF key chooses the queue."""

    prompt: str = "dir-welcome"
    timeout: float = 5.0
    #: Key → queue id.
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EntrySettings:
    """How a caller reaches a queue."""

    #: Normalised DID → queue id.
    dids: Mapping[str, str]
    #: The queue of a call nothing else decides.
    default_queue: str
    menu: MenuSettings | None = None
    segments: SegmentTable = field(default_factory=lambda: SegmentTable(()))


@dataclass(frozen=True, slots=True)
class EngineSettings:
    ring_timeout: int = 15
    rona_action: RonaAction = RonaAction.PAUSE
    rona_pause_reason: str = "no-answer"
    rona_limit: int = 1
    pause_reasons: tuple[str, ...] = ("break", "lunch", "training", "meeting", "after-call")
    unreachable_retry: float = 30.0
    explain_offers: bool = True

    @property
    def allowed_pause_reasons(self) -> frozenset[str]:
        return frozenset({*self.pause_reasons, self.rona_pause_reason})


@dataclass(frozen=True, slots=True)
class DeskSettings:
    """What agents may do after a call (the desktop's wrap-up tools)."""

    #: Seconds one extension adds; a wrap-up never lasts longer than ``wrap_up_max``
    #: from its start, its extensions included.
    wrap_up_extend: float = 30.0
    wrap_up_max: float = 300.0
    #: The disposition codes an agent may give (empty: any code, or none).
    dispositions: tuple[str, ...] = ()
    note_max: int = 2000


@dataclass(frozen=True, slots=True)
class Settings:
    #: Queue id → settings, in configuration order.
    queues: Mapping[str, QueueSettings]
    #: Agent id → settings, in configuration order.
    agents: Mapping[str, AgentSettings]
    #: Site id → settings (own and partner), in configuration order.
    sites: Mapping[str, SiteSettings]
    entry: EntrySettings
    regions: RegionSettings = RegionSettings()
    engine: EngineSettings = EngineSettings()
    #: Asterisk server names; the first is the default.
    servers: tuple[str, ...] = ("main",)
    timezone: str = "Asia/Shanghai"
    desk: DeskSettings = DeskSettings()
    #: Outbound callbacks (acd.domain.callbacks); None: off.
    callbacks: CallbackSettings | None = None

    def __post_init__(self) -> None:
        for name in ("queues", "agents", "sites"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        if not self.queues:
            raise ValueError("settings need at least one queue")
        if not self.servers:
            raise ValueError("settings need at least one Asterisk server")

    @property
    def partners(self) -> tuple[SiteSettings, ...]:
        """Partner sites, most preferred first."""
        return tuple(sorted((s for s in self.sites.values() if s.partner is not None),
                            key=lambda s: -s.preference))

    def with_engine(self, **changes: object) -> Settings:
        """A copy with some engine settings changed (e.g. a simulation without
        per-offer explanations)."""
        from dataclasses import replace

        return replace(self, engine=replace(self.engine, **changes))  # type: ignore[arg-type]
