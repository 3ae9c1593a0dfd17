"""The Lua scripts of the redis event log: each is one atomic step on the server.

Times come from the server's clock (``TIME``), so leases mean the same on every machine whatever
their clocks say. ``redis-py`` runs them with ``EVALSHA`` and loads them again after a Redis
restart emptied its script cache.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "ADD_READER", "APPEND", "CANCEL", "COUNT", "CREATE", "END", "RENEW",
           "STATUS"]

# Server time in milliseconds.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: KEYS: meta, events, readers, drivers. ARGV: pipeline, has_owner ('1'/'0'), owner,
#: expiry_ms, run_id, lease_ms, meta (JSON, '' for none). 1 if created, 0 if the run id is
#: taken. Leftovers of a forgotten run of that id go. The run's driver lease is taken (see STATUS).
CREATE = _NOW + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'status', 'running', 'pipeline', ARGV[1])
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'owner', ARGV[3]) end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'meta', ARGV[7]) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[6]), ARGV[5])
return 1
"""

#: KEYS: meta, drivers. ARGV: run_id. The run's status; for a running run whose driver lease
#: expired (every process that appended to it stopped renewing it: killed), 'gone'.
STATUS = _NOW + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then return status end
local lease = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not lease or tonumber(lease) < now then return 'gone' end
return status
"""

#: KEYS: events (and see below). ARGV: maxlen, minid ('' for none), expiry_ms ('' for none),
#: the first seq (or '' when the seqs are not contiguous), the entry ids space-separated (when
#: they are not), and the values joined with newlines (compact JSON never holds a raw newline).
#: One command, with one argument for the whole batch: readers never see half of it, and the
#: client encodes six arguments instead of two per record.
#: A record the stream has already (a batch sent again after its reply was lost) is skipped.
#: KEYS[2], the run's meta, only on this process's first append to a run another process
#: created (a worker's): nothing is appended, -1, unless that run is running.
#: The batch is then published on the channel named as KEYS[1] for the followers (``_tail``):
#: ``{first}\n`` and the values, or an empty payload (read the stream) when not contiguous.
APPEND = """
if KEYS[2] and redis.call('HGET', KEYS[2], 'status') ~= 'running' then return -1 end
local maxlen, data = ARGV[1], ARGV[6]
local first = tonumber(ARGV[4])
local ids = {}
if not first then
  for id in string.gmatch(ARGV[5], '%S+') do ids[#ids + 1] = id end
end
local pos, i = 1, 0
while true do
  local stop = string.find(data, '\\n', pos, true)
  local value
  if stop then value = string.sub(data, pos, stop - 1) else value = string.sub(data, pos) end
  i = i + 1
  local id = ids[i] or string.format('%d-0', first + i - 1)
  local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', maxlen, id, 'r', value)
  if type(added) == 'table' and added.err
      and not string.find(added.err, 'equal or smaller', 1, true) then
    return added
  end
  if not stop then break end
  pos = stop + 1
end
if ARGV[2] ~= '' then redis.call('XTRIM', KEYS[1], 'MINID', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if first then
  redis.call('PUBLISH', KEYS[1], ARGV[4] .. '\\n' .. data)
else
  redis.call('PUBLISH', KEYS[1], '')
end
return i
"""

#: KEYS: meta, events, readers, slots, drivers. ARGV: status, ttl_ms, run_id.
#: Marks the run ended, adds the end marker ({last_seq}-1) that ends its readers, frees its
#: slot, sets the expiry of its keys and publishes an empty payload on the events key's channel
#: (followers read the stream: the marker). 0 if the run is unknown or had already ended.
END = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('ZREM', KEYS[5], ARGV[3])
if tonumber(ARGV[2]) <= 0 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('PUBLISH', KEYS[2], '')
  return 1
end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local ms = '0'
if #last > 0 then ms = string.match(last[1][1], '^(%d+)') end
redis.call('XADD', KEYS[2], ms .. '-*', 'e', ARGV[1])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
redis.call('PUBLISH', KEYS[2], '')
return 1
"""

#: KEYS: meta. ARGV: channel, reason, message. 1 if the run is running (signal published).
CANCEL = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'cancel', ARGV[2])
redis.call('PUBLISH', ARGV[1], ARGV[3])
return 1
"""

#: KEYS: slots. ARGV: run_id, limit, lease_ms. 1 if the run holds a slot now.
ACQUIRE = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""

#: KEYS: a lease zset. Leases not expired.
COUNT = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""

#: KEYS: readers, meta. ARGV: member, lease_ms. The readers' key expires with the run's meta.
ADD_READER = _NOW + """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"""

#: KEYS: lease zsets, ARGV: lease_ms then one member per key. Renews the leases still there
#: (XX: a lease that expired meanwhile is not taken back behind the others' backs).
RENEW = _NOW + """
local until_ = now + tonumber(ARGV[1])
for i = 1, #KEYS do redis.call('ZADD', KEYS[i], 'XX', until_, ARGV[i + 1]) end
return #KEYS
"""
