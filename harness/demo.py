"""The demo: a hotline on this machine, and what happened to each call.

Starts the sandbox Asterisk 22 with the shipped dialplan, the engine, four agent
softphones (SIPp; one of them never answers) and a burst of SIPp callers (two of them
give up while waiting), then prints each caller's story as the engine recorded it.

    scripts/demo [--calls 12] [--rate 4]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

from harness.rig import AgentPlan, Rig
from harness.sandbox import REPO_ROOT, provision


def story(rig: Rig) -> list[dict[str, Any]]:
    calls: dict[str, dict[str, Any]] = {}
    for ev in rig.events:
        d = dict(ev.data)
        call = calls.setdefault(str(d.get("call_id")), {"rings": []})
        if ev.name == "call_waiting":
            call["caller"] = d["caller"]
        elif ev.name == "call_offered":
            call["rings"].append(d["agent"])
        elif ev.name == "agent_no_answer":
            call.setdefault("missed", []).append(f"{d['agent']} ({d['dialstatus']})")
        elif ev.name == "call_connected":
            call["agent"], call["wait"] = d["agent"], d["wait"]
        elif ev.name == "call_completed":
            call["talk"] = d["talk"]
        elif ev.name == "call_abandoned":
            call["abandoned"] = d["wait"]
    return [c for c in calls.values() if "caller" in c]


def render(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'caller':<14} {'outcome':<58}", "-" * 72]
    for c in rows:
        missed = f" after no answer from {', '.join(c['missed'])}" if c.get("missed") else ""
        if "abandoned" in c:
            outcome = f"hung up after waiting {c['abandoned']:.1f} s{missed}"
        elif "agent" in c:
            talk = f", talked {c['talk']:.1f} s" if "talk" in c else ""
            outcome = f"answered by agent {c['agent']} after {c['wait']:.1f} s{missed}{talk}"
        else:
            outcome = "still in progress"
        lines.append(f"{c['caller']:<14} {outcome}")
    return "\n".join(lines)


async def run(calls: int, rate: float) -> int:
    provision()
    art = REPO_ROOT / "artifacts" / "demo"
    plans = [AgentPlan("1001", talk_ms=(1500, 3000)), AgentPlan("1002", talk_ms=(1500, 3000)),
             AgentPlan("1003", talk_ms=(1500, 3000)),
             AgentPlan("1004", "agent_noanswer")]  # this one never picks up
    print("Starting Asterisk 22 (sandbox), the ACD engine and 4 agent phones ...")
    async with Rig(art, plans, name="demo", ring_timeout=4) as rig:
        assert rig.asterisk is not None
        print(rig.asterisk.cli("core show version").strip())
        numbers = [f"13{800138000 + i * 7919:09d}" for i in range(calls)]
        patient = numbers[:-2]
        impatient = numbers[-2:]
        print(f"Placing {len(patient)} calls at {rate:g}/s, plus 2 callers who give up "
              "after 1.5 s ...")
        done = await asyncio.gather(
            rig.call(patient, rate=rate, time_limit=120),
            rig.call(impatient, scenario="caller_abandon", patience_ms=[1500, 1500],
                     name="impatient", rate=rate, time_limit=60),
        )
        await asyncio.sleep(1.0)
        print()
        print(render(story(rig)))
        print()
        assert rig.engine is not None
        st = rig.engine.core.figures.total("consult")
        asa = st.wait_answered / st.answered if st.answered else 0.0
        print(f"queue consult: offered {st.offered}, answered {st.answered}, abandoned "
              f"{st.abandoned}, ring-no-answer {st.rona}, ASA {asa:.2f} s")
        snap = rig.engine.snapshot()["agents"]
        for agent, a in snap.items():
            reason = f" ({a['reason']})" if a["reason"] else ""
            print(f"agent {agent}: {a['status']}{reason}, answered {a['answered']}, "
                  f"missed {a['missed']}")
        for r in done:
            print(r.summary())
        print(f"\nLogs, SIPp traces and the rendered Asterisk config: {Path(art)}")
        return 0 if all(r.failed == 0 for r in done) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--calls", type=int, default=12)
    parser.add_argument("--rate", type=float, default=4.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(run(max(args.calls, 3), args.rate))


if __name__ == "__main__":
    raise SystemExit(main())
