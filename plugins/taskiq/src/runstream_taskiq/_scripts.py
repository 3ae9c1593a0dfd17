"""Lua scripts on the broker's Redis: run leases, worker heartbeats and claims of lost runs.

Times are the Redis server's (``TIME``), so machines' clocks do not matter. Keys, for a prefix
``P`` (``key_prefix``, default ``runstream-taskiq:``):

- ``P leases`` (a sorted set): one member per run a worker runs, scored with the server time its
  lease ends at; the worker renews it every third of ``lease``;
- ``P workers`` (a sorted set): one member per live worker process, renewed the same way;
- ``P lost:{run_id}`` (a string, expiring): set once by whoever claims a run lost.
"""

from __future__ import annotations

__all__ = ["CLAIM", "REAP", "RENEW", "STATE", "TASK_NAME"]

#: The taskiq task every run is submitted as.
TASK_NAME = "runstream.run"

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: KEYS: leases, workers. ARGV: lease_ms, then worker id, then run ids. Renews (or takes) the
#: worker's heartbeat and its runs' leases.
RENEW = _NOW + """
local until_ = now + tonumber(ARGV[1])
redis.call('ZADD', KEYS[2], until_, ARGV[2])
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], until_, ARGV[i]) end
return #ARGV - 2
"""

#: KEYS: leases, workers, lost:{run_id}. ARGV: run_id, claim_ms. Claims the run lost (once,
#: for one caller): 1 if its lease ran out, 2 if it has none and no worker is alive; else 0.
CLAIM = _NOW + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
local verdict = 0
if score then
  if tonumber(score) < now then verdict = 1 end
elseif redis.call('ZCOUNT', KEYS[2], now, '+inf') == 0 then
  verdict = 2
end
if verdict == 0 then return 0 end
if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
return verdict
"""

#: KEYS: leases. ARGV: key prefix, claim_ms. The runs whose lease ran out, claimed lost
#: (each once, for one caller).
REAP = _NOW + """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - 1, 'LIMIT', 0, 100)
local claimed = {}
for _, run_id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], run_id)
  if redis.call('SET', ARGV[1] .. 'lost:' .. run_id, '1', 'NX', 'PX', ARGV[2]) then
    claimed[#claimed + 1] = run_id
  end
end
return claimed
"""

#: KEYS: workers, queue. Live workers and queued messages.
STATE = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1)
return {redis.call('ZCARD', KEYS[1]), redis.call('LLEN', KEYS[2])}
"""
