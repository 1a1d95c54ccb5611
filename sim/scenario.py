"""The scenario of a simulated day (``acd simulate --scenario FILE``): arrival profile per
queue, handle times, caller patience, ring time, agents' shifts, regions of the callers.

Times of day are ``"HH:MM"`` (quote them or not: YAML's base-60 integers are not used),
local to the config's time zone on the scenario's ``date``. Errors name the file, the key
path and the line, as the ACD config's do. The format is documented in
docs/simulate.md.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Callable
from datetime import date as Date
from datetime import datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from acd.config import Config, ConfigError, yaml_where

DAY = 86_400.0
#: A ``shifts`` key naming a group of agents rather than one agent: ``group:beijing``.
GROUP_PREFIX = "group:"
#: A Monday.
DEFAULT_DATE = Date(2025, 3, 3)

# -- the scenario file ----------------------------------------------------------------------

_CLOCK = re.compile(r"^(\d{1,2}):([0-5]\d)(?::([0-5]\d))?$")


def parse_clock(value: object) -> float:
    """``"08:30"`` or ``"08:30:15"`` → seconds since midnight (``"24:00"`` allowed)."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a time of day: write it as \"HH:MM\"")
    m = _CLOCK.match(value.strip())
    if m is None:
        raise ValueError(f"{value!r} is not a time of day (HH:MM or HH:MM:SS)")
    seconds = int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3] or 0)
    if seconds > DAY:
        raise ValueError(f"{value!r} is after 24:00")
    return float(seconds)


def fmt_clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}" + (f":{s % 60:02d}" if s % 60 else "")


Clock = Annotated[float, BeforeValidator(parse_clock)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ArrivalWindow(_Model):
    """Poisson arrivals at a constant rate from ``from`` to ``to``."""

    start: Clock = Field(alias="from")
    end: Clock = Field(alias="to")
    calls_per_hour: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ArrivalWindow:
        if self.end <= self.start:
            raise ValueError(f"'to' ({fmt_clock(self.end)}) must be after 'from' "
                             f"({fmt_clock(self.start)})")
        return self


class HandleTime(_Model):
    """Talk time of an answered call (the queue's wrap-up comes on top)."""

    distribution: Literal["exponential", "lognormal", "constant"] = "exponential"
    mean: float = Field(gt=0)
    #: Standard deviation, lognormal only (default: the mean, as spread as exponential).
    sd: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _sd_for_lognormal(self) -> HandleTime:
        if self.sd is not None and self.distribution != "lognormal":
            raise ValueError("sd applies to the lognormal distribution only")
        return self

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        mean = self.mean
        if self.distribution == "constant":
            return lambda: mean
        if self.distribution == "exponential":
            rate = 1.0 / mean
            return lambda: rng.expovariate(rate)
        sd = mean if self.sd is None else self.sd
        sigma = math.sqrt(math.log1p((sd / mean) ** 2))
        mu = math.log(mean) - sigma * sigma / 2.0
        return lambda: rng.lognormvariate(mu, sigma)


class Patience(_Model):
    """How long a caller waits before hanging up."""

    distribution: Literal["exponential"] = "exponential"
    mean: float = Field(gt=0)


def _none_word(value: object) -> object:
    return None if isinstance(value, str) and value.strip().lower() in ("none", "") else value


Region = Annotated[str, Field(pattern=r"^CN-[A-Z]{2,7}$")]


class QueueScenario(_Model):
    arrivals: list[ArrivalWindow] = Field(min_length=1)
    handle_time: HandleTime
    #: ``none`` (or omitted): callers wait as long as it takes.
    patience: Annotated[Patience | None, BeforeValidator(_none_word)] = None
    #: Callers' provinces (ISO 3166-2:CN) → relative share, for partner routing;
    #: omitted: every caller gets the config's default (unknown) region.
    regions: dict[Region, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)

    @field_validator("arrivals")
    @classmethod
    def _no_overlap(cls, v: list[ArrivalWindow]) -> list[ArrivalWindow]:
        ordered = sorted(v, key=lambda w: w.start)
        for a, b in itertools.pairwise(ordered):
            if b.start < a.end:
                raise ValueError(f"windows {fmt_clock(a.start)}-{fmt_clock(a.end)} and "
                                 f"{fmt_clock(b.start)}-{fmt_clock(b.end)} overlap")
        return v


class Shift(_Model):
    start: Clock = Field(alias="from")
    end: Clock = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> Shift:
        if self.end <= self.start:
            raise ValueError(f"'to' ({fmt_clock(self.end)}) must be after 'from' "
                             f"({fmt_clock(self.start)})")
        return self


class Scenario(_Model):
    """A simulated day: what callers do, how agents answer, who works when."""

    seed: int = 1
    #: The simulated date, in the config's time zone (queue and partner hours, holidays).
    date: Date = DEFAULT_DATE
    #: Seconds an agent's phone rings before the agent (or partner) picks up.
    ring_time: float = Field(default=2.0, ge=0)
    #: Chance an offered agent does not pick up at all (ring-no-answer, RONA).
    no_answer_probability: float = Field(default=0.0, ge=0, lt=1)
    #: Seconds a RONA-paused agent takes to make itself available again.
    rona_recovery: float = Field(default=30.0, ge=0)
    #: Callbacks (a queue exit ``to: callback``): the share of callers offered one who
    #: take it (the others hang up), the seconds they take to confirm, the chance the
    #: customer answers the callback, and the seconds its phone rings before that.
    callback_accept: float = Field(default=1.0, ge=0, le=1)
    callback_confirm_time: float = Field(default=12.0, ge=0)
    callback_answer_probability: float = Field(default=0.9, ge=0, le=1)
    callback_ring_time: float = Field(default=8.0, ge=0)
    #: Seconds from the start of the day whose calls are simulated but not counted.
    warmup: float = Field(default=0.0, ge=0)
    #: Stop the clock here (default: when the last call is done).
    until: Clock | None = None
    #: Independent days simulated (seeds ``seed`` … ``seed + replications − 1``); the
    #: report gives each figure's mean and 95 % confidence interval over them.
    replications: int = Field(default=10, ge=1, le=1000)
    #: Queue id → its callers. Queues left out get no calls.
    queues: dict[str, QueueScenario] = Field(min_length=1)
    #: Agent id, or ``group:<group>`` (every agent in that group), → shifts: when the
    #: agent is logged in. An agent's own entry wins over its groups'; an agent in several
    #: groups with shifts works the union of them. Agents left out are logged in all day.
    shifts: dict[str, list[Shift]] = Field(default_factory=dict)

    @field_validator("shifts")
    @classmethod
    def _shifts_apart(cls, v: dict[str, list[Shift]]) -> dict[str, list[Shift]]:
        for agent, shifts in v.items():
            ordered = sorted(shifts, key=lambda s: s.start)
            for a, b in itertools.pairwise(ordered):
                if b.start < a.end:
                    raise ValueError(f"agent {agent}: shifts {fmt_clock(a.start)}-"
                                     f"{fmt_clock(a.end)} and {fmt_clock(b.start)}-"
                                     f"{fmt_clock(b.end)} overlap")
        return v

    def check_against(self, config: Config) -> list[tuple[tuple[str | int, ...], str]]:
        """Problems with the ACD config (unknown queue or agent …), as (path, message)."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        queue_ids = [q.id for q in config.queues]
        for qid in self.queues:
            if qid not in queue_ids:
                problems.append((("queues", qid),
                                 f"unknown queue {qid!r} (the config has "
                                 f"{', '.join(queue_ids)})"))
        agent_ids = {a.id for a in config.agents}
        groups = {g for a in config.agents for g in a.groups}
        for aid in self.shifts:
            if aid.startswith(GROUP_PREFIX):
                group = aid.removeprefix(GROUP_PREFIX)
                if group not in groups:
                    problems.append((("shifts", aid),
                                     f"no agent is in group {group!r} (agents' groups: "
                                     f"{', '.join(sorted(groups)) or 'none'})"))
            elif aid not in agent_ids:
                problems.append((("shifts", aid), f"unknown agent {aid!r}"))
        if self.ring_time >= config.engine.ring_timeout:
            problems.append((("ring_time",),
                             f"{self.ring_time:g} s is not below the engine's ring_timeout "
                             f"({config.engine.ring_timeout} s): no call would be answered"))
        return problems


    def agent_shifts(self, config: Config) -> dict[str, list[Shift] | None]:
        """Every agent of ``config`` → its shifts, earliest first (``None``: all day): its
        own entry, else the union of its groups' entries."""
        out: dict[str, list[Shift] | None] = {}
        for a in config.agents:
            own = self.shifts.get(a.id)
            if own is not None:
                out[a.id] = sorted(own, key=lambda s: s.start)
                continue
            spans = [(s.start, s.end) for g in a.groups
                     for s in self.shifts.get(GROUP_PREFIX + g, ())]
            if not any(GROUP_PREFIX + g in self.shifts for g in a.groups):
                out[a.id] = None
                continue
            merged: list[tuple[float, float]] = []
            for start, end in sorted(spans):
                if merged and start <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], end))
                else:
                    merged.append((start, end))
            out[a.id] = [Shift.model_construct(start=start, end=end) for start, end in merged]
        return out


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1 base-60 integers, so ``12:00`` stays a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)"
               r"|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)


def parse_scenario(text: str, source: str = "<scenario>",
                   config: Config | None = None) -> Scenario:
    """Parse and validate a scenario (against ``config`` if given); raise ConfigError
    naming the file, key path and line of every problem."""
    try:
        root = yaml.compose(text, Loader=_Loader)
        data: Any = yaml.load(text, Loader=_Loader)  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{source}{where}: invalid YAML: {problem}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the top level must be a mapping (seed, queues, …)"])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([
            f"{yaml_where(source, root, tuple(err['loc']))}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors(include_url=False)
        ]) from None
    if config is not None:
        problems = scenario.check_against(config)
        if problems:
            raise ConfigError([f"{yaml_where(source, root, p)}: {msg}" for p, msg in problems])
    return scenario


def load_scenario(path: str | Path, config: Config | None = None) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{p}: not UTF-8 text"]) from None
    return parse_scenario(text, str(p), config)


def day_epoch(config: Config, day: Date) -> float:
    """Epoch seconds of local midnight of ``day`` in the config's time zone: the core's
    clock is epoch time (partner hours are checked against it)."""
    return datetime.combine(day, clock_time(0), ZoneInfo(config.timezone)).timestamp()
