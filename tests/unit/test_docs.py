"""The documentation says what the code does (issue 15.7):

* every key of the configuration schema (walked recursively through the pydantic models)
  is documented in docs/configuration.md, in a section about its top-level key;
* every YAML example in docs/ parses; every one that is a whole config (it has
  ``queues:``) passes ``acd check-config``; every other one only uses known top-level
  sections, and passes too once completed with a minimal queue list (mark a block that
  must not be checked with ``# not a config`` on its first line).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from acd.config import Config, check_text, read_yaml

DOCS = Path(__file__).resolve().parents[2] / "docs"
CONFIGURATION = (DOCS / "configuration.md").read_text(encoding="utf-8")


def _models(annotation: Any) -> list[type[BaseModel]]:
    if typing.get_origin(annotation) is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def schema_keys(model: type[BaseModel] = Config,
                prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, info in model.model_fields.items():
        yield (*prefix, name)
        for sub in _models(info.annotation):
            yield from schema_keys(sub, (*prefix, name))


def _mentions(text: str, key: str) -> bool:
    k = re.escape(key)
    return bool(
        re.search(rf"`(?:[\w\[\]-]+\.)*{k}(?:\.[\w\[\].-]+)?`", text)   # `key`, `a.key`
        or re.search(rf"(?m)^[ \-#]*{k}:", text)                       # key: in YAML
        or re.search(rf"[{{,]\s*{k}:", text))                           # {key: …}


def _sections(doc: str) -> list[str]:
    return re.split(r"(?m)^(?=#{2,4} )", doc)


def test_the_walk_finds_nested_keys() -> None:
    keys = set(schema_keys())
    assert {("asterisk", "ami", "secret_env"), ("queues", "stages", "priority_boost"),
            ("sites", "trunk", "endpoint"), ("regions", "policies", "mode"),
            ("dids", "language"), ("api", "tokens", "role")} <= keys
    assert len(keys) > 100


@pytest.mark.parametrize("key", sorted(schema_keys()), ids=".".join)
def test_every_config_key_is_documented(key: tuple[str, ...]) -> None:
    """The key's name appears (backticked, or as a YAML key) in a section of
    configuration.md that is about its top-level key."""
    top, leaf = key[0], key[-1]
    sections = [s for s in _sections(CONFIGURATION) if _mentions(s, top)]
    assert sections, f"top-level key {top!r} appears nowhere in configuration.md"
    assert any(_mentions(s, leaf) for s in sections), \
        f"{'.'.join(key)}: {leaf!r} is not documented where {top!r} is"


def yaml_blocks() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(DOCS.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"(?m)^```yaml\n(.*?)^```", text, re.S):
            line = text[:m.start()].count("\n") + 2
            found.append((path.name, line, m.group(1)))
    return found


BLOCKS = yaml_blocks()
#: What a partial example is completed with (only what it does not give itself).
MINIMAL: dict[str, Any] = {
    "queues": [{"id": q, "skills": {q: 1}} for q in (
        "consult", "order", "repair", "complaint", "export")],
    "agents": [{"id": "1001", "skills": {"consult": 1}, "contact": "sip:a@192.0.2.1"}],
}


def test_there_are_examples() -> None:
    assert len(BLOCKS) >= 12
    assert sum(1 for _, _, text in BLOCKS if re.search(r"(?m)^queues:", text)) >= 5


@pytest.mark.parametrize(("doc", "line", "text"), BLOCKS,
                         ids=[f"{d}:{n}" for d, n, _ in BLOCKS])
def test_every_yaml_example_passes_check_config(doc: str, line: int, text: str) -> None:
    if text.startswith("# not a config"):
        return
    data, _ = read_yaml(text)
    assert isinstance(data, dict), f"{doc}:{line}: not a mapping of config sections"
    unknown = set(data) - set(Config.model_fields)
    assert not unknown, f"{doc}:{line}: unknown top-level keys {sorted(unknown)}"
    if "queues" not in data:
        data = {**MINIMAL, **data}
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    report = check_text(text, f"{doc}:{line}")
    assert report.errors == [], "\n".join(report.errors)
