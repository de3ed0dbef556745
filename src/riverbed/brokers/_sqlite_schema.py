"""Opening the sqlite log: URL parsing, connection pragmas, schema, error translation.

Everything here is synchronous and runs on the broker's worker threads; nothing runs
at import. The schema is described in `riverbed.brokers.sqlite`'s module docstring.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal, get_args
from urllib.parse import parse_qsl, unquote, urlsplit

import msgspec

from riverbed.errors import (
    BrokerError,
    BrokerUnavailable,
    BrokerURLError,
    ClosedError,
    ConfigError,
)

__all__ = [
    "Durability",
    "OwnedConnection",
    "SqliteConfig",
    "connect_reader",
    "connect_writer",
    "parse_url",
    "transaction",
    "translate_error",
]

Durability = Literal["process", "fsync"]

SCHEMA_VERSION = 1

# A 16 KiB page stores a ~100-200 KiB batch payload in far fewer overflow pages than
# the default 4 KiB; it only takes effect when the file is created.
_PAGE_SIZE = 16384
# Checkpoint every 4000 pages (64 MiB of WAL) rather than sqlite's default 1000: each
# checkpoint costs two fsyncs, which dominated the append time of large batches.
_WAL_AUTOCHECKPOINT = 4000
_JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
_CACHE_KIB = 2 * 1024
_MMAP_BYTES = 0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    name        TEXT PRIMARY KEY,
    partitions  INTEGER NOT NULL,
    spec        BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS partitions (
    id              INTEGER PRIMARY KEY,
    topic           TEXT NOT NULL,
    part            INTEGER NOT NULL,
    start_offset    INTEGER NOT NULL DEFAULT 0,
    end_offset      INTEGER NOT NULL DEFAULT 0,
    size_bytes      INTEGER NOT NULL DEFAULT 0,
    compacted_upto  INTEGER NOT NULL DEFAULT 0,
    UNIQUE (topic, part)
);
CREATE TABLE IF NOT EXISTS batches (
    id              INTEGER PRIMARY KEY,
    pid             INTEGER NOT NULL,
    base_offset     INTEGER NOT NULL,
    last_offset     INTEGER NOT NULL,
    n_records       INTEGER NOT NULL,
    min_ts          INTEGER NOT NULL,
    max_ts          INTEGER NOT NULL,
    size_bytes      INTEGER NOT NULL,
    sparse_offsets  BLOB,
    payload         BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS batches_by_offset ON batches (pid, last_offset);
CREATE TABLE IF NOT EXISTS groups (
    name   TEXT PRIMARY KEY,
    state  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS group_offsets (
    grp          TEXT NOT NULL,
    topic        TEXT NOT NULL,
    part         INTEGER NOT NULL,
    next_offset  INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, part)
) WITHOUT ROWID;
"""

# Primary result codes after which trying again can succeed: the lock is still held
# (BUSY/LOCKED once busy_timeout ran out), or the disk or memory failed for now.
_RETRIABLE_CODES = frozenset(
    {
        5,  # SQLITE_BUSY
        6,  # SQLITE_LOCKED
        7,  # SQLITE_NOMEM
        10,  # SQLITE_IOERR
        13,  # SQLITE_FULL
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL
    }
)


class SqliteConfig(msgspec.Struct, frozen=True):
    """Where the log lives and how hard it tries to keep it."""

    path: str
    durability: Durability = "process"
    timeout: float = 5.0
    """Seconds a writer waits for another process's write lock (sqlite busy_timeout)."""


def parse_url(url: str, durability: Durability | None) -> SqliteConfig:
    """`sqlite:///rel/app.db` (relative) or `sqlite:////abs/app.db`, as SQLAlchemy.

    Query options: `durability=process|fsync`, `timeout=<seconds>`.
    """
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc:
        raise BrokerURLError(
            f"bad sqlite URL {url!r}: use 'sqlite:///relative/app.db' or "
            "'sqlite:////absolute/app.db' (three or four slashes, no host)"
        )
    path = unquote(parts.path[1:])
    if not path or path == ":memory:":
        raise BrokerURLError(
            f"sqlite URL {url!r} names no file; give a path like 'sqlite:///data/app.db' "
            "(for a throwaway log use 'memory://')"
        )
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    chosen = _durability(url, options.pop("durability", None), durability)
    timeout = _timeout(url, options.pop("timeout", None))
    if options:
        raise BrokerURLError(
            f"unknown option(s) {sorted(options)} in {url!r}; known: durability, timeout"
        )
    return SqliteConfig(path, chosen, timeout)


def _durability(url: str, from_url: str | None, from_arg: Durability | None) -> Durability:
    """The stronger of the URL's and the argument's durability: asking for fsync in
    either place gets fsync, so a default elsewhere never weakens it silently."""
    for value in (from_url, from_arg):
        if value is not None and value not in get_args(Durability):
            raise ConfigError(
                f"durability must be 'process' or 'fsync', not {value!r} (in {url!r})"
            )
    return "fsync" if "fsync" in (from_url, from_arg) else "process"


def _timeout(url: str, raw: str | None) -> float:
    if raw is None:
        return 5.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86_400:  # also refuses nan and inf
        raise BrokerURLError(f"timeout in {url!r} must be a number of seconds, 0 to 86400")
    return value


def connect_writer(config: SqliteConfig) -> sqlite3.Connection:
    """Open (creating file, directory and schema) the connection that does all writes."""
    parent = os.path.dirname(os.path.abspath(config.path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise BrokerError(f"cannot create the directory of {config.path!r}: {exc}") from exc
    conn = _connect(config)
    try:
        conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise BrokerError(
                f"{config.path!r} cannot use WAL mode (got {mode!r}); put it on a local disk"
            )
        sync = "FULL" if config.durability == "fsync" else "NORMAL"
        conn.execute(f"PRAGMA synchronous = {sync}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_AUTOCHECKPOINT}")
        conn.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT}")
        _create_schema(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_reader(config: SqliteConfig) -> sqlite3.Connection:
    """Open the read-only connection (fetches, descriptions, `data_version` polls)."""
    conn = _connect(config)
    conn.execute("PRAGMA query_only = ON")
    return conn


def _connect(config: SqliteConfig) -> sqlite3.Connection:
    # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE for
    # writes), so sqlite3 never opens one behind our back and holds a snapshot.
    # sqlite3's same-thread check stays on: a connection is opened, used and closed
    # on its own worker thread only, and the check proves it.
    conn = sqlite3.connect(config.path, timeout=config.timeout, isolation_level=None)
    conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
    conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


def _create_schema(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise BrokerError(
                f"the log was written by a newer riverbed (schema {version}, this one "
                f"reads {SCHEMA_VERSION}); upgrade riverbed"
            )
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@contextmanager
def transaction(conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[None]:
    """One transaction; IMMEDIATE takes the write lock up front, so a read-then-write
    (load group state, read end offsets) can never fail half-way with SQLITE_BUSY."""
    conn.execute(f"BEGIN {mode}")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        # sqlite already rolled back after some errors (IOERR, FULL); a failed COMMIT
        # leaves the transaction open.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def translate_error(exc: sqlite3.Error, path: str) -> BrokerError:
    """Map a sqlite3 exception onto riverbed's tree (`raise ... from exc` at the call)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _RETRIABLE_CODES:
        return BrokerUnavailable(f"sqlite log {path!r} is unavailable, retry later: {exc}")
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return BrokerUnavailable(f"sqlite log {path!r} is locked, retry later: {exc}")
    return BrokerError(f"sqlite log {path!r} failed: {exc}")


class OwnedConnection:
    """One sqlite connection, opened and closed by the thread that uses it."""

    def __init__(
        self, config: SqliteConfig, connect: Callable[[SqliteConfig], sqlite3.Connection], role: str
    ) -> None:
        self._config = config
        self._connect = connect
        self._role = role
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        if self._conn is None:
            self._conn = self._connect(self._config)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ClosedError(f"the sqlite log's {self._role} is closed")
        return self._conn
