#!lua
-- Device credentials received by a client network and its aggregate in one round, over a
-- sliding window of BUCKETS time steps (see voting/live/device.py).
-- KEYS[1] network counts (hash: step index -> credentials)   KEYS[2] aggregate counts
-- KEYS[3] the challenge's used marker (record only)
-- ARGV[1] 'count' or 'record'   ARGV[2] step ms   ARGV[3] steps in the window
-- record: ARGV[4] most network credentials allowed   ARGV[5] most aggregate credentials
--         ARGV[6] used marker ttl ms
-- Returns {status, network count, aggregate count} before this credential; status 0 (counted,
-- or recorded), 1 (the challenge was already used: nothing changed), 2 (the counts are over
-- what the challenge was priced for: nothing changed).
local step = tonumber(ARGV[2])
local steps = tonumber(ARGV[3])
local current = math.floor(now_ms() / step)
local oldest = current - steps + 1
local recording = ARGV[1] == 'record'

-- the credentials of the last `steps` steps in `key`; older steps are deleted when recording
local function window_count(key)
  local total = 0
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    if tonumber(fields[i]) < oldest then
      if recording then
        redis.call('HDEL', key, fields[i])
      end
    else
      total = total + tonumber(fields[i + 1])
    end
  end
  return total
end

if recording and redis.call('EXISTS', KEYS[3]) == 1 then
  return {1, 0, 0}
end
local network = window_count(KEYS[1])
local aggregate = window_count(KEYS[2])
if not recording then
  return {0, network, aggregate}
end
if network > tonumber(ARGV[4]) or aggregate > tonumber(ARGV[5]) then
  return {2, network, aggregate}
end
local keep = step * (steps + 1)
redis.call('SET', KEYS[3], '1', 'PX', tonumber(ARGV[6]))
for i = 1, 2 do
  redis.call('HINCRBY', KEYS[i], current, 1)
  redis.call('PEXPIRE', KEYS[i], keep)
end
return {0, network, aggregate}
