"""Installing the hotline on an Asterisk (issue 15.3), against the real Asterisk 22:

* only a known carrier may call in (no anonymous endpoint), identified by its address;
* a DID arrives in any form (``+86…``, ``0086…``, national) and reaches its queue;
* a static phone that stops answering OPTIONS (``qualify``) is never rung;
* ``acd asterisk-config --full`` is a complete configuration for a dedicated Asterisk;
* ``acd asterisk-config --include`` adds the hotline to an existing PBX's own files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from acd.config import CarrierConfig, Config, load_config
from acd.domain import Fact
from acd.runtime.engine import Engine
from app.cli import main as acd
from app.node import Node
from harness.ports import SandboxPorts
from harness.rig import AgentPlan, Rig
from harness.sandbox import CONF_DIR, AsteriskInstance
from harness.sipp import run_uac, scenario_path, start_uas

pytestmark = pytest.mark.e2e


def stranger_scenario(dest: Path, user_agent: str = "Carrier SBC") -> Path:
    """``caller.xml`` from a source the sandbox's test-caller endpoint does not claim
    (another User-Agent): only a carrier known by its address lets it in."""
    text = scenario_path("caller").read_text()
    assert "User-Agent: SIPp hotline caller" in text
    path = dest / "caller_stranger.xml"
    path.write_text(text.replace("User-Agent: SIPp hotline caller", f"User-Agent: {user_agent}"))
    return path


def _log(rig: Rig) -> str:
    assert rig.asterisk is not None
    return rig.asterisk.log_path.read_text(errors="replace")


async def test_only_a_known_carrier_calls_in_and_dids_arrive_in_any_form(
        chroot: Path, artifacts: Path) -> None:
    plans = [AgentPlan("1001", skills={"consult": 1, "repair": 1}, talk_ms=(300, 500))]
    extra = {"queues": [{"id": "consult", "skills": {"consult": 1}, "wrap_up": 0.3},
                        {"id": "repair", "skills": {"repair": 1}, "wrap_up": 0.3}],
             "dids": {"01065550100": "repair", "4008001234": "consult"}}
    stranger = stranger_scenario(artifacts)
    async with Rig(artifacts, plans, extra_config=extra) as rig:
        # No carrier configured: a caller from an unknown source is refused.
        refused = await rig.call(["13800138000"], scenario=stranger, name="refused",
                                 time_limit=30)
        assert refused.successful == 0 and refused.failed == 1
        assert not rig.published("call_waiting")
        assert "No matching endpoint found" in _log(rig)

        # The carrier is declared (by address), rendered and reloaded: now it calls in,
        # as carrier-pstn, with the DID in every form a carrier writes it.
        assert rig.config is not None
        rig.config = rig.config.model_copy(update={"carriers": [
            CarrierConfig(id="pstn", match=["127.0.0.1"])]})
        await rig.reload_agents()
        forms = {"+861065550100": "repair", "00861065550100": "repair",
                 "01065550100": "repair", "+864008001234": "consult"}
        for i, did in enumerate(forms):
            result = await rig.call([f"1380013800{i}"], scenario=stranger, service=did,
                                    name=f"did{i}", time_limit=30)
            assert result.failed == 0, result.errors_text()
        waiting = {e["caller"]: e["queue"] for e in rig.published("call_waiting")}
        assert waiting == {f"1380013800{i}": q for i, q in enumerate(forms.values())}
        assert _log(rig).count('NoOp("PJSIP/carrier-pstn-') >= len(forms)


async def test_a_static_phone_that_stops_answering_is_never_rung(
        chroot: Path, artifacts: Path) -> None:
    """``asterisk.qualify_frequency``: Asterisk asks static contacts with OPTIONS; one that
    stops answering shows Unavailable, so its agent is neither rung nor paused."""
    plans = [AgentPlan("1001", talk_ms=(300, 500)), AgentPlan("1002", talk_ms=(300, 500))]
    rig = Rig(artifacts, plans, ring_timeout=3)
    rig.extra_config["asterisk"] = {
        "ami": {"host": "127.0.0.1", "port": rig.ports.ami, "ping_interval": 5,
                "reconnect_max": 1.0},
        "agi_retries": 3, "agi_retry_pause": 1, "qualify_frequency": 1}
    async with rig:
        assert rig.engine is not None
        engine = rig.engine
        def device(agent: str) -> str:
            return str(engine.snapshot()["agents"][agent]["device"])

        await rig.wait_for(lambda: {device("1001"), device("1002")} == {"NOT_INUSE"},
                           within=15)
        await rig.phones["1002"].stop()  # the softphone is closed, its address stays
        await rig.wait_for(lambda: device("1002") == "UNAVAILABLE", within=15)
        result = await rig.call([f"1390013900{i}" for i in range(3)], rate=2, time_limit=60)
        assert result.failed == 0, result.errors_text()
        assert {e["agent"] for e in rig.published("call_offered")} == {"1001"}
        assert not rig.published("agent_no_answer")
        assert engine.snapshot()["agents"]["1002"]["status"] == "available"


# --------------------------------------------------------------------------- full, include


@contextlib.asynccontextmanager
async def running_engine(config: Config, secret: str,
                         events: list[Fact]) -> AsyncIterator[Engine]:
    node = Node(config, ami_secrets={s.name: secret for s in config.asterisk.server_list})
    engine = node.engine
    async with engine.subscribe() as queue:
        async def collect() -> None:
            while True:
                events.append(await queue.get())

        collector = asyncio.create_task(collect())
        try:
            async with node:
                assert engine.ami is not None
                await engine.ami.wait_connected(10)
                yield engine
        finally:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector


def _acd_config(path: Path, ports: SandboxPorts, phone_port: int,
                **extra: Any) -> Config:
    raw: dict[str, Any] = {
        "asterisk": {"ami": {"port": ports.ami, "ping_interval": 5}, "agi_retries": 3,
                     "agi_retry_pause": 1},
        "fastagi": {"port": ports.agi},
        "engine": {"ring_timeout": 4},
        "queues": [{"id": "consult", "skills": {"consult": 1}, "wrap_up": 0.3}],
        "dids": {"4008001234": "consult"},
        "agents": [{"id": "1001", "endpoint": "agent1001", "skills": {"consult": 1},
                    "contact": f"sip:agent1001@127.0.0.1:{phone_port}"}],
        "carriers": [{"id": "pstn", "match": ["127.0.0.1"]}],
        **extra,
    }
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_config(path)


async def _one_call(inst: AsteriskInstance, config: Config, artifacts: Path,
                    ports: SandboxPorts, did: str) -> list[Fact]:
    events: list[Fact] = []
    async with running_engine(config, inst.ami_secret, events):
        result = await run_uac("caller", "127.0.0.1", ports.sip, did, ["13800138000"],
                               artifacts, ports, name="callers", trace_messages=False,
                               time_limit=40)
        assert result.failed == 0, result.errors_text()
        assert result.successful == 1
    return events


async def test_full_config_runs_a_dedicated_asterisk(
        chroot: Path, artifacts: Path, ports: SandboxPorts,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``acd asterisk-config --full``: every template filled in from the ACD config, the
    environment and a few options; Asterisk runs on it alone (only the directories and
    ports are the sandbox's) and a carrier's call reaches the agent."""
    phone = await start_uas("agent_answer", ports, artifacts, "agent1001",
                            {"talk_min": 300, "talk_max": 500}, trace_messages=False)
    out = artifacts / "etc-full"
    inst = AsteriskInstance(f"full-{os.getpid()}", ports, {}, conf_dir=out,
                            test_callers=False)
    try:
        config = _acd_config(artifacts / "acd.yaml", ports, phone.port)
        monkeypatch.setenv("ACD_AMI_SECRET", inst.ami_secret)
        dirs = [f"{k}={v}" for k, v in inst.vars.items() if k.startswith("AST_")]
        code = acd(["asterisk-config", "-c", str(artifacts / "acd.yaml"), "--full",
                    "-o", str(out), "--bind", "127.0.0.1", "--sip-port", str(ports.sip),
                    "--rtp", f"{ports.rtp_start}-{ports.rtp_end}",
                    *[arg for d in dirs for arg in ("--set", d)]])
        assert code == 0
        assert not [p.name for p in out.iterdir() if "@@" in p.read_text()
                    and re.search(r"@@[A-Z_]+@@", p.read_text())]
        await asyncio.to_thread(inst.start)
        events = await _one_call(inst, config, artifacts, ports, "+864008001234")
        assert [e.data["agent"] for e in events if e.name == "call_connected"] == ["1001"]
        assert 'NoOp("PJSIP/carrier-pstn-' in inst.log_path.read_text()
    finally:
        await phone.stop()
        await asyncio.to_thread(inst.stop)
        with contextlib.suppress(Exception):
            inst.save_logs(artifacts)
        with contextlib.suppress(Exception):
            inst.remove()


#: Files an existing PBX has that the hotline does not touch (taken from asterisk_conf/).
PBX_INFRA = ("asterisk.conf", "modules.conf", "logger.conf", "rtp.conf", "musiconhold.conf",
             "cdr.conf", "cel.conf", "ccss.conf", "features.conf", "indications.conf",
             "pjproject.conf", "stasis.conf", "udptl.conf", "acl.conf", "voicemail.conf")

PBX_PJSIP = """\
; an existing PBX: its own transport and its own carrier trunk
[udp]
type = transport
protocol = udp
bind = 127.0.0.1:@@SIP_PORT@@

[pstn]
type = endpoint
context = from-pstn
disallow = all
allow = alaw,ulaw

[pstn]
type = identify
endpoint = pstn
match = 127.0.0.1
"""

PBX_EXTENSIONS = """\
[general]
static = yes
writeprotect = yes

[globals]
PBX_OWN = 1

[from-pstn]
exten => 9999,1,Hangup()
"""

PBX_MANAGER = """\
[general]
enabled = yes
bindaddr = 127.0.0.1
port = @@AMI_PORT@@
"""


async def test_include_mode_adds_the_hotline_to_an_existing_pbx(
        chroot: Path, artifacts: Path, ports: SandboxPorts,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``acd asterisk-config --include``: only ``*_acd.conf`` files; the PBX gets the
    printed ``#include`` lines and dialplan entry, and a call from its carrier to the
    hotline number reaches the engine and an agent."""
    phone = await start_uas("agent_answer", ports, artifacts, "agent1001",
                            {"talk_min": 300, "talk_max": 500}, trace_messages=False)
    pbx = artifacts / "pbx"
    pbx.mkdir()
    for name in PBX_INFRA:
        shutil.copy(CONF_DIR / name, pbx / name)
    inst = AsteriskInstance(f"pbx-{os.getpid()}", ports, {}, conf_dir=pbx, test_callers=False)
    try:
        config = _acd_config(artifacts / "acd.yaml", ports, phone.port, carriers=[])
        monkeypatch.setenv("ACD_AMI_SECRET", inst.ami_secret)
        capsys.readouterr()
        assert acd(["asterisk-config", "-c", str(artifacts / "acd.yaml"), "--include",
                    "-o", str(pbx), "--bind", "127.0.0.1"]) == 0
        printed = capsys.readouterr().out
        assert sorted(p.name for p in pbx.glob("*_acd.conf")) == [
            "extensions_acd.conf", "manager_acd.conf", "pjsip_acd.conf", "queues_acd.conf",
            "voicemail_acd.conf"]
        adds = dict(re.findall(r"^\s+(\w+\.conf):\s+(#include \S+)", printed, re.M))
        entry = re.findall(r"^\s+(exten => .*)$", printed, re.M)
        assert len(adds) == 5 and entry
        # the PBX's own voicemail.conf (ours without our include line) gets the printed one
        own = "\n".join(ln for ln in (pbx / "voicemail.conf").read_text().splitlines()
                        if "voicemail_acd.conf" not in ln)
        (pbx / "voicemail.conf").write_text(own + "\n" + adds["voicemail.conf"] + "\n")
        (pbx / "pjsip.conf").write_text(PBX_PJSIP + adds["pjsip.conf"] + "\n")
        (pbx / "extensions.conf").write_text(
            PBX_EXTENSIONS + "\n".join(entry) + "\n\n" + adds["extensions.conf"] + "\n")
        (pbx / "queues.conf").write_text("[general]\n" + adds["queues.conf"] + "\n")
        (pbx / "manager.conf").write_text(PBX_MANAGER + adds["manager.conf"] + "\n")
        await asyncio.to_thread(inst.start)
        assert "PBX_OWN=1" in inst.cli("dialplan show globals")  # theirs kept
        events = await _one_call(inst, config, artifacts, ports, "+864008001234")
        assert [e.data["agent"] for e in events if e.name == "call_connected"] == ["1001"]
        assert [e.data["queue"] for e in events if e.name == "call_waiting"] == ["consult"]
        assert 'Goto("PJSIP/pstn-' in inst.log_path.read_text()
    finally:
        await phone.stop()
        await asyncio.to_thread(inst.stop)
        with contextlib.suppress(Exception):
            inst.save_logs(artifacts)
        with contextlib.suppress(Exception):
            inst.remove()
