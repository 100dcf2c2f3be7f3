#!lua
-- Set a round's live status, fenced by the record's order of decisions.
--
-- Every status change decided by the record carries a number from one Postgres sequence
-- (taken under the round's row lock), so a later decision always has a larger number. A write
-- that reaches Redis late (sent to a stalled server whose client gave up, then run when the
-- server woke up) finds a larger number in place and changes nothing: it can never undo a
-- newer decision, e.g. reopen a round that was paused since.
--
-- KEYS[1] meta   the round's hash (status, status_seq, rules ...)
-- ARGV[1] status to set
-- ARGV[2] the decision's number; '' for an operator's write, applied whatever the number
-- ARGV[3] '1': may replace 'recovering' (recovery's own last write); else 'recovering' stays
--
-- Returns {outcome, status now, number now}; outcome 'ok' (written), 'stale' (a newer
-- decision is in place), 'recovering' (the round is being rebuilt: left so), 'missing' (no
-- live state: nothing written, so that no partial meta is made).
local now = redis.call('HMGET', KEYS[1], 'status', 'status_seq')
if not now[1] then
  return {'missing', '', 0}
end
local current = tonumber(now[2] or '0')
if ARGV[2] == '' then
  redis.call('HSET', KEYS[1], 'status', ARGV[1])
  return {'ok', ARGV[1], current}
end
local seq = tonumber(ARGV[2])
if seq <= current then
  return {'stale', now[1], current}
end
if now[1] == 'recovering' and ARGV[3] ~= '1' then
  return {'recovering', now[1], current}
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'status_seq', ARGV[2])
return {'ok', ARGV[1], seq}
