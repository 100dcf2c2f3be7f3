#!lua
-- Count one request of a subject against a GCRA limit (see gcra() in gcra.lua).
-- KEYS[1] TAT (ms) of the subject
-- ARGV[1] emission interval ms   ARGV[2] burst   ARGV[3] '1': peek only (count nothing)
-- Returns 0 (allowed) or the ms to wait.
return gcra(KEYS[1], now_ms(), tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] ~= '1')
