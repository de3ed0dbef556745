"""The appends section of the append scripts: how a batch travels, and its Lua half.

A batch is sent as a few script arguments, not as the entries' field lists: redis-py
packs every argument in pure Python (about as costly as the rest of an append
together), so the field names live in the script and a record's values that repeat
the previous record's (type, source, time, content type) are not sent again.

- The layout (msgpack, integers only): topic count; per topic its meta key index
  (into KEYS), stream count and per stream its key index and partition; the record
  count; then per record its flags and the integers they announce (see `_F_*`): the
  stream (a 1-based slot in the order the topics listed them), the time (ms) and the
  length of its text, the lengths of the type, source, content type, key, header count
  and the lengths of each header's field name and value, and always the lengths of the
  id and the data.
- The heap: those strings back to back, in the same order; split between strings into
  arguments of at most `HEAP_CHUNK` bytes (Redis caps an argument at 512 MB), which
  are the script's last arguments.

Unflagged values carry over from the previous record; the first record flags them
all. What lands in the stream is the same entry as always (`_redis_codec`).
The scripts reply with runs of offsets: (ms, first seq, count) triples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from riverbed.brokers._cetime import TimeText
from riverbed.brokers._redis_codec import SEQ_BITS
from riverbed.brokers._redis_conn import Keys
from riverbed.events import Record

__all__ = ["APPENDS_LUA", "Batch", "assign", "expand"]

_F_STREAM = 1
_F_TIME = 2
_F_RB_TIME = 4  # with _F_TIME: the text is `rb_time` (exact ms), not `ce_time`
_F_TYPE = 8
_F_SOURCE = 16
_F_CTYPE = 32
_F_KEY = 64
_F_HEADERS = 128

_JSON_CT = "application/json"
_MS_LIMIT = 1 << 53  # Lua numbers are doubles; the id is capped at the server clock anyway
_layout = msgspec.msgpack.Encoder()
HEAP_CHUNK = 64 << 20
"""Largest heap argument (bytes), unless one string alone is larger."""


class Batch:
    """The KEYS, layout and heap of one append script call (see the module docstring)."""

    def __init__(self, keys: Keys, key_list: list[str], times: TimeText) -> None:
        self._names = keys
        self.keys = key_list
        self._index = {k: i + 1 for i, k in enumerate(key_list)}
        self._times = times
        self._topics: list[int] = []
        self._ntopics = 0
        self._nslots = 0
        self._nrecords = 0
        self._ints: list[int] = []
        self._heap: list[bytes] = []
        # What the previous record sent (None: nothing yet, so the first sends all).
        self._last: tuple[Any, ...] = (None, None, None, None, None)

    def _key(self, key: str) -> int:
        i = self._index.get(key)
        if i is None:
            self.keys.append(key)
            i = self._index[key] = len(self.keys)
        return i

    def add(self, topic: str, records: Sequence[Record[Any]]) -> None:
        self._ntopics += 1
        self._nrecords += len(records)
        slots: dict[int, int] = {}
        streams: list[int] = []
        ints, heap, time_text = self._ints, self._heap, self._times.text
        last_slot, last_ts, last_type, last_source, last_ct = self._last
        for r in records:
            at = len(ints)
            ints.append(0)
            flags = 0
            p = r.partition
            slot = slots.get(p)
            if slot is None:
                self._nslots += 1
                slot = slots[p] = self._nslots
                streams += (self._key(self._names.stream(topic, p)), p)
            if slot != last_slot:
                flags, last_slot = _F_STREAM, slot
                ints.append(slot)
            ts = r.timestamp
            if ts != last_ts:
                text = time_text(ts)
                if text is None:
                    flags |= _F_TIME | _F_RB_TIME
                    text = str(ts).encode()
                    ints += (max(-_MS_LIMIT, min(ts, _MS_LIMIT)), len(text))
                else:
                    flags |= _F_TIME
                    ints += (ts, len(text))
                heap.append(text)
                last_ts = ts
            if r.type != last_type:
                flags |= _F_TYPE
                last_type = r.type
                b = _text(last_type)
                ints.append(len(b))
                heap.append(b)
            if r.source != last_source:
                flags |= _F_SOURCE
                last_source = r.source
                b = _text(last_source)
                ints.append(len(b))
                heap.append(b)
            headers = r.headers
            ct = headers.get("content-type", _JSON_CT) if headers else _JSON_CT
            if ct != last_ct:
                flags |= _F_CTYPE
                last_ct = ct
                b = _text(ct)
                ints.append(len(b))
                heap.append(b)
            key = r.key
            if key is not None:
                flags |= _F_KEY
                ints.append(len(key))
                heap.append(key)
            if headers:
                flags |= _F_HEADERS
                ints.append(len(headers))
                for name, value in headers.items():
                    n, v = b"h:" + _text(name), _text(value)
                    ints += (len(n), len(v))
                    heap += (n, v)
            b, data = _text(r.id), r.value
            ints += (len(b), len(data))
            heap += (b, data)
            if flags:
                ints[at] = flags
        self._last = (last_slot, last_ts, last_type, last_source, last_ct)
        self._topics += (self._key(self._names.meta(topic)), len(streams) // 2, *streams)

    def args(self) -> list[bytes]:
        """The layout and the heap: the script's last arguments."""
        layout = [self._ntopics, *self._topics, self._nrecords]
        layout += self._ints
        heap = self._heap
        if sum(map(len, heap)) <= HEAP_CHUNK:
            return [_layout.encode(layout), b"".join(heap)]
        chunks: list[list[bytes]] = [[]]
        size = 0
        for piece in heap:
            if size and size + len(piece) > HEAP_CHUNK:
                chunks.append([])
                size = 0
            chunks[-1].append(piece)
            size += len(piece)
        return [_layout.encode(layout), *(b"".join(c) for c in chunks)]


def _text(s: str) -> bytes:
    # surrogatepass: a str holding lone surrogates (from undecodable input) round-trips
    # instead of failing the whole batch.
    return s.encode("utf-8", "surrogatepass")


def expand(runs: Sequence[int]) -> list[int]:
    """The offsets of the records, from the scripts' (ms, first seq, count) runs."""
    out: list[int] = []
    it = iter(runs)
    for ms, seq, n in zip(it, it, it, strict=True):
        start = ms << SEQ_BITS | seq
        out.extend(range(start, start + n))
    return out


def assign(topic: str, records: Sequence[Record[Any]], offsets: list[int]) -> list[int]:
    """Set topic and offset on the appended records; returns `offsets`."""
    for r, offset in zip(records, offsets, strict=True):
        r.topic, r.offset = topic, offset
    return offsets


APPENDS_LUA = r"""
local sub = string.sub

-- The appends section (see `_redis_append`): the layout and the heap. Checks every
-- topic and partition (before any write) and returns the stream key of each slot, the
-- position of the records in the layout and their count; or nil and an error reply.
local function validate_appends(L)
  local i, slots = 2, {}
  for _ = 1, L[1] do
    local meta = KEYS[L[i]]
    local parts = tonumber(redis.call('HGET', meta, 'partitions') or -1)
    if parts < 0 then return nil, redis.error_reply('RB_UNKNOWN_TOPIC ' .. meta) end
    local n = L[i + 1]
    i = i + 2
    for _ = 1, n do
      local p = L[i + 1]
      if p < 0 or p >= parts then
        return nil, redis.error_reply('RB_BAD_PARTITION ' .. p .. ' ' .. parts .. ' ' .. meta)
      end
      slots[#slots + 1] = KEYS[L[i]]
      i = i + 2
    end
  end
  -- The first record sends every value that carries over: flags 1+2+8+16+32 = 59,
  -- plus 4 if its time is rb_time.
  local first = L[i] > 0 and L[i + 1] % 64
  if first and first ~= 59 and first ~= 63 then
    return nil, redis.error_reply('RB_BAD_BATCH the first record must send every value')
  end
  return {slots = slots, at = i + 1, count = L[i]}
end

-- An iterator over the records, whose strings are in ARGV from `hi` on (a string never
-- spans two of them: one that does not fit in what is left is in the next). Each call
-- returns the next record's stream key, time
-- (ms), id, then the XADD field list of its entry (a table) or nil if it is the usual
-- one, then the fields of the usual one: type, source, time name and text, content
-- type, data.
local function records(L, hi, batch)
  local i, h, slots = batch.at, 1, batch.slots
  local H = ARGV[hi]
  local key, ms, tname, tval, typ, src, ct
  local function take(n)
    if h + n - 1 > #H then hi, H, h = hi + 1, ARGV[hi + 1], 1 end
    local s = sub(H, h, h + n - 1)
    h = h + n
    return s
  end
  return function()
    local f = L[i]
    i = i + 1
    local kv, hd
    if f ~= 0 then
      if f % 2 == 1 then key = slots[L[i]]; i = i + 1 end
      if f % 4 >= 2 then
        ms = L[i]
        tname = (f % 8 >= 4) and 'rb_time' or 'ce_time'
        tval = take(L[i + 1])
        i = i + 2
      end
      if f % 16 >= 8 then typ = take(L[i]); i = i + 1 end
      if f % 32 >= 16 then src = take(L[i]); i = i + 1 end
      if f % 64 >= 32 then ct = take(L[i]); i = i + 1 end
      if f % 128 >= 64 then kv = take(L[i]); i = i + 1 end
      if f >= 128 then
        local n = L[i]
        i = i + 1
        hd = {}
        for j = 1, 2 * n do hd[j] = take(L[i]); i = i + 1 end
      end
    end
    local id = take(L[i])
    local data = take(L[i + 1])
    i = i + 2
    if kv or hd then
      local fields = {'ce_id', id, 'ce_specversion', '1.0', 'ce_type', typ, 'ce_source', src,
        tname, tval, 'content-type', ct}
      if kv then fields[#fields + 1] = 'key'; fields[#fields + 1] = kv end
      fields[#fields + 1] = 'data'
      fields[#fields + 1] = data
      if hd then for j = 1, #hd do fields[#fields + 1] = hd[j] end end
      return key, ms, id, fields
    end
    return key, ms, id, nil, typ, src, tname, tval, ct, data
  end
end

-- The id's milliseconds are the record's own time (as Kafka's CreateTime), so replay
-- by time and retention by age go by event time: the running maximum of the records'
-- times, never past the server's clock (a future timestamp must not push the stream's
-- ids ahead of every later writer) and never below the stream's last id.
local function top(key, tops)
  local t = tops[key]
  if t then return t end
  t = {0, 0}  -- as if 0-0 were taken: XADD refuses that id
  local info = redis.pcall('XINFO', 'STREAM', key)
  if type(info) == 'table' and not info.err then
    for j = 1, #info, 2 do
      if info[j] == 'last-generated-id' then
        local id = info[j + 1]
        local dash = string.find(id, '-', 1, true)
        t = {tonumber(sub(id, 1, dash - 1)), tonumber(sub(id, dash + 1))}
      end
    end
  end
  tops[key] = t
  return t
end

-- Appends the records; returns their offsets as (ms, first seq, count) runs.
local function do_appends(L, hi, batch)
  local now, tops, out = now_ms(), {}, {}
  local n, run_ms, run_seq = 0, nil, nil
  local nxt = records(L, hi, batch)
  for _ = 1, batch.count do
    local key, ts, id, fields, typ, src, tname, tval, ct, data = nxt()
    local t = top(key, tops)
    local ms, seq = math.max(t[1], math.min(ts, now)), 0
    if ms == t[1] then
      seq = t[2] + 1
      -- Offsets hold 20 bits of sequence: continue in the next millisecond instead.
      if seq > MAXSEQ then ms, seq = ms + 1, 0 end
    end
    t[1], t[2] = ms, seq
    if t[3] ~= ms then t[3], t[4] = ms, fmt(ms) .. '-' end
    local eid = t[4] .. seq
    if fields then
      redis.call('XADD', key, eid, unpack(fields))
    else
      redis.call('XADD', key, eid, 'ce_id', id, 'ce_specversion', '1.0', 'ce_type', typ,
        'ce_source', src, tname, tval, 'content-type', ct, 'data', data)
    end
    if ms == run_ms and seq == run_seq + out[n] then
      out[n] = out[n] + 1
    else
      run_ms, run_seq = ms, seq
      out[n + 1], out[n + 2], out[n + 3] = ms, seq, 1
      n = n + 3
    end
  end
  return out
end

-- Retry after a lost reply: did an earlier attempt land? A batch lands whole (one
-- script), and its entries in one stream are consecutive, so find each stream's first
-- record by ce_id among entries newer than `since` (scanning at most SCAN entries back
-- from the tail), then read the batch's entries from there. Returns the offsets as
-- do_appends does, or nil.
local SCAN = 100000
local function find(key, since, ceid)
  local hi, seen = '+', 0
  while seen < SCAN do
    local page = redis.call('XREVRANGE', key, hi, since, 'COUNT', 500)
    if #page == 0 then return nil end
    for _, e in ipairs(page) do
      local f = e[2]
      if f[1] == 'ce_id' and f[2] == ceid then return e[1] end
    end
    seen = seen + #page
    hi = '(' .. page[#page][1]
  end
  return nil
end

local function landed(L, hi, batch, since)
  local firsts, counts, order = {}, {}, {}
  local nxt = records(L, hi, batch)
  for i = 1, batch.count do
    local k, _, ceid = nxt()
    if not firsts[k] then
      firsts[k] = ceid
      counts[k] = 0
    end
    counts[k] = counts[k] + 1
    order[i] = k
  end
  if #order == 0 then return nil end
  local ids = {}
  for k, ceid in pairs(firsts) do
    local at = find(k, since, ceid)
    if not at then return nil end
    local entries = redis.call('XRANGE', k, at, '+', 'COUNT', counts[k])
    if #entries < counts[k] then return nil end
    ids[k] = entries
  end
  local out, used = {}, {}
  for _, k in ipairs(order) do
    used[k] = (used[k] or 0) + 1
    local id = ids[k][used[k]][1]
    local dash = string.find(id, '-', 1, true)
    out[#out + 1] = tonumber(sub(id, 1, dash - 1))
    out[#out + 1] = tonumber(sub(id, dash + 1))
    out[#out + 1] = 1
  end
  return out
end
"""
"""Lua: checking, appending and finding (after a lost reply) a batch. Needs `MAXSEQ`,
`fmt` and `now_ms` from the scripts' prelude."""
