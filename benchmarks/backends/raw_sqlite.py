"""The raw sqlite3 consume baseline: read back what `benchmarks.raw` wrote.

The produce side is the existing raw baseline (`benchmarks.raw`, envelope columns, one
row per event). Consume reads that table in primary-key order, 1000 rows per query
(`WHERE seq > ? ORDER BY seq LIMIT 1000`), every envelope column selected and each
payload decoded into a `Tick`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from benchmarks.backends import measure, wire

_SELECT = (
    "SELECT seq, part, off, id, type, source, time, key, headers, payload FROM events"
    " WHERE seq > ? ORDER BY seq LIMIT ?"
)


def consume(p: dict[str, Any]) -> dict[str, Any]:
    n, batch = p["events"], p["batch"]
    decode = wire.decoder().decode
    t0 = time.perf_counter()
    conn = sqlite3.connect(os.path.join(p["workdir"], "raw.db"), isolation_level=None)
    count, last_seq, first = 0, 0, 0.0
    try:
        while count < n:
            rows = conn.execute(_SELECT, (last_seq, batch)).fetchall()
            if not rows:
                raise RuntimeError(f"raw sqlite consume: {count} of {n} rows in the table")
            if count == 0:
                first = time.perf_counter()
            for row in rows:
                decode(row[9])
            last_seq = rows[-1][0]
            count += len(rows)
        last = time.perf_counter()
    finally:
        conn.close()
    return measure.consume_result(n, t0, first, last)
