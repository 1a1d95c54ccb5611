"""docs/simulate.md says what ``acd simulate`` does (issue 15.6): every key of the scenario
schema is documented, the scenario example is the shipped example file and parses
against its config, and the example run has the shape of today's report."""

from __future__ import annotations

import re
import shlex
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from acd.config import check_text, load_config
from app.cli import main
from sim import parse_scenario
from sim.scenario import Scenario

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "simulate.md").read_text(encoding="utf-8")
SCENARIO_MARK = "# not a config: an acd simulate scenario"


def _models(annotation: Any) -> list[type[BaseModel]]:
    if typing.get_origin(annotation) is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def scenario_keys(model: type[BaseModel] = Scenario,
                  prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key of the scenario, as written in the YAML (aliases: ``from``, ``to``)."""
    for name, info in model.model_fields.items():
        key = (*prefix, info.alias or name)
        yield key
        for sub in _models(info.annotation):
            yield from scenario_keys(sub, key)


def test_the_walk_finds_nested_keys() -> None:
    keys = set(scenario_keys())
    assert {("queues", "arrivals", "from"), ("queues", "handle_time", "sd"),
            ("queues", "patience", "mean"), ("shifts", "to"), ("replications",)} <= keys


@pytest.mark.parametrize("key", sorted(scenario_keys()), ids=".".join)
def test_every_scenario_key_is_documented(key: tuple[str, ...]) -> None:
    leaf = re.escape(key[-1])
    assert re.search(rf"`{leaf}`|^\s*[-#]?\s*{leaf}:|[{{,]\s*{leaf}:", DOC, re.M), \
        f"{'.'.join(key)} is not in docs/simulate.md"


def blocks(lang: str) -> list[str]:
    return [m.group(1) for m in re.finditer(rf"(?m)^```{lang}\n(.*?)^```", DOC, re.S)]


def test_the_scenario_example_is_the_shipped_file() -> None:
    examples = [b for b in blocks("yaml") if b.startswith(SCENARIO_MARK)]
    assert examples
    config = load_config(ROOT / "config" / "acd.beijing.yaml")
    shipped = parse_scenario((ROOT / "config" / "simulate.beijing.yaml").read_text(
        encoding="utf-8"), config=config)
    for text in examples:
        assert parse_scenario(text, "docs/simulate.md", config) == shipped


def test_the_example_config_passes_check_config() -> None:
    path = ROOT / "config" / "acd.beijing.yaml"
    report = check_text(path.read_text(encoding="utf-8"), str(path))
    assert report.errors == [] and report.warnings == []


def test_the_commands_shown_run(capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    commands = [shlex.split(line.removeprefix("$ acd "))
                for b in blocks("console") for line in b.splitlines()
                if line.startswith("$ acd simulate")]
    assert len(commands) >= 3
    monkeypatch.chdir(ROOT)
    for argv in commands:
        assert main([*argv, "--replications", "2"]) == 0, argv  # the last -n wins
        assert "日期 date" in capsys.readouterr().out


def _shape(text: str) -> list[str]:
    """The report without its numbers: labels, units, rows and columns."""
    return [" ".join(re.sub(r"\d+(?:\.\d+)?", "#", line).split())
            for line in text.splitlines()]


def test_the_example_run_is_todays_report(capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    run = next(b for b in blocks("text") if b.startswith("$ acd simulate"))
    command, *shown = run.rstrip("\n").splitlines()
    monkeypatch.chdir(ROOT)
    assert main(shlex.split(command.removeprefix("$ acd "))) == 0
    out = capsys.readouterr().out.rstrip("\n").splitlines()[1:]  # the title: the files
    assert _shape("\n".join(out)) == _shape("\n".join(shown))
