"""The CloudEvents `time` attribute as text, for the backends that write it as a header or
field (Kafka, Redis): RFC 3339, UTC, milliseconds.

Formatting is the hot part of an append (a `strftime` costs ~2 µs), and the records of
a batch share their second (`publish_many` stamps one time), so a `TimeText` keeps the
last second it formatted: a batch pays for one `strftime`, not one per record.
"""

from __future__ import annotations

import time

__all__ = ["MAX_MS", "MIN_MS", "TimeText", "rfc3339"]

# RFC 3339 can only say years 0001-9999.
MIN_MS = -62_135_596_800_000
MAX_MS = 253_402_300_799_999


def rfc3339(ms: int) -> str:
    """One time as RFC 3339 text (UTC, ms), uncached: for one-off values."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class TimeText:
    """Formats `ce_time` values, remembering the last second formatted."""

    __slots__ = ("_prefix", "_sec")

    def __init__(self) -> None:
        self._sec = -(1 << 62)
        self._prefix = b""

    def text(self, ms: int) -> bytes | None:
        """RFC 3339 (UTC, ms), or None outside years 1-9999 (RFC 3339 cannot say those)."""
        if not MIN_MS <= ms <= MAX_MS:
            return None
        sec, milli = divmod(ms, 1000)
        if sec != self._sec:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode()
            self._sec = sec
        return b"%s.%03dZ" % (self._prefix, milli)
