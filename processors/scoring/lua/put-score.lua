-- Writes a customer's score hash unless it already holds a score as of a later time (a rescore racing an update).
-- KEYS[1] score hash, KEYS[2] as-of index (sorted set: customer id -> as_of_ms)
-- ARGV[1] customer id, ARGV[2] as_of_ms, ARGV[3] TTL s, ARGV[4..] field/value pairs
-- Returns 1 when written, 0 when a newer score was kept.
local held = tonumber(redis.call('HGET', KEYS[1], 'as_of_ms') or '-1')
if held > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
