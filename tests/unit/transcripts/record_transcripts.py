"""Record real AMI and FastAGI byte transcripts from a throwaway Asterisk.

Not a test: run by hand against a private Asterisk instance (see README.md in this
directory) to refresh the ``*.jsonl`` transcripts that the unit tests replay.
Deliberately independent of ``acd.protocol`` so a parser bug cannot shape the
recording. Each output line is one chunk exactly as read from / written to the socket::

    {"dir": "recv" | "send", "t": <seconds since start>, "data": "<utf-8 text>"}

``recv`` is what Asterisk sent, ``send`` what we sent. Bytes that are not valid UTF-8
are kept with ``surrogateescape`` (``data.encode("utf-8", "surrogateescape")``).

Usage::

    python tests/unit/transcripts/record_transcripts.py \
        --ami-port 15038 --agi-port 14573 --username acd --secret ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from pathlib import Path

HERE = Path(__file__).parent
T0 = time.monotonic()
TIMEOUT = 10.0
REDACT: list[str] = []  # the AMI secret: never written to a transcript


class Tap:
    """A socket pair wrapper that records every chunk in both directions."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.chunks: list[dict[str, object]] = []
        self.buf = b""
        self.eof = False

    def _log(self, direction: str, data: bytes) -> None:
        text = data.decode("utf-8", "surrogateescape")
        self.chunks.append({"dir": direction, "t": round(time.monotonic() - T0, 4), "data": text})

    async def send(self, data: bytes) -> None:
        self._log("send", data)
        self.writer.write(data)
        await self.writer.drain()

    async def read_until(self, pattern: bytes, within: float = TIMEOUT) -> bytes:
        """Read until ``pattern`` (a regex) matches the buffer; consume through the match."""
        deadline = time.monotonic() + within
        while True:
            m = re.search(pattern, self.buf, re.S)
            if m:
                out, self.buf = self.buf[: m.end()], self.buf[m.end() :]
                return out
            if self.eof:
                raise EOFError(self.buf)
            chunk = await asyncio.wait_for(
                self.reader.read(65536), max(0.01, deadline - time.monotonic())
            )
            if not chunk:
                self.eof = True
                self._log("eof", b"")
                continue
            self._log("recv", chunk)
            self.buf += chunk

    async def drain_for(self, seconds: float) -> None:
        """Record whatever arrives during ``seconds`` (events, EOF)."""
        deadline = time.monotonic() + seconds
        while not self.eof and time.monotonic() < deadline:
            try:
                chunk = await asyncio.wait_for(self.reader.read(65536), deadline - time.monotonic())
            except TimeoutError:
                return
            if not chunk:
                self.eof = True
                self._log("eof", b"")
                return
            self._log("recv", chunk)
            self.buf += chunk

    def save(self, name: str) -> None:
        path = HERE / name
        with path.open("w", encoding="utf-8") as f:
            for c in self.chunks:
                if REDACT and c["dir"] == "send":
                    c["data"] = str(c["data"]).replace(REDACT[0], "********")
                f.write(json.dumps(c, ensure_ascii=False) + "\n")
        print(f"wrote {path} ({len(self.chunks)} chunks)")

    def close(self) -> None:
        self.writer.close()


# --------------------------------------------------------------------------- AMI


def action(name: str, action_id: str, *fields: tuple[str, str]) -> bytes:
    lines = [f"Action: {name}", f"ActionID: {action_id}"]
    lines += [f"{k}: {v}" for k, v in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def ami_call(
    tap: Tap, name: str, aid: str, *fields: tuple[str, str], lst: bool = False
) -> bytes:
    await tap.send(action(name, aid, *fields))
    if lst:
        # A list ends with the event carrying EventList: Complete (or an Error response).
        pat = (
            rb"ActionID: " + aid.encode() + rb"\r\n(?:[^\r\n]+\r\n)*?EventList: Complete\r\n"
            rb"(?:[^\r\n]+\r\n)*\r\n"
            rb"|Response: Error\r\nActionID: " + aid.encode() + rb"\r\n(?:[^\r\n]+\r\n)*\r\n"
        )
    else:
        pat = rb"Response: [^\r\n]+\r\nActionID: " + aid.encode() + rb"\r\n(?:[^\r\n]+\r\n)*\r\n"
    # Do not consume other data: only search, so events stay in the transcript anyway.
    return await tap.read_until(pat)


class Signals:
    def __init__(self) -> None:
        self.channel: dict[str, asyncio.Future[str]] = {}
        self.ready: dict[str, asyncio.Event] = {}
        self.done: dict[str, asyncio.Event] = {}
        for s in ("inbound", "busy", "pending", "pipelined"):
            self.channel[s] = asyncio.get_running_loop().create_future()
            self.ready[s] = asyncio.Event()
            self.done[s] = asyncio.Event()


async def record_ami(port: int, username: str, secret: str, sig: Signals) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    tap = Tap(r, w)
    await tap.read_until(rb"\r\n")
    await ami_call(
        tap, "Login", "rec-1", ("Username", username), ("Secret", secret), ("Events", "on")
    )
    await ami_call(tap, "Ping", "rec-2")
    await ami_call(tap, "Command", "rec-3", ("Command", "devstate change Custom:agent1 INUSE"))
    await ami_call(tap, "Command", "rec-4", ("Command", "devstate change Custom:agent2 NOT_INUSE"))
    await ami_call(tap, "DeviceStateList", "rec-5", lst=True)
    await ami_call(tap, "CoreShowChannels", "rec-6", lst=True)
    await ami_call(tap, "NoSuchAction", "rec-7")
    await ami_call(tap, "Status", "rec-8", ("Channel", "PJSIP/nope-00000000"), lst=True)
    await ami_call(tap, "Getvar", "rec-9", ("Variable", "NOT_SET_ANYWHERE"))

    # Call 1: AGI "inbound"; hang up while the AGI script is idle.
    await ami_call(
        tap,
        "Originate",
        "rec-10",
        ("Channel", "Local/s@test"),
        ("Application", "Wait"),
        ("Data", "30"),
        ("CallerID", "Zoë <1001>"),
        ("Async", "true"),
    )
    chan = await asyncio.wait_for(sig.channel["inbound"], TIMEOUT)
    await ami_call(tap, "CoreShowChannels", "rec-11", lst=True)
    await asyncio.wait_for(sig.ready["inbound"].wait(), TIMEOUT)
    await ami_call(tap, "Hangup", "rec-12", ("Channel", chan))
    await asyncio.wait_for(sig.done["inbound"].wait(), TIMEOUT)

    # Call 2: AGI "busy"; hang up while EXEC Wait is pending.
    await ami_call(
        tap,
        "Originate",
        "rec-13",
        ("Channel", "Local/busy@test"),
        ("Application", "Wait"),
        ("Data", "30"),
        ("Async", "true"),
    )
    chan = await asyncio.wait_for(sig.channel["busy"], TIMEOUT)
    await asyncio.wait_for(sig.ready["busy"].wait(), TIMEOUT)
    await asyncio.sleep(0.5)
    await ami_call(tap, "Hangup", "rec-14", ("Channel", chan))
    await asyncio.wait_for(sig.done["busy"].wait(), TIMEOUT)

    # Calls 3 and 4: AGI "pending" / "pipelined"; hang up during EXEC Wait.
    for n, script in ((15, "pending"), (17, "pipelined")):
        await ami_call(
            tap,
            "Originate",
            f"rec-{n}",
            ("Channel", f"Local/{script}@test"),
            ("Application", "Wait"),
            ("Data", "30"),
            ("Async", "true"),
        )
        chan = await asyncio.wait_for(sig.channel[script], TIMEOUT)
        await asyncio.wait_for(sig.ready[script].wait(), TIMEOUT)
        await asyncio.sleep(0.5)
        await ami_call(tap, "Hangup", f"rec-{n + 1}", ("Channel", chan))
        await asyncio.wait_for(sig.done[script].wait(), TIMEOUT)

    await tap.drain_for(1.0)
    await tap.send(action("Logoff", "rec-19"))
    await tap.drain_for(3.0)
    tap.close()
    tap.save("ami_session.jsonl")

    # A failed login: what does Asterisk do with the socket afterwards?
    r, w = await asyncio.open_connection("127.0.0.1", port)
    tap = Tap(r, w)
    await tap.read_until(rb"\r\n")
    await tap.send(action("Login", "bad-1", ("Username", username), ("Secret", "wrong")))
    await tap.drain_for(3.0)
    tap.close()
    tap.save("ami_login_failed.jsonl")


# ------------------------------------------------------------------------ FastAGI


async def agi_cmd(tap: Tap, line: str) -> bytes:
    await tap.send(line.encode() + b"\n")
    return await tap.read_until(rb"(?m)^\d{3} [^\n]*\n")


async def agi_inbound(tap: Tap, sig: Signals, env: dict[str, str]) -> None:
    sig.channel["inbound"].set_result(env["agi_channel"])
    await agi_cmd(tap, "ANSWER")
    await agi_cmd(tap, 'GET VARIABLE "CALLERID(name)"')
    await agi_cmd(tap, "GET VARIABLE NOT_SET_ANYWHERE")
    await agi_cmd(tap, 'SET VARIABLE FOO "bar baz"')
    await agi_cmd(tap, 'GET FULL VARIABLE "${FOO}-${CALLERID(num)}"')
    await agi_cmd(tap, "FOOBAR")
    await agi_cmd(tap, "GET VARIABLE")
    await agi_cmd(tap, "SET MUSIC ON default")
    await agi_cmd(tap, "SET MUSIC OFF")
    await agi_cmd(tap, 'STREAM FILE no-such-sound ""')
    await agi_cmd(tap, "WAIT FOR DIGIT 50")
    await agi_cmd(tap, 'EXEC Verbose "hello from agi"')
    sig.ready["inbound"].set()
    await tap.read_until(rb"HANGUP\n")
    await tap.drain_for(0.5)
    await agi_cmd(tap, "GET VARIABLE FOO")
    await agi_cmd(tap, "ANSWER")
    await tap.drain_for(2.0)  # does Asterisk close the socket on its own?


async def agi_busy(tap: Tap, sig: Signals, env: dict[str, str]) -> None:
    sig.channel["busy"].set_result(env["agi_channel"])
    await agi_cmd(tap, "ANSWER")
    await tap.send(b"EXEC Wait 30\n")
    sig.ready["busy"].set()
    await tap.read_until(rb"(?m)^\d{3} [^\n]*\n")
    await tap.drain_for(0.5)
    await agi_cmd(tap, "GET VARIABLE FOO")
    await tap.drain_for(2.0)


async def agi_pending(tap: Tap, sig: Signals, env: dict[str, str]) -> None:
    """HANGUP while a command is pending: the second command's reply follows HANGUP."""
    sig.channel["pending"].set_result(env["agi_channel"])
    await agi_cmd(tap, "ANSWER")
    await tap.send(b"EXEC Wait 30\n")
    await asyncio.sleep(0.2)  # a separate write, while Wait runs
    await tap.send(b"GET VARIABLE AGISTATUS\n")
    sig.ready["pending"].set()
    await tap.read_until(rb"(?m)^\d{3} [^\n]*\n")
    await tap.read_until(rb"(?m)^\d{3} [^\n]*\n")
    await tap.drain_for(0.5)
    await agi_cmd(tap, "ANSWER")
    await tap.drain_for(1.0)


async def agi_pipelined(tap: Tap, sig: Signals, env: dict[str, str]) -> None:
    """Two commands in ONE write: res_agi fgets() the first, the second sits unseen."""
    sig.channel["pipelined"].set_result(env["agi_channel"])
    await agi_cmd(tap, "ANSWER")
    await tap.send(b"EXEC Wait 30\nGET VARIABLE AGISTATUS\n")
    sig.ready["pipelined"].set()
    await tap.read_until(rb"(?m)^\d{3} [^\n]*\n")
    await tap.drain_for(3.0)  # no reply to GET VARIABLE arrives
    await tap.send(b"GET VARIABLE FOO\n")  # new bytes wake Asterisk's reader
    await tap.drain_for(2.0)


async def record_agi(port: int, sig: Signals) -> asyncio.Server:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        tap = Tap(r, w)
        try:
            raw = await tap.read_until(rb"\n\n")
            env = dict(line.split(": ", 1) for line in raw.decode().splitlines() if ": " in line)
            script = env["agi_network_script"]
            scenario = {
                "inbound": agi_inbound,
                "busy": agi_busy,
                "pending": agi_pending,
                "pipelined": agi_pipelined,
            }
            await scenario[script](tap, sig, env)
            tap.close()
            tap.save(f"agi_{script}.jsonl")
            sig.done[script].set()
        except Exception as exc:
            print("AGI recorder failed:", repr(exc))
            tap.save("agi_failed.jsonl")
            raise

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ami-port", type=int, default=15038)
    p.add_argument("--agi-port", type=int, default=14573)
    p.add_argument("--username", default="acd")
    p.add_argument("--secret", required=True)
    a = p.parse_args()
    REDACT.append(a.secret)
    sig = Signals()
    server = await record_agi(a.agi_port, sig)
    async with server:
        await record_ami(a.ami_port, a.username, a.secret, sig)


if __name__ == "__main__":
    asyncio.run(main())
