-- Helpers shared by the service's Redis scripts (prepended by voting.scripts.script).

-- Redis's clock in milliseconds since the epoch.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- GCRA (generic cell rate algorithm), the Redis rate limiting pattern of redis-cell:
-- `key` holds the theoretical arrival time (TAT, ms). A request is allowed when at most
-- `burst` requests are ahead of the steady rate of one per `interval` ms. Returns 0 when
-- allowed (storing the new TAT when `commit` is true) or the ms to wait.
local function gcra(key, now, interval, burst, commit)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then
    tat = now
  end
  local new_tat = tat + interval
  local allow_at = new_tat - interval * burst
  if now < allow_at then
    return allow_at - now
  end
  if commit then
    redis.call('SET', key, new_tat, 'PX', math.max(new_tat - now, 1))
  end
  return 0
end
