"""Port blocks for sandbox instances, so parallel tests and instances never collide.

One :class:`SandboxPorts` is a contiguous block of ``SIZE`` ports, every one of them
checked bindable on TCP and UDP (127.0.0.1) when the block is picked::

    base + 0        SIP (Asterisk, UDP)
    base + 1        AMI (Asterisk, TCP)
    base + 2        FastAGI (where the ACD engine listens, TCP)
    base + 3 .. 99  pool for :meth:`SandboxPorts.alloc`: SIPp signalling, control and
                    media ports
    base + 100 ..   Asterisk's RTP range, to the end of the block (``rtp_start`` .. ``rtp_end``)

Blocks are picked below the kernel's ephemeral range, so an outgoing connection never
takes one of our ports between the check and the bind.
"""

from __future__ import annotations

import os
import random
import socket
from dataclasses import dataclass, field
from pathlib import Path

SIZE = 200
POOL_START = 3
RTP_OFFSET = 100
LOW = 20000
_DEFAULT_EPHEMERAL = (32768, 60999)


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing ports (``net.ipv4.ip_local_port_range``)."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when ``port`` can be bound on ``host`` with both TCP and UDP right now."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def _udp_socket_inodes(port: int, host: str) -> set[str]:
    """Inodes of the UDP sockets bound to ``host:port`` (or the wildcard address), read
    from ``/proc/net/udp``."""
    want_port = f"{port:04X}"
    want_host = "".join(f"{int(octet):02X}" for octet in reversed(host.split(".")))
    inodes: set[str] = set()
    try:
        with open("/proc/net/udp") as fh:
            next(fh, None)
            for line in fh:
                fields = line.split()
                addr, _, hexport = fields[1].partition(":")
                if hexport == want_port and addr in (want_host, "00000000"):
                    inodes.add(fields[9])
    except (OSError, IndexError):
        pass
    return inodes


def udp_bound(port: int, host: str, pid: int | None = None) -> bool:
    """True when a UDP socket is bound to ``host:port``: one of process ``pid``'s when
    given (so a socket someone else holds on that port does not count).

    Read from ``/proc`` rather than probed with a bind of our own: a probe socket held for
    even a moment is exactly what makes SIPp's own bind fail (it exits 254, "Unable to
    bind main socket") when the two race."""
    inodes = _udp_socket_inodes(port, host)
    if pid is None or not inodes:
        return bool(inodes)
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        links = {os.readlink(fd_dir / fd) for fd in os.listdir(fd_dir)}
    except OSError:
        return False
    return any(f"socket:[{inode}]" in links for inode in inodes)


def block_free(base: int, size: int = SIZE, host: str = "127.0.0.1") -> bool:
    return all(port_free(p, host) for p in range(base, base + size))


@dataclass
class SandboxPorts:
    """The ports of one sandbox instance (see the module docstring for the layout)."""

    sip: int
    ami: int
    agi: int
    rtp_start: int
    rtp_end: int
    pool_start: int
    pool_end: int  # exclusive
    _next: int = field(default=0, repr=False)

    @classmethod
    def from_base(cls, base: int, size: int = SIZE) -> SandboxPorts:
        if size < RTP_OFFSET + 20 or size % 2 or base % 2:
            raise ValueError(f"a port block needs an even base and an even size of at least "
                             f"{RTP_OFFSET + 20} ports (RTP ports come in even/odd pairs)")
        return cls(sip=base, ami=base + 1, agi=base + 2,
                   rtp_start=base + RTP_OFFSET, rtp_end=base + size - 1,
                   pool_start=base + POOL_START, pool_end=base + RTP_OFFSET)

    @classmethod
    def free(cls, size: int = SIZE, host: str = "127.0.0.1", attempts: int = 50,
             rng: random.Random | None = None) -> SandboxPorts:
        """A random block in 20000..(ephemeral start) whose every port is bindable now.

        A larger ``size`` widens the RTP range (load tests: 2 ports per channel)."""
        rng = rng or random.Random()
        top = min(ephemeral_range()[0], 40000)
        if top - LOW < 2 * size:
            top = 40000
        slots = (top - LOW) // size
        for _ in range(attempts):
            base = LOW + rng.randrange(slots) * size
            if block_free(base, size, host):
                return cls.from_base(base, size)
        raise RuntimeError(f"no free block of {size} ports found in {LOW}-{top} "
                           f"after {attempts} attempts")

    @classmethod
    def default(cls) -> SandboxPorts:
        """Fixed ports for humans (``python -m harness.sandbox start``): the sample config's
        AMI 5038 and FastAGI 4573 would clash with a real Asterisk/engine, so a block at
        25000 is used: SIP 25000, AMI 25001, FastAGI 25002."""
        return cls.from_base(25000)

    def alloc(self, n: int = 1, step: int = 1) -> list[int]:
        """``n`` ports from the pool, ``step`` apart (use ``step=4`` for SIPp media ports:
        SIPp uses the media port and the ones above it for RTCP and video)."""
        if n < 1 or step < 1:
            raise ValueError("alloc needs n >= 1 and step >= 1")
        first = self.pool_start + self._next
        end = first + n * step
        if end > self.pool_end:
            raise RuntimeError(f"port pool {self.pool_start}-{self.pool_end - 1} exhausted "
                               f"(asked for {n}×{step} more)")
        self._next += n * step
        return list(range(first, end, step))

    def as_vars(self) -> dict[str, str]:
        """Template placeholders filled from these ports."""
        return {"SIP_PORT": str(self.sip), "AMI_PORT": str(self.ami),
                "AGI_PORT": str(self.agi),
                "RTP_START": str(self.rtp_start), "RTP_END": str(self.rtp_end)}

