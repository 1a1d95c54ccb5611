"""Byte transcripts recorded from a real Asterisk 22.10 (see README.md), and loaders."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

HERE = Path(__file__).parent

AGI_TRANSCRIPTS = ("agi_inbound", "agi_busy", "agi_pending", "agi_pipelined")
AMI_TRANSCRIPTS = ("ami_session", "ami_login_failed")


@dataclass(frozen=True)
class Chunk:
    """One read from (``recv``) or write to (``send``) the socket, as recorded."""

    dir: Literal["recv", "send", "eof"]
    data: bytes


def load(name: str) -> list[Chunk]:
    chunks = []
    with (HERE / f"{name}.jsonl").open(encoding="utf-8") as f:
        for line in f:
            raw = json.loads(line)
            chunks.append(Chunk(raw["dir"], raw["data"].encode("utf-8", "surrogateescape")))
    return chunks


def received(name: str) -> bytes:
    """Everything Asterisk sent, concatenated."""
    return b"".join(c.data for c in load(name) if c.dir == "recv")


def sent(name: str) -> bytes:
    """Everything we sent, concatenated."""
    return b"".join(c.data for c in load(name) if c.dir == "send")
