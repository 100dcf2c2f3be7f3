#!lua
-- Withdraw a one-time password whose delivery failed, unless a newer one replaced it.
-- KEYS[1] otp state hash   ARGV[1] code hash
-- Returns 1 (deleted) or 0.
if redis.call('HGET', KEYS[1], 'c') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
