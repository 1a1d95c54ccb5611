"""The durable spool between the engine and the history database.

Every batch of record snapshots is appended to a segment file as one JSON line and
``fsync``-ed **before** it is written to the database; a segment is deleted only once
every batch in it is in the database. So an engine killed at any point (SIGKILL, power)
finds on its next start the batches the database may not have, and writes them again —
harmlessly, since the writes are idempotent. A line cut short by the kill is skipped
(its records were not yet acknowledged to anyone; their calls' later snapshots carry
them).

Blocking file I/O: called from a worker thread.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("acd.history")


class Spool:
    def __init__(self, directory: Path | str) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        numbers = [self._number(p) for p in self.dir.glob("seg-*.jsonl")]
        self._next = max(numbers, default=0) + 1
        self._current: Path | None = None
        self.appended = 0

    @staticmethod
    def _number(path: Path) -> int:
        try:
            return int(path.stem.split("-", 1)[1])
        except (IndexError, ValueError):
            return 0

    def append(self, batch: dict[str, Any]) -> None:
        """Append one batch and make it durable."""
        if self._current is None:
            self._current = self.dir / f"seg-{self._next:012d}.jsonl"
            self._next += 1
        line = json.dumps(batch, separators=(",", ":"), default=str).encode() + b"\n"
        fd = os.open(self._current, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.appended += 1

    def seal(self) -> None:
        """Start a new segment with the next batch (the current one is complete)."""
        self._current = None

    def segments(self) -> list[Path]:
        """Segment files, oldest first (the one being appended to last)."""
        return sorted(self.dir.glob("seg-*.jsonl"), key=self._number)

    def sealed(self) -> list[Path]:
        return [p for p in self.segments() if p != self._current]

    @staticmethod
    def read(path: Path) -> Iterator[dict[str, Any]]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            try:
                batch = json.loads(raw)
            except ValueError:
                log.warning("history spool %s: a torn line skipped (%d bytes)", path.name,
                            len(raw))
                continue
            if isinstance(batch, dict):
                yield batch

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        if path == self._current:
            self._current = None

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.segments() if p.exists())
