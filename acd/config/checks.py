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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from acd.config.errors import ItemName
from routing.numbers import normalise_did

Path = tuple[str | int, ...]
Problem = tuple[Path, str]

#: Lists whose items are named by a key: errors say ``agents[1002]``, not ``agents[3]``.
ID_KEYS: Mapping[str, str] = {"queues": "id", "agents": "id", "sites": "id",
                              "segments": "id", "carriers": "id", "servers": "name",
                              "tokens": "name"}

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
    partner_ids = [sid for _, site in _items(raw, "sites")
                   if site.get("kind") == "partner" and (sid := _str(site.get("id")))]
    for i, q in _items(raw, "queues"):
        exits = q.get("exits")
        actions: list[tuple[tuple[str | int, ...], Any]] = [(("queues", i, "exits", key),
                    exits.get(key) if isinstance(exits, dict) else None)
                   for key in ("action", "key_action")]
        for j, stage in _items(q, "stages"):
            actions.append((("queues", i, "stages", j, "action"), stage.get("action")))
            named = stage.get("partners")
            for k, sid in enumerate(named if isinstance(named, list) else []):
                if isinstance(sid, str) and sid not in partner_ids:
                    problems.append((("queues", i, "stages", j, "partners", k),
                                     f"unknown partner site {sid!r}"
                                     f"{near(sid, partner_ids)}"))
        for where, act in actions:
            if isinstance(act, dict) and act.get("to") == "queue" and act.get("queue"):
                if act.get("queue") == q.get("id"):
                    problems.append(((*where, "queue"),
                                     "a queue cannot send its callers to itself"))
                else:
                    unknown_queue((*where, "queue"), act.get("queue"))
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
    for qid in _dict(raw, "history", "recording"):
        unknown_queue(("history", "recording", qid), qid)
    if raw.get("ha") is not None:
        backend = _dict(raw, "store").get("backend", "memory")
        if backend != "redis":
            problems.append((("ha",), "hot standby needs store.backend: redis (the lease "
                             "lives in Redis)"))
    return problems
