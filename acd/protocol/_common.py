"""Pieces shared by the AGI and AMI parsers: sentinels and a byte line buffer.

Both protocols are line based. Framing happens on **bytes** at ``b"\\n"`` and only a
complete line is decoded (UTF-8, ``errors="replace"``), so a multi-byte character split
across two reads is never mangled, and undecodable bytes become U+FFFD instead of an
exception.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CLOSED", "NEED_DATA", "Closed", "LineBuffer", "NeedData", "decode_line"]


class NeedData:
    """``next_event()`` result: no complete event is buffered; feed more bytes."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


class Closed:
    """``next_event()`` result: the peer closed the connection; no more events will come."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "CLOSED"


NEED_DATA: Final = NeedData()
CLOSED: Final = Closed()


def decode_line(raw: bytes) -> str:
    """Decode one framed line (without its terminator)."""
    return raw.decode("utf-8", errors="replace")


class LineBuffer:
    """Received bytes, split into lines on ``b"\\n"`` (a preceding ``b"\\r"`` is dropped).

    :meth:`peek_line` never consumes; :meth:`consume` does. The parsers peek, validate,
    and consume only when the line was accepted, which is what keeps their state
    untouched when they raise.
    """

    __slots__ = ("_buf", "_scanned", "eof")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scanned = 0  # bytes already searched for b"\n" (keeps peeking linear)
        self.eof = False

    def __len__(self) -> int:
        return len(self._buf)

    def append(self, data: bytes) -> None:
        self._buf += data

    def partial_size(self) -> int:
        """Size of the incomplete line buffered (call when :meth:`peek_line` found none).

        A trailing ``\r`` is not counted: it may be the first half of the ``\r\n``
        that ends the line, so a line of exactly the limit gets the same verdict whether
        its terminator arrives with it or split across reads.
        """
        size = len(self._buf)
        return size - 1 if size and self._buf[-1] == 0x0D else size

    def peek_line(self) -> tuple[bytes, int] | None:
        """Return ``(line, size)`` for the first complete line, or None.

        ``line`` has its ``\\n`` / ``\\r\\n`` stripped; ``size`` is how many bytes
        :meth:`consume` must drop to move past it.
        """
        idx = self._buf.find(b"\n", self._scanned)
        if idx < 0:
            self._scanned = len(self._buf)
            return None
        end = idx - 1 if idx > 0 and self._buf[idx - 1] == 0x0D else idx
        return bytes(self._buf[:end]), idx + 1

    def consume(self, size: int) -> None:
        del self._buf[:size]
        self._scanned = 0

    def clear(self) -> None:
        self._buf.clear()
        self._scanned = 0
