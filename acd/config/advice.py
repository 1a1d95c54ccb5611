"""Advice on a valid configuration: what can never work as meant (warnings), and which
secrets it names are missing from the environment. Used by ``acd check-config``."""

from __future__ import annotations

import re
from collections.abc import Mapping

import phonenumbers

from acd.config.checks import Problem, near
from acd.config.schema import Config
from routing.numbers import normalise_number


def _valid_number(number: str) -> bool:
    text = "+" + number[2:] if number.startswith("00") else number
    try:
        parsed = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(parsed))


def warnings(config: Config) -> list[Problem]:
    """What a valid config says that can never work as meant."""
    from routing.model import AgentSpec, resolve_stages

    found: list[Problem] = []
    groups = {g for a in config.agents for g in a.groups} | {s.id for s in config.sites}
    for i, q in enumerate(config.queues):
        named = [(("queues", i, "groups"), q.groups)] + [
            (("queues", i, "stages", j, "groups"), st.groups)
            for j, st in enumerate(q.stages)]
        for path, listed in named:
            for g in listed or ():
                if g not in groups:
                    found.append((path, f"group {g!r}: no agent is in it and no site has "
                                  f"that id{near(g, groups)}"))
    agents = [AgentSpec(a.id, dict(a.skills), frozenset(a.groups)) for a in config.agents]
    for i, q in enumerate(config.queues):
        stages = resolve_stages(q.spec())
        if any(stages[0].admits(a) for a in agents):
            continue
        need = ", ".join(f"{s} ≥ {lvl}" for s, lvl in stages[0].requirement) or "no skill"
        where = f" in groups {', '.join(sorted(stages[0].groups))}" \
            if stages[0].groups is not None else ""
        later = next((st for st in stages[1:] if any(st.admits(a) for a in agents)), None)
        partners = [s.id for s in config.partners() if not s.services or q.id in s.services]
        if later is not None:
            then = f"its callers wait {later.after:g} s for stage {later.index}"
        elif partners:
            then = f"only partner sites can take its calls ({', '.join(partners)})"
        else:
            then = "no stage admits an agent either: its callers are never served"
        found.append((("queues", i), f"no agent can serve queue {q.id!r} at stage 0 "
                      f"(needs {need}{where}): {then}"))
    for i, seg in enumerate(config.segments):
        for j, raw in enumerate(seg.numbers):
            number = normalise_number(raw)
            if not number or not _valid_number(number):
                found.append((("segments", i, "numbers", j),
                              f"{raw!r} is not a valid phone number (it never matches a "
                              "caller)"))
        for j, prefix in enumerate(seg.prefixes):
            if not prefix.isdigit():
                found.append((("segments", i, "prefixes", j),
                              f"prefix {prefix!r} is matched against the national number "
                              f"(digits only, e.g. {normalise_number(prefix) or '0755'!r}): "
                              "it never matches"))
    for number in config.regions.overrides:
        if normalise_number(number) != number:
            found.append((("regions", "overrides", number),
                          f"caller numbers are matched in national form: write "
                          f"{normalise_number(number)!r}"))
    covered = {r for s in config.partners() for r in s.regions}
    for region, policy in config.regions.policies.items():
        if policy.mode.value == "primary" and region not in covered:
            found.append((("regions", "policies", region, "mode"),
                          f"{region} is primary (partner first), but no partner site "
                          "covers it: its callers go to own agents only"))
    for i, a in enumerate(config.agents):
        if a.contact is None and a.password_env is None:
            found.append((("agents", i), f"agent {a.id} has neither contact nor "
                          "password_env: its phone can neither be reached at a static "
                          "address nor register (`acd asterisk-config` refuses it)"))
    return found


# --------------------------------------------------------------------------- environment


#: What a secret left as the example's looks like: change-me…, changeme, replace-me,
#: secret, password, example, xxx, <…>.
PLACEHOLDER = re.compile(
    r"^(change[-_ ]?me|replace[-_ ]?me|secret|password|example|todo|x{3,}|<.*>)",
    re.IGNORECASE)


def secret_names(config: Config) -> list[tuple[str, str]]:
    """(environment variable, what it holds) of every secret the config names."""
    names: list[tuple[str, str]] = []
    for server in config.asterisk.server_list:
        names.append((server.ami.secret_env, f"AMI secret of Asterisk server "
                      f"{server.name!r}, user {server.ami.username!r}"))
    if config.fastagi.secret_env is not None:
        names.append((config.fastagi.secret_env, "FastAGI secret shared with Asterisk"))
    if config.store.password_env is not None:
        names.append((config.store.password_env, "Redis password"))
    if config.store.sentinel is not None and config.store.sentinel.password_env:
        names.append((config.store.sentinel.password_env, "Redis Sentinel password"))
    if config.api is not None:
        for token in config.api.tokens:
            names.append((token.env, f"API token {token.name!r}, role {token.role.value}"))
    for agent in config.agents:
        if agent.password_env:
            names.append((agent.password_env, f"SIP password of agent {agent.id}"))
    return names


def placeholder_secrets(config: Config, environ: Mapping[str, str]) -> list[str]:
    """One line per secret still set to a placeholder (``change-me``…): ``acd serve``
    refuses them, ``acd check-config`` reports them."""
    lines: list[str] = []
    for name, what in dict(secret_names(config)).items():
        value = environ.get(name)
        if value and PLACEHOLDER.match(value.strip()):
            lines.append(f"environment: {name} is a placeholder ({what}): set a real "
                         "secret")
    return lines


def missing_environment(config: Config, environ: Mapping[str, str]) -> list[str]:
    """One line per secret the config names that the environment lacks, or that is
    still a placeholder."""
    lines: list[str] = []
    asked: set[str] = set()

    def need(name: str, what: str) -> None:
        if not environ.get(name) and name not in asked:
            lines.append(f"environment: {name} is not set ({what})")
        asked.add(name)

    for name, what in secret_names(config):
        need(name, what)
    return lines + placeholder_secrets(config, environ)
