"""One partition of one table's state: a dict, a journal, and its changelog encoding.

A `PartitionStore` is the `StateView` the runtime hands to processing steps. It keeps:
- `data`: the current state, what reads see;
- `dirty`: keys changed since the last commit, whose latest values go to the changelog
  topic in the commit that also stores the input offsets (one transaction on the sqlite
  log: state, outputs and offsets are exactly-once together);
- an undo journal for the record being processed: a record whose step raises has its
  writes rolled back before it is retried or dead-lettered, so a failed try never
  leaves half its effect in the table.

It also remembers `applied`: per input topic, the next offset whose effect is not yet in
the state. The changelog carries it, so a restore knows how far the state reaches; on
backends without transactions a restarted task skips the records already applied
(idempotent table writes) instead of counting them twice.

Changelog records: key = the state key as JSON (a str key is a JSON string, an engine's
tuple key a JSON array), value = the value as JSON; a deletion is an empty value with
the `rb-tombstone` header. The offsets ride as the key `null`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any

import msgspec

__all__ = ["TOMBSTONE_HEADER", "Journal", "PartitionStore", "decode_key", "encode_key"]

TOMBSTONE_HEADER = "rb-tombstone"
OFFSETS_KEY = b"null"
_MISSING: Any = object()
_DELETED: Any = object()  # in `dirty`: the key was deleted
_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


def encode_key(key: Hashable) -> bytes:
    """The changelog key of a state key (str or tuple of str/int)."""
    return _json_encode(key)


def decode_key(raw: bytes) -> Hashable:
    """The state key of a changelog key: JSON arrays become tuples again."""
    key = _json_decode(raw)
    return tuple(key) if isinstance(key, list) else key


class Journal:
    """The undo log of the record in progress, shared by the stores of one partition
    (one flag to raise per record, however many tables the record writes). An entry
    is (store, key, value before the write); a rollback puts the values back and marks
    the keys dirty, which at worst writes an unchanged value to the changelog again."""

    __slots__ = ("active", "entries")

    def __init__(self) -> None:
        self.active = False
        self.entries: list[tuple[PartitionStore, Hashable, Any]] = []

    def begin(self) -> None:
        self.active = True
        if self.entries:
            self.entries.clear()

    def end(self) -> None:
        self.active = False

    def rollback(self) -> None:
        """Undo the record's writes, newest first."""
        self.active = False
        for store, key, old in reversed(self.entries):
            store.restore(key, old)
        self.entries.clear()


class PartitionStore:
    """State of one partition, journaled per record (see the module docstring)."""

    __slots__ = ("applied", "data", "dirty", "journal", "partition")

    def __init__(self, partition: int, journal: Journal | None = None) -> None:
        self.partition = partition
        self.data: dict[Hashable, Any] = {}
        self.dirty: dict[Hashable, Any] = {}
        self.applied: dict[str, int] = {}
        self.journal = journal or Journal()

    # -- StateView ----------------------------------------------------------------------
    def get(self, key: Hashable, default: Any = None) -> Any:
        return self.data.get(key, default)

    def put(self, key: Hashable, value: Any) -> None:
        data = self.data
        journal = self.journal
        if journal.active:
            journal.entries.append((self, key, data.get(key, _MISSING)))
        data[key] = value
        self.dirty[key] = value

    def delete(self, key: Hashable) -> None:
        data = self.data
        if key not in data:
            return
        journal = self.journal
        if journal.active:
            journal.entries.append((self, key, data[key]))
        del data[key]
        self.dirty[key] = _DELETED

    def items(self) -> Iterator[tuple[Hashable, Any]]:
        return iter(list(self.data.items()))

    def __len__(self) -> int:
        return len(self.data)

    def restore(self, key: Hashable, old: Any) -> None:
        """Put back what a journal entry saved (a rollback)."""
        if old is _MISSING:
            self.data.pop(key, None)
            self.dirty[key] = _DELETED
        else:
            self.data[key] = old
            self.dirty[key] = old

    # -- changelog ------------------------------------------------------------------------
    def drain(self, encode: Callable[[Any], bytes]) -> list[tuple[bytes, bytes | None]]:
        """The changelog entries (key, value or None for a deletion) of the dirty keys,
        then the applied offsets; clears `dirty`.

        A record may be mid-way (a coroutine step awaiting, a sync handler in its
        thread) while the commit drains: its writes are not part of this commit, so a
        key it touched goes out with its value from before the record, and stays dirty
        for the next commit.
        """
        before = self._before_record()
        out: list[tuple[bytes, bytes | None]] = []
        for k, v in self.dirty.items():
            if k in before:
                # Absent before the record: a deletion (maybe of nothing, which is
                # harmless; maybe of a deletion not yet written, which must be).
                v = _DELETED if before[k] is _MISSING else before[k]
            out.append((encode_key(k), None if v is _DELETED else encode(v)))
        self.dirty = {k: self.dirty[k] for k in before if k in self.dirty}
        out.append((OFFSETS_KEY, _json_encode(self.applied)))
        return out

    def _before_record(self) -> dict[Hashable, Any]:
        """Key -> its value before the record in progress (_MISSING: it had none)."""
        before: dict[Hashable, Any] = {}
        if self.journal.active:
            for store, key, old in self.journal.entries:
                if store is self:
                    before.setdefault(key, old)
        return before

    def load(self, key: bytes, value: bytes | None, decode: Callable[[bytes], Any]) -> None:
        """Apply one changelog entry while restoring (not journaled, not dirty)."""
        if key == OFFSETS_KEY:
            if value is not None:
                self.applied = _json_decode(value)
            return
        k = decode_key(key)
        if value is None:
            self.data.pop(k, None)
        else:
            self.data[k] = decode(value)
