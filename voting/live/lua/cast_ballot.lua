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
-- KEYS[3] voters    hash: voter hash -> the voter's record: "<ballot id>" or, for a ballot
--                   sent with an Idempotency-Key, "<ballot id> <tracker> <cast ms> <key hash>
--                   <choices hash>" (what a replay of that key needs; see voting.live.ballot_box)
-- KEYS[4] stream    ballots stream
-- KEYS[5] rate      GCRA theoretical arrival time (ms) of the client IP prefix
-- KEYS[6] backlog   hash: tracker -> ballot id while the ballot waits in the stream
-- ARGV[1] voter hash          ARGV[2] ballot id (uuid)
-- ARGV[3] choices "3,7,12"    ARGV[4] cast_at (ms since epoch)
-- ARGV[5] ip prefix           ARGV[6] the voter's record to store (see KEYS[3])
-- ARGV[7] the Idempotency-Key's hash ("" without a key)
-- ARGV[8] GCRA emission interval ms (period / rate)
-- ARGV[9] GCRA burst (requests allowed at once)
-- ARGV[10] most ballots allowed to wait in the stream (persistence backlog bound)
-- ARGV[11] tracker (the voter's receipt)
-- ARGV[12] when the voter credential was issued (s since epoch)
-- ARGV[13] User-Agent hash (16 hex, "" when absent)
--
-- Returns {"ok"} | {"replay", the voter's record} | {"not_found"} | {"not_open", status}
--       | {"rate_limited", retry_after_ms} | {"already_voted", ballot_id} | {"backlog", length}
-- A replay is a voter's second request with the key of its accepted ballot: answered from the
-- record (whatever the round's status), so it lives as long as the round's live state.
-- The stream entry's fields are those of voting/live/stream.py (FIELDS).
-- Rate limit: gcra() of lua/gcra.lua, put after the shebang by voting.live.scripts.

local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {'not_found'}
end

local previous = redis.call('HGET', KEYS[3], ARGV[1])
if previous and ARGV[7] ~= '' then
  local key = string.match(previous, '^%S+ %S+ %S+ (%S+) %S+$')
  if key == ARGV[7] then
    return {'replay', previous}
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
if backlog >= tonumber(ARGV[10]) then
  return {'backlog', backlog}
end

-- GCRA per client IP prefix; a repeated cast counts too: it is what the limit guards against
local wait = gcra(KEYS[5], now, tonumber(ARGV[8]), tonumber(ARGV[9]), true)
if wait > 0 then
  return {'rate_limited', wait}
end

if previous then
  return {'already_voted', string.match(previous, '^%S+')}
end

redis.call('XADD', KEYS[4], '*', 'b', ARGV[2], 'v', ARGV[1], 'c', ARGV[3], 't', ARGV[4],
  'ip', ARGV[5], 'k', ARGV[11], 'ia', ARGV[12], 'ua', ARGV[13])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[6])
redis.call('HSET', KEYS[6], ARGV[11], ARGV[2])
redis.call('HINCRBY', KEYS[1], 'ballots', 1)
for id in string.gmatch(ARGV[3], '[^,]+') do
  redis.call('HINCRBY', KEYS[2], id, 1)
end
return {'ok'}
