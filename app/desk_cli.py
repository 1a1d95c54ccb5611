"""``acd hash-password``: the hash an admin pastes into the config (``agents[].pin_hash``,
``supervision.supervisors[].password_hash``). The secret is read from the terminal (not
echoed) or from stdin, never from the command line (it would stay in the shell history
and in ``ps``)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from acd.config import passwords


def cmd_hash_password(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        secret = getpass.getpass("PIN or password: ")
        if getpass.getpass("again: ") != secret:
            print("the two entries differ", file=sys.stderr)
            return 2
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    try:
        print(passwords.hash_password(secret))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


def add_desk_parsers(sub: Any) -> None:
    p = sub.add_parser("hash-password", help="hash an agent's PIN or a supervisor's "
                       "password for the config (read from the terminal or stdin)")
    p.set_defaults(func=cmd_hash_password)
