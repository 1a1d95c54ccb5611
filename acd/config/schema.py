"""The ACD configuration: one YAML file, validated by pydantic.

Every error names the file, the key path and (where the YAML gives it) the line, e.g.::

    config/acd.yaml: agents[2].skills.repair (line 41): Input should be less than or equal to 5

Secrets never live in the file: the AMI secret is read from the environment variable the
file names (``asterisk.ami.secret_env``), and is held as a ``SecretStr`` so it does not
show up in reprs or logs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from acd.config.errors import ConfigError, fmt_path
from acd.domain.settings import ClosedAction, RonaAction, SiteKind
from routing.hours import Schedule, parse_days, parse_interval
from routing.model import QueueSpec, StageSpec, Strategy
from routing.numbers import normalise_number
from routing.regions import validate_region_code
from routing.segments import Segment, SegmentTable

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
Identifier = Annotated[str, Field(pattern=_ID)]
SkillLevel = Annotated[int, Field(ge=1, le=5)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AMIConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = "acd"
    #: Name of the environment variable holding the AMI secret (never the secret itself).
    secret_env: str = "ACD_AMI_SECRET"
    connect_timeout: float = Field(default=5.0, gt=0)
    action_timeout: float = Field(default=10.0, gt=0)
    ping_interval: float = Field(default=10.0, gt=0)
    #: Ceiling (seconds) of the reconnect backoff: after an Asterisk restart the engine
    #: is back at most this long after Asterisk is.
    reconnect_max: float = Field(default=10.0, ge=0.2, le=300)

    def secret(self, environ: Mapping[str, str] | None = None) -> SecretStr:
        env = os.environ if environ is None else environ
        value = env.get(self.secret_env)
        if not value:
            raise ConfigError(
                [f"environment: {self.secret_env} is not set (AMI secret for "
                 f"user {self.username!r})"]
            )
        return SecretStr(value)


class AsteriskServerConfig(_Model):
    """One Asterisk of several feeding this engine (``asterisk.servers``)."""

    name: Identifier
    ami: AMIConfig = AMIConfig()


class AsteriskConfig(_Model):
    ami: AMIConfig = AMIConfig()
    #: Several Asterisk servers, one AMI connection each; instead of ``ami`` (which
    #: stands for one server named ``main``). Agents name theirs (``agents[].server``).
    servers: list[AsteriskServerConfig] = Field(default_factory=list)
    #: How the engine's FastAGI URL looks from Asterisk (rendered into the dialplan).
    agi_retries: int = Field(default=5, ge=1, le=100)
    agi_retry_pause: int = Field(default=2, ge=1, le=60)
    fallback_timeout: int = Field(default=300, ge=10)

    @model_validator(mode="after")
    def _unique_server_names(self) -> AsteriskConfig:
        names = [s.name for s in self.servers]
        if len(set(names)) != len(names):
            raise ValueError("asterisk.servers: server names must be unique")
        return self

    @property
    def server_list(self) -> list[AsteriskServerConfig]:
        """The servers, the single ``ami`` form normalised to one server ``main``."""
        return list(self.servers) or [AsteriskServerConfig(name="main", ami=self.ami)]


class FastAGIConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=4573, ge=0, le=65535)
    env_timeout: float = Field(default=5.0, gt=0)



class ClosedConfig(_Model):
    """What a caller gets when the queue is closed (after hours, holiday)."""

    action: ClosedAction = ClosedAction.MESSAGE
    #: Sound file (Asterisk name, no extension) played before hang-up or voicemail.
    sound: str = "vm-goodbye"
    #: ``box@context`` of voicemail.conf, for ``action: voicemail``.
    mailbox: str | None = None

    @model_validator(mode="after")
    def _mailbox_for_voicemail(self) -> ClosedConfig:
        if self.action is ClosedAction.VOICEMAIL and not self.mailbox:
            raise ValueError("action voicemail needs a mailbox (box@context)")
        return self


class StageConfig(_Model):
    """One ring of a queue's bullseye: after ``after`` seconds of waiting, widen."""

    after: float = Field(gt=0)
    #: Lower every required minimum level by this much (never below 1).
    min_level_delta: int = Field(default=0, ge=0, le=4)
    #: Replace the required skills (a subset, at levels no higher).
    skills: dict[Identifier, SkillLevel] | None = None
    #: Admit agents of these groups (sites, teams); omitted: every group.
    groups: list[Identifier] | None = None
    #: Raise the call's priority while it is in this stage.
    priority_boost: int = Field(default=0, ge=0, le=100)


class QueueConfig(_Model):
    id: Identifier
    name: str = ""
    #: Skill → minimum level an agent needs to take calls of this queue.
    skills: dict[Identifier, SkillLevel] = Field(default_factory=dict)
    priority: int = Field(default=0, ge=0, le=100)
    #: Service-level target: answered within this many seconds.
    sl_target: int = Field(default=20, ge=1)
    wrap_up: float = Field(default=5.0, ge=0, le=3600)
    strategy: Strategy = Strategy.LONGEST_IDLE
    moh_class: str = "default"
    #: Opening hours: days (``mon-fri``, ``sat``, ``daily``) → ``HH:MM-HH:MM`` or a list
    #: of them, in the config's ``timezone``. Empty: open around the clock.
    hours: dict[str, str | list[str]] = Field(default_factory=dict)
    holidays: list[date] = Field(default_factory=list)
    #: Weekend days worked to make up for a holiday bridge (open with Monday's hours).
    workdays: list[date] = Field(default_factory=list)
    closed: ClosedConfig = ClosedConfig()
    #: Agent groups (sites, teams) whose agents take this queue's calls at stage 0;
    #: omitted: every group.
    groups: list[Identifier] | None = None
    #: Escalation stages, in order of ``after``; each widens the set of agents.
    stages: list[StageConfig] = Field(default_factory=list)
    #: Feature code an agent's phone blind-transfers (SIP REFER) a caller to, to move
    #: it into this queue with its original entry time: "82" → ``*82``.
    transfer_code: Annotated[str, Field(pattern=r"^[0-9]{1,6}$")] | None = None

    def spec(self) -> QueueSpec:
        """The routing core's view of this queue (raises ValueError if stages narrow)."""
        return QueueSpec(
            self.id, dict(self.skills), self.priority, self.strategy,
            None if self.groups is None else frozenset(self.groups),
            tuple(
                StageSpec(st.after, st.min_level_delta,
                          None if st.skills is None else dict(st.skills),
                          None if st.groups is None else frozenset(st.groups),
                          st.priority_boost)
                for st in sorted(self.stages, key=lambda st: st.after)
            ),
        )

    @field_validator("hours")
    @classmethod
    def _hours_parse(cls, v: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for days, ranges in v.items():
            parse_days(days)
            for r in [ranges] if isinstance(ranges, str) else ranges:
                parse_interval(r)
        return v


class InitialStatus(StrEnum):
    AVAILABLE = "available"
    LOGGED_OUT = "logged_out"


class AgentConfig(_Model):
    id: Identifier
    name: str = ""
    #: PJSIP endpoint of the agent's softphone (defaults to the agent id).
    endpoint: Identifier | None = None
    skills: dict[Identifier, SkillLevel] = Field(default_factory=dict)
    #: Static SIP contact (``sip:user@host:port``); without it the phone must REGISTER.
    contact: str | None = None
    #: SIP password for a registering phone: the name of an environment variable.
    password_env: str | None = None
    status: InitialStatus = InitialStatus.AVAILABLE
    #: Groups the agent belongs to: its site, its team (see queue and stage ``groups``).
    groups: list[Identifier] = Field(default_factory=list)
    #: The Asterisk server (``asterisk.servers[].name``) the phone is on; default: the
    #: first. Endpoint names stay unique across servers.
    server: Identifier | None = None

    @property
    def sip_endpoint(self) -> str:
        return self.endpoint or self.id

    @field_validator("contact")
    @classmethod
    def _contact_is_sip(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"sips?:[^\s;,]+", v):
            raise ValueError("must be a SIP URI such as sip:agent1@192.0.2.10:5060")
        return v


class IVRConfig(_Model):
    """Self-service menu: one DTMF digit selects the queue."""

    #: Sound file played while waiting for the digit (e.g. a recorded menu).
    prompt: str = "dir-welcome"
    timeout: float = Field(default=5.0, gt=0, le=60)
    #: Digit → queue id. No key (timeout) or an unknown key → ``default_queue``.
    options: dict[str, Identifier] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _digits(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not re.fullmatch(r"[0-9*#]", key):
                raise ValueError(f"option {key!r} must be one DTMF key: 0-9, * or #")
        return v


class SegmentConfig(_Model):
    """A caller segment from number lists (dealer, distributor, VIP …)."""

    id: Identifier
    numbers: list[str] = Field(default_factory=list)
    prefixes: list[str] = Field(default_factory=list)
    #: Added to the queue's priority for these callers.
    priority: int = Field(default=0, ge=0, le=100)
    #: A dedicated queue for these callers (overrides IVR and DID).
    queue: Identifier | None = None


class EngineConfig(_Model):
    ring_timeout: int = Field(default=15, ge=1, le=300)
    rona_action: RonaAction = RonaAction.PAUSE
    rona_pause_reason: str = "no-answer"
    #: Consecutive ring-no-answers after which ``rona_action`` applies (1: the first).
    rona_limit: int = Field(default=1, ge=1, le=20)
    #: A dial that finds an agent's phone unreachable (CHANUNAVAIL, CONGESTION) marks the
    #: phone unavailable — not a ring-no-answer, no pause. It is tried again when Asterisk
    #: reports it back (e.g. it registers), or after this many seconds.
    unreachable_retry: float = Field(default=30.0, ge=1, le=3600)
    #: Reasons an agent (or a supervisor) may give for a pause. ``rona_pause_reason`` is
    #: always allowed.
    pause_reasons: list[str] = Field(
        default_factory=lambda: ["break", "lunch", "training", "meeting", "after-call"])
    #: How long a stopping engine waits for calls in progress before cancelling.
    drain_timeout: float = Field(default=10.0, ge=0)
    #: Record at each offer why the other agents did not get the call (counts by reason
    #: and named runners-up: ``call_offered``, one ``acd.decision`` log line, the
    #: explanation endpoint). Costs O(agents the call's stage admits) per offer, off the
    #: router's decision path; a simulation that only wants figures may turn it off.
    explain_offers: bool = True


class ApiRole(StrEnum):
    AGENT = "agent"  # its own state and its own calls only
    SUPERVISOR = "supervisor"  # reads everything, commands agents
    ADMIN = "admin"  # everything, including the running configuration


class ApiTokenConfig(_Model):
    """A bearer token of the HTTP API. The file names the environment variable holding
    the token, never the token itself."""

    #: A label for logs and audit (the token value is never logged).
    name: Identifier
    role: ApiRole
    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    #: The agent an ``agent`` token acts for (required for that role, refused otherwise).
    agent: Identifier | None = None

    @model_validator(mode="after")
    def _agent_binding(self) -> ApiTokenConfig:
        if self.role is ApiRole.AGENT and self.agent is None:
            raise ValueError("a token with role agent needs agent: <agent id>")
        if self.role is not ApiRole.AGENT and self.agent is not None:
            raise ValueError("only a token with role agent is bound to an agent")
        return self

    def secret(self, environ: Mapping[str, str] | None = None) -> SecretStr | None:
        value = (os.environ if environ is None else environ).get(self.env)
        return SecretStr(value) if value else None


class ApiConfig(_Model):
    """The HTTP API, WebSocket, /metrics and wallboard served by ``acd serve``."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    tokens: list[ApiTokenConfig] = Field(default_factory=list)
    #: Require a supervisor or admin token on /metrics (default: open, as usual).
    metrics_auth: bool = False
    #: How long an API command waits for the engine's inbox before answering 503.
    command_timeout: float = Field(default=5.0, gt=0, le=60)


class TrunkConfig(_Model):
    """The PJSIP trunk to a partner site (rendered by ``acd asterisk-config``)."""

    #: PJSIP endpoint name of the trunk (default: ``trunk-<site id>``).
    endpoint: Identifier | None = None
    #: Where the partner's SIP server is: ``sip:host:port``.
    contact: str

    @field_validator("contact")
    @classmethod
    def _contact_is_sip(cls, v: str) -> str:
        if not re.fullmatch(r"sips?:[^\s;,]+", v):
            raise ValueError("must be a SIP URI such as sip:192.0.2.50:5060")
        return v


class SiteConfig(_Model):
    """An own centre or a partner service site."""

    id: Identifier
    name: str = ""
    kind: SiteKind = SiteKind.OWN
    #: Provinces covered (ISO 3166-2:CN, e.g. CN-GD). Partners only; empty: none.
    regions: list[Annotated[str, Field(pattern=r"^CN-[A-Z]{2}$")]] = Field(
        default_factory=list)
    #: Queues (services) the partner takes; empty: every queue.
    services: list[Identifier] = Field(default_factory=list)
    #: Max concurrent calls we send to the partner.
    capacity: int = Field(default=1, ge=1, le=10_000)
    #: Higher first among partners that could take a call.
    preference: int = 0
    hours: dict[str, str | list[str]] = Field(default_factory=dict)
    holidays: list[date] = Field(default_factory=list)
    trunk: TrunkConfig | None = None
    #: The number dialled at the partner (the user part of the Request-URI).
    number: str = Field(default="", pattern=r"^[0-9*#+]*$")

    @field_validator("regions")
    @classmethod
    def _known_regions(cls, v: list[str]) -> list[str]:
        for code in v:
            validate_region_code(code)
        return v

    @model_validator(mode="after")
    def _partner_needs_a_trunk(self) -> SiteConfig:
        if self.kind is SiteKind.PARTNER and (self.trunk is None or not self.number):
            raise ValueError("a partner site needs trunk and number")
        return self

    @property
    def trunk_endpoint(self) -> str:
        return (self.trunk.endpoint if self.trunk and self.trunk.endpoint
                else f"trunk-{self.id}")


class PartnerMode(StrEnum):
    OVERFLOW = "overflow"  # own agents first; partner after ``after`` seconds of waiting
    PRIMARY = "primary"  # partner first; own agents as backup


class RegionPolicy(_Model):
    mode: PartnerMode = PartnerMode.OVERFLOW
    #: Overflow mode: seconds of waiting before partners covering the region are tried.
    after: float | None = Field(default=None, ge=0)


class AreaCodePrompt(_Model):
    #: Sound asking for the area code (Asterisk name, no extension).
    prompt: str = "vm-enter-num-to-call"
    timeout: float = Field(default=6.0, gt=0, le=30)
    max_digits: int = Field(default=4, ge=2, le=4)


class RegionsConfig(_Model):
    """Shared-partner routing by the caller's province."""

    #: Region given to withheld, foreign or unknown numbers.
    default: Annotated[str, Field(pattern=r"^CN-[A-Z]{2,7}$")] = "CN-UNKNOWN"
    #: Default wait before partners covering the caller's region are tried (overflow).
    overflow_after: float = Field(default=30.0, ge=0)
    #: After this wait, any partner offering the service (whatever its regions); omitted:
    #: never.
    any_partner_after: float | None = Field(default=None, ge=0)
    #: Region → policy; regions not listed use overflow after ``overflow_after``.
    policies: dict[Annotated[str, Field(pattern=r"^CN-[A-Z]{2}$")], RegionPolicy] = Field(
        default_factory=dict)
    #: When the number says nothing (withheld, foreign, unknown), ask the caller to key
    #: in an area code (e.g. 0755#); the keyed code wins over the lookup.
    ask_area_code: AreaCodePrompt | None = None
    #: Normalised caller number → region (wins over the lookup).
    overrides: dict[str, Annotated[str, Field(pattern=r"^CN-[A-Z]{2}$")]] = Field(
        default_factory=dict)

    @model_validator(mode="after")
    def _known_codes(self) -> RegionsConfig:
        for code in [self.default, *self.policies, *self.overrides.values()]:
            validate_region_code(code)
        return self

    def overflow_wait(self, region: str) -> float:
        policy = self.policies.get(region)
        if policy is None or policy.after is None:
            return self.overflow_after
        return policy.after

    def is_primary(self, region: str) -> bool:
        policy = self.policies.get(region)
        return policy is not None and policy.mode is PartnerMode.PRIMARY


class StoreBackend(StrEnum):
    MEMORY = "memory"
    REDIS = "redis"


class StoreConfig(_Model):
    """Where the engine keeps what must survive a restart (agent statuses, waiting
    calls' places). ``memory``: nothing survives; ``redis``: ``url`` is
    ``redis://host:port/db`` or ``unix:///path/redis.sock``."""

    backend: StoreBackend = StoreBackend.MEMORY
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = Field(default="acd", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    #: Seconds a Redis command may take before it counts as a failure.
    timeout: float = Field(default=1.0, gt=0, le=30)
    #: After a restart or takeover, arrivals are held until every stored waiting call
    #: is back (or this many seconds), then applied oldest first: the order holds.
    restore_grace: float = Field(default=4.0, ge=0, le=60)


class HAConfig(_Model):
    """Hot standby: engines sharing the store's Redis hold a lease; only the holder
    takes calls."""

    node_id: Identifier
    #: Lease time to live (seconds); renewed every ttl/3. Takeover ≈ ttl + ttl/6.
    lease_ttl: float = Field(default=2.0, ge=0.5, le=60)


class RecordingMode(StrEnum):
    NONE = "none"
    ALL = "all"
    SAMPLE = "sample"


class QueueRecordingConfig(_Model):
    """Whether a queue's conversations are recorded (``MixMonitor`` on the bridged call,
    agents and partner sites alike)."""

    mode: RecordingMode = RecordingMode.NONE
    #: With ``mode: sample``: the share of calls recorded (percent).
    sample_percent: float = Field(default=10.0, ge=0, le=100)
    #: A sound file played to the caller before the recording starts (e.g. "this call
    #: may be recorded"); none: no announcement.
    announce: str | None = None


class RetentionConfig(_Model):
    """How long each kind of history is kept (days; none: for ever)."""

    records_days: int | None = Field(default=730, ge=1)
    #: Caller numbers are blanked in records older than this.
    numbers_days: int | None = Field(default=365, ge=1)
    notes_days: int | None = Field(default=365, ge=1)
    recordings_days: int | None = Field(default=90, ge=1)


class HistoryConfig(_Model):
    """Call records, agent state history, reports and recordings in a database:
    SQLite (one file, the default) or PostgreSQL (``postgresql://user@host/db``: both
    engines of a hot-standby pair write to one)."""

    #: SQLAlchemy URL; a password belongs in ``url_env``, not here.
    url: str = "sqlite:///acd-history.db"
    #: Environment variable holding the URL (wins over ``url``).
    url_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    #: Where record batches wait, durably, until the database has them.
    spool_dir: str = "acd-history-spool"
    #: The writer writes at least this often (seconds), or sooner when a batch is full.
    flush_interval: float = Field(default=0.2, gt=0, le=60)
    batch_size: int = Field(default=500, ge=1, le=100_000)
    #: Abandons after less than this many seconds are "short": reported apart and left
    #: out of the reports' abandon rate (0: none; the live figures count every abandon).
    short_abandon: float = Field(default=0.0, ge=0, le=600)
    retention: RetentionConfig = RetentionConfig()
    #: Seconds between two purge runs (retention).
    purge_interval: float = Field(default=3600.0, ge=10)
    #: Queue id → recording policy (queues not listed: not recorded).
    recording: dict[Identifier, QueueRecordingConfig] = Field(default_factory=dict)
    #: Where MixMonitor writes recordings, as Asterisk names it: relative to its
    #: monitor spool directory (``<astspooldir>/monitor/``), or absolute.
    recording_path: str = Field(default="acd", pattern=r"^[A-Za-z0-9_./-]{1,200}$")
    #: The same directory as this engine sees it (a shared volume, or the same host):
    #: the engine reads each file's length and serves it to supervisors.
    recordings_dir: str = "/var/spool/asterisk/monitor/acd"
    #: Roles that see callers' numbers in reports and records (others: masked; an agent
    #: sees its own callers' numbers only).
    show_numbers_to: list[ApiRole] = Field(default_factory=lambda: [ApiRole.ADMIN])

    def database_url(self, environ: Mapping[str, str] | None = None) -> str:
        if self.url_env:
            value = (os.environ if environ is None else environ).get(self.url_env)
            if not value:
                raise ConfigError([f"history.url_env: environment variable "
                                   f"{self.url_env} is not set"])
            return value
        return self.url


class Config(_Model):
    asterisk: AsteriskConfig = AsteriskConfig()
    fastagi: FastAGIConfig = FastAGIConfig()
    engine: EngineConfig = EngineConfig()
    queues: list[QueueConfig] = Field(min_length=1)
    agents: list[AgentConfig] = Field(default_factory=list)
    #: DID (dialled number) → queue id.
    dids: dict[str, Identifier] = Field(default_factory=dict)
    default_queue: Identifier | None = None
    #: Time zone of business hours, holidays and "since midnight" figures.
    timezone: str = "Asia/Shanghai"
    ivr: IVRConfig | None = None
    segments: list[SegmentConfig] = Field(default_factory=list)
    #: The HTTP API; without this section ``acd serve`` runs the engine only.
    api: ApiConfig | None = None
    #: Own centres and partner service sites.
    sites: list[SiteConfig] = Field(default_factory=list)
    regions: RegionsConfig = RegionsConfig()
    #: Restart state (agent statuses, waiting calls' places); memory by default.
    store: StoreConfig = StoreConfig()
    #: Hot standby (needs ``store.backend: redis``); absent: this engine is always active.
    ha: HAConfig | None = None
    #: Call history, reports and recordings (a database); absent: nothing is kept.
    history: HistoryConfig | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (IANA name, e.g. Asia/Shanghai)") \
                from None
        return v

    @model_validator(mode="after")
    def _cross_references(self) -> Config:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        queue_ids = [q.id for q in self.queues]
        for i, qid in enumerate(queue_ids):
            if qid in queue_ids[:i]:
                problems.append((("queues", i, "id"), f"duplicate queue id {qid!r}"))
        seen_agents: set[str] = set()
        seen_endpoints: set[str] = set()
        for i, a in enumerate(self.agents):
            if a.id in seen_agents:
                problems.append((("agents", i, "id"), f"duplicate agent id {a.id!r}"))
            if a.sip_endpoint in seen_endpoints:
                problems.append(
                    (("agents", i, "endpoint"), f"endpoint {a.sip_endpoint!r} used twice")
                )
            seen_agents.add(a.id)
            seen_endpoints.add(a.sip_endpoint)
        for did, qid in self.dids.items():
            if qid not in queue_ids:
                problems.append((("dids", did), f"unknown queue {qid!r}"))
        if self.default_queue is not None and self.default_queue not in queue_ids:
            problems.append((("default_queue",), f"unknown queue {self.default_queue!r}"))
        site_ids: set[str] = set()
        for i, site in enumerate(self.sites):
            if site.id in site_ids:
                problems.append((("sites", i, "id"), f"duplicate site id {site.id!r}"))
            site_ids.add(site.id)
            for j, qid in enumerate(site.services):
                if qid not in queue_ids:
                    problems.append((("sites", i, "services", j), f"unknown queue {qid!r}"))
        for i, q in enumerate(self.queues):
            try:
                q.spec()
            except ValueError as exc:
                problems.append((("queues", i, "stages"), str(exc)))
        if self.ivr is not None:
            for key, qid in self.ivr.options.items():
                if qid not in queue_ids:
                    problems.append((("ivr", "options", key), f"unknown queue {qid!r}"))
        seen_codes: set[str] = set()
        for i, q in enumerate(self.queues):
            if q.transfer_code is not None:
                if q.transfer_code in seen_codes:
                    problems.append((("queues", i, "transfer_code"),
                                     f"transfer code {q.transfer_code!r} used twice"))
                seen_codes.add(q.transfer_code)
        for i, seg in enumerate(self.segments):
            if seg.queue is not None and seg.queue not in queue_ids:
                problems.append((("segments", i, "queue"), f"unknown queue {seg.queue!r}"))
        if problems:
            # Raised as ValueError so pydantic reports it; the path travels in the text.
            raise ValueError("; ".join(f"@{fmt_path(p)}: {msg}" for p, msg in problems))
        return self

    @model_validator(mode="after")
    def _api_references(self) -> Config:
        if self.api is None:
            return self
        agent_ids = {a.id for a in self.agents}
        problems: list[str] = []
        names: set[str] = set()
        for i, token in enumerate(self.api.tokens):
            if token.name in names:
                problems.append(f"@api.tokens[{i}].name: duplicate token name {token.name!r}")
            names.add(token.name)
            if token.agent is not None and token.agent not in agent_ids:
                problems.append(f"@api.tokens[{i}].agent: unknown agent {token.agent!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _agent_servers(self) -> Config:
        names = [s.name for s in self.asterisk.server_list]
        bad = [f"@agents[{i}].server: unknown Asterisk server {a.server!r} (one of: "
               f"{', '.join(names)})" for i, a in enumerate(self.agents)
               if a.server is not None and a.server not in names]
        if bad:
            raise ValueError("; ".join(bad))
        return self

    def agent_server(self, agent: AgentConfig) -> str:
        """The name of the Asterisk server an agent's phone is on."""
        return agent.server or self.asterisk.server_list[0].name

    @model_validator(mode="after")
    def _ha_needs_redis(self) -> Config:
        if self.ha is not None and self.store.backend is not StoreBackend.REDIS:
            raise ValueError("@ha: hot standby needs store.backend: redis (the lease "
                             "lives in Redis)")
        return self

    @model_validator(mode="after")
    def _history_queues(self) -> Config:
        if self.history is not None:
            bad = [q for q in self.history.recording if not self.has_queue(q)]
            if bad:
                raise ValueError(f"@history.recording: unknown queue(s) {', '.join(bad)}")
        return self

    def queue(self, queue_id: str) -> QueueConfig:
        for q in self.queues:
            if q.id == queue_id:
                return q
        raise KeyError(queue_id)

    def partners(self) -> list[SiteConfig]:
        """Partner sites, most preferred first."""
        return sorted((s for s in self.sites if s.kind is SiteKind.PARTNER),
                      key=lambda s: -s.preference)

    def site_schedule(self, site: SiteConfig) -> Schedule:
        return Schedule.build(self.timezone, site.hours, site.holidays)

    def schedule(self, queue_id: str) -> Schedule:
        q = self.queue(queue_id)
        return Schedule.build(self.timezone, q.hours, q.holidays, q.workdays)

    def segment_table(self) -> SegmentTable:
        return SegmentTable(
            Segment(s.id, frozenset(normalise_number(n) for n in s.numbers),
                    tuple(s.prefixes), s.priority, s.queue)
            for s in self.segments
        )

    def did_queue(self, did: str | None) -> QueueConfig | None:
        """The queue a dialled number preselects, if the DID map has it."""
        return self.queue(self.dids[did]) if did and did in self.dids else None

    def has_queue(self, queue_id: str) -> bool:
        return any(q.id == queue_id for q in self.queues)

    def queue_for_did(self, did: str | None) -> QueueConfig:
        """The queue a dialled number lands in: the DID map, else the default queue."""
        if did and did in self.dids:
            return self.queue(self.dids[did])
        if self.default_queue is not None:
            return self.queue(self.default_queue)
        return self.queues[0]
