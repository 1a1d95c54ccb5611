"""The shipped Prometheus alert rules (deploy/prometheus/): valid, unit-tested with
promtool, naming only metrics the engine exports; and ``acd_engine_active`` — what
"no active engine" watches — drops to 0 when Redis (where the lease lives) goes away.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from pathlib import Path

import pytest

from acd.config import parse_config
from app.node import Node
from harness.redis import RedisServer
from tests.unit.conftest import ApiRig

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=RULES, capture_output=True, text=True,
                          check=False, timeout=60)


def test_the_rules_are_valid_and_their_unit_tests_pass() -> None:
    check = promtool("check", "rules", "acd-alerts.yml")
    assert check.returncode == 0, check.stdout + check.stderr
    test = promtool("test", "rules", "acd-alerts.test.yml")
    assert test.returncode == 0, test.stdout + test.stderr
    assert "SUCCESS" in test.stdout


async def test_the_rules_name_only_metrics_the_engine_exports() -> None:
    cfg = parse_config("fastagi: {host: 127.0.0.1, port: 0}\nqueues: [{id: q}]\napi: {}\n")
    async with ApiRig(cfg) as rig:
        exported = {line.split("{")[0].split(" ")[0]
                    for line in (await rig.http.get("/metrics")).text.splitlines()
                    if line and not line.startswith("#")}
    used = set(re.findall(r"\b(acd_[a-z_]+)", (RULES / "acd-alerts.yml").read_text()))
    assert {"acd_engine_active", "acd_store_loaded"} <= used
    assert used <= exported, used - exported


async def test_no_active_engine_when_redis_holding_the_lease_is_gone(tmp_path: Path) -> None:
    def active(node: Node) -> float:
        return next(s.value for fam in node.registry.collect() for s in fam.samples
                    if s.name == "acd_engine_active")

    async def until(predicate: object, within: float) -> None:
        deadline = time.monotonic() + within
        while not predicate():  # type: ignore[operator]
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

    with RedisServer(tmp_path / "redis") as server:
        cfg = parse_config(
            "fastagi: {host: 127.0.0.1, port: 0}\nqueues: [{id: q}]\napi: {}\n"
            f"store: {{backend: redis, url: \"{server.url}\", timeout: 0.3}}\n"
            "ha: {node_id: one, lease_ttl: 1}\n")
        async with Node(cfg, ami_secrets=None) as node:
            await until(lambda: active(node) == 1.0, 5)
            server.stop()  # the lease cannot be renewed: the node steps down
            await until(lambda: active(node) == 0.0, 5)
            server.start()
            await until(lambda: active(node) == 1.0, 10)


@pytest.mark.parametrize("rule", ["AcdNoActiveEngine", "AcdSeveralActiveEngines",
                                  "AcdStoreNotLoaded"])
def test_the_rules_are_documented(rule: str) -> None:
    docs = (RULES.parents[1] / "docs" / "operations.md").read_text()
    assert rule in docs
