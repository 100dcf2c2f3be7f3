#!lua
-- Store a new one-time password for an identity, unless its resend interval or its send
-- limit refuses.
-- KEYS[1] otp state hash (c: code hash, n: wrong attempts, s: sent at ms, l: locked)
-- KEYS[2] sends GCRA TAT (ms)
-- ARGV[1] code hash   ARGV[2] ttl ms   ARGV[3] resend interval ms
-- ARGV[4] sends emission interval ms   ARGV[5] sends burst
-- Returns 0 (stored: send it) or the ms to wait.
local now = now_ms()
local sent = tonumber(redis.call('HGET', KEYS[1], 's') or '0')
if sent > 0 and now - sent < tonumber(ARGV[3]) then
  return sent + tonumber(ARGV[3]) - now
end
local wait = gcra(KEYS[2], now, tonumber(ARGV[4]), tonumber(ARGV[5]), true)
if wait > 0 then
  return wait
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'c', ARGV[1], 'n', 0, 's', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 0
