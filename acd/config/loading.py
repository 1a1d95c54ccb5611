"""Loading the configuration: YAML text → a validated :class:`~acd.config.schema.Config`.

Every error names the file, the key path — list items by their id — and (where the YAML
gives it) the line, e.g.::

    config/acd.yaml: agents[1002].skills.repair (line 41): Input should be less than or equal to 5

All problems come out of one run: field errors, and the errors between sections
(unknown queues, duplicates, …) even where a field is wrong too.

**Numbers stay as written.** YAML 1.1 (PyYAML) reads an unquoted ``01065550100`` as an
octal integer (148295744), ``4008001234`` as an integer and ``1:30`` as 90. Phone
numbers, DIDs and feature codes are text, so the loader keeps every plain scalar that
looks like a number as the text it is (``read_yaml``); where the schema wants a number,
pydantic reads it from that text (``ring_timeout: 15`` is 15).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from acd.config.advice import missing_environment
from acd.config.advice import warnings as config_warnings
from acd.config.checks import Problem, cross_problems, display_path
from acd.config.errors import ConfigError, fmt_path
from acd.config.schema import Config, CrossReferenceError


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps number-like plain scalars as their text (see the module
    docstring); quoted scalars, booleans, dates and nulls are read as usual."""


def _as_written(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(node.value)


_Loader.add_constructor("tag:yaml.org,2002:int", _as_written)
_Loader.add_constructor("tag:yaml.org,2002:float", _as_written)


class DuplicateKeyError(yaml.MarkedYAMLError):
    """The same key twice in one mapping (YAML keeps the last silently: a typo'd second
    ``agents:`` would drop every agent above it)."""


def _refuse_duplicate_keys(node: yaml.Node) -> None:
    """Walk the composed tree; raise at the second occurrence of a key in a mapping."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: dict[str, yaml.Node] = {}
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen and key.value != "<<":
                        first = seen[key.value].start_mark.line + 1
                        raise DuplicateKeyError(
                            None, None, f"duplicate key {key.value!r} (first on line "
                            f"{first}; YAML would keep only the last)", key.start_mark)
                    seen[key.value] = key
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def read_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """The data (numbers as written) and the composed tree (for line numbers) of a YAML
    document; raises ``yaml.YAMLError``."""
    root = yaml.compose(text, Loader=_Loader)
    if root is not None:
        _refuse_duplicate_keys(root)
    data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    return data, root


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


def yaml_where(source: str, root: yaml.Node | None, path: Sequence[str | int],
               data: Any = None) -> str:
    """``file: key.path[2] (line N)`` for error messages about a YAML file; with the
    file's ``data``, list items that have an id are named by it (``agents[1002]``)."""
    line = _line_of(root, path)
    suffix = f" (line {line})" if line is not None else ""
    shown = display_path(data, path) if data is not None else tuple(path)
    return f"{source}: {fmt_path(shown)}{suffix}"


@dataclass
class ConfigReport:
    """Everything ``acd check-config`` says about a file: the config when it is valid,
    one line per error and per warning (each with file, key path and line)."""

    config: Config | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _sorted(entries: list[tuple[int | None, str]]) -> list[str]:
    ordered = sorted(entries, key=lambda e: float("inf") if e[0] is None else e[0])
    return list(dict.fromkeys(text for _, text in ordered))


def check_text(text: str, source: str = "<config>",
               environ: Mapping[str, str] | None = None) -> ConfigReport:
    """Validate YAML text and report every problem at once. With ``environ``, a secret
    the config names but the environment lacks is an error too."""
    try:
        data, root = read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return ConfigReport(errors=[f"{source}{where}: invalid YAML: {problem}"])
    if data is None:
        return ConfigReport(errors=[f"{source}: the file is empty"])
    if not isinstance(data, dict):
        return ConfigReport(errors=[f"{source}: the top level must be a mapping of sections"])

    def at(path: Sequence[str | int], msg: str) -> tuple[int | None, str]:
        return _line_of(root, path), f"{yaml_where(source, root, path, data)}: {msg}"

    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        found: list[tuple[int | None, str]] = []
        crossed = False
        for err in exc.errors(include_url=False):
            error = (err.get("ctx") or {}).get("error")
            if isinstance(error, CrossReferenceError):
                crossed = True
                found += [at(p, m) for p, m in error.problems]
                continue
            found.append(at(tuple(err["loc"]), err["msg"].removeprefix("Value error, ")))
        if not crossed:
            # Config's own validators did not run (a field is wrong): the errors between
            # sections come from the raw data, so they are not held back a run.
            problems: list[Problem] = cross_problems(data)
            found += [at(p, m) for p, m in problems]
        return ConfigReport(errors=_sorted(found))
    report = ConfigReport(config=config)
    report.warnings = _sorted([at(p, m) for p, m in config_warnings(config)])
    if environ is not None:
        report.errors = missing_environment(config, environ)
    return report


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parse and validate YAML text; raise ConfigError listing every problem."""
    report = check_text(text, source)
    if report.errors or report.config is None:
        raise ConfigError(report.errors)
    return report.config


def _read(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{p}: not UTF-8 text"]) from None


def check_file(path: str | Path, environ: Mapping[str, str] | None = None) -> ConfigReport:
    """:func:`check_text` of a file (an unreadable file is one error)."""
    try:
        text = _read(path)
    except ConfigError as exc:
        return ConfigReport(errors=exc.errors)
    return check_text(text, str(path), environ)


def load_config(path: str | Path) -> Config:
    return parse_config(_read(path), str(Path(path)))

