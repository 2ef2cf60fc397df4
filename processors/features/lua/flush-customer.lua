-- One customer's part of a feature-processor flush, fenced by its partition's owner epoch. Every key shares the
-- customer's hash tag, so this runs unchanged on Redis Cluster.
-- KEYS[1] state hash (ep, ver, s, mg | alias), KEYS[2] ad-server features hash, KEYS[3] ad-server score hash
-- ARGV[1] writer's epoch for the customer's partition
-- ARGV[2] what to write: 's' state (+ hash, + score), 'r' score only (a rescore), 'a' alias (merged away)
-- ARGV[3] state JSON ('s') or survivor id ('a'), ARGV[4] absorbed ids JSON ('s'), ARGV[5] state version
-- ARGV[6] state TTL s, ARGV[7] features TTL s, ARGV[8] score TTL s
-- ARGV[9] features hash field/value pairs as one JSON array ('[]': leave it), ARGV[10] score fields likewise
-- Returns 1 when written, -1 when a newer owner of the partition has written this customer (the writer is fenced).
local ep = tonumber(redis.call('HGET', KEYS[1], 'ep') or '0')
if ep > tonumber(ARGV[1]) then return -1 end
local kind = ARGV[2]
if kind == 'a' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'ep', ARGV[1], 'ver', ARGV[5], 'alias', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('HSET', KEYS[2], 'merged_into', ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[7])
  return 1
end
if kind == 's' then
  redis.call('HSET', KEYS[1], 'ep', ARGV[1], 'ver', ARGV[5], 's', ARGV[3], 'mg', ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  local fields = cjson.decode(ARGV[9])
  if #fields > 0 then
    redis.call('DEL', KEYS[2])
    redis.call('HSET', KEYS[2], unpack(fields))
    redis.call('EXPIRE', KEYS[2], ARGV[7])
  end
elseif ep < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'ep', ARGV[1]) -- a rescore by a new owner fences the old one too
end
local score = cjson.decode(ARGV[10])
if #score > 0 then
  redis.call('HSET', KEYS[3], unpack(score))
  redis.call('EXPIRE', KEYS[3], ARGV[8])
end
return 1
