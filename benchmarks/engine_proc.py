"""Run the real ``acd serve`` in this process, with what a capacity benchmark needs around it.

``python -m benchmarks.engine_proc [options] -- <acd arguments>`` calls the product's own
entry point (:func:`app.cli.main`) with ``<acd arguments>`` (e.g. ``serve -c acd.yaml``),
in this very process — nothing of the engine is replaced or mocked. Before that it:

* raises ``RLIMIT_NOFILE`` (``--nofile``; a held caller is one socket in the engine, and
  Python does not raise its soft limit by itself);
* records every garbage-collector pass (``gc.callbacks``: generation, duration), a cheap
  observer whose summary is written to ``<diag>.gc.json`` on ``SIGUSR1``;
* with ``--tracemalloc N``, traces allocations (N frames; slow, for a debug run): the
  first ``SIGUSR2`` takes a baseline snapshot, each further one writes the growth since
  that baseline, by line and by file, to ``<diag>.tm<k>.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any


class GCRecorder:
    """Durations of the garbage collector's passes, by generation."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        #: Full collections: (wall-clock end, seconds, objects collected).
        self.full: list[tuple[float, float, int]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        """``gc.callbacks`` hook: time each collection."""
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        gen = int(info.get("generation", 0))
        self.pauses[gen].append(took)
        if gen == 2:
            self.full.append((time.time(), took, int(info.get("collected", 0))))

    def summary(self) -> dict[str, Any]:
        """Pauses per generation (count, total, max, p99, the last ones) and full GCs."""
        out: dict[str, Any] = {"counts": list(gc.get_count()),
                               "thresholds": list(gc.get_threshold()),
                               "tracked_objects": None}
        for gen, values in self.pauses.items():
            ordered = sorted(values)
            out[f"gen{gen}"] = {
                "n": len(values), "total_s": sum(values),
                "max_ms": 1e3 * ordered[-1] if ordered else 0.0,
                "p99_ms": 1e3 * ordered[int(0.99 * (len(ordered) - 1))] if ordered else 0.0,
                "last_ms": [round(1e3 * v, 2) for v in values[-10:]],
            }
        out["full"] = [(round(t, 3), round(1e3 * s, 2), n) for t, s, n in self.full]
        return out


def _write_json(path: Path, obj: Any) -> None:
    """Write a file atomically (readers never see half of it)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Set up the process, then run ``acd`` with the arguments after ``--``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args:
        raise SystemExit("usage: python -m benchmarks.engine_proc [options] -- <acd args>")
    split = args.index("--")
    parser = argparse.ArgumentParser(prog="benchmarks.engine_proc")
    parser.add_argument("--nofile", type=int, default=0,
                        help="RLIMIT_NOFILE soft limit (capped at the hard limit)")
    parser.add_argument("--diag", default="", help="path prefix of diagnostic dumps")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                        help="trace allocations with this many frames (debug run)")
    opts = parser.parse_args(args[:split])
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if opts.nofile:
        want = min(opts.nofile, hard) if hard != resource.RLIM_INFINITY else opts.nofile
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    recorder = GCRecorder()
    gc.callbacks.append(recorder)
    diag = Path(opts.diag) if opts.diag else None
    if opts.tracemalloc:
        tracemalloc.start(opts.tracemalloc)
    baseline: list[tracemalloc.Snapshot] = []
    dumps = [0]

    def on_usr1(signum: int, frame: FrameType | None) -> None:
        """Write the GC summary, tracked objects and descriptors in use."""
        if diag is not None:
            summary = recorder.summary()
            summary["tracked_objects"] = len(gc.get_objects())
            summary["rlimit_nofile"] = list(resource.getrlimit(resource.RLIMIT_NOFILE))
            summary["fds"] = len(os.listdir("/proc/self/fd"))
            _write_json(diag.with_name(diag.name + ".gc.json"), summary)

    def on_usr2(signum: int, frame: FrameType | None) -> None:
        """First call: the baseline snapshot; later ones: the growth since it."""
        if diag is None or not tracemalloc.is_tracing():
            return
        gc.collect()
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
        if not baseline:
            baseline.append(snap)
            _write_json(diag.with_name(diag.name + ".tm0.json"), {"baseline": True})
            return
        dumps[0] += 1
        out: dict[str, Any] = {}
        for key in ("lineno", "filename", "traceback"):
            stats = snap.compare_to(baseline[0], key)
            out[key] = [{"where": "\n".join(s.traceback.format()[-6:]) if key == "traceback"
                         else str(s.traceback[0]),
                         "size_diff": s.size_diff, "count_diff": s.count_diff}
                        for s in stats[:60]]
        out["total_diff"] = sum(s.size_diff for s in snap.compare_to(baseline[0],
                                                                     "filename"))
        _write_json(diag.with_name(diag.name + f".tm{dumps[0]}.json"), out)

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGUSR2, on_usr2)
    from app.cli import main as acd_main

    return acd_main(args[split + 1:])


if __name__ == "__main__":
    raise SystemExit(main())
