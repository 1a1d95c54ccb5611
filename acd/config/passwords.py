"""Password and PIN hashes: ``hashlib.scrypt`` (the standard library), no new dependency.

A hash is one line of text an admin pastes into the config (``agents[].pin_hash``,
``supervision.supervisors[].password_hash``); ``acd hash-password`` makes one::

    scrypt$16384$8$1$<salt, base64>$<key, base64>

(n, r, p are scrypt's cost parameters: 16 MiB of memory and ≈ 50 ms per check on one
core; the salt is 16 random bytes, the key 32 bytes). The plain text never reaches the
config, the logs or an answer of the API.

Why scrypt from ``hashlib``: memory-hard (a GPU gains little against it), in every
CPython built with OpenSSL ≥ 1.1, and its parameters travel with each hash so they can
be raised later without invalidating the hashes already out there. ``argon2-cffi`` or
``bcrypt`` would be a new compiled dependency for no gain here.

A check costs ~50 ms of CPU: the API runs it in a worker thread (``hashlib`` releases
the GIL), never on the engine's event loop.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "scrypt"
#: Default cost: n = 2**14, r = 8, p = 1 (16 MiB, ≈ 50 ms).
N, R, P = 16_384, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
#: Bounds a hash from the config must stay within (a typo must not make each check
#: take a minute, or allocate gigabytes).
MAX_N = 1 << 20
MAX_R, MAX_P = 32, 16
#: Shortest secret ``hash_password`` accepts (a 4-digit PIN is what phones use; the
#: failed-auth throttle and the session rules make guessing slow).
MIN_LENGTH = 4
MAX_LENGTH = 256


class BadHash(ValueError):
    """Not a hash this module made (or parameters out of bounds)."""


@dataclass(frozen=True, slots=True)
class ScryptHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def __str__(self) -> str:
        return "$".join((PREFIX, str(self.n), str(self.r), str(self.p),
                         _b64(self.salt), _b64(self.key)))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def parse(text: str) -> ScryptHash:
    """The parts of a hash; :class:`BadHash` saying what is wrong."""
    parts = text.strip().split("$")
    if len(parts) != 6 or parts[0] != PREFIX:
        raise BadHash("not a password hash: expected scrypt$N$r$p$salt$key "
                      "(make one with `acd hash-password`)")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, binascii.Error):
        raise BadHash("not a password hash: N, r, p must be numbers and the salt and "
                      "key base64") from None
    if n < 2 or n & (n - 1) or n > MAX_N:
        raise BadHash(f"scrypt N must be a power of two up to {MAX_N}")
    if not 1 <= r <= MAX_R or not 1 <= p <= MAX_P:
        raise BadHash(f"scrypt r must be 1..{MAX_R} and p 1..{MAX_P}")
    if len(salt) < 8 or len(key) < 16:
        raise BadHash("salt or key too short")
    return ScryptHash(n, r, p, salt, key)


def _derive(secret: str, n: int, r: int, p: int, salt: bytes, length: int) -> bytes:
    return hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * n * r + (1 << 20), dklen=length)


def hash_password(secret: str, *, n: int = N, r: int = R, p: int = P) -> str:
    """A new hash of ``secret`` (random salt)."""
    if not MIN_LENGTH <= len(secret) <= MAX_LENGTH:
        raise ValueError(f"a password or PIN has {MIN_LENGTH} to {MAX_LENGTH} characters")
    salt = secrets.token_bytes(SALT_BYTES)
    return str(ScryptHash(n, r, p, salt, _derive(secret, n, r, p, salt, KEY_BYTES)))


def verify(secret: str, hashed: str) -> bool:
    """Whether ``secret`` matches ``hashed`` (constant-time compare). A malformed hash or
    an over-long secret never matches."""
    if len(secret) > MAX_LENGTH:
        return False
    try:
        h = parse(hashed)
    except BadHash:
        return False
    return hmac.compare_digest(_derive(secret, h.n, h.r, h.p, h.salt, len(h.key)), h.key)


#: Checked against when the id is unknown, so an unknown id takes as long as a wrong
#: password (no probing for which ids exist).
DUMMY_HASH = str(ScryptHash(N, R, P, b"hotline-acd-none", b"\0" * KEY_BYTES))


def verify_or_dummy(secret: str, hashed: str | None) -> bool:
    """``verify`` against ``hashed``, or the same work against a dummy when there is no
    hash (unknown id, no password set): always False then."""
    if hashed is None:
        verify(secret, DUMMY_HASH)
        return False
    return verify(secret, hashed)
