-- Merges the loser customer into the survivor: writes the combined state and hash under the survivor and turns the
-- loser into an alias (its hash then only says `merged_into`), all at once, if neither moved since it was read.
-- KEYS[1] survivor state, KEYS[2] survivor features, KEYS[3] loser state, KEYS[4] loser features
-- ARGV[1] survivor expected version, ARGV[2] loser expected version, ARGV[3] combined state JSON, ARGV[4] state TTL s,
-- ARGV[5] features TTL s, ARGV[6] survivor id, ARGV[7] survivor features field/value pairs as a JSON array of strings
-- Returns the survivor's new version, -1 when a version moved, -2 when either key became an alias.
local s = redis.call('HMGET', KEYS[1], 'ver', 'alias')
local l = redis.call('HMGET', KEYS[3], 'ver', 'alias')
if s[2] or l[2] then return -2 end
local sver = tonumber(s[1] or '0')
local lver = tonumber(l[1] or '0')
if sver ~= tonumber(ARGV[1]) or lver ~= tonumber(ARGV[2]) then return -1 end
redis.call('HSET', KEYS[1], 'ver', sver + 1, 's', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local fields = cjson.decode(ARGV[7])
if #fields > 0 then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], unpack(fields))
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('HSET', KEYS[3], 'ver', lver + 1, 'alias', ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[4])
redis.call('HSET', KEYS[4], 'merged_into', ARGV[6])
redis.call('EXPIRE', KEYS[4], ARGV[5])
return sver + 1
