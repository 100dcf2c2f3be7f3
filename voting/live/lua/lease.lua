#!lua
-- Take or keep a lease: one holder at a time, for ARGV[2] ms.
-- KEYS[1] the lease key   ARGV[1] the caller's name   ARGV[2] time to live (ms)
-- Returns 1 when the caller holds the lease (renewed), 0 when another process holds it.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
