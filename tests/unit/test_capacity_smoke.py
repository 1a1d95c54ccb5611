"""Smoke test of the engine capacity benchmark (``benchmarks.engine_capacity --quick``).

A real ``acd serve`` process against one load-generator process playing two Asterisk
servers: a few hundred FastAGI callers and their AMI. It checks that the generator
really drives the engine — the engine's own view (``/metrics``) counts the callers the
generator has on hold, agents' phones are dialled and answered, the figures are
measured — not how fast anything is (that is the benchmark's job, on a quiet machine).
"""

from __future__ import annotations

from pathlib import Path

from acd.protocol.agi import quote
from benchmarks.engine_capacity import parse_options, run
from benchmarks.loadgen import parse_agi_args


def test_agi_args_are_split_as_res_agi_does() -> None:
    for words in (["SET", "VARIABLE", "ACD_RESULT", "DONE"], ["EXEC", "Dial", "PJSIP/a,15,m"],
                  ["GET", "VARIABLE", 'a "quoted" \\ value'], ["SET", "MUSIC", "ON", ""]):
        line = " ".join(words[:2] + [quote(w) for w in words[2:]])
        assert parse_agi_args(line) == words


async def test_quick_capacity_run_drives_the_real_engine(tmp_path: Path) -> None:
    opts = parse_options(["--quick", "--out", str(tmp_path)])
    results = await run(opts)

    (level,) = results["levels"]
    assert "skipped" not in level
    fill = level["fill"]
    # every caller was queued, and the engine itself counts them waiting
    held = level["held"]
    assert fill["generator_waiting"] == held == 200
    assert fill["engine_waiting"] == held
    assert fill["failures"] == {}
    assert fill["apply"]["CallArrived"]["n"] >= held
    assert fill["setup_ms"]["n"] == held
    assert level["rss_mb"] > level["rss_base_mb"] > 0
    # agents' phones registered, were dialled and answered; agent free → Dial measured
    churn = level["churn"]
    assert churn["free_to_dial_ms"]["n"] > 0
    assert churn["dials_per_s"] > 0
    assert churn["apply"]["DialFinished"]["n"] > 0
    assert churn["apply"]["CallAnswered"]["n"] > 0  # AMI DialEnd reached the engine
    counts = level["counts"]
    assert counts["answered_by_agent"] > 0 and counts["talks_ended"] > 0
    assert level["failures"] == {}
    for path in ("/api/v1/queues", "/api/v1/calls", "/metrics"):
        assert level["api_idle"][path]["n"] == opts.api_requests
    assert "errors" not in level["api_idle"]
    assert level["shutdown"]["log"]["errors"] == 0

    rate = results["rate"]
    (step,) = rate["steps"]
    assert step["achieved"] > 0 and step["queued_per_s"] > 0
    assert step["abandoned"] > 0 and step["answered"] > 0  # callers hung up, some served
    assert step["hangup_close_ms"]["n"] > 0
    (burst,) = rate["bursts"]
    assert burst["queued"] == burst["callers"]
    assert rate["shutdown"]["log"]["errors"] == 0
