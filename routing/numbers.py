"""Caller and dialled numbers, normalised once: the one definition the whole product uses.

``normalise_number`` folds full-width (and any Unicode decimal) digits and plus signs to
ASCII, keeps the digits and gives Chinese numbers their national form (``+86`` / ``0086`` /
``86`` country prefix removed, trunk ``0`` before an area code). It is idempotent: a
normalised number normalises to itself. Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata

_FOLD_PLUS = str.maketrans({"＋": "+"})
_NON_ASCII_DIGIT = re.compile(r"[^\x00-\x7f]")


def fold_digits(raw: str) -> str:
    """Full-width (or any Unicode decimal) digits and plus sign → ASCII, so that
    ``"＋８６ １３８…"`` normalises like ``"+86 138…"``; other characters unchanged."""
    text = raw.translate(_FOLD_PLUS)
    if text.isascii():
        return text
    return _NON_ASCII_DIGIT.sub(
        lambda m: str(unicodedata.decimal(m.group())) if m.group().isdecimal() else m.group(),
        text,
    )


_NON_DIGITS = re.compile(r"\D")


def _national(rest: str) -> str:
    """National form after the country code: an 11-digit mobile as is, else the trunk 0
    before the area code (``10 1234 5678`` → ``01012345678``)."""
    if len(rest) == 11 and rest.startswith("1"):
        return rest
    return "0" + rest


def normalise_number(raw: str) -> str:
    """Digits of a caller number, national form for China: ``+86 138-0013-8000`` →
    ``13800138000``; ``0086755…`` → ``0755…``; full-width ``＋８６…`` like ASCII. Anything
    without digits → ``""``."""
    text = fold_digits(raw).strip()
    digits = _NON_DIGITS.sub("", text)
    if text.startswith("+"):
        if digits.startswith("86"):
            return _national(digits[2:])
        return "00" + digits  # international, kept recognisable
    if digits.startswith("0086"):
        return _national(digits[4:])
    if digits.startswith("86") and len(digits) == 13 and digits[2] == "1":
        return digits[2:]  # 86 + an 11-digit mobile number
    return digits


_SERVICE_NUMBER = re.compile(r"[48]00\d{7}")
_BARE_86_SERVICE = re.compile(r"86([48]00\d{7})")
_BARE_86_LANDLINE = re.compile(r"86((?:10|2\d|[3-9]\d\d)\d{7,8})")


def normalise_did(raw: str) -> str:
    """A dialled number in one form, however the carrier wrote it: ``+86 10 6555 0100``,
    ``00861065550100``, ``861065550100`` and ``01065550100`` are all ``01065550100``;
    ``+864008001234`` and ``4008001234`` are ``4008001234`` (400/800 numbers are dialled
    without the trunk 0). As :func:`normalise_number` for caller numbers, plus the
    400/800 and bare-86 forms carriers send as DIDs."""
    number = normalise_number(raw)
    if number.startswith("0") and _SERVICE_NUMBER.fullmatch(number[1:]):
        return number[1:]
    if m := _BARE_86_SERVICE.fullmatch(number):
        return m.group(1)
    if m := _BARE_86_LANDLINE.fullmatch(number):
        return "0" + m.group(1)
    return number
