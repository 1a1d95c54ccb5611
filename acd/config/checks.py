"""What a configuration must not contain, beyond each field's own type and range.

Three kinds of findings, each a ``(key path, message)`` with a positional path (list
items by index, as the YAML tree has them; :func:`display_path` names them by id):

* :func:`cross_problems` — **errors** between sections: duplicate ids, references to a
  queue, agent or server that does not exist ("did you mean …" for a near miss), stages
  that narrow, DIDs that are the same number written twice. It works on the *raw* YAML
  data as well as on a valid config's dump, so ``acd check-config`` reports these in the
  same run as field errors (pydantic runs a model's own validators only once its fields
  are valid);
* :func:`warnings` — a valid config that can never work as meant: a group no agent and
  no site has, a queue no agent can serve at stage 0, segment numbers that are no phone
  number, a registering phone without a password;
* :func:`missing_environment` — secrets the config names (AMI secrets of every server,
  API tokens, agents' SIP passwords) that are not in the environment.

Nothing here raises on odd input: whatever the raw data holds, the worst outcome is a
finding not made (the field errors then say what is wrong).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import phonenumbers

from acd.config.errors import ItemName
from routing.segments import normalise_number

if TYPE_CHECKING:
    from acd.config.schema import Config

Path = tuple[str | int, ...]
Problem = tuple[Path, str]

#: Lists whose items are named by a key: errors say ``agents[1002]``, not ``agents[3]``.
ID_KEYS: Mapping[str, str] = {"queues": "id", "agents": "id", "sites": "id",
                              "segments": "id", "carriers": "id", "servers": "name",
                              "tokens": "name"}

_SERVICE_NUMBER = re.compile(r"[48]00\d{7}")
_BARE_86_SERVICE = re.compile(r"86([48]00\d{7})")
_BARE_86_LANDLINE = re.compile(r"86((?:10|2\d|[3-9]\d\d)\d{7,8})")


def normalise_did(raw: str) -> str:
    """A dialled number in one form, however the carrier wrote it: ``+86 10 6555 0100``,
    ``00861065550100``, ``861065550100`` and ``01065550100`` are all ``01065550100``;
    ``+864008001234`` and ``4008001234`` are ``4008001234`` (400/800 numbers are dialled
    without the trunk 0). As :func:`routing.segments.normalise_number` for caller
    numbers, plus the 400/800 and bare-86 forms carriers send as DIDs."""
    number = normalise_number(raw)
    if number.startswith("0") and _SERVICE_NUMBER.fullmatch(number[1:]):
        return number[1:]
    if m := _BARE_86_SERVICE.fullmatch(number):
        return m.group(1)
    if m := _BARE_86_LANDLINE.fullmatch(number):
        return "0" + m.group(1)
    return number


def near(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'repair'?)`` for a near miss, else ``""``."""
    matches = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def display_path(data: Any, path: Sequence[str | int]) -> Path:
    """``path`` with list items named by their id where the raw data gives one:
    ``("agents", 1, "skills")`` → ``("agents", ItemName("1002"), "skills")``, which
    :func:`~acd.config.errors.fmt_path` writes ``agents[1002].skills``."""
    out: list[str | int] = []
    node = data
    for part in path:
        key = ID_KEYS.get(str(out[-1])) if out and isinstance(out[-1], str) else None
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            item = node[part]
            name = item.get(key) if key and isinstance(item, dict) else None
            out.append(ItemName(name) if isinstance(name, str) and name else part)
            node = item
            continue
        out.append(part)
        node = node.get(part) if isinstance(node, dict) else None
    return tuple(out)


def _items(data: Any, *keys: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, item) of the list at ``data[keys[0]][keys[1]]…`` whose items are mappings."""
    node = data
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, dict):
                yield i, item


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _ids(data: Any, key: str, field: str = "id") -> list[str]:
    return [s for _, item in _items(data, key) if (s := _str(item.get(field))) is not None]


def _dict(data: Any, *keys: str) -> dict[str, Any]:
    node = data
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def cross_problems(data: Mapping[str, Any]) -> list[Problem]:
    """Every error between sections of ``data`` (raw YAML data or a config's dump)."""
    problems: list[Problem] = []
    raw = dict(data)
    queue_ids = _ids(raw, "queues")
    agent_ids = _ids(raw, "agents")

    def unknown_queue(path: Path, qid: Any) -> None:
        if isinstance(qid, str) and qid not in queue_ids:
            problems.append((path, f"unknown queue {qid!r}{near(qid, queue_ids)}"))

    seen: set[str] = set()
    for i, q in _items(raw, "queues"):
        qid = _str(q.get("id"))
        if qid is not None and qid in seen:
            problems.append((("queues", i, "id"), f"duplicate queue id {qid!r}"))
        seen.add(qid or "")
    seen_agents: set[str] = set()
    seen_endpoints: set[str] = set()
    for i, a in _items(raw, "agents"):
        aid = _str(a.get("id"))
        endpoint = _str(a.get("endpoint")) or aid
        if aid is not None and aid in seen_agents:
            problems.append((("agents", i, "id"), f"duplicate agent id {aid!r}"))
        if endpoint is not None and endpoint in seen_endpoints:
            problems.append((("agents", i, "endpoint"), f"endpoint {endpoint!r} used twice"))
        seen_agents.add(aid or "")
        seen_endpoints.add(endpoint or "")
    seen_carriers: set[str] = set()
    for i, c in _items(raw, "carriers"):
        cid = _str(c.get("id"))
        if cid is not None and cid in seen_carriers:
            problems.append((("carriers", i, "id"), f"duplicate carrier id {cid!r}"))
        seen_carriers.add(cid or "")
        if cid is not None and f"carrier-{cid}" in seen_endpoints:
            problems.append((("carriers", i, "id"), f"its endpoint carrier-{cid} is an "
                             "agent's endpoint too"))
    for i, site in _items(raw, "sites"):
        trunk = site.get("trunk")
        sid = _str(site.get("id"))
        if site.get("kind") == "partner" and isinstance(trunk, dict) and sid is not None:
            endpoint = _str(trunk.get("endpoint")) or f"trunk-{sid}"
            if endpoint in seen_endpoints:
                problems.append((("sites", i, "trunk"), f"trunk endpoint {endpoint!r} is "
                                 "an agent's endpoint too"))
    dids: dict[str, str] = {}
    for did, target in _dict(raw, "dids").items():
        qid = target.get("queue") if isinstance(target, dict) else target
        unknown_queue(("dids", did, "queue") if isinstance(target, dict) else ("dids", did),
                      qid)
        key = normalise_did(str(did))
        if key and key in dids:
            problems.append((("dids", did), f"the same number as DID {dids[key]!r} "
                             f"(both are {key})"))
        dids.setdefault(key, str(did))
    unknown_queue(("default_queue",), raw.get("default_queue"))
    seen_sites: set[str] = set()
    for i, site in _items(raw, "sites"):
        sid = _str(site.get("id"))
        if sid is not None and sid in seen_sites:
            problems.append((("sites", i, "id"), f"duplicate site id {sid!r}"))
        seen_sites.add(sid or "")
        services = site.get("services")
        for j, qid in enumerate(services if isinstance(services, list) else []):
            unknown_queue(("sites", i, "services", j), qid)
    problems += _stage_problems(raw)
    for key, qid in _dict(raw, "ivr", "options").items():
        unknown_queue(("ivr", "options", key), qid)
    codes: set[str] = set()
    for i, q in _items(raw, "queues"):
        code = q.get("transfer_code")
        if isinstance(code, str):
            if code in codes:
                problems.append((("queues", i, "transfer_code"),
                                 f"transfer code {code!r} used twice"))
            codes.add(code)
    seen_segments: set[str] = set()
    for i, seg in _items(raw, "segments"):
        sid = _str(seg.get("id"))
        if sid is not None and sid in seen_segments:
            problems.append((("segments", i, "id"), f"duplicate segment id {sid!r}"))
        seen_segments.add(sid or "")
        unknown_queue(("segments", i, "queue"), seg.get("queue"))
    names: set[str] = set()
    for i, token in _items(raw, "api", "tokens"):
        name = _str(token.get("name"))
        if name is not None and name in names:
            problems.append((("api", "tokens", i, "name"),
                             f"duplicate token name {name!r}"))
        names.add(name or "")
        agent = token.get("agent")
        if isinstance(agent, str) and agent not in agent_ids:
            problems.append((("api", "tokens", i, "agent"),
                             f"unknown agent {agent!r}{near(agent, agent_ids)}"))
    servers = _ids(raw.get("asterisk") or {}, "servers", "name") or ["main"]
    for i, a in _items(raw, "agents"):
        server = a.get("server")
        if isinstance(server, str) and server not in servers:
            problems.append((("agents", i, "server"),
                             f"unknown Asterisk server {server!r} (one of: "
                             f"{', '.join(servers)}){near(server, servers)}"))
    if raw.get("ha") is not None:
        backend = _dict(raw, "store").get("backend", "memory")
        if backend != "redis":
            problems.append((("ha",), "hot standby needs store.backend: redis (the lease "
                             "lives in Redis)"))
    return problems


def _stage_problems(raw: Mapping[str, Any]) -> list[Problem]:
    """Stages that narrow, for every queue whose own fields are valid."""
    from pydantic import ValidationError

    from acd.config.schema import QueueConfig

    problems: list[Problem] = []
    for i, q in _items(raw, "queues"):
        try:
            QueueConfig.model_validate(q).spec()
        except ValidationError:
            continue  # its field errors are reported on their own
        except ValueError as exc:
            problems.append((("queues", i, "stages"), str(exc)))
    return problems


# --------------------------------------------------------------------------- warnings


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
    for i, a in enumerate(config.agents):
        if a.contact is None and a.password_env is None:
            found.append((("agents", i), f"agent {a.id} has neither contact nor "
                          "password_env: its phone can neither be reached at a static "
                          "address nor register (`acd asterisk-config` refuses it)"))
    return found


# --------------------------------------------------------------------------- environment


def missing_environment(config: Config, environ: Mapping[str, str]) -> list[str]:
    """One line per secret the config names that the environment lacks."""
    lines: list[str] = []
    asked: set[str] = set()

    def need(name: str, what: str) -> None:
        if not environ.get(name) and name not in asked:
            lines.append(f"environment: {name} is not set ({what})")
        asked.add(name)

    for server in config.asterisk.server_list:
        need(server.ami.secret_env,
             f"AMI secret of Asterisk server {server.name!r}, user {server.ami.username!r}")
    if config.api is not None:
        for token in config.api.tokens:
            need(token.env, f"API token {token.name!r}, role {token.role.value}")
    for agent in config.agents:
        if agent.password_env:
            need(agent.password_env, f"SIP password of agent {agent.id}")
    return lines
