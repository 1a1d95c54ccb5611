"""The synchronous process-AGI loop over real pipes, fed Asterisk's own bytes."""

from __future__ import annotations

import os
import threading
from typing import BinaryIO

import pytest

from agi_scripts.runner import AGIHungUp, SyncAGI

ENV = (b"agi_request: acd_note.py\nagi_channel: PJSIP/anonymous-00000001\n"
       b"agi_uniqueid: 1795435467.19\nagi_callerid: 13800138000\n"
       b"agi_calleridname: Zo\xc3\xab\nagi_arg_1: 1795435467.5\n\n")


def run_against(asterisk_says: list[bytes]) -> tuple[SyncAGI, list[str], threading.Thread,
                                                      list[BinaryIO]]:
    to_script_r, to_script_w = os.pipe()
    from_script_r, from_script_w = os.pipe()
    heard: list[str] = []

    def asterisk() -> None:
        with os.fdopen(to_script_w, "wb", buffering=0) as w, \
             os.fdopen(from_script_r, "rb") as r:
            w.write(ENV[:7])  # split reads
            w.write(ENV[7:])
            for reply in asterisk_says:
                heard.append(r.readline().decode())
                for i in range(len(reply)):  # one byte at a time
                    w.write(reply[i:i + 1])

    t = threading.Thread(target=asterisk)
    t.start()
    files: list[BinaryIO] = [os.fdopen(to_script_r, "rb", buffering=0),
                             os.fdopen(from_script_w, "wb")]
    return SyncAGI(files[0], files[1]), heard, t, files


def finish(t: threading.Thread, files: list[BinaryIO]) -> None:
    t.join()
    for f in files:
        f.close()


def test_environment_and_commands() -> None:
    agi, heard, t, files = run_against([b"200 result=1 (1795435467.5)\n", b"200 result=1\n"])
    assert agi.env.callerid == "13800138000" and agi.env.calleridname == "Zoë"
    assert agi.env.args == ("1795435467.5",)
    assert agi.get_variable("ACD_ENTRY") == "1795435467.5"
    agi.set_variable("ACD_NOTE", "fallback taken")
    finish(t, files)
    assert heard == ['GET VARIABLE "ACD_ENTRY"\n', 'SET VARIABLE "ACD_NOTE" "fallback taken"\n']


def test_hangup_line_is_out_of_band_and_511_raises() -> None:
    agi, _, t, files = run_against([b"HANGUP\n200 result=0\n",
                             b"511 Command Not Permitted on a dead channel or intercept "
                             b"routine\n"])
    assert agi.get_variable("X") is None and agi.hung_up
    with pytest.raises(AGIHungUp):
        agi.verbose("hello")
    finish(t, files)
