"""The one error a configuration raises, and how it writes a key path."""

from __future__ import annotations

from collections.abc import Sequence


class ConfigError(Exception):
    """The configuration is invalid. ``errors`` holds one line per problem."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = list(errors)


class ItemName(str):
    """A list item named by its id in a key path: written ``agents[1002]``."""

    __slots__ = ()


def fmt_path(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int | ItemName):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"
