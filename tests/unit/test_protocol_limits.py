"""Parser limits (issue 10.14): the same verdict however the bytes are split, a bounded
number of headers per AMI message, a bounded number of list events held per action.

A line of exactly ``MAX_LINE`` bytes is accepted and one of ``MAX_LINE + 1`` refused,
whether its ``\\r\\n`` arrives with it, after it, split between two reads, or byte by
byte; the same for a bare ``\\n``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from acd.protocol import agi, ami
from acd.protocol.agi import AGIConnection, AGIProtocolError, AGIResponse
from acd.protocol.ami import (
    MAX_HEADERS,
    ActionDone,
    AMIActionTracker,
    AMIConnection,
    AMIEvent,
    AMIProtocolError,
    AMIResponse,
)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
AGI_ENV = b"agi_network: yes\nagi_network_script: inbound\n\n"


def splits(line: bytes, terminator: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """Ways the network may cut ``line + terminator`` into reads."""
    whole = line + terminator
    yield "at once", [whole]
    yield "terminator apart", [line, terminator]
    if len(terminator) == 2:
        yield "CR with the line, LF apart", [line + terminator[:1], terminator[1:]]
    yield "last byte apart", [whole[:-1], whole[-1:]]
    yield "in halves", [whole[: len(whole) // 2], whole[len(whole) // 2:]]
    yield "tail byte by byte", [whole[:-8], *[whole[i:i + 1]
                                              for i in range(len(whole) - 8, len(whole))]]


def ami_verdict(chunks: list[bytes], header: bytes) -> str:
    conn = AMIConnection()
    conn.receive_data(BANNER)
    conn.next_event()
    try:
        for chunk in [b"Event: Big\r\n", *chunks, b"\r\n"]:
            conn.receive_data(chunk)
            while not isinstance(conn.next_event(), ami.NeedData):
                pass
    except AMIProtocolError:
        return "refused"
    return "accepted"


def agi_verdict(chunks: list[bytes], _header: bytes) -> str:
    conn = AGIConnection()
    conn.receive_data(AGI_ENV)
    conn.next_event()
    conn.send_command("GET VARIABLE X")
    got: list[object] = []
    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            while not isinstance(event := conn.next_event(), agi.NeedData):
                got.append(event)
    except AGIProtocolError:
        return "refused"
    assert len(got) == 1 and isinstance(got[0], AGIResponse)
    return "accepted"


PARSERS: dict[str, tuple[Callable[[list[bytes], bytes], str], bytes, int]] = {
    "ami": (ami_verdict, b"K: ", ami.MAX_LINE),
    "agi": (agi_verdict, b"200 result=1 (", agi.MAX_LINE),
}


@pytest.mark.parametrize("parser", sorted(PARSERS))
@pytest.mark.parametrize("terminator", [b"\r\n", b"\n"], ids=["crlf", "lf"])
@pytest.mark.parametrize(("extra", "expected"), [(0, "accepted"), (1, "refused")],
                         ids=["max", "max+1"])
def test_a_line_at_the_limit_gets_the_same_verdict_however_it_is_split(
        parser: str, terminator: bytes, extra: int, expected: str) -> None:
    verdict, prefix, limit = PARSERS[parser]
    suffix = b")" if parser == "agi" else b""
    line = prefix + b"v" * (limit + extra - len(prefix) - len(suffix)) + suffix
    assert len(line) == limit + extra
    for how, chunks in splits(line, terminator):
        assert b"".join(chunks) == line + terminator
        assert verdict(chunks, prefix) == expected, how


@pytest.mark.parametrize("parser", sorted(PARSERS))
def test_a_line_at_the_limit_fed_byte_by_byte(parser: str) -> None:
    verdict, prefix, limit = PARSERS[parser]
    suffix = b")" if parser == "agi" else b""
    for extra, expected in ((0, "accepted"), (1, "refused")):
        line = prefix + b"v" * (limit + extra - len(prefix) - len(suffix)) + suffix
        whole = line + b"\r\n"
        assert verdict([whole[i:i + 1] for i in range(len(whole))], prefix) == expected


@pytest.mark.parametrize("bytewise", [True, False], ids=["bytewise", "chunks"])
def test_an_ami_message_with_too_many_headers_is_refused_and_state_untouched(
        bytewise: bool) -> None:
    ok = b"Event: Many\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(MAX_HEADERS - 1))
    conn = AMIConnection()
    conn.receive_data(BANNER)
    conn.next_event()
    data = ok + b"\r\n"
    for piece in [data[i:i + 1] for i in range(len(data))] if bytewise else [data]:
        conn.receive_data(piece)
        event = conn.next_event()
    assert isinstance(event, AMIEvent) and len(event.headers) == MAX_HEADERS

    conn.receive_data(ok)
    assert isinstance(conn.next_event(), ami.NeedData)
    conn.receive_data(b"One: too many\r\n")
    with pytest.raises(AMIProtocolError, match="headers"):
        conn.next_event()
    with pytest.raises(AMIProtocolError):  # the line is still buffered: same verdict
        conn.next_event()


def _event(name: str, aid: str, **extra: str) -> AMIEvent:
    return AMIEvent((("Event", name), ("ActionID", aid), *extra.items()))


def test_a_list_action_holds_at_most_max_list_events_and_then_fails() -> None:
    tracker = AMIActionTracker(max_list_events=3)
    tracker.register("L", list_action=True)
    tracker.register("M", list_action=True)
    start = AMIResponse((("Response", "Success"), ("ActionID", "L"),
                         ("EventList", "start")))
    assert tracker.feed(start) == ([], False)
    for i in range(10):
        # held (up to the cap) or dropped: never unsolicited, never handed on as events
        assert tracker.feed(_event("CoreShowChannel", "L", N=str(i))) == ([], False)
    assert tracker.held_events == 3
    (done,), unsolicited = tracker.feed(_event("CoreShowChannelsComplete", "L",
                                               EventList="Complete"))
    assert not unsolicited
    assert isinstance(done, ActionDone) and done.error is not None
    assert "more than 3" in done.error and done.events == ()
    assert tracker.held_events == 0
    # another action within the cap completes normally
    tracker.feed(AMIResponse((("Response", "Success"), ("ActionID", "M"),
                              ("EventList", "start"))))
    tracker.feed(_event("Item", "M"))
    (ok,), _ = tracker.feed(_event("Done", "M", EventList="Complete"))
    assert ok.error is None and len(ok.events) == 2


def test_the_default_cap_on_list_events_is_large_but_finite() -> None:
    assert 10_000 <= ami.MAX_LIST_EVENTS <= 1_000_000
    assert AMIActionTracker().max_list_events == ami.MAX_LIST_EVENTS
