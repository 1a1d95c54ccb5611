"""The ``callbacks`` section: outbound callbacks (virtual hold) and where they may call.

Kept apart from ``schema`` (which imports it): the AMI account that may originate, the
customer trunk, the number patterns (the same patterns the engine checks before an
originate and the dialplan renders as the only extensions of the originate-only
context), the retry policy, the rate limit, and what the caller hears.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from acd.config.errors import ConfigError
from acd.domain.callbacks import CallbackSettings, international, pattern_regex
from acd.domain.campaigns import CampaignSettings
from routing.hours import Schedule, check_hours

_Sound = Annotated[str, Field(pattern=r"^[A-Za-z0-9_./-]+$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutboundAMIConfig(_Model):
    """The separate AMI account that may originate (``write = originate`` and nothing
    else); the engine's main account never gets ``originate``. Host and port are those
    of the engine's main AMI connection (the first Asterisk server)."""

    username: str = Field(default="acd-outbound", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: Name of the environment variable holding its secret (never the secret itself).
    secret_env: str = "ACD_AMI_OUTBOUND_SECRET"
    #: Who may log in with it (``addr/mask``, rendered ``permit``): the engine's address.
    permit: str = Field(default="127.0.0.1/255.255.255.255",
                        pattern=r"^[0-9A-Fa-f.:]+/[0-9A-Fa-f.:]+$")

    def secret(self, environ: Mapping[str, str] | None = None) -> SecretStr:
        env = os.environ if environ is None else environ
        value = env.get(self.secret_env)
        if not value:
            raise ConfigError([f"environment: {self.secret_env} is not set (AMI secret for "
                               f"the outbound user {self.username!r})"])
        return SecretStr(value)


class OutboundTrunkConfig(_Model):
    """Where the customers' legs go: a PJSIP endpoint rendered from ``contact`` (the
    carrier's or SBC's SIP URI), or an ``endpoint`` the PBX already has."""

    contact: str | None = Field(default=None, pattern=r"^sips?:[^\s;,\"<>\\]+$")
    endpoint: str = Field(default="acd-outbound-trunk", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: At most this many originates a minute through the trunk (a burst of as many).
    per_minute: int = Field(default=30, ge=1, le=6000)


class CallbacksConfig(_Model):
    """Outbound callbacks (virtual hold). A queue offers them through its exits
    (``exits.key_action`` or ``exits.action`` with ``to: callback``)."""

    ami: OutboundAMIConfig = OutboundAMIConfig()
    trunk: OutboundTrunkConfig = OutboundTrunkConfig()
    #: Numbers the engine may call, as Asterisk extension patterns; the only extensions
    #: of the originate-only context. Default: Chinese mobiles and landlines.
    allow: list[str] = Field(default_factory=lambda: [
        "_1[3-9]XXXXXXXXX", "_0[1-9]XXXXXXXX", "_0[1-9]XXXXXXXXX", "_0[1-9]XXXXXXXXXX"],
        min_length=1)
    #: Patterns that reach numbers abroad (00…, +…) are refused unless this is true.
    international: bool = False
    #: Customer legs tried at most; seconds between two; seconds the customer rings.
    attempts: int = Field(default=3, ge=1, le=20)
    retry_after: float = Field(default=120.0, ge=1, le=86_400)
    customer_ring: int = Field(default=30, ge=5, le=300)
    #: The dedicated dialplan context (rendered into extensions_acd.conf).
    context: str = Field(default="acd-outbound", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    #: What the caller hears while confirming (see docs/configuration.md).
    number_is: _Sound = "telephone-number"
    confirm_prompt: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_./{}-]+$")]] = Field(
        default_factory=lambda: ["if-correct-press", "{confirm}", "vm-press", "{other}",
                                 "vm-calldiffnum"])
    enter_number: _Sound = "vm-enter-num-to-call"
    confirmed: _Sound = "auth-thankyou"
    invalid: _Sound = "invalid"
    confirm_key: str = Field(default="1", pattern=r"^[0-9*#]$")
    other_key: str = Field(default="2", pattern=r"^[0-9*#]$")
    confirm_timeout: float = Field(default=6.0, ge=1, le=60)
    #: When callbacks are dialled: days → ``HH:MM-HH:MM`` (as queue ``hours``), in the
    #: config's ``timezone``; empty: any time.
    hours: dict[str, str | list[str]] = Field(default_factory=dict)

    @field_validator("allow")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for p in v:
            pattern_regex(p)  # ValueError names the pattern
        return v

    @model_validator(mode="after")
    def _no_abroad(self) -> CallbacksConfig:
        if not self.international:
            abroad = [p for p in self.allow if international(p)]
            if abroad:
                raise ValueError(f"allow: {', '.join(abroad)} may call abroad; set "
                                 "international: true if that is meant")
        if self.confirm_key == self.other_key:
            raise ValueError("confirm_key and other_key must differ")
        return self

    @field_validator("hours")
    @classmethod
    def _hours_parse(cls, v: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        check_hours(v)
        return v

    def settings(self, timezone: str = "Asia/Shanghai") -> CallbackSettings:
        return CallbackSettings(
            window=Schedule.build(timezone, self.hours) if self.hours else None,
            attempts=self.attempts, retry_after=self.retry_after,
            customer_ring=self.customer_ring, allow=tuple(self.allow), context=self.context,
            number_is=self.number_is, confirm_prompt=tuple(self.confirm_prompt),
            enter_number=self.enter_number, confirmed=self.confirmed, invalid=self.invalid,
            confirm_key=self.confirm_key, other_key=self.other_key,
            confirm_timeout=self.confirm_timeout)


# -- the Asterisk side (rendered by acd.config.asterisk) --------------------------------

#: The generated manager include with the outbound account (``#tryinclude``d by the
#: shipped manager.conf; only written when ``callbacks`` is configured).
MANAGER_FILE = "manager_outbound_acd.conf"
#: Characters a secret rendered into manager.conf must not hold (newline, ';').
_UNSAFE = frozenset("\r\n;")


def manager_user(cb: CallbacksConfig, environ: Mapping[str, str]) -> str:
    """The outbound AMI account: ``write = originate`` and nothing else; it reads only
    the two events it acts on (its own ``OriginateResponse``, the dialplan's
    ``UserEvent``s of the callbacks)."""
    secret = cb.ami.secret(environ).get_secret_value()
    if any(c in _UNSAFE for c in secret) or secret != secret.strip():
        raise ConfigError([f"environment: {cb.ami.secret_env} has a newline, ';' or spaces "
                           "at its ends: it would break manager.conf"])
    return "\n".join([
        "; The outbound account (callbacks): it may originate and nothing else — and only",
        f"; into [{cb.context}], whose extensions are the allowed number patterns.",
        f"[{cb.ami.username}]",
        f"secret = {secret}",
        "deny = 0.0.0.0/0.0.0.0",
        f"permit = {cb.ami.permit}",
        "writetimeout = 1000",
        "read = call,user",
        "write = originate",
        "eventfilter(action(include),name(OriginateResponse)) =",
        "eventfilter(action(include),name(UserEvent)) =",
    ]) + "\n"


def trunk_block(cb: CallbacksConfig) -> str:
    """The customers' trunk (when ``trunk.contact`` is set): outbound only."""
    ep, contact = cb.trunk.endpoint, cb.trunk.contact
    return "\n".join([
        "; ---- the callbacks' trunk: the customers' legs go out here; nothing comes in",
        f"[{ep}]", "type=endpoint", "context=acd-partners", "disallow=all",
        "allow=alaw,ulaw", "direct_media=no", "rtp_symmetric=yes", "dtmf_mode=rfc4733",
        "send_pai=no", "trust_id_outbound=no", f"aors={ep}", "",
        f"[{ep}]", "type=aor", f"contact={contact}", "",
    ]) + "\n"


def dialplan(cb: CallbacksConfig) -> str:
    """The originate-only context: one extension per allowed pattern, nothing else.

    The engine originates ``PJSIP/<agent>`` into ``[<context>]`` at the customer's
    number with ``ACD_CB_ID``/``ACD_CB_ATTEMPT`` on the channel. When the agent answers,
    the dial is marked started (global ``ACD_CBS_<id>_<dial>``) and refused if an
    engine that took over voided it (global ``ACD_CBV_<id>_<dial>``: it writes that
    first, then reads the start mark — so exactly one of them goes on); then a beep (a
    callback) and Dial rings the customer through the callbacks' trunk. The outcome
    goes to the engine as a ``UserEvent(ACDCallback)`` from the agent channel's hangup
    handler; the answer as ``UserEvent(ACDCallbackAnswered)``. A channel without
    ACD_CB_ID is refused."""
    ctx, ep = cb.context, cb.trunk.endpoint
    lines = [
        "; Callbacks: originate-only (no endpoint has this context). Only numbers matching",
        "; callbacks.allow exist here.",
        f"[{ctx}]",
    ]
    lines += [f"exten => {p},1,Gosub({ctx}-dial,s,1(${{EXTEN}}))\n same => n,Hangup()"
              for p in cb.allow]
    lines += [
        "",
        f"[{ctx}-dial]",
        'exten => s,1,GotoIf($["${ACD_CB_ID}" = ""]?refuse)',
        " ; exactly once across a takeover: first say this dial started, then look",
        " ; whether an engine that took over voided it (it writes first, then reads)",
        " same => n,Set(ACD_CB_KEY=${FILTER(0-9A-Za-z,${ACD_CB_ID})}_${ACD_CB_ATTEMPT})",
        " same => n,Set(GLOBAL(ACD_CBS_${ACD_CB_KEY})=1)",
        ' same => n,GotoIf($["${ACD_CBV_${ACD_CB_KEY}}" = "1"]?refuse)',
        f" same => n,Set(CHANNEL(hangup_handler_push)={ctx}-done,s,1)",
        " same => n,Playback(beep)",
        f" same => n,Dial(PJSIP/${{ARG1}}@{ep},{cb.customer_ring},"
        f"rU({ctx}-answered^${{ACD_CB_ID}}^${{ACD_CB_ATTEMPT}}))",
        " same => n,Return()",
        " same => n(refuse),Hangup(21)",
        "",
        f"[{ctx}-answered]",
        "exten => s,1,UserEvent(ACDCallbackAnswered,Id: ${ARG1},Attempt: ${ARG2})",
        " same => n,Return()",
        "",
        f"[{ctx}-done]",
        "exten => s,1,UserEvent(ACDCallback,Id: ${ACD_CB_ID},Attempt: ${ACD_CB_ATTEMPT},"
        "Status: ${DIALSTATUS})",
        " same => n,Return()",
    ]
    return "\n".join(lines) + "\n"


class CampaignGuardConfig(_Model):
    """Blending: outbound work gets an agent only while inbound is within target."""

    #: No inbound caller may have waited longer than this (seconds).
    max_inbound_wait: float = Field(default=30.0, ge=0, le=3600)
    #: The inbound queues' service level over the last 15 minutes at least this (0-1);
    #: omitted: not looked at.
    min_service_level: float | None = Field(default=None, ge=0, le=1)


class CampaignConfig(_Model):
    """A proactive campaign: contacts worked by the agents of ``queue`` (a queue of its
    own, with a lower ``priority`` than the inbound queues)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_]{1,40}$")
    queue: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    #: The calling window in the **contact's** local time: days → ``HH:MM-HH:MM``.
    hours: dict[str, str | list[str]] = Field(default_factory=dict)
    attempts: int = Field(default=3, ge=1, le=20)
    retry_after: float = Field(default=3600.0, ge=1, le=30 * 86_400)
    #: Numbers never to call (any form: normalised).
    do_not_call: list[str] = Field(default_factory=list)
    #: The outcome codes agents set (API); empty: any code.
    outcome_codes: list[Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")]] = Field(
        default_factory=list)
    guard: CampaignGuardConfig = CampaignGuardConfig()
    #: Region (ISO 3166-2:CN, from the number) → IANA time zone, where it differs from
    #: the config's ``timezone`` (e.g. ``CN-XJ: Asia/Urumqi``).
    timezones: dict[str, str] = Field(default_factory=dict)

    @field_validator("hours")
    @classmethod
    def _hours_parse(cls, v: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        check_hours(v)
        return v

    @field_validator("timezones")
    @classmethod
    def _zones(cls, v: dict[str, str]) -> dict[str, str]:
        from zoneinfo import ZoneInfo

        for region, tz in v.items():
            try:
                ZoneInfo(tz)
            except Exception:
                raise ValueError(f"{region}: unknown time zone {tz!r}") from None
        return v

    def settings(self, timezone: str) -> CampaignSettings:
        from routing.numbers import normalise_number

        return CampaignSettings(
            self.id, self.queue,
            {k: (v if isinstance(v, str) else tuple(v)) for k, v in self.hours.items()},
            attempts=self.attempts, retry_after=self.retry_after,
            do_not_call=frozenset(normalise_number(n) for n in self.do_not_call),
            outcome_codes=tuple(self.outcome_codes),
            max_inbound_wait=self.guard.max_inbound_wait,
            min_service_level=self.guard.min_service_level,
            timezones=dict(self.timezones), default_timezone=timezone)
