"""The sandbox itself, against the real Asterisk 22 and SIPp — no ACD engine.

* the sandbox chroot is reused (provision is instant the second time);
* instances render the shipped ``asterisk_conf/`` and run side by side;
* with no engine listening, the shipped dialplan retries the FastAGI URL, plays hold
  music between tries and falls back to app_queue, which serves a burst of callers from
  the agents of the generated ``queues_acd.conf``;
* the AMI account of ``manager.conf`` sees only the filtered events, list-action items
  still arrive, and device states are what the engine expects.

Artifacts go to ``artifacts/e2e/<test>/<pid>/``: the SIPp traces and, per Asterisk instance,
its logs (messages.log, queue_log, CDRs) and rendered config.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from harness.ports import SandboxPorts
from harness.sandbox import (
    CONF_DIR,
    AsteriskInstance,
    TemplateError,
    provision,
)
from harness.sipp import SippProcess, run_uac, start_uas

pytestmark = pytest.mark.e2e

DID = "4008001234"
#: What the engine's AMI account may see (manager.conf eventfilter).
ALLOWED_EVENTS = {"FullyBooted", "Shutdown", "Reload", "DeviceStateChange", "ContactStatus",
                  "PeerStatus", "Newchannel", "DialBegin", "DialEnd", "BridgeEnter",
                  "BridgeLeave", "Hangup", "OriginateResponse", "DTMFEnd",
                  # cdr_manager: the call history closes calls no engine saw end
                  "Cdr"}


def pjsip_agent(endpoint: str, contact: str | None) -> str:
    """The shape `acd asterisk-config` generates for a phone with a static contact."""
    aor = f"contact={contact}" if contact else "max_contacts=1\nremove_existing=yes"
    return (f"[{endpoint}]\ntype=endpoint\ncontext=acd-agents\ndisallow=all\n"
            f"allow=ulaw,alaw\ndirect_media=no\nrtp_symmetric=yes\ndtmf_mode=rfc4733\n"
            f"aors={endpoint}\n\n[{endpoint}]\ntype=aor\n{aor}\n\n")


def warnings(log: str, text: str) -> int:
    """Lines the dialplan's Log(WARNING, ...) wrote containing ``text``."""
    return sum(1 for line in log.splitlines() if " WARNING[" in line and text in line)


def unique(name: str) -> str:
    """Instance names per test process: parallel test runs never share an instance."""
    return f"{name}-{os.getpid()}"


@contextlib.contextmanager
def running(instance: AsteriskInstance, artifacts: Path) -> Iterator[AsteriskInstance]:
    """Start; whatever happens (also when start fails half-way) stop it, keep its logs
    and config in the artifacts and delete the instance directory."""
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
        instance.save_logs(artifacts)
        instance.remove()


@contextlib.asynccontextmanager
async def agents(ports: SandboxPorts, artifacts: Path, names: list[str],
                 scenario: str = "agent_answer") -> AsyncIterator[dict[str, SippProcess]]:
    """UAS agent phones ``names``; ``name:scenario`` picks another scenario for one."""
    procs: dict[str, SippProcess] = {}
    try:
        for spec in names:
            name, _, kind = spec.partition(":")
            kind = kind or scenario
            talk = {"talk_min": 500, "talk_max": 1500} if kind == "agent_answer" else None
            procs[name] = await start_uas(kind, ports, artifacts, name, talk)
        yield procs
    finally:
        for proc in procs.values():
            await proc.stop()


class EventTap:
    """A second AMI session, as the engine's account, recording every event it is sent."""

    def __init__(self, instance: AsteriskInstance) -> None:
        self.instance = instance
        self.events: list[dict[str, str]] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> EventTap:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        inst = self.instance
        reader, writer = await asyncio.open_connection(inst.ami_host, inst.ports.ami)
        try:
            await reader.readline()
            writer.write(f"Action: Login\r\nUsername: {inst.ami_user}\r\n"
                         f"Secret: {inst.ami_secret}\r\n\r\n".encode())
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                msg: dict[str, str] = {}
                for line in block.decode().strip().split("\r\n"):
                    key, sep, value = line.partition(": ")
                    if sep:
                        msg[key] = value
                if msg.get("Response") == "Success":
                    self._ready.set()
                elif "Event" in msg:
                    self.events.append(msg)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def names(self) -> set[str]:
        return {e["Event"] for e in self.events}


# --------------------------------------------------------------------------- tests


def test_second_provision_reuses_the_chroot(chroot: Path) -> None:
    begin = time.monotonic()
    again = provision()
    assert again == chroot
    assert time.monotonic() - begin < 1.0
    assert (chroot / "usr/sbin/asterisk").is_file()


def test_provision_explains_what_is_missing(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.sandbox.os.geteuid", lambda: 1000)
    with pytest.raises(RuntimeError, match="needs root"):
        provision(tmp_path)
    monkeypatch.setattr("harness.sandbox.os.geteuid", lambda: 0)
    monkeypatch.setattr("harness.sandbox.shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"debootstrap is not installed"):
        provision(tmp_path)
    assert not (tmp_path / "sid-chroot").exists()


def test_unknown_placeholder_is_an_error_naming_file_and_placeholder(
        chroot: Path, ports: SandboxPorts, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    with (conf / "rtp.conf").open("a") as fh:
        fh.write("dtls_mtu = @@NO_SUCH_VALUE@@\n")
    inst = AsteriskInstance(unique("bad-template"), ports, {}, conf_dir=conf, chroot=chroot)
    with pytest.raises(TemplateError, match=r"rtp\.conf.*@@NO_SUCH_VALUE@@"):
        inst.start()
    assert not inst.running()
    inst.remove()


def test_two_instances_run_side_by_side_with_empty_generated_files(
        chroot: Path, artifacts: Path) -> None:
    first, second = SandboxPorts.free(), SandboxPorts.free()
    while second.sip == first.sip:
        second = SandboxPorts.free()
    a = AsteriskInstance(unique("side-a"), first, {}, chroot=chroot)
    b = AsteriskInstance(unique("side-b"), second, {}, chroot=chroot)
    with running(a, artifacts), running(b, artifacts):
        assert a.boot_seconds is not None and a.boot_seconds < 10
        assert "transport-udp" in a.cli("pjsip show transports")
        assert f"127.0.0.1:{second.sip}" in b.cli("pjsip show transports")
        assert (a.etc_dir / "pjsip_acd.conf").exists()
        assert "default" in b.cli("moh show classes")
    assert not a.running() and not b.running()


async def test_fallback_queue_serves_a_burst_when_no_engine_listens(
        chroot: Path, ports: SandboxPorts, artifacts: Path) -> None:
    nobody = ports.alloc(1)[0]  # nothing listens here: every FastAGI attempt fails
    callers = [f"1380013800{i}" for i in range(1, 5)]
    async with agents(ports, artifacts, ["agent1", "agent2"]) as uas:
        generated = {
            "pjsip_acd.conf": "".join(pjsip_agent(n, f"sip:{n}@127.0.0.1:{p.port}")
                                      for n, p in uas.items()),
            "queues_acd.conf": "".join(f"member => PJSIP/{n},0,{n}\n" for n in uas),
        }
        conf_vars = {"ACD_AGI_URLS": f"agi://127.0.0.1:{nobody}", "ACD_RETRIES": "2",
                     "ACD_RETRY_PAUSE": "1", "FALLBACK_TIMEOUT": "60"}
        inst = AsteriskInstance(unique("fallback"), ports, conf_vars, generated, chroot=chroot)
        with running(inst, artifacts):
            assert "Class: default" in inst.cli("moh show classes")
            async with EventTap(inst) as tap:
                result = await run_uac("caller", inst.ami_host, ports.sip, DID, callers,
                                       artifacts, ports, rate=4, time_limit=90)
                await asyncio.sleep(0.3)
            log = inst.log_path.read_text()
        served = {n: (await p.stop()) for n, p in uas.items()}

    assert result.failed == 0 and result.successful == len(callers), (
        result.summary() + "\n" + result.errors_text())
    answered = {e.caller: e for r in served.values() for e in r.by_event("answered")}
    assert set(answered) == set(callers), "every caller reached an agent"
    assert all(r.by_event("answered") for r in served.values()), "both agents took calls"
    assert all(r.failed == 0 for r in served.values())
    # Two engine attempts per call, with hold music between them, then app_queue.
    assert warnings(log, f"attempt 1/2 via agi://127.0.0.1:{nobody}") == len(callers)
    assert warnings(log, "attempt 2/2") == len(callers)
    assert warnings(log, "engine unreachable, app_queue fallback") == len(callers)
    assert log.count('MusicOnHold("PJSIP/carrier-sandbox-') == len(callers)
    first_answer = {e.caller: e.time for e in result.by_event("answered")}
    for caller, event in answered.items():
        assert event.time - first_answer[caller] >= 1.0, "1 s of hold music between tries"
    # The engine's AMI account sees only the filtered events, no app_queue devices.
    assert tap.names() <= ALLOWED_EVENTS, tap.names() - ALLOWED_EVENTS
    assert {"Newchannel", "DialBegin", "DialEnd", "BridgeEnter", "Hangup"} <= tap.names()
    devices = {e.get("Device", "") for e in tap.events if e["Event"] == "DeviceStateChange"}
    assert devices and all(d.startswith("PJSIP/") for d in devices), devices


async def test_device_states_and_list_actions_through_the_event_filter(
        chroot: Path, ports: SandboxPorts, artifacts: Path) -> None:
    async with agents(ports, artifacts, ["agent1"]) as uas:
        generated = {"pjsip_acd.conf": pjsip_agent("agent1",
                                                   f"sip:agent1@127.0.0.1:{uas['agent1'].port}")
                     + pjsip_agent("agent9", None)}
        inst = AsteriskInstance(unique("devstate"), ports, {}, generated, chroot=chroot)
        with running(inst, artifacts):
            async with EventTap(inst) as tap:
                states = await asyncio.to_thread(inst.ami, "DeviceStateList")
                channels = await asyncio.to_thread(inst.ami, "CoreShowChannels")
                ping = await asyncio.to_thread(inst.ami, "Ping")
                getvar = await asyncio.to_thread(inst.ami, "Getvar",
                                                 {"Variable": "DEVICE_STATE(PJSIP/agent9)"})
                status = await asyncio.to_thread(inst.ami, "CoreStatus")
                originate = await asyncio.to_thread(
                    inst.ami, "Originate", {"Channel": "PJSIP/agent9", "Application": "Wait",
                                            "Data": "1", "Async": "true"})
                hangup = await asyncio.to_thread(inst.ami, "Hangup",
                                                 {"Channel": "PJSIP/agent1-ffffffff"})
                play_dtmf = await asyncio.to_thread(
                    inst.ami, "PlayDTMF", {"Channel": "PJSIP/agent1-ffffffff", "Digit": "#",
                                           "Receive": "true"})
                command = await asyncio.to_thread(inst.ami, "Command",
                                                  {"Command": "core show uptime"})
                # A new agent appears in PJSIP and in the fallback queue after a reload.
                inst.update_files({
                    "pjsip_acd.conf": generated["pjsip_acd.conf"] + pjsip_agent("agent7", None),
                    "queues_acd.conf": "member => PJSIP/agent7,0,agent7\n"})
                await asyncio.to_thread(inst.reload)
                await asyncio.sleep(0.5)
                endpoints = await inst.acli("pjsip show endpoints")
                queue = await inst.acli("queue show hotline-fallback")

    by_device = {m["Device"]: m["State"] for m in states[1:]
                 if m.get("Event") == "DeviceStateChange"}
    assert by_device["PJSIP/agent1"] == "NOT_INUSE"  # static contact, not qualified
    assert by_device["PJSIP/agent9"] == "UNAVAILABLE"  # no contact registered
    assert states[-1]["Event"] == "DeviceStateListComplete"
    assert channels[0]["Response"] == "Success"
    assert channels[-1]["Event"] == "CoreShowChannelsComplete"
    assert ping[0]["Response"] == "Success"
    # write = call,reporting: exactly what the engine sends; it cannot place a call or
    # run a CLI command
    assert (originate[0]["Response"], originate[0]["Message"]) == ("Error", "Permission denied")
    assert command[0]["Response"] == "Error"  # no "command" write class
    # PlayDTMF (announcements stopped by an offer) needs "call", which admits Hangup too
    assert play_dtmf[0].get("Message") != "Permission denied", play_dtmf
    assert hangup[0].get("Message") != "Permission denied", hangup
    assert getvar[0]["Response"] == "Success" and getvar[0]["Value"] == "UNAVAILABLE"
    assert status[0]["Response"] == "Success"  # CoreStatus: system|reporting
    assert "OriginateResponse" not in tap.names()  # nothing was originated
    assert "Reload" in tap.names()
    assert tap.names() <= ALLOWED_EVENTS
    assert "agent7" in endpoints
    assert "PJSIP/agent7" in queue and "PJSIP/agent1" not in queue


async def test_busy_and_unanswered_agents_and_callers_who_give_up(
        chroot: Path, ports: SandboxPorts, artifacts: Path) -> None:
    nobody = ports.alloc(1)[0]
    callers = ["13900139001", "13900139002"]
    async with agents(ports, artifacts, ["busy1:agent_busy", "ring1:agent_noanswer"]) as uas:
        generated = {
            "pjsip_acd.conf": "".join(pjsip_agent(n, f"sip:{n}@127.0.0.1:{p.port}")
                                      for n, p in uas.items()),
            "queues_acd.conf": "".join(f"member => PJSIP/{n},0,{n}\n" for n in uas),
        }
        conf_vars = {"ACD_AGI_URLS": f"agi://127.0.0.1:{nobody}", "ACD_RETRIES": "1"}
        inst = AsteriskInstance(unique("giveup"), ports, conf_vars, generated, chroot=chroot)
        with running(inst, artifacts):
            result = await run_uac("caller_abandon", inst.ami_host, ports.sip, DID, callers,
                                   artifacts, ports, name="quitters",
                                   patience_ms=[3000, 3000], time_limit=30)
            await asyncio.sleep(0.5)
        busy, ring = (await uas["busy1"].stop()), (await uas["ring1"].stop())

    assert result.failed == 0, result.summary() + "\n" + result.errors_text()
    assert {e.caller for e in result.by_event("abandoned")} == set(callers)
    assert busy.by_event("busy") and busy.failed == 0, busy.errors_text()
    offered, cancelled = ring.by_event("offered"), ring.by_event("cancelled")
    assert offered and len(cancelled) == len(offered), ring.errors_text()
    assert ring.failed == 0


async def test_caller_cancels_an_unanswered_call(ports: SandboxPorts, artifacts: Path) -> None:
    """caller_abandon's CANCEL path (Asterisk answers at once, so SIPp against SIPp)."""
    async with agents(ports, artifacts, ["phone:agent_noanswer"]) as uas:
        result = await run_uac("caller_abandon", "127.0.0.1", uas["phone"].port, DID,
                               ["13900139009"], artifacts, ports, name="canceller",
                               patience_ms=[800], time_limit=20)
        phone = await uas["phone"].stop()
    assert result.failed == 0 and result.by_event("abandoned"), result.errors_text()
    assert [e.event for e in phone.events] == ["offered", "cancelled"]
    assert phone.successful == 1 and phone.failed == 0
