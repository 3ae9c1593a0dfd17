"""Lua scripts on the broker's Redis: run leases, worker heartbeats and claims of lost runs.

Times are the Redis server's (``TIME``), so machines' clocks do not matter. Keys, for a prefix
``P`` (``key_prefix``, default ``runstream-taskiq:``):

- ``P leases`` (a sorted set): one member per run a worker runs, scored with the server time its
  lease ends at; the worker renews it every third of ``lease``;
- ``P workers`` (a sorted set): one member per live worker process, renewed the same way;
- ``P taken:{worker}`` (a list): the queue messages a worker took (``BLMOVE`` from the queue,
  atomically) and has not finished; a message leaves it when its run ends there (the
  acknowledgement). A dead worker's list is how its taken-but-not-started runs, and the runs
  that may be re-run, go back on the queue;
- ``P attempt:{run_id}`` (a string, expiring): the attempt number of a run put back on the queue;
- ``P lost:{run_id}`` (a string, expiring): set once by whoever claims a run lost.
"""

from __future__ import annotations

__all__ = ["CLAIM", "DONE", "REAP", "RELEASE", "RENEW", "REQUEUE", "START", "STATE", "SUBMIT",
           "TASK_NAME"]

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

#: KEYS: leases, workers, lost:{run_id}. ARGV: run_id, claim_ms. The web side's check of a run it
#: follows, for when no worker is alive (a live worker's reaper, REAP, handles the rest): claims
#: the run lost (once, for one caller): 1 if it had a lease, 2 if it had none; else 0.
CLAIM = _NOW + """
if redis.call('ZCOUNT', KEYS[2], now, '+inf') > 0 then return 0 end
local verdict = 2
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then verdict = 1 end
if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
return verdict
"""

#: KEYS: leases, workers, attempt:{run_id}. ARGV: lease_ms, worker id, run_id. A worker starts
#: a run it took: the run's lease (and the worker's heartbeat); returns the run's attempt (1,
#: or more for a run put back on the queue after its worker was lost).
START = _NOW + """
local until_ = now + tonumber(ARGV[1])
redis.call('ZADD', KEYS[2], until_, ARGV[2])
redis.call('ZADD', KEYS[1], until_, ARGV[3])
return tonumber(redis.call('GET', KEYS[3]) or '1')
"""

#: KEYS: leases, taken:{worker}, attempt:{run_id}. ARGV: run_id, the message. A run's end on
#: its worker: its lease and its message go (the acknowledgement), in one step.
DONE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('LREM', KEYS[2], 1, ARGV[2])
redis.call('DEL', KEYS[3])
return 1
"""

#: Decodes a queued message's run id into ``run_id`` (nil if it is not a runstream run).
_RUN_ID = """
local function run_id_of(message)
  local ok, decoded = pcall(cjson.decode, message)
  local sub = ok and type(decoded) == 'table' and type(decoded.args) == 'table'
              and decoded.args[1]
  local run_id = type(sub) == 'table' and sub.run_id
  if type(run_id) == 'string' then return run_id, sub end
  return nil, nil
end
"""

#: KEYS: workers, taken:{worker}, queue, leases. ARGV: worker id. A worker that stops cleanly
#: puts the messages it took but did not start back on the queue (without a lease), and goes.
RELEASE = _RUN_ID + """
local n = 0
while true do
  local message = redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT')
  if not message then break end
  local run_id = run_id_of(message)
  if run_id then redis.call('ZREM', KEYS[4], run_id) end
  n = n + 1
end
redis.call('ZREM', KEYS[1], ARGV[1])
return n
"""

#: KEYS: taken:{worker}, queue, leases. ARGV: run_id, the message. A run its worker could not
#: start (its lease could not be taken): back on the queue, without a lease.
REQUEUE = """
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('LREM', KEYS[1], 1, ARGV[2]) > 0 then redis.call('RPUSH', KEYS[2], ARGV[2]) end
return 1
"""

#: KEYS: leases, workers, queue. ARGV: key prefix, claim_ms, attempt_ms. Run by every live
#: worker each renewal period. For each dead worker (heartbeat ran out), each message it took:
#:
#: - not started (no lease): back on the queue, once per attempt; a second time, claimed lost;
#: - started (it had a lease): if the submission allows reruns (``reruns`` >= its attempt),
#:   back on the queue with the next attempt number; else claimed lost.
#:
#: Then runs whose lease ran out without their worker's message (a fallback) are claimed lost.
#: Returns {claimed lost run ids, run ids put back on the queue}; each claim is once, for one
#: caller (``P lost:{run_id}``).
REAP = _NOW + _RUN_ID + """
local P = ARGV[1]
local lost, requeued = {}, {}
local function claim(run_id)
  redis.call('ZREM', KEYS[1], run_id)
  if redis.call('SET', P .. 'lost:' .. run_id, '1', 'NX', 'PX', ARGV[2]) then
    lost[#lost + 1] = run_id
  end
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - 1, 'LIMIT', 0, 20)
for _, worker in ipairs(dead) do
  local taken = P .. 'taken:' .. worker
  for _, message in ipairs(redis.call('LRANGE', taken, 0, -1)) do
    local run_id, sub = run_id_of(message)
    if run_id and redis.call('EXISTS', P .. 'lost:' .. run_id) == 0 then
      local attempt_key = P .. 'attempt:' .. run_id
      local attempt = tonumber(redis.call('GET', attempt_key) or '1')
      if not redis.call('ZSCORE', KEYS[1], run_id) then
        if redis.call('SET', P .. 'requeued:' .. run_id .. ':' .. attempt, '1', 'NX', 'PX',
                      ARGV[3]) then
          redis.call('RPUSH', KEYS[3], message)
          requeued[#requeued + 1] = run_id
        else
          claim(run_id)
        end
      elseif attempt <= (tonumber(sub.reruns) or 0) then
        redis.call('ZREM', KEYS[1], run_id)
        redis.call('SET', attempt_key, attempt + 1, 'PX', ARGV[3])
        redis.call('RPUSH', KEYS[3], message)
        requeued[#requeued + 1] = run_id
      else
        claim(run_id)
      end
    end
  end
  redis.call('DEL', taken)
  redis.call('ZREM', KEYS[2], worker)
end
for _, run_id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - 1, 'LIMIT', 0, 100)) do
  claim(run_id)
end
return {lost, requeued}
"""

#: KEYS: workers, queue. ARGV: max_queued, the message. A web process queues a run if a worker
#: is alive and the queue is not full, in one step: {0 (queued), 1 (no live worker) or 2
#: (full), the messages waiting}.
SUBMIT = _NOW + """
if redis.call('ZCOUNT', KEYS[1], now, '+inf') == 0 then return {1, 0} end
local queued = redis.call('LLEN', KEYS[2])
if queued >= tonumber(ARGV[1]) then return {2, queued} end
redis.call('LPUSH', KEYS[2], ARGV[2])
return {0, queued + 1}
"""

#: KEYS: workers, queue. Live workers and queued messages (dead workers stay listed until a
#: live worker's REAP has put their messages back).
STATE = _NOW + """
return {redis.call('ZCOUNT', KEYS[1], now, '+inf'), redis.call('LLEN', KEYS[2])}
"""
