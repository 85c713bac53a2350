"""Identifiers: time-ordered, unguessable where they must be."""

from __future__ import annotations

import hashlib
import random
import secrets
import time
from itertools import repeat

# Ids need to be unique, not secret (every lookup is checked against the clinic), so a
# fast generator seeded from the OS will do; secrets come from `secrets`.
_random = random.Random(secrets.randbits(128))


def new_id() -> str:
    """Return a 32-hex-digit id: 48 bits of milliseconds, then 80 random bits.

    Ids made later sort later, so lists can page on id, and rows can be inserted in
    bulk without asking the database for keys.
    """
    return "%012x%020x" % (int(time.time() * 1000), _random.getrandbits(80))  # noqa: UP031  (faster than an f-string here)


def new_ids(count: int) -> list[str]:
    """Return `count` ids as `new_id` makes them, for rows written in bulk."""
    millis = "%012x" % int(time.time() * 1000)  # noqa: UP031
    return [millis + "%020x" % bits for bits in map(_random.getrandbits, repeat(80, count))]  # noqa: UP031


def new_secret(prefix: str) -> str:
    """Return a random secret with 256 bits of entropy, e.g. an API key."""
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """Return the SHA-256 hex digest under which a secret is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()
