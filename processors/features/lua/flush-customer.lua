-- One customer's part of a feature-processor flush, fenced by its partition's owner epoch. Every key shares the
-- customer's hash tag, so this runs unchanged on Redis Cluster.
-- KEYS[1] state hash (ep, ver, s, mg | alias), KEYS[2] ad-server features hash, KEYS[3] ad-server score hash
-- ARGV[1] writer's epoch for the customer's partition
-- ARGV[2] 'w' write what is given below, 'a' merged away (ARGV[3] = survivor)
-- ARGV[3] state checkpoint ('' leaves the checkpoint as it is: states are checkpointed less often than they are served)
-- ARGV[4] absorbed ids JSON (stored as given, with a state), ARGV[5] state version (the features hash's state_version)
-- ARGV[6] state TTL s, ARGV[7] features TTL s, ARGV[8] score TTL s
-- ARGV[9] '1': the features fields below are the whole hash (delete it first)
-- ARGV[10] nh, ARGV[11] ns, ARGV[12] nd: how many arguments follow, in this order, from ARGV[13]: nh features hash
-- field/value arguments (0: leave it), ns score hash field/value arguments, nd features fields to delete. Flat
-- arguments rather than JSON: no encoding on the writer's side and no cjson decoding here, per customer.
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
local nh, ns, nd = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local first = 13
if ARGV[9] == '1' then redis.call('DEL', KEYS[2]) end
if nd > 0 then redis.call('HDEL', KEYS[2], unpack(ARGV, first + nh + ns, first + nh + ns + nd - 1)) end
if nh > 0 then
  redis.call('HSET', KEYS[2], unpack(ARGV, first, first + nh - 1))
  redis.call('EXPIRE', KEYS[2], ARGV[7])
end
if ns > 0 then
  redis.call('HSET', KEYS[3], unpack(ARGV, first + nh, first + nh + ns - 1))
  redis.call('EXPIRE', KEYS[3], ARGV[8])
end
return 1
