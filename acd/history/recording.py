"""Which calls are recorded, under what file name, and how long a recording is. Pure.

Per queue: ``all``, a ``sample`` (a share of calls, chosen by the call id's hash so
every engine of a pair and every retry decides the same), or ``none``.
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def chosen(call_id: str, mode: str, sample_percent: float) -> bool:
    if mode == "all":
        return True
    if mode != "sample":
        return False
    h = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:4], "big")
    return (h % 10_000) < sample_percent * 100


def file_name(call_id: str, leg: int) -> str:
    """``1796308522.5`` leg 1 → ``1796308522.5-1.wav`` (a file name, never a path)."""
    return f"{_UNSAFE.sub('_', call_id)}-{leg}.wav"


def wav_seconds(header_and_size: tuple[int, int, int, int]) -> float:
    """Seconds of a PCM WAV from (frames, rate, channels, sample width): frames ÷ rate."""
    frames, rate, _channels, _width = header_and_size
    return frames / rate if rate else 0.0
