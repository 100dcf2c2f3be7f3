#!lua
-- Cast one ballot atomically (the whole hot path's Redis work in one script).
--
-- Declared with a `#!lua` shebang and no flags, so Redis treats it as a writing script
-- WITHOUT `allow-oom`: under memory pressure the server refuses it before it runs, so it
-- never stops half-way (a voter marked as voted without the ballot in the stream).
--
-- KEYS[1] meta      hash: status, min_choices, max_choices, candidates, ballots (accepted),
--                   closes_at (ms since epoch; optional: from then on the round refuses)
-- KEYS[2] tally     hash: candidate id -> votes
-- KEYS[3] voters    hash: voter hash -> ballot id
-- KEYS[4] stream    ballots stream
-- KEYS[5] idem      stored 201 body for this voter's Idempotency-Key (without a key:
--                   the round's tag, never read or written since ARGV[8] is "0")
-- KEYS[6] rate      GCRA theoretical arrival time (ms) of the client IP prefix
-- KEYS[7] backlog   hash: tracker -> ballot id while the ballot waits in the stream
-- ARGV[1] voter hash          ARGV[2] ballot id (uuid)
-- ARGV[3] choices "3,7,12"    ARGV[4] cast_at (ms since epoch)
-- ARGV[5] ip prefix           ARGV[6] 201 body (JSON) to store for idempotent replay
--                             ("" without an Idempotency-Key)
-- ARGV[7] idempotency ttl ms  ARGV[8] has idempotency key ("1"/"0")
-- ARGV[9] GCRA emission interval ms (period / rate)
-- ARGV[10] GCRA burst (requests allowed at once)
-- ARGV[11] most ballots allowed to wait in the stream (persistence backlog bound)
-- ARGV[12] tracker (the voter's receipt)
-- ARGV[13] when the voter credential was issued (s since epoch)
-- ARGV[14] User-Agent hash (16 hex, "" when absent)
--
-- Returns {"ok"} | {"replay", stored body} | {"not_found"} | {"not_open", status}
--       | {"rate_limited", retry_after_ms} | {"already_voted", ballot_id} | {"backlog", length}
-- The stream entry's fields are those of voting/live/stream.py (FIELDS).
-- Rate limit: gcra() of lua/gcra.lua, put after the shebang by voting.live.scripts.

local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {'not_found'}
end

local has_idem = ARGV[8] == '1'
if has_idem then
  local stored = redis.call('GET', KEYS[5])
  if stored then
    return {'replay', stored}
  end
end

if status ~= 'open' then
  return {'not_open', status}
end

local now = now_ms()
local closes_at = redis.call('HGET', KEYS[1], 'closes_at')
if closes_at and now >= tonumber(closes_at) then
  return {'not_open', 'closed'}
end

-- global guard: refuse rather than let the unpersisted backlog grow without limit
local backlog = redis.call('XLEN', KEYS[4])
if backlog >= tonumber(ARGV[11]) then
  return {'backlog', backlog}
end

-- GCRA per client IP prefix; a repeated cast counts too: it is what the limit guards against
local wait = gcra(KEYS[6], now, tonumber(ARGV[9]), tonumber(ARGV[10]), true)
if wait > 0 then
  return {'rate_limited', wait}
end

local previous = redis.call('HGET', KEYS[3], ARGV[1])
if previous then
  return {'already_voted', previous}
end

redis.call('XADD', KEYS[4], '*', 'b', ARGV[2], 'v', ARGV[1], 'c', ARGV[3], 't', ARGV[4],
  'ip', ARGV[5], 'k', ARGV[12], 'ia', ARGV[13], 'ua', ARGV[14])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[7], ARGV[12], ARGV[2])
redis.call('HINCRBY', KEYS[1], 'ballots', 1)
for id in string.gmatch(ARGV[3], '[^,]+') do
  redis.call('HINCRBY', KEYS[2], id, 1)
end
if has_idem then
  redis.call('SET', KEYS[5], ARGV[6], 'PX', tonumber(ARGV[7]))
end
return {'ok'}
