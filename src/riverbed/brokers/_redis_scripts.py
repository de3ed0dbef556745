"""The Lua scripts of the Redis backend: every multi-key change is one atomic script.

A script runs alone on the server: nothing interleaves with it, so "check, then write"
inside one script is atomic on a single Redis primary. Scripts validate everything
before their first write, because Redis does not roll a script back when it fails
half-way. Scripts are sent once per connection pool with SCRIPT LOAD and called with
EVALSHA; after a server restart (NOSCRIPT) `Scripts.call` loads them again.

Argument layouts are documented at the top of each script; the Python side that builds
them is in `_redis_append.py` (appends), `redis.py` (commits) and `_redis_groups.py` (group state).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from riverbed.brokers._redis_append import APPENDS_LUA

__all__ = ["Scripts"]

_PRELUDE = r"""
local MAXSEQ = 1048575

local function fmt(n) return string.format('%.0f', n) end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Mirror a committed position into the stream's native consumer group, so XINFO
-- GROUPS shows the group's progress and lag. Best effort: never fails the caller.
local function mirror(key, group, id)
  local r = redis.pcall('XGROUP', 'SETID', key, group, id)
  if type(r) == 'table' and r.err then
    redis.pcall('XGROUP', 'CREATE', key, group, id, 'MKSTREAM')
  end
end
"""

APPEND = (
    _PRELUDE
    + APPENDS_LUA
    + r"""
-- KEYS: metas and streams. ARGV: since ('' on a first attempt), layout, heap...
local since, L = ARGV[1], cmsgpack.unpack(ARGV[2])
local batch, err = validate_appends(L)
if err then return err end
if since ~= '' then
  local runs = landed(L, 3, batch, since)
  if runs then return runs end
end
return do_appends(L, 3, batch)
"""
)

_COMMIT_CHECK = r"""
-- ARGV from `pos`: count, then per partition: owner field, offset, stream key index,
-- mirror id. Returns an error reply unless `member` owns every one.
local function check_owner(owners, pos, member)
  local n = tonumber(ARGV[pos])
  for i = 0, n - 1 do
    local field = ARGV[pos + 1 + i * 4]
    if redis.call('HGET', owners, field) ~= member then
      return redis.error_reply('RB_FENCED ' .. field)
    end
  end
  return nil
end

-- Stores the offsets section and registers the group (`group`: also the native
-- consumer group's name in each stream).
local function store_offsets(offsets, groups, pos, group)
  local n = tonumber(ARGV[pos])
  if n == 0 then return end
  local pairs_ = {}
  for i = 0, n - 1 do
    local b = pos + 1 + i * 4
    pairs_[#pairs_ + 1] = ARGV[b]
    pairs_[#pairs_ + 1] = ARGV[b + 1]
    mirror(KEYS[tonumber(ARGV[b + 2])], group, ARGV[b + 3])
  end
  redis.call('HSET', offsets, unpack(pairs_))
  redis.call('SADD', groups, group)
end
"""

COMMIT = (
    _PRELUDE
    + _COMMIT_CHECK
    + r"""
-- KEYS: owners, offsets, groups set, streams. ARGV: group, member, offsets section.
local err = check_owner(KEYS[1], 3, ARGV[2])
if err then return err end
store_offsets(KEYS[2], KEYS[3], 3, ARGV[1])
return 1
"""
)

APPEND_AND_COMMIT = (
    _PRELUDE
    + APPENDS_LUA
    + _COMMIT_CHECK
    + r"""
-- KEYS: owners, offsets, groups set, streams (mirrors), metas and streams (appends).
-- ARGV: group, member, since, offsets section, layout, heap...
local group, member, since = ARGV[1], ARGV[2], ARGV[3]
local err = check_owner(KEYS[1], 4, member)
if err then return err end
local apos = 4 + 1 + tonumber(ARGV[4]) * 4
local L = cmsgpack.unpack(ARGV[apos])
local batch, err2 = validate_appends(L)
if err2 then return err2 end
if since ~= '' then
  local runs = landed(L, apos + 1, batch, since)
  if runs then return runs end
end
local out = do_appends(L, apos + 1, batch)
store_offsets(KEYS[2], KEYS[3], 4, group)
return out
"""
)

GROUP_READ = (
    _PRELUDE
    + r"""
-- KEYS: state, heartbeats. ARGV: member to mark alive ('' for none).
-- Heartbeat values are "<last seen ms>:<session timeout ms>". A heartbeat counts only
-- for a current member that is not already late: the hash mirrors membership, and a
-- late member must be expired (and fenced), not revived by its own heartbeat.
local now = now_ms()
if ARGV[1] ~= '' then
  local v = redis.call('HGET', KEYS[2], ARGV[1])
  if v then
    local last, timeout = string.match(v, '^(%d+):(%d+)$')
    if last and now - tonumber(last) <= tonumber(timeout) then
      redis.call('HSET', KEYS[2], ARGV[1], fmt(now) .. ':' .. timeout)
    end
  end
end
return {fmt(now), redis.call('GET', KEYS[1]) or '', redis.call('HGETALL', KEYS[2])}
"""
)

GROUP_STORE = (
    _PRELUDE
    + _COMMIT_CHECK
    + r"""
-- Compare-and-set of a group's state; 0 if someone else changed it since it was read.
-- KEYS: state, heartbeats, owners, offsets, groups set, streams (mirrors).
-- ARGV: group, old state, new state, n, member/heartbeat pairs..., n, members gone...,
--       n, owner field/member pairs..., offsets section (as in COMMIT).
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[3])
local pos = 4
local n = tonumber(ARGV[pos])
if n > 0 then redis.call('HSET', KEYS[2], unpack(ARGV, pos + 1, pos + 2 * n)) end
pos = pos + 2 * n + 1
n = tonumber(ARGV[pos])
if n > 0 then redis.call('HDEL', KEYS[2], unpack(ARGV, pos + 1, pos + n)) end
pos = pos + n + 1
n = tonumber(ARGV[pos])
redis.call('DEL', KEYS[3])
if n > 0 then redis.call('HSET', KEYS[3], unpack(ARGV, pos + 1, pos + 2 * n)) end
pos = pos + 2 * n + 1
if redis.call('HLEN', KEYS[2]) > 0 then redis.call('SADD', KEYS[5], ARGV[1]) end
store_offsets(KEYS[4], KEYS[5], pos, ARGV[1])
return 1
"""
)

TOPIC_INFO = r"""
-- KEYS: meta, then the topic's streams. Returns {spec or false, per stream: {last
-- generated id, first entry id or '', length}}. Done here so only ids cross the wire,
-- not the first and last entries' payloads that XINFO STREAM carries.
local out = {}
for i = 2, #KEYS do
  local key = KEYS[i]
  if redis.call('EXISTS', key) == 1 then
    local info = redis.call('XINFO', 'STREAM', key)
    local last, first, len = '0-0', '', 0
    for j = 1, #info, 2 do
      local name = info[j]
      if name == 'last-generated-id' then last = info[j + 1]
      elseif name == 'length' then len = info[j + 1]
      elseif name == 'first-entry' and info[j + 1] then first = info[j + 1][1]
      end
    end
    out[i - 1] = {last, first, len}
  else
    out[i - 1] = {'0-0', '', 0}
  end
end
return {redis.call('HGET', KEYS[1], 'spec'), out}
"""

CREATE_TOPIC = r"""
-- KEYS: meta, topics set. ARGV: name, partitions, spec. Conflict if partitions differ.
local have = redis.call('HGET', KEYS[1], 'partitions')
if have and have ~= ARGV[2] then
  return redis.error_reply('RB_TOPIC_CONFLICT ' .. have)
end
redis.call('HSET', KEYS[1], 'partitions', ARGV[2], 'spec', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

TRIM_BYTES = r"""
-- KEYS: stream. ARGV: byte limit. Keeps about `limit` bytes of key + data, judging the
-- average entry by the newest 100 (an exact count would read the whole stream).
local len = redis.call('XLEN', KEYS[1])
if len == 0 then return 0 end
local sample, size = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 100), 0
for _, e in ipairs(sample) do
  local f = e[2]
  for j = 1, #f, 2 do
    if f[j] == 'data' or f[j] == 'key' then size = size + #f[j + 1] end
  end
end
local avg = math.max(1, size / #sample)
local keep = math.max(1, math.floor(tonumber(ARGV[1]) / avg))
if len <= keep then return 0 end
return redis.call('XTRIM', KEYS[1], 'MAXLEN', keep)
"""

_SOURCES = {
    "append": APPEND,
    "commit": COMMIT,
    "append_and_commit": APPEND_AND_COMMIT,
    "group_read": GROUP_READ,
    "group_store": GROUP_STORE,
    "topic_info": TOPIC_INFO,
    "create_topic": CREATE_TOPIC,
    "trim_bytes": TRIM_BYTES,
}


class Scripts:
    """Calls the scripts by SHA, loading a script again when the server forgot it."""

    def __init__(self) -> None:
        self._sha = {
            name: hashlib.sha1(src.encode(), usedforsecurity=False).hexdigest()
            for name, src in _SOURCES.items()
        }

    async def call(self, client: Redis, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        sha = self._sha[name]
        try:
            return await client.evalsha(sha, len(keys), *keys, *args)
        except NoScriptError:
            # First use on this server, or it restarted and lost its script cache.
            await client.script_load(_SOURCES[name])
            return await client.evalsha(sha, len(keys), *keys, *args)

    async def call_many(
        self, client: Redis, name: str, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]
    ) -> list[Any]:
        """Several calls of one read-only script in one round trip (a pipeline)."""
        sha = self._sha[name]
        results: list[Any] = []
        for attempt in range(2):
            async with client.pipeline(transaction=False) as pipe:
                for keys, args in calls:
                    pipe.evalsha(sha, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
            if attempt or not any(isinstance(r, NoScriptError) for r in results):
                break
            await client.script_load(_SOURCES[name])
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results
