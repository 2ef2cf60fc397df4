-- One customer's part of a feature-processor flush, fenced by its partition's owner epoch. Every key shares the
-- customer's hash tag, so this runs unchanged on Redis Cluster.
-- KEYS[1] state hash (ep, ver, s, mg | alias), KEYS[2] ad-server features hash, KEYS[3] ad-server score hash
-- ARGV[1] writer's epoch for the customer's partition
-- ARGV[2] 'w' write what is given below, 'a' merged away (ARGV[3] = survivor)
-- ARGV[3] state JSON ('' leaves the checkpoint as it is: states are checkpointed less often than they are served)
-- ARGV[4] absorbed ids JSON (with a state), ARGV[5] state version (the features hash's state_version)
-- ARGV[6] state TTL s, ARGV[7] features TTL s, ARGV[8] score TTL s
-- ARGV[9] features hash field/value pairs as one JSON array ('[]': leave it), ARGV[10] score fields likewise
-- ARGV[11] '1': ARGV[9] is the whole features hash (delete it first); ARGV[12] JSON array of features fields to delete
-- Returns 1 when written, -1 when a newer owner of the partition has written this customer (the writer is fenced).
local ep = tonumber(redis.call('HGET', KEYS[1], 'ep') or '0')
if ep > tonumber(ARGV[1]) then return -1 end
if ARGV[2] == 'a' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'ep', ARGV[1], 'ver', ARGV[5], 'alias', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('HSET', KEYS[2], 'merged_into', ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[7])
  return 1
end
-- Every write stamps the epoch, so an older owner is refused from the new owner's first write of this customer on.
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'ep', ARGV[1], 'ver', ARGV[5], 's', ARGV[3], 'mg', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'ep', ARGV[1], 'ver', ARGV[5])
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
if ARGV[11] == '1' then redis.call('DEL', KEYS[2]) end
local gone = cjson.decode(ARGV[12])
if #gone > 0 then redis.call('HDEL', KEYS[2], unpack(gone)) end
local fields = cjson.decode(ARGV[9])
if #fields > 0 then
  redis.call('HSET', KEYS[2], unpack(fields))
  redis.call('EXPIRE', KEYS[2], ARGV[7])
end
local score = cjson.decode(ARGV[10])
if #score > 0 then
  redis.call('HSET', KEYS[3], unpack(score))
  redis.call('EXPIRE', KEYS[3], ARGV[8])
end
return 1
