"""Asterisk's own count of the calls: the CSV CDR the sandbox writes
(``asterisk_conf/cdr.conf``: ``<astlogdir>/cdr-csv/Master.csv``, unique ids logged).

Asterisk writes one line per call leg (party A → party B): a caller who rang two agents
has several lines with the caller channel's unique id. ``caller_calls`` groups them: one
entry per caller channel that reached the hotline — what the engine's records must
match one for one.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from harness.sandbox import AsteriskInstance

#: Dialplan contexts a hotline caller's channel ends in.
HOTLINE_CONTEXTS = frozenset({"hotline", "hotline-acd", "hotline-fallback"})

_COLUMNS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel",
            "lastapp", "lastdata", "start", "answer", "end", "duration", "billsec",
            "disposition", "amaflags", "uniqueid", "userfield")


@dataclass
class CdrCall:
    uniqueid: str
    caller: str
    legs: list[dict[str, str]] = field(default_factory=list)

    @property
    def answered_by(self) -> str | None:
        """The endpoint that answered (``agent7201``, ``trunk-gd``), if any."""
        for leg in self.legs:
            if leg["disposition"] == "ANSWERED" and leg["dstchannel"]:
                return leg["dstchannel"].split("/", 1)[-1].rsplit("-", 1)[0]
        return None

    @property
    def billsec(self) -> int:
        return sum(int(leg["billsec"] or 0) for leg in self.legs
                   if leg["disposition"] == "ANSWERED" and leg["dstchannel"])


def cdr_path(asterisk: AsteriskInstance) -> Path:
    return asterisk.root / "log" / "cdr-csv" / "Master.csv"


def read_cdr(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        return [dict(zip(_COLUMNS, row, strict=False)) for row in csv.reader(f)]


def caller_calls(asterisk: AsteriskInstance, agent_prefixes: tuple[str, ...] = (
        "PJSIP/agent", "PJSIP/trunk-")) -> dict[str, CdrCall]:
    """Caller channel unique id → its CDR lines (agents' and partners' own legs left
    out)."""
    out: dict[str, CdrCall] = {}
    for row in read_cdr(cdr_path(asterisk)):
        if row.get("dcontext") not in HOTLINE_CONTEXTS:
            continue
        if row["channel"].startswith(agent_prefixes):
            continue
        call = out.setdefault(row["uniqueid"], CdrCall(row["uniqueid"], row["src"]))
        call.legs.append(row)
    return out
