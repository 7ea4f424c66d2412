"""Job IDs: ULIDs (time-sortable, so listings sort by key; 80 random bits, so unguessable)."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32


def new_job_id(now: float | None = None) -> str:
    millis = int((time.time() if now is None else now) * 1000)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_job_id(text: str) -> bool:
    return len(text) == 26 and all(c in _ALPHABET for c in text)
