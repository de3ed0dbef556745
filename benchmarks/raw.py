"""(d) The raw ceiling of the naive design: one sqlite row per event.

Python's sqlite3 `executemany` inserts one row per event (the same ~100-byte JSON
payload plus the envelope columns riverbed stores: partition, offset, id, type, source,
time, key, headers) with the pragmas the issue names (WAL, synchronous=NORMAL), one
transaction per batch of the same size riverbed's workloads use. The rows are built
outside the timed region and the table has no secondary index, so this is the most
favourable case for the naive design: a ceiling, not a straw man.

`columns="bare"` stores only the payload (rowid + BLOB): closest to the ~370k rows/s
the issue quotes, and a stricter reference still; it is reported beside the other.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from typing import Any

import msgspec

from benchmarks.common import Stopwatch, tick

_DDL = """
CREATE TABLE events (
    seq      INTEGER PRIMARY KEY,
    part     INTEGER NOT NULL,
    off      INTEGER NOT NULL,
    id       TEXT NOT NULL,
    type     TEXT NOT NULL,
    source   TEXT NOT NULL,
    time     INTEGER NOT NULL,
    key      BLOB,
    headers  BLOB,
    payload  BLOB NOT NULL
)
"""
_BARE_DDL = "CREATE TABLE events (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)"
_BARE_INSERT = "INSERT INTO events (payload) VALUES (?)"
_INSERT = (
    "INSERT INTO events (part, off, id, type, source, time, key, headers, payload)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _rows(start: int, n: int, encode: Any) -> list[tuple[Any, ...]]:
    ts = 1_700_000_000_000
    return [
        (0, i, str(uuid.uuid4()), "bench.tick", "bench", ts + i, None, b"\x80", encode(tick(i)))
        for i in range(start, start + n)
    ]


def _bare_rows(start: int, n: int, encode: Any) -> list[tuple[Any, ...]]:
    return [(encode(tick(i)),) for i in range(start, start + n)]


def run(params: dict[str, Any]) -> dict[str, Any]:
    n, batch = params["events"], params["batch"]
    bare = params.get("columns") == "bare"
    ddl, insert, make = (_BARE_DDL, _BARE_INSERT, _bare_rows) if bare else (_DDL, _INSERT, _rows)
    conn = sqlite3.connect(os.path.join(params["workdir"], "raw.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(ddl)
    encode = msgspec.json.encode
    sw = Stopwatch()
    for start in range(0, n, batch):
        rows = make(start, min(batch, n - start), encode)
        with sw:
            conn.execute("BEGIN")
            conn.executemany(insert, rows)
            conn.execute("COMMIT")
    count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    conn.close()
    assert count == n, (count, n)
    return {"events": n, "seconds": sw.total, "rate": n / sw.total}
