"""Sans-I/O AMI parser and action tracker: Asterisk 22 transcripts, byte by byte, fuzzing."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd.protocol.ami import (
    CLOSED,
    MAX_LINE,
    MAX_MESSAGE,
    NEED_DATA,
    ActionDone,
    AMIActionTracker,
    AMIBanner,
    AMIConnection,
    AMIEvent,
    AMIMessage,
    AMIProtocolError,
    AMIResponse,
    AMIState,
    Closed,
    make_message,
)
from tests.unit.transcripts import AMI_TRANSCRIPTS, load, received

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
LIST_ACTIONS = {"DeviceStateList", "CoreShowChannels", "Status"}

Out = AMIBanner | AMIMessage | Closed


@pytest.fixture(params=[True, False], ids=["bytewise", "chunks"])
def bytewise(request: pytest.FixtureRequest) -> bool:
    """Every framing test runs twice: one byte per read (h11 style), and whole chunks."""
    return bool(request.param)


def drain(conn: AMIConnection) -> list[Out]:
    out: list[Out] = []
    for _ in range(100_000):  # bounded: a parser that loops forever fails the test
        event = conn.next_event()
        if event is NEED_DATA:
            return out
        out.append(event)  # type: ignore[arg-type]
        if event is CLOSED:
            return out
    raise AssertionError("next_event() never returned NEED_DATA/CLOSED")


def feed(conn: AMIConnection, data: bytes, *, bytewise: bool) -> list[Out]:
    out: list[Out] = []
    for piece in [data[i : i + 1] for i in range(len(data))] if bytewise else [data]:
        conn.receive_data(piece)
        out += drain(conn)
    return out


def ready() -> AMIConnection:
    conn = AMIConnection()
    conn.receive_data(BANNER)
    assert isinstance(conn.next_event(), AMIBanner)
    return conn


def parse_actions(data: bytes) -> list[dict[str, str]]:
    """Our recorded writes, as dicts (the transcript's side of the conversation)."""
    actions = []
    for block in data.decode().split("\r\n\r\n"):
        if block:
            actions.append(dict(line.split(": ", 1) for line in block.split("\r\n")))
    return actions


def replay(name: str, *, bytewise: bool) -> tuple[list[Out], list[ActionDone], list[AMIMessage]]:
    """Replay a transcript through AMIConnection + AMIActionTracker in recorded order."""
    conn, tracker = AMIConnection(), AMIActionTracker()
    out: list[Out] = []
    done: list[ActionDone] = []
    unsolicited: list[AMIMessage] = []
    for chunk in load(name):
        if chunk.dir == "send":
            for action in parse_actions(chunk.data):
                name_, aid = action.pop("Action"), action.pop("ActionID")
                assert conn.send_action(name_, action, action_id=aid) == chunk.data
                tracker.register(aid, list_action=name_ in LIST_ACTIONS)
        elif chunk.dir == "recv":
            for item in feed(conn, chunk.data, bytewise=bytewise):
                out.append(item)
                if isinstance(item, AMIMessage):
                    result = tracker.feed(item)
                    done += result.done
                    if result.unsolicited:
                        unsolicited.append(item)
        else:
            conn.receive_data(b"")
            out += drain(conn)
    return out, done, unsolicited


# ------------------------------------------------------------------ transcripts


@pytest.mark.parametrize("name", AMI_TRANSCRIPTS)
def test_transcripts_replay_identically_bytewise_and_chunked(name: str) -> None:
    assert replay(name, bytewise=True) == replay(name, bytewise=False)


def test_session_transcript(bytewise: bool) -> None:
    out, done, unsolicited = replay("ami_session", bytewise=bytewise)
    assert out[0] == AMIBanner("11.0.0")  # Asterisk 22 still says "Call Manager/11.0.0"
    assert out[-1] is CLOSED  # after Logoff's Goodbye Asterisk closes the socket
    by_id = {d.action_id: d for d in done}
    assert len(by_id) == 19  # every action completed exactly once

    login, ping = by_id["rec-1"], by_id["rec-2"]
    assert login.response is not None and login.response.message == "Authentication accepted"
    assert ping.response is not None and ping.response.get("ping") == "Pong"

    command = by_id["rec-3"].response
    assert command is not None and command.get_all("Output") == ["Changing agent1 to INUSE"]

    devstates = by_id["rec-5"]
    assert devstates.error is None
    assert [e.name for e in devstates.events] == [
        "DeviceStateChange",
        "DeviceStateChange",
        "DeviceStateListComplete",
    ]
    assert [(e.get("Device"), e.get("State")) for e in devstates.events[:2]] == [
        ("Custom:agent1", "INUSE"),
        ("Custom:agent2", "NOT_INUSE"),
    ]
    assert devstates.events[-1].get("ListItems") == "2"

    assert [e.name for e in by_id["rec-6"].events] == ["CoreShowChannelsComplete"]
    channels = by_id["rec-11"].events
    assert [e.name for e in channels] == [
        "CoreShowChannel",
        "CoreShowChannel",
        "CoreShowChannelsComplete",
    ]
    assert channels[1].get("CallerIDName") == "Zoë Élan"  # UTF-8 split when bytewise

    unknown = by_id["rec-7"]
    assert unknown.error is not None and unknown.error.startswith("Invalid/unknown command")
    status = by_id["rec-8"]  # Response: Error to a list action completes it at once
    assert (status.error, status.events) == ("No such channel", ())
    getvar = by_id["rec-9"].response
    assert getvar is not None and getvar.get("Value") == ""  # "Value: " (empty)
    assert by_id["rec-19"].response is not None
    assert by_id["rec-19"].response.response == "Goodbye"

    names = {m.name for m in unsolicited if isinstance(m, AMIEvent)}
    assert {"FullyBooted", "OriginateResponse", "Hangup", "DeviceStateChange"} <= names
    assert all(isinstance(m, AMIEvent) for m in unsolicited)
    originate_responses = [m for m in unsolicited if m.get("Event") == "OriginateResponse"]
    assert {m.action_id for m in originate_responses} == {"rec-10", "rec-13", "rec-15", "rec-17"}
    assert all(m.get("Response") == "Success" for m in originate_responses)

    test_events = [m for m in unsolicited if m.get("Event") == "TestEvent"]
    assert test_events and test_events[0].get_all("State") == ["CallIDChange", "CallIDChange"]


def test_login_failed_transcript(bytewise: bool) -> None:
    out, done, _ = replay("ami_login_failed", bytewise=bytewise)
    (login,) = done
    assert login.error == "Authentication failed"
    assert out[-1] is CLOSED


# --------------------------------------------------------------------- framing


def test_message_types_are_decided_by_the_first_header() -> None:
    originate = make_message((("Event", "OriginateResponse"), ("Response", "Success")))
    assert isinstance(originate, AMIEvent) and originate.name == "OriginateResponse"
    reply = make_message((("Response", "Success"), ("ActionID", "1")))
    assert isinstance(reply, AMIResponse) and reply.action_id == "1"
    odd = make_message((("Privilege", "x"), ("Event", "Late")))
    assert isinstance(odd, AMIEvent)
    plain = make_message((("Foo", "bar"),))
    assert type(plain) is AMIMessage and plain.action_id is None


def test_get_is_case_insensitive_first_value_and_get_all_keeps_order() -> None:
    msg = AMIMessage((("Event", "X"), ("ChanVariable", "a=1"), ("chanvariable", "b=2")))
    assert msg.get("CHANVARIABLE") == "a=1"
    assert msg.get_all("ChanVariable") == ["a=1", "b=2"]
    assert msg.get("missing") is None and msg.get("missing", "d") == "d"
    assert msg.get_all("missing") == []


def test_lenient_lines_bare_lf_and_blank_lines(bytewise: bool) -> None:
    conn = ready()
    data = (
        b"\r\n\r\n"  # stray blank lines between messages are ignored
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: 7\r\n"
        b"Channel   Location   State\r\n"  # legacy raw command output
        b"--END COMMAND--\r\n\r\n"
        b"Event: Bare\nKey:value\nEmpty:\nSpaces: a: b  \n\n"  # bare \n and odd separators
    )
    follows, bare = feed(conn, data, bytewise=bytewise)
    assert isinstance(follows, AMIResponse) and follows.response == "Follows"
    assert follows.headers[3:] == (("", "Channel   Location   State"), ("", "--END COMMAND--"))
    assert isinstance(bare, AMIEvent)
    assert bare.headers == (
        ("Event", "Bare"),
        ("Key", "value"),
        ("Empty", ""),
        ("Spaces", "a: b  "),
    )


def test_utf8_split_across_reads_and_invalid_bytes_replaced() -> None:
    conn = ready()
    euro = "€".encode()
    for piece in (b"Event: X\r\nName: ", euro[:2], euro[2:], b"\r\nBad: \xc3\r\n\r\n"):
        conn.receive_data(piece)
    (msg,) = drain(conn)
    assert isinstance(msg, AMIMessage)
    assert (msg.get("Name"), msg.get("Bad")) == ("€", "\ufffd")


def test_eof_drops_a_truncated_message_and_data_after_eof_is_an_error(bytewise: bool) -> None:
    conn = ready()
    out = feed(conn, b"Event: A\r\n\r\nEvent: B\r\nKey: v", bytewise=bytewise)
    conn.receive_data(b"")
    out += drain(conn)
    assert [type(o).__name__ for o in out] == ["AMIEvent", "Closed"]
    assert conn.state is AMIState.CLOSED and conn.next_event() is CLOSED
    with pytest.raises(AMIProtocolError):
        conn.receive_data(b"Event: C\r\n\r\n")


@pytest.mark.parametrize(
    ("prefix", "bad"),
    [
        (b"", b"HTTP/1.1 400 Bad Request\r\n"),  # wrong port: not an AMI banner
        (b"", b"\r\n"),
        (BANNER, b"x" * (MAX_LINE + 1)),  # a line too long (no newline yet)
        (BANNER, b"Event: X\r\nK: " + b"v" * (MAX_LINE + 1) + b"\r\n"),
        (BANNER + b"Event: X\r\n", (b"K: " + b"v" * 1000 + b"\r\n") * (MAX_MESSAGE // 1000 + 1)),
    ],
)
def test_illegal_input_raises_and_leaves_state_untouched(
    prefix: bytes, bad: bytes, bytewise: bool
) -> None:
    conn = AMIConnection()
    if prefix:
        conn.receive_data(prefix)
        drain(conn)
    state = conn.state
    with pytest.raises(AMIProtocolError):
        feed(conn, bad, bytewise=bytewise)
    assert conn.state is state
    with pytest.raises(AMIProtocolError):  # the same bytes, the same verdict
        conn.next_event()


# --------------------------------------------------------------------- actions


def test_send_action_crlf_framing_mapping_and_pairs() -> None:
    conn = ready()
    assert conn.send_action("Ping", action_id="a1") == b"Action: Ping\r\nActionID: a1\r\n\r\n"
    data = conn.send_action(
        "Originate",
        [("Channel", "Local/s@test"), ("Variable", "A=1"), ("Variable", "B=ü")],
        action_id="a2",
    )
    assert (
        data
        == (
            "Action: Originate\r\nActionID: a2\r\nChannel: Local/s@test\r\n"
            "Variable: A=1\r\nVariable: B=ü\r\n\r\n"
        ).encode()
    )
    assert conn.send_action("Getvar", {"Variable": ""}, action_id="a3").endswith(
        b"Variable: \r\n\r\n"
    )


@pytest.mark.parametrize(
    ("action", "fields", "action_id"),
    [
        ("Ping", {"Channel": "x\r\nAction: Originate"}, "1"),  # header injection
        ("Ping", {"Channel": "x\nAction: Originate"}, "1"),
        ("Ping", {"Channel": "x\rAction"}, "1"),
        ("Ping", {"Channel": "x\0y"}, "1"),
        ("Ping", {"Bad\r\nKey": "v"}, "1"),
        ("Ping", {"Key: x": "v"}, "1"),
        ("Ping", {"": "v"}, "1"),
        ("Ping", {"Key With Space": "v"}, "1"),
        ("Ping", {"ActionID": "other"}, "1"),
        ("Ping", [("action", "Logoff")], "1"),
        ("Ping\r\nAction: Logoff", (), "1"),
        ("Ping", (), "1\r\nAction: Logoff"),
        ("", (), "1"),
        ("Ping", (), ""),
    ],
)
def test_send_action_rejects_header_injection(
    action: str, fields: dict[str, str] | list[tuple[str, str]], action_id: str
) -> None:
    with pytest.raises(AMIProtocolError):
        ready().send_action(action, fields, action_id=action_id)


def test_send_action_refused_after_eof() -> None:
    conn = ready()
    conn.receive_data(b"")
    with pytest.raises(AMIProtocolError):
        conn.send_action("Ping", action_id="1")


# --------------------------------------------------------------------- tracker


def resp(aid: str | None, response: str = "Success", **extra: str) -> AMIResponse:
    headers = [("Response", response)]
    if aid is not None:
        headers.append(("ActionID", aid))
    return AMIResponse((*headers, *extra.items()))


def event(name: str, aid: str | None = None, **extra: str) -> AMIEvent:
    headers = [("Event", name)]
    if aid is not None:
        headers.append(("ActionID", aid))
    return AMIEvent((*headers, *extra.items()))


def test_plain_action_completes_on_its_response() -> None:
    tracker = AMIActionTracker()
    tracker.register("1")
    assert "1" in tracker and tracker.pending == 1
    done, unsolicited = tracker.feed(resp("1", Ping="Pong"))
    assert not unsolicited
    assert done == [ActionDone("1", resp("1", Ping="Pong"), (), None)]
    assert tracker.pending == 0
    # An event carrying a finished (or plain) action's ActionID is not the caller's:
    assert tracker.feed(event("OriginateResponse", "1")) == ([], True)


def test_plain_action_error() -> None:
    tracker = AMIActionTracker()
    tracker.register("1")
    (done,), _ = tracker.feed(resp("1", "Error", Message="Permission denied"))
    assert done.error == "Permission denied"


def test_list_action_collects_events_until_eventlist_complete() -> None:
    tracker = AMIActionTracker()
    tracker.register("L", list_action=True)
    start = resp("L", EventList="start", Message="Device State Changes will follow")
    assert tracker.feed(start) == ([], False)
    assert tracker.feed(event("DeviceStateChange", "L", Device="d1")) == ([], False)
    assert tracker.feed(event("DeviceStateChange", None, Device="dX")) == ([], True)
    assert tracker.feed(event("DeviceStateChange", "other")) == ([], True)
    (done,), unsolicited = tracker.feed(event("DeviceStateListComplete", "L", EventList="Complete"))
    assert not unsolicited and done.error is None and done.response == start
    assert [e.name for e in done.events] == ["DeviceStateChange", "DeviceStateListComplete"]


def test_list_action_legacy_will_follow_without_eventlist_header() -> None:
    tracker = AMIActionTracker()
    tracker.register("L", list_action=True)
    assert tracker.feed(resp("L", Message="Queue status will follow")) == ([], False)
    (done,), _ = tracker.feed(event("QueueStatusComplete", "L", EventList="Complete"))
    assert done.response is not None


def test_list_action_error_or_no_list_completes_at_once() -> None:
    tracker = AMIActionTracker()
    tracker.register("E", list_action=True)
    tracker.register("N", list_action=True)
    (err,), _ = tracker.feed(resp("E", "Error", Message="No such channel"))
    assert (err.error, err.events) == ("No such channel", ())
    (plain,), _ = tracker.feed(resp("N", Message="Nothing to list"))
    assert plain.error is None and tracker.pending == 0
    assert tracker.feed(event("Late", "E")) == ([], True)


def test_list_events_before_the_response_are_kept() -> None:
    tracker = AMIActionTracker()
    tracker.register("L", list_action=True)
    assert tracker.feed(event("Item", "L")) == ([], False)
    assert tracker.feed(event("Done", "L", EventList="Complete")) == ([], False)
    (done,), _ = tracker.feed(resp("L", EventList="start"))
    assert [e.name for e in done.events] == ["Item", "Done"]


def test_stray_messages_are_unsolicited() -> None:
    tracker = AMIActionTracker()
    assert tracker.feed(resp(None)) == ([], True)
    assert tracker.feed(resp("unknown")) == ([], True)
    assert tracker.feed(AMIMessage((("ActionID", "x"),))) == ([], True)
    tracker.register("1", list_action=True)
    tracker.feed(resp("1", EventList="start"))
    assert tracker.feed(resp("1")) == ([], True)  # a second response is not ours to judge


def test_discard_and_duplicate_register() -> None:
    tracker = AMIActionTracker()
    tracker.register("1")
    with pytest.raises(ValueError):
        tracker.register("1")
    tracker.discard("1")
    tracker.discard("1")  # idempotent
    assert tracker.feed(resp("1")) == ([], True)  # a late reply after giving up


def test_fail_all_fails_everything_once_and_forgets_it() -> None:
    tracker = AMIActionTracker()
    tracker.register("O")
    tracker.register("L", list_action=True)
    tracker.feed(resp("L", EventList="start"))
    tracker.feed(event("Item", "L"))
    failed = {d.action_id: d for d in tracker.fail_all("connection lost")}
    assert set(failed) == {"O", "L"}
    assert failed["O"] == ActionDone("O", None, (), "connection lost")
    assert [e.name for e in failed["L"].events] == ["Item"]
    assert tracker.pending == 0 and tracker.fail_all("again") == []
    assert tracker.feed(resp("O")) == ([], True)  # never resurrected


# ---------------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fuzz_feed(conn: AMIConnection, data: bytes, cuts: list[int]) -> None:
    tracker = AMIActionTracker()
    tracker.register("rec-5", list_action=True)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    try:
        for start, end in itertools.pairwise(bounds):
            conn.receive_data(data[start:end])
            for item in drain(conn):
                if isinstance(item, AMIMessage):
                    tracker.feed(item)
        conn.receive_data(b"")
        assert drain(conn)[-1:] == [CLOSED]
    except AMIProtocolError:
        pass
    tracker.fail_all("end")


@FUZZ
@given(
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(0, 3000), max_size=20),
    with_banner=st.booleans(),
)
def test_fuzz_random_bytes(data: bytes, cuts: list[int], with_banner: bool) -> None:
    _fuzz_feed(ready() if with_banner else AMIConnection(), data, cuts)


@st.composite
def mutated_transcript(draw: st.DrawFn) -> bytes:
    whole = received(draw(st.sampled_from(AMI_TRANSCRIPTS)))
    start = draw(st.integers(0, max(0, len(whole) - 4000)))
    data = bytearray(whole[:40] + whole[start : start + 4000])  # keep the banner
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        blob = draw(st.sampled_from([b"\r\n", b"\n", b"\r", b": ", b":", b"\xe2\x82", b"\x00"]))
        if op == "insert":
            data[pos:pos] = blob
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 80))]
        else:
            data[pos : pos + len(blob)] = blob
    return bytes(data)


@FUZZ
@given(data=mutated_transcript(), cuts=st.lists(st.integers(0, 5000), max_size=20))
def test_fuzz_mutated_transcripts(data: bytes, cuts: list[int]) -> None:
    _fuzz_feed(AMIConnection(), data, cuts)
