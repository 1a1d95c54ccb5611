"""Callers' numbers stay out of INFO logs, everywhere (issue 10.12): a whole call through
the real node — arrival, IVR, offer, answer, completion — leaves no caller number in any
record at INFO and above, of any logger; at DEBUG ``acd.events`` carries it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.unit.test_call_flow import call, env, node

CALLER = "13912345678"


async def one_call(caplog: pytest.LogCaptureFixture, level: int) -> str:
    caplog.clear()
    caplog.set_level(level)
    async with node() as n:
        caller = await call(n, env(did="4008001234", callerid=f"+86 {CALLER}",
                                   call_id="privacy.1"))
        seen = await caller.play()
        assert any(c.startswith("EXEC Dial") for c in seen)
        await caller.close()
        await asyncio.sleep(0.05)
        await n.engine.flushed()
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= level)


async def test_no_caller_number_in_any_log_at_info(caplog: pytest.LogCaptureFixture) -> None:
    text = await one_call(caplog, logging.INFO)
    assert "call_waiting" in text and "call_completed" in text  # the call was logged
    assert CALLER not in text and CALLER[-8:] not in text


async def test_at_debug_the_event_log_has_it(caplog: pytest.LogCaptureFixture) -> None:
    assert CALLER in await one_call(caplog, logging.DEBUG)
