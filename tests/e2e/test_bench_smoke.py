"""Smoke run of the end-to-end benchmark (engine vs app_queue), ``--quick`` size.

Correctness only: every call of both modes reaches an agent, each mode went the way it
should (engine: no app_queue fallback; app_queue: every call through it) and every figure
is computed. No timing threshold here — speed is shown by the benchmark itself
(``benchmarks/RESULTS.md``), never asserted in a timed test.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks.e2e_vs_app_queue import MODES, QUICK, markdown, run_benchmark

pytestmark = pytest.mark.e2e


async def test_quick_benchmark_answers_every_call_in_both_modes(
        chroot: Path, artifacts: Path) -> None:
    bench = await run_benchmark(QUICK, artifacts)
    assert list(bench.results) == list(MODES)
    for mode, res in bench.results.items():
        assert res.calls == QUICK.calls, mode
        assert res.sipp_failed == 0, mode
        assert res.answered == QUICK.calls, f"{mode}: {res.answered}/{res.calls} answered"
        assert len(res.waits) == QUICK.calls
        assert all(w > 0 for w in res.waits), mode  # the agent answers after the entry
        bad = {k: v for k, v in res.numbers().items() if not math.isfinite(v)}
        assert not bad, f"{mode}: figures not computed: {bad}"
        assert res.handoffs > 0, mode  # the load made callers wait for a free agent
    engine, app_queue = bench.results["engine"], bench.results["app_queue"]
    assert engine.fallback_calls == 0
    assert engine.engine_connected == QUICK.calls
    assert app_queue.fallback_calls == QUICK.calls
    for attr in ("asa", "p90"):
        assert math.isfinite(bench.ratio(attr))
    table = markdown(bench)
    assert "| **ASA** (mean wait, s) |" in table and "n/a" not in table
    assert (artifacts / "results.json").is_file() and (artifacts / "results.md").is_file()
