#!lua
-- Check a one-time password: the right one is consumed, a wrong one counts, too many lock.
-- KEYS[1] otp state hash   KEYS[2] sends GCRA TAT (ms)
-- ARGV[1] code hash   ARGV[2] max wrong attempts   ARGV[3] resend interval ms
-- ARGV[4] sends emission interval ms   ARGV[5] sends burst
-- Returns {'ok'} | {'expired'} | {'invalid', attempts left}
--       | {'locked', ms until a new code can be sent}
local now = now_ms()
local state = redis.call('HMGET', KEYS[1], 'c', 'n', 's', 'l')
if not state[1] then
  return {'expired'}
end
local function resend_wait()
  local wait = tonumber(state[3]) + tonumber(ARGV[3]) - now
  local sends = gcra(KEYS[2], now, tonumber(ARGV[4]), tonumber(ARGV[5]), false)
  if sends > wait then
    wait = sends
  end
  return wait
end
if state[4] == '1' then
  return {'locked', resend_wait()}
end
if state[1] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {'ok'}
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
if n >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'l', '1')
  return {'locked', resend_wait()}
end
return {'invalid', tonumber(ARGV[2]) - n}
