-- Writes one customer's feature state and its ad-server hash, if nobody wrote the state since it was read.
-- KEYS[1] state hash (fields: ver, s | alias), KEYS[2] features hash
-- ARGV[1] expected version (0: the key must not exist), ARGV[2] state JSON, ARGV[3] state TTL s, ARGV[4] features TTL s,
-- ARGV[5] features hash field/value pairs as one JSON array of strings ('[]': leave the features hash alone); one
-- argument instead of ~90 keeps the client's per-argument cost off the hot path
-- Returns the new version, -1 when the version moved (re-read and retry), -2 when the key became an alias (re-resolve).
local cur = redis.call('HMGET', KEYS[1], 'ver', 'alias')
if cur[2] then return -2 end
local ver = tonumber(cur[1] or '0')
if ver ~= tonumber(ARGV[1]) then return -1 end
redis.call('HSET', KEYS[1], 'ver', ver + 1, 's', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
local fields = cjson.decode(ARGV[5])
if #fields > 0 then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], unpack(fields))
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return ver + 1
