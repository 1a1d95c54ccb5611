"""The SIPp harness itself: starting a UAS must not race its own readiness probe, and a
port taken by someone else costs a retry on fresh ports, not a failed test."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from harness.ports import SandboxPorts, udp_bound
from harness.sipp import start_uas

pytestmark = pytest.mark.e2e


def test_udp_bound_reads_the_socket_table_without_binding() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert udp_bound(port, "127.0.0.1")
    assert not udp_bound(port, "127.0.0.1")


async def test_uas_starts_again_and_again_without_bind_failures(tmp_path: Path) -> None:
    # The probe used to bind the SIP port itself every 20 ms while SIPp started, so now
    # and then SIPp lost the race and exited 254. Start many in a row to show it cannot.
    ports = SandboxPorts.free()
    for n in range(15):
        proc = await start_uas("agent_answer", ports, tmp_path, f"phone{n}",
                               trace_messages=False, trace_errors=False)
        assert proc.running
        await proc.stop()


async def test_uas_whose_port_is_taken_starts_on_fresh_ports(tmp_path: Path) -> None:
    ports = SandboxPorts.free()
    taken = ports.pool_start  # the SIP port the first allocation hands out
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", taken))
        proc = await start_uas("agent_answer", ports, tmp_path, "phone",
                               trace_messages=False, trace_errors=False)
        try:
            assert proc.running
            assert proc.port != taken
            assert udp_bound(proc.port, "127.0.0.1")
        finally:
            await proc.stop()
