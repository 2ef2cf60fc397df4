-- erase: removes one person (a root cluster, its retired ids and its member identities) from the graph, atomically,
-- provided the graph still is what the caller judged (else nothing is written and the caller judges again).
-- ARGV: 1 base, 2 root, 3 expected member count, 4 n = number of global ids, 5..4+n the global ids (root first, then
--       every retired id whose root is root), 5+n m = number of member keys, then m member keys, then watermark fields
--       (`<topic>|<identity key>`) to drop from both watermark hashes.
-- Returns {0} when stale, else {1, identities removed, clusters removed, outbox entries removed (merges and
-- rejections), watermarks removed}.
-- The index sets (blocking, email, phone) are swept by the caller (graph-store.ts), since stale entries of earlier
-- versions of a record are not known here. The cluster counter is left alone: ids are never handed out again, so
-- a record still in flight under an erased id cannot be taken for a new customer.
local root, expected = ARGV[2], tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local ids, isErased = {}, {}
for i = 1, n do
  ids[i] = ARGV[4 + i]
  isErased[ids[i]] = true
end
local m = tonumber(ARGV[5 + n])
local members = {}
for i = 1, m do
  members[i] = ARGV[5 + n + i]
end
local fieldsFrom = 6 + n + m

if findRoot(root, false) ~= root or redis.call('SCARD', memKey(root)) ~= expected or m ~= expected then
  return { 0 }
end
for i = 1, m do
  if redis.call('SISMEMBER', memKey(root), members[i]) == 0 then
    return { 0 }
  end
end
for i = 2, n do
  if findRoot(ids[i], false) ~= root then
    return { 0 }
  end
end

countWrite()
local identities = 0
for i = 1, m do
  identities = identities + redis.call('HDEL', K.idc, members[i])
  redis.call('HDEL', K.rec, members[i])
  redis.call('HDEL', K.judged, members[i])
  redis.call('HDEL', K.fresh, members[i])
end
redis.call('DEL', memKey(root))
local clusters = 0
for i = 1, n do
  clusters = clusters + redis.call('HDEL', K.cseq, ids[i])
  redis.call('HDEL', K.parent, ids[i])
  redis.call('HDEL', K.cver, ids[i])
end
-- Readers that keep blocking sets and clusters in process (graph-store.ts) forget them all when this count moves.
redis.call('HINCRBY', K.counters, 'erasures', 1)
-- Merges of the person not yet published: they would name the erased ids on the merges topic.
local outbox = 0
local pending = redis.call('HGETALL', K.outbox)
for i = 1, #pending, 2 do
  local entry = cjson.decode(pending[i + 1])
  if isErased[entry.survivorId] or isErased[entry.mergedId] then
    outbox = outbox + redis.call('HDEL', K.outbox, pending[i])
    redis.call('ZREM', K.outboxOrder, pending[i])
  end
end
-- Rejections not yet published that name the person: the same.
local isMember = {}
for i = 1, m do
  isMember[members[i]] = true
end
local rejects = redis.call('HGETALL', K.rejects)
for i = 1, #rejects, 2 do
  local entry = cjson.decode(rejects[i + 1])
  if isErased[entry.globalCustomerId] or isErased[entry.candidateGlobalId] or isMember[entry.identityKey]
    or isMember[entry.candidateKey] then
    outbox = outbox + redis.call('HDEL', K.rejects, rejects[i])
    redis.call('ZREM', K.rejectsOrder, rejects[i])
  end
end
local watermarks = 0
for i = fieldsFrom, #ARGV do
  watermarks = watermarks + redis.call('HDEL', K.wmRegister, ARGV[i]) + redis.call('HDEL', K.wmUnion, ARGV[i])
end
return { 1, identities, clusters, outbox, watermarks }
