"""The ACD configuration: one YAML file, validated by pydantic.

Every error names the file, the key path and (where the YAML gives it) the line, e.g.::

    config/acd.yaml: agents[2].skills.repair (line 41): Input should be less than or equal to 5

Secrets never live in the file: the AMI secret is read from the environment variable the
file names (``asterisk.ami.secret_env``), and is held as a ``SecretStr`` so it does not
show up in reprs or logs.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from acd.config import passwords
from acd.config.checks import DEFAULT_FEATURE_CODES, Problem, cross_problems
from acd.config.errors import ConfigError, fmt_path
from acd.config.outbound import CallbacksConfig, CampaignConfig
from acd.domain.settings import ClosedAction, ExitTo, OnClose, RonaAction, SiteKind
from routing.hours import Schedule, check_hours
from routing.model import QueueSpec, StageSpec, Strategy
from routing.numbers import normalise_did, normalise_number
from routing.regions import validate_region_code
from routing.segments import Segment, SegmentTable

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
Identifier = Annotated[str, Field(pattern=_ID)]
#: An Asterisk language code: the sounds directory prompts are played from (``zh``,
#: ``en``, ``zh_TW``, ``yue``), falling back to ``en`` for a prompt it lacks.
Language = Annotated[str, Field(pattern=r"^[a-z]{2,3}(?:_[A-Za-z0-9]{2,8})*$")]
SkillLevel = Annotated[int, Field(ge=1, le=5)]


class CrossReferenceError(ValueError):
    """Errors between sections of a config (see :func:`acd.config.checks.cross_problems`),
    each with its own key path."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"@{fmt_path(p)}: {msg}" for p, msg in problems))
        self.problems = problems


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
    #: Seconds between SIP OPTIONS to agents' phones with a static ``contact`` (rendered
    #: ``qualify_frequency``): a phone that stops answering shows Unavailable and is
    #: offered no call. 0 (default): not asked, such a phone always counts as reachable.
    #: Asterisk spreads the first OPTIONS over this interval after it starts, and a phone
    #: counts as Unavailable until answered: keep it short (5–10 s). Registering phones
    #: are always asked, every this many seconds (30 if 0).
    qualify_frequency: int = Field(default=0, ge=0, le=3600)
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


class FastAGILimits(_Model):
    """How much the FastAGI server takes from the peers it allows (docs/security.md;
    the cap on sessions open at once is ``fastagi.max_sessions``)."""

    #: New connections a second from one peer, with up to ``peer_burst`` at once (after
    #: an engine restart every waiting caller's retry arrives together); 0: no limit.
    peer_rate: float = Field(default=1000.0, ge=0)
    peer_burst: int = Field(default=5000, ge=1)


class FastAGIConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=4573, ge=0, le=65535)
    env_timeout: float = Field(default=5.0, gt=0)
    #: Most caller sessions at once (unset: what the open-file limit leaves room for);
    #: one more is refused at once and its Asterisk falls back.
    max_sessions: int | None = Field(default=None, ge=1)
    #: Who may connect: addresses or networks (CIDR). Anyone else is refused at once
    #: (one log line naming the peer). Default: this host only.
    allow: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"],
                             min_length=1)
    #: Name of the environment variable holding a secret shared with Asterisk: the
    #: engine asks each new session for ``${ENV(<name>)}`` (Asterisk's own environment
    #: must have the same variable) and refuses a session that does not know it.
    #: Omitted: no secret is asked (the ``allow`` list is the only check).
    secret_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    #: An entry time (``ACD_ENTRY``) further back than this is clamped to it (and one in
    #: the future to now): nobody jumps the queue with a forged old time. Keep it at
    #: least the dialplan's ACD_MAX_CALL_TIME (4 h).
    max_entry_age: float = Field(default=14_400.0, ge=60)
    limits: FastAGILimits = FastAGILimits()

    @field_validator("allow")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for entry in v:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is no IP address or network (CIDR)") from None
        return v

    def secret(self, environ: Mapping[str, str] | None = None) -> SecretStr | None:
        """The shared secret (None when ``secret_env`` is not set); ConfigError when the
        variable it names is not set."""
        if self.secret_env is None:
            return None
        value = (os.environ if environ is None else environ).get(self.secret_env)
        if not value:
            raise ConfigError([f"environment: {self.secret_env} is not set (the FastAGI "
                               "secret named by fastagi.secret_env)"])
        return SecretStr(value)



class ClosedConfig(_Model):
    """What a caller gets when the queue is closed (after hours, holiday)."""

    action: ClosedAction = ClosedAction.MESSAGE
    #: Sound file (Asterisk name, no extension): the closing message (``vm-goodbye``
    #: when unset), or with ``action: voicemail`` the greeting before the tone (unset:
    #: the mailbox's own unavailable greeting and Asterisk's instructions).
    sound: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_./-]+$")
    #: ``box@context`` of voicemail.conf, for ``action: voicemail``.
    mailbox: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+$")

    @model_validator(mode="after")
    def _mailbox_for_voicemail(self) -> ClosedConfig:
        if self.action is ClosedAction.VOICEMAIL and not self.mailbox:
            raise ValueError("action voicemail needs a mailbox (box@context)")
        return self


class ExitActionConfig(_Model):
    to: ExitTo
    #: ``to: queue``: the queue.
    queue: Identifier | None = None
    #: ``to: voicemail``: ``box@context`` of voicemail.conf.
    mailbox: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+$")
    #: The closing message (``vm-goodbye`` when unset), or with ``to: voicemail`` the
    #: greeting before the tone (unset: the mailbox's own unavailable greeting and
    #: Asterisk's instructions).
    sound: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_./-]+$")

    @model_validator(mode="after")
    def _complete(self) -> ExitActionConfig:
        if self.to is ExitTo.QUEUE and self.queue is None:
            raise ValueError("to: queue needs queue: <queue id>")
        if self.to is ExitTo.VOICEMAIL and self.mailbox is None:
            raise ValueError("to: voicemail needs mailbox: <box@context>")
        return self


class ExitsConfig(_Model):
    """When a caller leaves the line early, and where it goes (not an abandon)."""

    #: Longest wait (seconds from first entry) before ``action``.
    max_wait: float | None = Field(default=None, gt=0, le=86_400)
    #: At most this many callers waiting in the queue: the next one gets ``action``.
    max_waiting: int | None = Field(default=None, ge=1, le=1_000_000)
    #: A caller whose expected wait at entry is longer (and sure) gets ``action``.
    max_ewt: float | None = Field(default=None, gt=0, le=86_400)
    action: ExitActionConfig | None = None
    #: A key the caller may press while waiting (announced) to leave with ``key_action``.
    key: Annotated[str, Field(pattern=r"^[0-9*]$")] | None = None
    key_action: ExitActionConfig | None = None
    #: How the key is announced: sound names, ``{key}`` said as a digit.
    key_prompt: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_./{}-]+$")]] = Field(
        default_factory=lambda: ["vm-press", "{key}", "vm-leavemsg"])

    @model_validator(mode="after")
    def _actions(self) -> ExitsConfig:
        limited = (self.max_wait, self.max_waiting, self.max_ewt)
        if any(v is not None for v in limited) and self.action is None:
            raise ValueError("a limit (max_wait, max_waiting, max_ewt) needs an action")
        if (self.key is None) != (self.key_action is None):
            raise ValueError("key and key_action go together")
        return self


class AnnounceSoundsConfig(_Model):
    """Sound names of the announcements (Asterisk's core sounds by default; the channel's
    language picks the directory, e.g. sounds/zh/)."""

    first_in_line: str = "queue-youarenext"
    position_before: str = "queue-thereare"
    position_after: str = "queue-callswaiting"
    wait_before: str = "queue-holdtime"
    less_than: str = "queue-less-than"
    minute: str = "queue-minute"
    minutes: str = "queue-minutes"
    thanks: str = "queue-thankyou"


class AnnounceConfig(_Model):
    """What a waiting caller is told: its place in line and/or its expected wait (only
    when the estimate is sure), at ``first_after`` seconds and then every ``every``."""

    position: bool = True
    ewt: bool = True
    first_after: float = Field(default=0.0, ge=0, le=3600)
    #: Seconds between announcements; 0: only the first.
    every: float = Field(default=60.0, ge=0, le=3600)
    sounds: AnnounceSoundsConfig = AnnounceSoundsConfig()

    @field_validator("every")
    @classmethod
    def _not_too_often(cls, v: float) -> float:
        if 0 < v < 15:
            raise ValueError("announcing more often than every 15 s leaves no hold music")
        return v


_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f-\x9f";,\[\]<>\\]')


def _safe_name(value: str) -> str:
    """A name rendered into Asterisk's files (comments, caller ids, queue members,
    mailboxes): any script, but no control character (a newline would start a new
    [section]) and none of  " ; , [ ] < > \\  (quotes, comments, separators)."""
    bad = _UNSAFE_NAME.search(value)
    if bad is not None:
        raise ValueError(f"{bad.group()!r} is not allowed in a name: it is written into "
                         "Asterisk's files (no control characters, quotes, ; , [ ] < > \\)")
    return value


SafeName = Annotated[str, Field(max_length=80), AfterValidator(_safe_name)]


def _password_hash(value: str) -> str:
    """A hash made by ``acd hash-password`` (never the password itself)."""
    try:
        passwords.parse(value)
    except passwords.BadHash as exc:
        raise ValueError(str(exc)) from None
    return value.strip()


class StageConfig(_Model):
    """One ring of a queue's bullseye: after ``after`` seconds of waiting, widen — to
    more agents, to partner sites, and at last to a last-resort action."""

    after: float = Field(gt=0)
    #: Lower every required minimum level by this much (never below 1).
    min_level_delta: int = Field(default=0, ge=0, le=4)
    #: Replace the required skills (a subset, at levels no higher).
    skills: dict[Identifier, SkillLevel] | None = None
    #: Admit agents of these groups (sites, teams); omitted: every group.
    groups: list[Identifier] | None = None
    #: Raise the call's priority while it is in this stage.
    priority_boost: int = Field(default=0, ge=0, le=100)
    #: Partner sites the stage adds: ``covering`` (those covering the caller's region),
    #: ``any`` (any offering the service), or a list of partner site ids.
    partners: Literal["covering", "any"] | list[Identifier] | None = None
    #: The last resort (the last stage only): the caller leaves the line this way.
    action: ExitActionConfig | None = None

    @property
    def widens_agents(self) -> bool:
        """The stage admits more agents or raises the priority (a router stage)."""
        return bool(self.min_level_delta or self.skills is not None
                    or self.groups is not None or self.priority_boost)


class QueueConfig(_Model):
    id: Identifier
    name: SafeName = ""
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
    #: Callers already waiting when the queue closes: ``stay`` (served by whoever is
    #: still open: other own sites, partners) or ``closed`` (its closed action).
    on_close: OnClose = OnClose.STAY
    #: Agent groups (sites, teams) whose agents take this queue's calls at stage 0;
    #: omitted: every group.
    groups: list[Identifier] | None = None
    #: Escalation stages, in order of ``after``; each widens the set of agents.
    stages: list[StageConfig] = Field(default_factory=list)
    #: Language of the prompts its callers hear once in this queue (``CHANNEL(language)``);
    #: omitted: the DID's, else the hotline's ``language``.
    language: Language | None = None
    #: Announcements to waiting callers (position, expected wait); omitted: none.
    announce: AnnounceConfig | None = None
    #: Limits of the line and the caller's own way out; omitted: none.
    exits: ExitsConfig = ExitsConfig()
    #: Talk time (seconds) to assume for expected-wait estimates until enough calls of
    #: the queue are measured; omitted: no estimate is told before that.
    expected_handle_time: float | None = Field(default=None, gt=0, le=36_000)
    #: Feature code an agent's phone blind-transfers (SIP REFER) a caller to, to move
    #: it into this queue with its original entry time: "82" → ``*82``.
    transfer_code: Annotated[str, Field(pattern=r"^[0-9]{1,6}$")] | None = None

    @field_validator("stages")
    @classmethod
    def _stages_widen(cls, v: list[StageConfig], info: ValidationInfo) -> list[StageConfig]:
        """A stage that narrows (or bad levels), a last resort before the last stage, a
        kind of partners added twice: an error at ``stages``."""
        last = max((st.after for st in v), default=0.0)
        for st in v:
            if st.action is not None and st.after < last:
                raise ValueError(f"the stage after {st.after:g} s has an action, but a "
                                 "later stage follows: only the last stage has one")
        for kind in ("covering", "any"):
            if sum(1 for st in v if st.partners == kind) > 1:
                raise ValueError(f"partners: {kind} is added by more than one stage")
        d = info.data
        if not {"id", "skills", "priority", "strategy", "groups"} <= d.keys():
            return v  # a field before it is wrong: reported on its own
        QueueSpec(d["id"], dict(d["skills"]), d["priority"], d["strategy"],
                  None if d["groups"] is None else frozenset(d["groups"]),
                  _stage_specs(v))
        return v

    def spec(self) -> QueueSpec:
        """The routing core's view of this queue (raises ValueError if stages narrow)."""
        return QueueSpec(
            self.id, dict(self.skills), self.priority, self.strategy,
            None if self.groups is None else frozenset(self.groups),
            _stage_specs(self.stages),
        )

    @field_validator("hours")
    @classmethod
    def _hours_parse(cls, v: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        check_hours(v)
        return v


def _stage_specs(stages: list[StageConfig]) -> tuple[StageSpec, ...]:
    """The router's stages: those that admit more agents (a stage adding only partners or
    the last resort is the engine's, not the router's)."""
    return tuple(
        StageSpec(st.after, st.min_level_delta,
                  None if st.skills is None else dict(st.skills),
                  None if st.groups is None else frozenset(st.groups),
                  st.priority_boost)
        for st in sorted(stages, key=lambda st: st.after) if st.widens_agents
    )


class InitialStatus(StrEnum):
    AVAILABLE = "available"
    LOGGED_OUT = "logged_out"


class AgentConfig(_Model):
    id: Identifier
    name: SafeName = ""
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
    #: The agent's PIN/password for the desktop page, hashed (``acd hash-password``);
    #: without it the agent cannot sign in on the page (phone codes and tokens still work).
    pin_hash: Annotated[str, AfterValidator(_password_hash)] | None = None

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
    #: The supervisor (``supervision.supervisors[].id``) a supervisor or admin token acts
    #: for: that person's scope (queues, sites) and phone (listen, whisper, barge).
    supervisor: Identifier | None = None

    @model_validator(mode="after")
    def _agent_binding(self) -> ApiTokenConfig:
        if self.role is ApiRole.AGENT and self.agent is None:
            raise ValueError("a token with role agent needs agent: <agent id>")
        if self.role is not ApiRole.AGENT and self.agent is not None:
            raise ValueError("only a token with role agent is bound to an agent")
        if self.role is ApiRole.AGENT and self.supervisor is not None:
            raise ValueError("a token with role agent is not bound to a supervisor")
        return self

    def secret(self, environ: Mapping[str, str] | None = None) -> SecretStr | None:
        value = (os.environ if environ is None else environ).get(self.env)
        return SecretStr(value) if value else None


class ApiLimitsConfig(_Model):
    """What the API takes from a client (docs/security.md)."""

    #: Largest request body in bytes: a bigger one is refused (413) before routing and
    #: before the token is checked, whether it announces its length or streams it.
    max_body_bytes: int = Field(default=16 * 1024, ge=1024, le=16 * 1024 * 1024)
    #: Unknown tokens one client (address) may present in a burst; after that it gets
    #: 429 (its token is not even looked at) and one more try every
    #: ``auth_failure_refill`` seconds.
    auth_failures: int = Field(default=10, ge=1, le=10_000)
    auth_failure_refill: float = Field(default=6.0, gt=0, le=3600)


class ApiConfig(_Model):
    """The HTTP API, WebSocket, /metrics and wallboard served by ``acd serve``."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    tokens: list[ApiTokenConfig] = Field(default_factory=list)
    #: Require a supervisor or admin token on /metrics (default: open, as usual).
    metrics_auth: bool = False
    #: How long an API command waits for the engine's inbox before answering 503.
    command_timeout: float = Field(default=5.0, gt=0, le=60)
    #: ``/docs``, ``/redoc`` and ``/openapi.json``; omitted: served only when the API
    #: listens on a loopback address.
    docs: bool | None = None
    #: HTTPS: the certificate (PEM, chain included) and its private key; both or neither.
    tls_cert: str | None = None
    tls_key: str | None = None
    limits: ApiLimitsConfig = ApiLimitsConfig()

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("api.tls_cert and api.tls_key go together")
        return self

    @property
    def docs_enabled(self) -> bool:
        if self.docs is not None:
            return self.docs
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """Whether a bind address is loopback only (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
    name: SafeName = ""
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
    #: Opening hours, as a queue's: an own site's agents are offered calls only while
    #: it is open; a partner is dialled only while it is open.
    hours: dict[str, str | list[str]] = Field(default_factory=dict)
    holidays: list[date] = Field(default_factory=list)
    #: Weekend days worked to make up for a holiday bridge (open with Monday's hours).
    workdays: list[date] = Field(default_factory=list)
    trunk: TrunkConfig | None = None
    #: The number dialled at the partner (the user part of the Request-URI).
    number: str = Field(default="", pattern=r"^[0-9*#+]*$")

    @field_validator("regions")
    @classmethod
    def _known_regions(cls, v: list[str]) -> list[str]:
        for code in v:
            validate_region_code(code)
        return v

    @field_validator("hours")
    @classmethod
    def _hours_parse(cls, v: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        return QueueConfig._hours_parse(v)

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


EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class SentinelConfig(_Model):
    """Redis Sentinel: the engine asks the sentinels where the master named ``master``
    is, and follows it when they fail over (store and lease alike)."""

    #: The name the sentinels monitor the master under (``sentinel monitor <name> ...``).
    master: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    #: The sentinels, ``host:port`` (26379 is Sentinel's usual port).
    sentinels: list[Annotated[str, Field(pattern=r"^[^\s:/]+:[0-9]{1,5}$")]] = Field(
        min_length=1)
    #: Environment variable with the sentinels' own password, if they require one.
    password_env: EnvName | None = None
    db: int = Field(default=0, ge=0, le=15)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(host, int(port)) for host, _, port in
                (entry.rpartition(":") for entry in self.sentinels)]


class StoreConfig(_Model):
    """Where the engine keeps what must survive a restart (agent statuses, waiting
    calls' places). ``memory``: nothing survives; ``redis``: ``url`` is
    ``redis://host:port/db``, ``rediss://host:port/db`` (TLS) or
    ``unix:///path/redis.sock``; or ``sentinel`` instead of ``url``."""

    backend: StoreBackend = StoreBackend.MEMORY
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = Field(default="acd", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    #: Seconds a Redis command may take before it counts as a failure.
    timeout: float = Field(default=1.0, gt=0, le=30)
    #: After a restart or takeover, arrivals are held until every stored waiting call
    #: is back (or this many seconds), then applied oldest first: the order holds.
    restore_grace: float = Field(default=4.0, ge=0, le=60)
    #: Environment variable holding Redis's password (``requirepass``, or the ACL
    #: user's with ``username``); never a password in ``url``.
    password_env: EnvName | None = None
    #: Redis ACL user (e.g. one limited to ``~<key_prefix>:*``: docs/security.md).
    username: str | None = Field(default=None, pattern=r"^[^\s:@/]{1,128}$")
    #: ``rediss://``: the CA certificate (PEM) to verify Redis's certificate with;
    #: omitted: the system's CAs.
    tls_ca_file: str | None = None
    sentinel: SentinelConfig | None = None

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not re.match(r"^(redis|rediss|unix)://", v):
            raise ValueError("must start with redis://, rediss:// (TLS) or unix://")
        return v

    def password(self, environ: Mapping[str, str] | None = None) -> SecretStr | None:
        """Redis's password from ``password_env`` (ConfigError when it is not set)."""
        return _secret_from(self.password_env, "the Redis password named by "
                            "store.password_env", environ)

    def sentinel_password(self, environ: Mapping[str, str] | None = None) -> SecretStr | None:
        env = self.sentinel.password_env if self.sentinel is not None else None
        return _secret_from(env, "the sentinels' password named by "
                            "store.sentinel.password_env", environ)


def _secret_from(name: str | None, what: str,
                 environ: Mapping[str, str] | None) -> SecretStr | None:
    if name is None:
        return None
    value = (os.environ if environ is None else environ).get(name)
    if not value:
        raise ConfigError([f"environment: {name} is not set ({what})"])
    return SecretStr(value)


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


class DidConfig(_Model):
    """A DID with more than a queue: ``"4008005678": {queue: consult, language: en}``."""

    #: The queue it preselects; omitted: the IVR, else ``default_queue``.
    queue: Identifier | None = None
    #: Language of its callers' prompts from the first one (the IVR) on.
    language: Language | None = None


class CarrierConfig(_Model):
    """A carrier (or SBC) that sends the hotline's calls in. Asterisk takes a call only
    from a known source address: there is no anonymous inbound endpoint."""

    id: Identifier
    name: SafeName = ""
    #: Source addresses of its SIP signalling: IP addresses, networks (CIDR) or host
    #: names (rendered ``identify`` ``match`` lines).
    match: list[str] = Field(min_length=1)

    @field_validator("match")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for m in v:
            try:
                ipaddress.ip_network(m, strict=False)
            except ValueError:
                if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", m):
                    raise ValueError(f"{m!r} is no IP address, network (CIDR) or host "
                                     "name") from None
        return v

    @property
    def endpoint(self) -> str:
        return f"carrier-{self.id}"


class SecondSignIn(StrEnum):
    """A person signs in while already signed in elsewhere (another browser)."""

    REPLACE = "replace"  # the new session wins; the first one ends (its page says so)
    REFUSE = "refuse"  # the new sign-in is refused while the first session lives


#: The agent's phone feature codes, dialled as ``*<code>``.
FeatureCode = Annotated[str, Field(pattern=r"^[0-9]{1,6}$")]
SoundName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_./-]+$")]


class FeatureCodesConfig(_Model):
    """What an agent dials on its own phone (``*<code>``) to change its status."""

    login: FeatureCode | None = DEFAULT_FEATURE_CODES["login"]
    logout: FeatureCode | None = DEFAULT_FEATURE_CODES["logout"]
    #: Paused with the first of ``engine.pause_reasons``.
    pause: FeatureCode | None = DEFAULT_FEATURE_CODES["pause"]
    ready: FeatureCode | None = DEFAULT_FEATURE_CODES["ready"]

    def codes(self) -> dict[str, str]:
        """Action → code, for the actions that have one."""
        return {a: c for a, c in (("login", self.login), ("logout", self.logout),
                                  ("pause", self.pause), ("ready", self.ready))
                if c is not None}


class FeatureSoundsConfig(_Model):
    """The prompt that confirms each new state (Asterisk sound names, in the agent's
    language), and the one that says the code was not taken."""

    login: SoundName = "agent-loginok"
    logout: SoundName = "agent-loggedoff"
    pause: SoundName = "de-activated"
    ready: SoundName = "activated"
    refused: SoundName = "beeperr"


class DispositionConfig(_Model):
    """A disposition code an agent gives a call after it (saved with the call record)."""

    code: Identifier
    name: SafeName = ""


class DesktopConfig(_Model):
    """The agents' and supervisors' pages (sessions), the agents' wrap-up tools and
    their phone feature codes."""

    #: Seconds a sign-in on a page lasts (agents and supervisors); then sign in again.
    session_ttl: float = Field(default=43_200.0, ge=60, le=7 * 86_400)
    second_sign_in: SecondSignIn = SecondSignIn.REPLACE
    #: Seconds one "extend" adds to a running wrap-up.
    wrap_up_extend: float = Field(default=30.0, gt=0, le=3600)
    #: Seconds a wrap-up may last at most, its extensions included.
    wrap_up_max: float = Field(default=300.0, gt=0, le=7200)
    dispositions: list[DispositionConfig] = Field(default_factory=list)
    #: Longest note an agent may save with a call (characters).
    note_max: int = Field(default=2000, ge=0, le=20_000)
    feature_codes: FeatureCodesConfig = FeatureCodesConfig()
    feature_sounds: FeatureSoundsConfig = FeatureSoundsConfig()
    #: Where the audit log of supervisor and admin actions is appended (JSON lines); the
    #: last entries are read back at start. None: kept in memory only.
    audit_file: str | None = None


class SpyAMIConfig(_Model):
    """The AMI account that may Originate (listen, whisper, barge only): separate from
    the engine's own, which cannot. Host and port are each server's ``ami``."""

    username: Identifier = "acd-spy"
    secret_env: EnvName = "ACD_AMI_SPY_SECRET"

    def secret(self, environ: Mapping[str, str] | None = None) -> SecretStr:
        value = (os.environ if environ is None else environ).get(self.secret_env)
        if not value:
            raise ConfigError([f"environment: {self.secret_env} is not set (AMI secret "
                               f"of the listen/whisper/barge account {self.username!r})"])
        return SecretStr(value)


class SupervisorConfig(_Model):
    """A person who supervises: signs in on the console, listens on its own phone, and
    may be limited to some queues and sites."""

    id: Identifier
    name: SafeName = ""
    #: ``supervisor`` or ``admin`` (an admin also reads the audit log and the config).
    role: Literal[ApiRole.SUPERVISOR, ApiRole.ADMIN] = ApiRole.SUPERVISOR
    #: The console password, hashed (``acd hash-password``); without it: no console
    #: sign-in (a token bound to this supervisor still works).
    password_hash: Annotated[str, AfterValidator(_password_hash)] | None = None
    #: PJSIP endpoint of the supervisor's own phone (listen, whisper, barge ring it).
    endpoint: Identifier | None = None
    #: The phone at a fixed address, or ``password_env`` for one that registers.
    contact: str | None = None
    password_env: EnvName | None = None
    #: The Asterisk server the phone is on (default: the first).
    server: Identifier | None = None
    #: Scope: the queues and sites this supervisor sees and acts on (omitted: all).
    queues: list[Identifier] | None = None
    sites: list[Identifier] | None = None

    @field_validator("contact")
    @classmethod
    def _contact_is_sip(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"sips?:[^\s;,]+", v):
            raise ValueError("must be a SIP URI such as sip:sup1@192.0.2.10:5060")
        return v

    @model_validator(mode="after")
    def _phone(self) -> SupervisorConfig:
        if (self.contact is not None or self.password_env is not None) \
                and self.endpoint is None:
            raise ValueError("a supervisor's phone needs endpoint: <PJSIP endpoint>")
        return self


class SupervisionConfig(_Model):
    """Supervisors: the console, scopes, and listen / whisper / barge."""

    #: The AMI account that originates the calls to supervisors' phones.
    ami: SpyAMIConfig = SpyAMIConfig()
    #: Seconds the supervisor's phone rings before a listen is given up.
    ring_timeout: int = Field(default=20, ge=5, le=120)
    supervisors: list[SupervisorConfig] = Field(default_factory=list)

    def supervisor(self, supervisor_id: str) -> SupervisorConfig | None:
        return next((s for s in self.supervisors if s.id == supervisor_id), None)


class Config(_Model):
    asterisk: AsteriskConfig = AsteriskConfig()
    fastagi: FastAGIConfig = FastAGIConfig()
    engine: EngineConfig = EngineConfig()
    queues: list[QueueConfig] = Field(min_length=1)
    agents: list[AgentConfig] = Field(default_factory=list)
    #: DID (dialled number) → queue id. A DID matches however the carrier writes it
    #: (``+86 10 6555 0100``, ``0086…``, ``01065550100``: see ``normalise_did``).
    #: Written ``"4008001234": consult`` (a queue) or with a mapping (``DidConfig``).
    dids: dict[str, DidConfig] = Field(default_factory=dict)
    #: Language of the callers' prompts (Asterisk ``CHANNEL(language)``), unless their
    #: DID or queue says otherwise; also the agents' and carriers' endpoints'.
    language: Language = "zh"
    #: Carriers allowed to send calls in (rendered into ``pjsip_acd.conf``).
    carriers: list[CarrierConfig] = Field(default_factory=list)
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
    #: The agent desktop and the phone feature codes (defaults apply when absent).
    desktop: DesktopConfig = DesktopConfig()
    #: Supervisors (console sign-in, scopes, listen/whisper/barge); absent: none.
    supervision: SupervisionConfig | None = None
    #: Outbound callbacks (virtual hold); absent: no exit may be ``to: callback``.
    callbacks: CallbacksConfig | None = None
    #: Proactive campaigns (need ``callbacks``: their attempts are dialled the same way).
    campaigns: list[CampaignConfig] = Field(default_factory=list)

    @field_validator("dids", mode="before")
    @classmethod
    def _did_shorthand(cls, v: object) -> object:
        """``"4008001234": consult`` is ``"4008001234": {queue: consult}``."""
        if isinstance(v, dict):
            return {did: {"queue": target} if isinstance(target, str) else target
                    for did, target in v.items()}
        return v

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
    def _callbacks_configured(self) -> Config:
        queue_ids = {q.id for q in self.queues}
        for c in self.campaigns:
            if self.callbacks is None:
                raise ValueError(f"campaign {c.id}: campaigns need the callbacks section "
                                 "(their attempts are dialled as callbacks)")
            if c.queue not in queue_ids:
                raise ValueError(f"campaign {c.id}: no queue {c.queue!r}")
        if len({c.id for c in self.campaigns}) != len(self.campaigns):
            raise ValueError("campaign ids must be unique")
        if self.callbacks is None:
            for q in self.queues:
                actions = [q.exits.action, q.exits.key_action,
                           *(st.action for st in q.stages)]
                if any(a is not None and a.to is ExitTo.CALLBACK for a in actions):
                    raise ValueError(f"queue {q.id}: an exit to: callback needs the "
                                     "callbacks section (the outbound AMI account, the "
                                     "trunk, the numbers it may call)")
        return self

    @model_validator(mode="after")
    def _cross_references(self) -> Config:
        data = self.model_dump()
        # A DID written as a bare queue is reported as written (``dids.4008001234``).
        data["dids"] = {did: e["queue"] if e["language"] is None and e["queue"] else e
                        for did, e in data["dids"].items()}
        problems = cross_problems(data)
        if problems:
            # pydantic reports it as a model error; the loader takes the structured
            # problems back out of the exception (``CrossReferenceError.problems``).
            raise CrossReferenceError(problems)
        return self

    def agent_server(self, agent: AgentConfig) -> str:
        """The name of the Asterisk server an agent's phone is on."""
        return agent.server or self.asterisk.server_list[0].name

    def supervisor_server(self, supervisor: SupervisorConfig) -> str:
        """The name of the Asterisk server a supervisor's phone is on."""
        return supervisor.server or self.asterisk.server_list[0].name

    @property
    def supervisors(self) -> list[SupervisorConfig]:
        return self.supervision.supervisors if self.supervision is not None else []

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
        return Schedule.build(self.timezone, site.hours, site.holidays, site.workdays)

    def schedule(self, queue_id: str) -> Schedule:
        q = self.queue(queue_id)
        return Schedule.build(self.timezone, q.hours, q.holidays, q.workdays)

    def segment_table(self) -> SegmentTable:
        return SegmentTable(
            Segment(s.id, frozenset(normalise_number(n) for n in s.numbers),
                    tuple(s.prefixes), s.priority, s.queue)
            for s in self.segments
        )

    @cached_property
    def _did_index(self) -> dict[str, DidConfig]:
        """Normalised DID → what it says."""
        return {normalise_did(did): entry for did, entry in self.dids.items()}

    def did_entry(self, did: str | None) -> DidConfig | None:
        """What the DID map says of a dialled number (in any of the forms a carrier
        writes it: ``+86…``, ``0086…``, national), if anything."""
        if not did:
            return None
        return self._did_index.get(normalise_did(did))

    def did_queue(self, did: str | None) -> QueueConfig | None:
        """The queue a dialled number preselects, if the DID map has one."""
        entry = self.did_entry(did)
        return self.queue(entry.queue) if entry is not None and entry.queue else None

    def language_for(self, queue_id: str | None = None, did: str | None = None) -> str:
        """The language of a caller's prompts: its queue's ``language``, else its DID's,
        else the hotline's. (The dialplan applies the DID's and the hotline's before the
        engine sees the call; a queue's applies once the call is in that queue.)"""
        if queue_id is not None and self.has_queue(queue_id):
            language = self.queue(queue_id).language
            if language:
                return language
        entry = self.did_entry(did)
        return entry.language if entry is not None and entry.language else self.language

    def has_queue(self, queue_id: str) -> bool:
        return any(q.id == queue_id for q in self.queues)

    def queue_for_did(self, did: str | None) -> QueueConfig:
        """The queue a dialled number lands in: the DID map, else the default queue."""
        queue = self.did_queue(did)
        if queue is not None:
            return queue
        if self.default_queue is not None:
            return self.queue(self.default_queue)
        return self.queues[0]
