"""Loading the configuration: YAML text → a validated :class:`~acd.config.schema.Config`.

Every error names the file, the key path and (where the YAML gives it) the line, e.g.::

    config/acd.yaml: agents[2].skills.repair (line 41): Input should be less than or equal to 5
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from acd.config.errors import ConfigError, fmt_path
from acd.config.schema import Config


def _line_of(node: yaml.Node | None, path: Sequence[str | int]) -> int | None:
    """The 1-based line of ``path`` in a composed YAML tree, as deep as it resolves."""
    line = None if node is None else node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    node = value
                    line = key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def yaml_where(source: str, root: yaml.Node | None, path: Sequence[str | int]) -> str:
    """``file: key.path[2] (line N)`` for error messages about a YAML file."""
    line = _line_of(root, path)
    suffix = f" (line {line})" if line is not None else ""
    return f"{source}: {fmt_path(path)}{suffix}"


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parse and validate YAML text; raise ConfigError listing every problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{source}{where}: invalid YAML: {problem}"]) from None
    if data is None:
        raise ConfigError([f"{source}: the file is empty"])
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the top level must be a mapping of sections"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines: list[str] = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            msg = err["msg"]
            if msg.startswith("Value error, @"):
                # Cross-reference problems carry their own paths.
                for item in msg.removeprefix("Value error, ").split("; @"):
                    item = item.removeprefix("@")
                    p, _, m = item.partition(": ")
                    lines.append(f"{yaml_where(source, root, _parse_path(p))}: {m}")
                continue
            lines.append(f"{yaml_where(source, root, loc)}: {msg}")
        raise ConfigError(lines) from None


def _parse_path(text: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", text):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return tuple(parts)


def load_config(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{p}: not UTF-8 text"]) from None
    return parse_config(text, str(p))
