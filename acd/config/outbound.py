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

    def settings(self) -> CallbackSettings:
        return CallbackSettings(
            attempts=self.attempts, retry_after=self.retry_after,
            customer_ring=self.customer_ring, allow=tuple(self.allow), context=self.context,
            number_is=self.number_is, confirm_prompt=tuple(self.confirm_prompt),
            enter_number=self.enter_number, confirmed=self.confirmed, invalid=self.invalid,
            confirm_key=self.confirm_key, other_key=self.other_key,
            confirm_timeout=self.confirm_timeout)
