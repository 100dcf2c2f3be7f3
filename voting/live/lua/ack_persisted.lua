#!lua flags=allow-oom
-- Forget ballots the persister has committed to Postgres: XACK and XDEL their stream entries,
-- HDEL their trackers from the backlog index. The only script with `allow-oom`: it removes
-- and never adds, and a full Redis must still be able to shed what Postgres already holds.
--
-- KEYS[1] stream    KEYS[2] backlog index (tracker -> ballot id)
-- ARGV[1] the consumer group
-- ARGV[2] entry ids, comma-separated    ARGV[3] backlog fields (trackers), comma-separated
-- (two arguments instead of one per ballot: packing thousands of arguments costs the
-- persister more than the commands cost Redis)
-- Returns the number of entries deleted.

local ids, fields = {}, {}
for id in string.gmatch(ARGV[2], '[^,]+') do ids[#ids + 1] = id end
for f in string.gmatch(ARGV[3], '[^,]+') do fields[#fields + 1] = f end
local deleted = 0
local step = 500  -- unpack() stays far below Lua's stack limit
for i = 1, #ids, step do
  local chunk = {unpack(ids, i, math.min(i + step - 1, #ids))}
  redis.call('XACK', KEYS[1], ARGV[1], unpack(chunk))
  deleted = deleted + redis.call('XDEL', KEYS[1], unpack(chunk))
end
for i = 1, #fields, step do
  redis.call('HDEL', KEYS[2], unpack(fields, i, math.min(i + step - 1, #fields)))
end
return deleted
