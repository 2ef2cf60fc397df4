-- One customer's part of a feature-processor flush, fenced by its partition's owner epoch. Every key shares the
-- customer's hash tag, so this runs unchanged on Redis Cluster.
-- KEYS[1] state hash (ep, ver, s, mg | alias), KEYS[2] ad-server features hash, KEYS[3] ad-server score hash
-- ARGV[1] JSON array of strings: [writer's epoch for the customer's partition, 'w' (write what is given), 'a' (merged
--   away) or 'e' (erased: delete the three keys), state version (the features hash's state_version), state TTL s, features TTL s, score TTL s, '1' when the
--   features fields are the whole hash (delete it first)]
-- ARGV[2] with 'w': the state checkpoint ('' leaves it as it is: states are checkpointed less often than they are
--   served); with 'a': the survivor's id
-- ARGV[3] absorbed ids JSON (stored as given, with a checkpoint)
-- ARGV[4] JSON [features hash field/value pairs ([] leaves it), score hash field/value pairs, features fields to delete]
-- Few arguments on purpose: the client's cost per call grows with their number, and this runs once per customer.
-- Returns 1 when written, -1 when a newer owner of the partition has written this customer (the writer is fenced).
local h = cjson.decode(ARGV[1])
local epoch, mode, version = h[1], h[2], h[3]
local stateTtl, featuresTtl, scoreTtl, replace = h[4], h[5], h[6], h[7]
local ep = tonumber(redis.call('HGET', KEYS[1], 'ep') or '0')
if ep > tonumber(epoch) then return -1 end
if mode == 'e' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  return 1
end
if mode == 'a' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'ep', epoch, 'ver', version, 'alias', ARGV[2])
  redis.call('EXPIRE', KEYS[1], stateTtl)
  redis.call('HSET', KEYS[2], 'merged_into', ARGV[2])
  redis.call('EXPIRE', KEYS[2], featuresTtl)
  return 1
end
-- Every write stamps the epoch, so an older owner is refused from the new owner's first write of this customer on.
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'ep', epoch, 'ver', version, 's', ARGV[2], 'mg', ARGV[3])
else
  redis.call('HSET', KEYS[1], 'ep', epoch, 'ver', version)
end
redis.call('EXPIRE', KEYS[1], stateTtl)
local parts = cjson.decode(ARGV[4])
local fields, score, gone = parts[1], parts[2], parts[3]
if replace == '1' then redis.call('DEL', KEYS[2]) end
if #gone > 0 then redis.call('HDEL', KEYS[2], unpack(gone)) end
if #fields > 0 then
  redis.call('HSET', KEYS[2], unpack(fields))
  redis.call('EXPIRE', KEYS[2], featuresTtl)
end
if #score > 0 then
  redis.call('HSET', KEYS[3], unpack(score))
  redis.call('EXPIRE', KEYS[3], scoreTtl)
end
return 1
