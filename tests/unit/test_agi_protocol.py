"""Sans-I/O FastAGI parser: recorded Asterisk 22 transcripts, byte by byte, and fuzzing."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd.protocol.agi import (
    CLOSED,
    MAX_BLOCK,
    MAX_LINE,
    NEED_DATA,
    AGIConnection,
    AGIEnvironment,
    AGIEvent,
    AGIHangup,
    AGIProtocolError,
    AGIResponse,
    AGIState,
    Closed,
    parse_response,
    quote,
)
from tests.unit.transcripts import AGI_TRANSCRIPTS, load, received

ENV = b"agi_network: yes\nagi_network_script: inbound\nagi_channel: PJSIP/1-0001\n\n"


@pytest.fixture(params=[True, False], ids=["bytewise", "chunks"])
def bytewise(request: pytest.FixtureRequest) -> bool:
    """Every framing test runs twice: one byte per read (h11 style), and whole chunks."""
    return bool(request.param)


def drain(conn: AGIConnection) -> list[AGIEvent | Closed]:
    """Every event available now; stops at NEED_DATA (dropped) or CLOSED (kept)."""
    out: list[AGIEvent | Closed] = []
    for _ in range(10_000):  # bounded: a parser that loops forever fails the test
        event = conn.next_event()
        if event is NEED_DATA:
            return out
        out.append(event)  # type: ignore[arg-type]
        if event is CLOSED:
            return out
    raise AssertionError("next_event() never returned NEED_DATA/CLOSED")


def feed(conn: AGIConnection, data: bytes, *, bytewise: bool) -> list[AGIEvent | Closed]:
    events: list[AGIEvent | Closed] = []
    pieces = [data[i : i + 1] for i in range(len(data))] if bytewise else [data]
    for piece in pieces:
        conn.receive_data(piece)
        events += drain(conn)
    return events


def ready(*commands: str) -> AGIConnection:
    """A connection past the environment, with ``commands`` pending."""
    conn = AGIConnection()
    conn.receive_data(ENV)
    assert isinstance(conn.next_event(), AGIEnvironment)
    for command in commands:
        conn.send_command(command)
    return conn


def replay(name: str, *, bytewise: bool) -> tuple[AGIConnection, list[AGIEvent | Closed]]:
    """Replay a transcript in recorded order: our writes via send_command, their bytes fed."""
    conn = AGIConnection()
    events: list[AGIEvent | Closed] = []
    for chunk in load(name):
        if chunk.dir == "send":
            for line in chunk.data.decode().splitlines():
                assert conn.send_command(line) == (line + "\n").encode()
        elif chunk.dir == "recv":
            events += feed(conn, chunk.data, bytewise=bytewise)
    conn.receive_data(b"")
    events += drain(conn)
    return conn, events


def kinds(events: list[AGIEvent | Closed]) -> list[str]:
    out = []
    for e in events:
        if isinstance(e, AGIResponse):
            out.append(str(e.code))
        else:
            out.append(type(e).__name__)
    return out


# ------------------------------------------------------------------ transcripts


@pytest.mark.parametrize("name", AGI_TRANSCRIPTS)
def test_transcripts_replay_identically_bytewise_and_chunked(name: str, bytewise: bool) -> None:
    conn, events = replay(name, bytewise=bytewise)
    _, reference = replay(name, bytewise=not bytewise)
    assert events == reference
    assert events[-1] is CLOSED
    assert conn.state is AGIState.CLOSED
    assert conn.pending == 0


def test_inbound_transcript(bytewise: bool) -> None:
    conn, events = replay("agi_inbound", bytewise=bytewise)
    assert kinds(events) == [
        "AGIEnvironment",
        *["200"] * 5,  # ANSWER, GET VARIABLE x2, SET VARIABLE, GET FULL VARIABLE
        "510",
        "520",
        *["200"] * 5,  # SET MUSIC x2, STREAM FILE, WAIT FOR DIGIT, EXEC
        "AGIHangup",  # hung up while idle
        "200",  # GET VARIABLE still works on a dead channel
        "511",  # ANSWER does not
        "Closed",
    ]
    env = events[0]
    assert isinstance(env, AGIEnvironment)
    assert env.script == "inbound"
    assert env.args == ("arg1", "arg 2", "ünï")
    assert env.calleridname == "Zoë Élan"  # UTF-8, split across reads when bytewise
    assert env.callerid == "1001"
    assert env.channel.startswith("Local/s@test-") and env.channel.endswith(";2")
    assert env.uniqueid.startswith("17")
    assert (env.context, env.extension) == ("test", "s")
    assert env.get("agi_accountcode", "x") == ""  # "agi_accountcode: " (empty value)
    assert env.get("agi_version").startswith("22.10")

    responses = [e for e in events if isinstance(e, AGIResponse)]
    answer, cid, unset, setvar, full, bad, usage = responses[:7]
    assert (answer.code, answer.result, answer.data) == (200, "0", None)
    assert (cid.result, cid.data) == ("1", "Zoë Élan")
    assert (unset.result, unset.data, unset.result_int) == ("0", None, 0)
    assert setvar.result_int == 1
    assert full.data == "bar baz-1001"
    assert (bad.code, bad.result, bad.text) == (510, None, "510 Invalid or unknown command")
    assert usage.code == 520
    assert usage.text.startswith("520-Invalid command syntax.  Proper usage follows:\n")
    assert usage.text.endswith("\n520 End of proper usage.")
    assert "Example return code: 200 result=1 (testvariable)" in usage.text
    stream = responses[9]
    assert (stream.result_int, dict(stream.fields)) == (-1, {"endpos": "0"})
    dead_ok, dead = responses[-2:]
    assert dead_ok.data == "bar baz"
    assert dead.code == 511
    assert dead.text == "511 Command Not Permitted on a dead channel or intercept routine"
    assert conn.hung_up


def test_busy_transcript_hangup_right_after_a_result(bytewise: bool) -> None:
    _, events = replay("agi_busy", bytewise=bytewise)
    assert kinds(events) == ["AGIEnvironment", "200", "200", "AGIHangup", "200", "Closed"]
    wait_result = events[2]
    assert isinstance(wait_result, AGIResponse) and wait_result.result_int == -1


def test_pending_transcript_hangup_while_a_command_is_pending() -> None:
    conn = AGIConnection()
    events: list[AGIEvent | Closed] = []
    seen_pending_at_hangup = []
    for chunk in load("agi_pending"):
        if chunk.dir == "send":
            conn.send_command(chunk.data.decode().strip())
        elif chunk.dir == "recv":
            for i in range(len(chunk.data)):
                conn.receive_data(chunk.data[i : i + 1])
                for event in drain(conn):
                    if isinstance(event, AGIHangup):
                        seen_pending_at_hangup.append(conn.pending)
                    events.append(event)
    assert kinds(events) == ["AGIEnvironment", "200", "200", "AGIHangup", "200", "511"]
    assert seen_pending_at_hangup == [1]  # GET VARIABLE was still waiting for its reply


def test_pipelined_transcript_parses_two_replies_in_one_read(bytewise: bool) -> None:
    _, events = replay("agi_pipelined", bytewise=bytewise)
    assert kinds(events) == ["AGIEnvironment", "200", "200", "AGIHangup", "200", "200", "Closed"]


# ------------------------------------------------------------------ environment


def test_environment_args_stop_at_the_first_gap_and_missing_keys_are_empty() -> None:
    env = AGIEnvironment({"agi_arg_1": "a", "agi_arg_2": "", "agi_arg_4": "d"})
    assert env.args == ("a", "")
    assert (env.script, env.uniqueid, env.channel, env.callerid) == ("", "", "", "")
    assert AGIEnvironment({}).args == ()


def test_environment_tolerates_crlf_and_missing_space(bytewise: bool) -> None:
    conn = AGIConnection()
    (env,) = feed(conn, b"agi_network_script: x\r\nagi_arg_1:y\r\n\r\n", bytewise=bytewise)
    assert isinstance(env, AGIEnvironment)
    assert (env.script, env.args) == ("x", ("y",))
    assert conn.state is AGIState.READY


def test_environment_and_first_reply_in_one_read(bytewise: bool) -> None:
    conn = AGIConnection()
    events = feed(conn, ENV + b"HANGUP\n", bytewise=bytewise)
    assert kinds(events) == ["AGIEnvironment", "AGIHangup"]


def test_eof_before_the_environment_is_closed(bytewise: bool) -> None:
    conn = AGIConnection()
    assert feed(conn, b"agi_network: yes\nagi_chan", bytewise=bytewise) == []
    conn.receive_data(b"")
    assert drain(conn) == [CLOSED]
    assert conn.next_event() is CLOSED  # forever


# -------------------------------------------------------------------- responses


@pytest.mark.parametrize(
    ("line", "code", "result", "data", "fields"),
    [
        ("200 result=1 (timeout) endpos=1234", 200, "1", "timeout", {"endpos": "1234"}),
        ("200 result= (timeout)", 200, "", "timeout", {}),
        ("200 result=1 (a (b) c)", 200, "1", "a (b) c", {}),
        ("200 result=1 (a) b) endpos=5", 200, "1", "a) b", {"endpos": "5"}),
        ("200 result=1 (x=y z=w)", 200, "1", "x=y z=w", {}),
        ("200 result=1 ()", 200, "1", "", {}),
        ("200 result=-1 endpos=0", 200, "-1", None, {"endpos": "0"}),
        ("200 result=0 Gosub complete", 200, "0", None, {}),
        ("503 result=-2 Memory allocation failure", 503, "-2", None, {}),
        ("510 Invalid or unknown command", 510, None, None, {}),
        ("511 Command Not Permitted on a dead channel", 511, None, None, {}),
        ("200 result=1 (unclosed", 200, "1", None, {}),
        ("200", 200, None, None, {}),
    ],
)
def test_parse_response(
    line: str, code: int, result: str | None, data: str | None, fields: dict[str, str]
) -> None:
    response = parse_response([line])
    assert (response.code, response.result, response.data) == (code, result, data)
    assert dict(response.fields) == fields
    assert response.text == line


@pytest.mark.parametrize(
    ("result", "expected"), [("1", 1), ("-1", -1), ("", None), (None, None), ("49x", None)]
)
def test_result_int(result: str | None, expected: int | None) -> None:
    assert AGIResponse(200, result, None, {}, "").result_int == expected


def test_multiline_520_is_one_response(bytewise: bool) -> None:
    conn = ready("GET VARIABLE", "ANSWER")
    data = (
        b"520-Invalid command syntax.  Proper usage follows:\n"
        b"Usage: GET VARIABLE <variablename>\n"
        b"HANGUP\n"  # inside the block it is text, not a hangup
        b"510 not the end: another code\n"
        b"520 End of proper usage.\n"
        b"200 result=0\n"
    )
    events = feed(conn, data, bytewise=bytewise)
    assert kinds(events) == ["520", "200"]
    usage = events[0]
    assert isinstance(usage, AGIResponse)
    assert usage.text.count("\n") == 4
    assert not conn.hung_up
    assert conn.pending == 0


def test_provisional_100_does_not_complete_the_command(bytewise: bool) -> None:
    conn = ready("EXEC Gosub sub,s,1")
    events = feed(conn, b"100 result=0 Trying...\n", bytewise=bytewise)
    assert events == [] and conn.pending == 1
    events = feed(conn, b"200 result=0 Gosub complete\n", bytewise=bytewise)
    assert kinds(events) == ["200"] and conn.pending == 0


@pytest.mark.parametrize(
    ("commands", "data", "expected"),
    [
        ((), b"HANGUP\n", ["AGIHangup"]),  # idle
        (("ANSWER",), b"200 result=0\nHANGUP\n", ["200", "AGIHangup"]),  # right after a result
        (("EXEC Dial x",), b"HANGUP\n200 result=-1\n", ["AGIHangup", "200"]),  # while pending
        (("A", "B"), b"200 result=0\nHANGUP\n200 result=0\n", ["200", "AGIHangup", "200"]),
        ((), b"HANGUP\r\nHANGUP\n", ["AGIHangup", "AGIHangup"]),
    ],
)
def test_hangup_is_out_of_band_in_every_position(
    commands: tuple[str, ...], data: bytes, expected: list[str], bytewise: bool
) -> None:
    conn = ready(*commands)
    assert kinds(feed(conn, data, bytewise=bytewise)) == expected
    assert conn.hung_up
    assert conn.pending == 0


def test_commands_are_still_answered_after_hangup(bytewise: bool) -> None:
    conn = ready()
    feed(conn, b"HANGUP\n", bytewise=bytewise)
    conn.send_command("ANSWER")
    (dead,) = feed(
        conn, b"511 Command Not Permitted on a dead channel or intercept routine\n", bytewise=True
    )
    assert isinstance(dead, AGIResponse) and dead.code == 511


def test_utf8_split_across_reads_is_intact_and_invalid_bytes_are_replaced() -> None:
    conn = ready("GET VARIABLE X", "GET VARIABLE Y")
    euro = "€".encode()
    for piece in (b"200 result=1 (", euro[:1], euro[1:2], euro[2:], b")\n"):
        conn.receive_data(piece)
    conn.receive_data(b"200 result=1 (\xff\xfe)\n")
    first, second = drain(conn)
    assert isinstance(first, AGIResponse) and first.data == "€"
    assert isinstance(second, AGIResponse) and second.data == "\ufffd\ufffd"


# -------------------------------------------------------------------- abandon


def test_abandoned_reply_is_read_and_discarded(bytewise: bool) -> None:
    conn = ready("EXEC Wait 30")
    conn.abandon_response()
    assert conn.pending == 1
    conn.send_command("GET VARIABLE FOO")
    events = feed(conn, b"200 result=-1\n200 result=1 (bar)\n", bytewise=bytewise)
    assert [e.data for e in events if isinstance(e, AGIResponse)] == ["bar"]
    assert conn.pending == 0


def test_abandon_marks_the_oldest_not_yet_abandoned_command(bytewise: bool) -> None:
    conn = ready("A", "B", "C")
    conn.abandon_response()
    conn.abandon_response()
    events = feed(conn, b"200 result=1\n520-x\ny\n520 z\n200 result=3\n", bytewise=bytewise)
    assert [e.result for e in events if isinstance(e, AGIResponse)] == ["3"]


def test_abandon_without_pending_command_is_an_error() -> None:
    conn = ready("A")
    conn.abandon_response()
    with pytest.raises(AGIProtocolError):
        conn.abandon_response()
    assert conn.pending == 1


# ------------------------------------------------------------------- sending


def test_send_command_returns_utf8_with_newline() -> None:
    conn = ready()
    assert conn.send_command('SET VARIABLE N "Zoë"') == 'SET VARIABLE N "Zoë"\n'.encode()
    assert conn.pending == 1


@pytest.mark.parametrize("command", ["ANSWER\n", "A\rB", "GET VARIABLE X\nHANGUP", "A\0", "", "  "])
def test_send_command_rejects_injection_and_empty_commands(command: str) -> None:
    conn = ready()
    with pytest.raises(AGIProtocolError):
        conn.send_command(command)
    assert conn.pending == 0


def test_send_command_refused_before_environment_and_after_eof() -> None:
    conn = AGIConnection()
    with pytest.raises(AGIProtocolError):
        conn.send_command("ANSWER")
    conn = ready()
    conn.receive_data(b"")
    with pytest.raises(AGIProtocolError):
        conn.send_command("ANSWER")
    assert drain(conn) == [CLOSED]
    with pytest.raises(AGIProtocolError):
        conn.send_command("ANSWER")


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("", ""), ("a b", "a b"), ('say "hi"', 'say "hi"'), ("C:\\x", "C:\\x"), ("ü,1", "ü,1")],
)
def test_quote_round_trips_through_res_agi_parse_args(value: str, parsed: str) -> None:
    assert _res_agi_parse_args(f"EXEC Dial {quote(value)}") == ["EXEC", "Dial", parsed]


def _res_agi_parse_args(line: str) -> list[str]:
    """A transcription of res_agi.c parse_args(): quotes group, backslash escapes."""
    args: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and cur is None:
                cur = []
                args.append("")
            continue
        if ch in " \t" and not quoted and not escaped:
            if cur is not None:
                args[-1] = "".join(cur)
            cur = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        escaped = False
        if cur is None:
            cur = []
            args.append("")
        cur.append(ch)
    if cur is not None:
        args[-1] = "".join(cur)
    return args


# ------------------------------------------------------- errors leave state untouched


def _snapshot(conn: AGIConnection) -> tuple[AGIState, int, bool]:
    return conn.state, conn.pending, conn.hung_up


@pytest.mark.parametrize(
    ("prefix", "commands", "bad"),
    [
        (b"", (), b"GET / HTTP/1.1\r\n"),  # garbage instead of an environment
        (b"", (), b"\n"),  # empty environment
        (b"agi_network: yes\n", (), b"network: yes\n"),  # key without agi_
        (b"agi_network: yes\n", (), b"agi network: yes\n"),
        (ENV, (), b"200 result=0\n"),  # a response with no pending command
        (ENV, ("ANSWER",), b"hello\n"),  # not a response, not HANGUP
        (ENV, ("ANSWER",), b"20 result=0\n"),
        (ENV, ("ANSWER",), b"x" * (MAX_LINE + 1)),  # a line too long, no newline yet
        (ENV, ("ANSWER",), b"2" * (MAX_LINE + 1) + b"\n"),
    ],
)
def test_illegal_input_raises_and_leaves_state_untouched(
    prefix: bytes, commands: tuple[str, ...], bad: bytes, bytewise: bool
) -> None:
    conn = AGIConnection()
    if prefix:
        conn.receive_data(prefix)
        drain(conn)
    for command in commands:
        conn.send_command(command)
    before = _snapshot(conn)
    with pytest.raises(AGIProtocolError):
        feed(conn, bad, bytewise=bytewise)
    assert _snapshot(conn) == before
    with pytest.raises(AGIProtocolError):  # the bytes are still there: same verdict
        conn.next_event()
    assert _snapshot(conn) == before


def test_oversized_environment_and_usage_block_are_refused() -> None:
    conn = AGIConnection()
    line = b"agi_x: " + b"v" * 1000 + b"\n"
    conn.receive_data(line * (MAX_BLOCK // len(line) + 1))
    with pytest.raises(AGIProtocolError):
        drain(conn)
    assert conn.state is AGIState.ENVIRONMENT

    conn = ready("GET VARIABLE")
    conn.receive_data(b"520-usage\n" + (b"u" * 1000 + b"\n") * (MAX_BLOCK // 1001 + 1))
    with pytest.raises(AGIProtocolError):
        drain(conn)
    assert conn.pending == 1


def test_eof_drops_a_truncated_line_and_data_after_eof_is_an_error(bytewise: bool) -> None:
    conn = ready("ANSWER")
    assert kinds(feed(conn, b"HANGUP\n200 res", bytewise=bytewise)) == ["AGIHangup"]
    conn.receive_data(b"")
    assert drain(conn) == [CLOSED]
    assert conn.state is AGIState.CLOSED
    conn.receive_data(b"")  # a second EOF is harmless
    with pytest.raises(AGIProtocolError):
        conn.receive_data(b"more")


# ---------------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fuzz_feed(conn: AGIConnection, data: bytes, cuts: list[int]) -> None:
    """Feed ``data`` cut at ``cuts``; only AGIProtocolError may escape, and it must stop."""
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    try:
        for start, end in itertools.pairwise(bounds):
            conn.receive_data(data[start:end])
            drain(conn)
        conn.receive_data(b"")
        assert drain(conn)[-1:] == [CLOSED]
    except AGIProtocolError:
        pass


@FUZZ
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 2000), max_size=20))
def test_fuzz_random_bytes_before_environment(data: bytes, cuts: list[int]) -> None:
    _fuzz_feed(AGIConnection(), data, cuts)


@FUZZ
@given(
    data=st.binary(max_size=2000),
    cuts=st.lists(st.integers(0, 2000), max_size=20),
    pending=st.integers(0, 3),
)
def test_fuzz_random_bytes_after_environment(data: bytes, cuts: list[int], pending: int) -> None:
    _fuzz_feed(ready(*["ANSWER"] * pending), data, cuts)


@st.composite
def mutated_transcript(draw: st.DrawFn) -> bytes:
    data = bytearray(received(draw(st.sampled_from(AGI_TRANSCRIPTS))))
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        blob = draw(st.sampled_from([b"\n", b"\r", b"HANGUP\n", b"520-", b" ", b"\xff", b"("]))
        if op == "insert":
            data[pos:pos] = blob
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 50))]
        else:
            data[pos : pos + len(blob)] = blob
    return bytes(data)


@FUZZ
@given(
    data=mutated_transcript(),
    cuts=st.lists(st.integers(0, 5000), max_size=20),
    pending=st.integers(0, 20),
)
def test_fuzz_mutated_transcripts(data: bytes, cuts: list[int], pending: int) -> None:
    conn = AGIConnection()
    env_end = data.find(b"\n\n") + 2 if b"\n\n" in data else len(data)
    try:
        conn.receive_data(data[:env_end])
        drain(conn)
        if conn.state is AGIState.READY:
            for _ in range(pending):
                conn.send_command("GET VARIABLE X")
    except AGIProtocolError:
        return
    _fuzz_feed(conn, data[env_end:], cuts)
