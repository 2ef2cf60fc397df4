-- Shared prelude of every identity-graph script: graph-store.ts prepends it to each script before defineCommand, so
-- the union-find rules live in one place. Every script is called with the same KEYS (fixed keys of the graph) and
-- ARGV[1] = the key base `<prefix>idg:v1:{<prefix>idg}`; per-cluster, per-block and per-hash sets are built from that
-- base inside the script. They carry the same hash tag as KEYS, so under Redis Cluster they are in the declared slot.
--
-- Numbers: Lua numbers are doubles. Counters (cluster and merge sequences), watermark offsets and event times stay far
-- below 2^53, so tonumber() and comparisons are exact; event times and scores are never turned into Lua numbers at all,
-- they are spliced into JSON as the decimal strings the caller sent (cjson would round them to 14 digits).
local K = {
  counters = KEYS[1], -- hash: cluster -> last cluster sequence, merge -> last merge sequence
  rec = KEYS[2], -- hash: identity key -> record JSON (as stored by the caller)
  idc = KEYS[3], -- hash: identity key -> root cluster id (kept at the root eagerly: merges rewrite it)
  cseq = KEYS[4], -- hash: cluster id -> creation sequence (every cluster ever created, roots and retired)
  parent = KEYS[5], -- hash: retired cluster id -> the cluster it was merged into (path-compressed)
  outbox = KEYS[6], -- hash: mergeId -> MergeEntry JSON, until acked
  outboxOrder = KEYS[7], -- sorted set: mergeId scored by merge sequence, so pending merges come out in order
  wmRegister = KEYS[8], -- hash: `<topic>:<partition>` -> last offset applied by register
  wmUnion = KEYS[9], -- hash: `<topic>:<partition>` -> last offset applied by union
}
local BASE = ARGV[1]

local function memKey(clusterId)
  return BASE .. ':mem:' .. clusterId
end

-- Root of a cluster id, or nil when the id was never created. With compress = true every id on the way is re-pointed
-- at the root (only writing scripts pass it; read-only scripts must not write).
local function findRoot(clusterId, compress)
  if not clusterId then
    return nil
  end
  local path = {}
  local current = clusterId
  while true do
    local up = redis.call('HGET', K.parent, current)
    if not up then
      break
    end
    path[#path + 1] = current
    current = up
  end
  if compress then
    -- the last id on the path already points at the root
    for i = 1, #path - 1 do
      redis.call('HSET', K.parent, path[i], current)
    end
  end
  if #path == 0 and redis.call('HEXISTS', K.cseq, current) == 0 then
    return nil
  end
  return current
end

-- Root cluster of an identity key, or nil when the identity is unknown.
local function rootOfKey(key, compress)
  return findRoot(redis.call('HGET', K.idc, key), compress)
end

local function seqOf(clusterId)
  return tonumber(redis.call('HGET', K.cseq, clusterId))
end

-- Creates a cluster with the next sequence number: ids are `c-<n>`, deterministic from the counter.
local function newCluster()
  local n = redis.call('HINCRBY', K.counters, 'cluster', 1)
  local id = 'c-' .. string.format('%d', n)
  redis.call('HSET', K.cseq, id, n)
  return id
end

-- Retires `loser` into `survivor` (both roots, survivor the older): parent pointer, members move and their identity ->
-- root entries are rewritten, and the MergeEntry goes to the outbox in this same script. `confidence` and `matchWeight`
-- are JSON number literals (strings) or 'null'. Returns the MergeEntry JSON.
local function mergeInto(survivor, loser, method, confidence, matchWeight, eventId, eventTimeMs)
  redis.call('HSET', K.parent, loser, survivor)
  local loserMembers = memKey(loser)
  local moved = redis.call('SMEMBERS', loserMembers)
  table.sort(moved) -- the MergeEntry lists them: the same merge always reads the same
  for i = 1, #moved do
    redis.call('HSET', K.idc, moved[i], survivor)
  end
  if #moved > 0 then
    redis.call('SUNIONSTORE', memKey(survivor), memKey(survivor), loserMembers)
  end
  redis.call('DEL', loserMembers)
  local mergeId = 'merge:' .. survivor .. ':' .. loser
  local json = '{"mergeId":' .. cjson.encode(mergeId)
    .. ',"survivorId":' .. cjson.encode(survivor)
    .. ',"mergedId":' .. cjson.encode(loser)
    .. ',"method":' .. cjson.encode(method)
    .. ',"confidence":' .. confidence
    .. ',"matchWeight":' .. matchWeight
    .. ',"sourceEventId":' .. cjson.encode(eventId)
    .. ',"eventTimeMs":' .. eventTimeMs
    .. ',"movedKeys":' .. (#moved > 0 and cjson.encode(moved) or '[]') -- cjson writes an empty table as {}
    .. '}'
  redis.call('HSET', K.outbox, mergeId, json)
  redis.call('ZADD', K.outboxOrder, redis.call('HINCRBY', K.counters, 'merge', 1), mergeId)
  return json
end

-- Grows the cluster `current` (a root, or nil for an identity that has none yet and counts as one member) by the
-- candidate roots, oldest first. Each step unions `current` with one candidate unless the result would exceed `cap`
-- members (refused, counted). The older root of each pair survives; an identity without a cluster simply joins the
-- first candidate that has room (no merge: nothing is retired). `candidates` is a list of
-- { id, seq, method, confidence, matchWeight }. Returns current (nil if it never joined), joined candidate, merges,
-- refused.
local function growCluster(current, candidates, cap, eventId, eventTimeMs)
  table.sort(candidates, function(a, b)
    return a.seq < b.seq
  end)
  local size = 1
  local currentSeq = nil
  if current then
    size = redis.call('SCARD', memKey(current))
    currentSeq = seqOf(current)
  end
  local joined = nil
  local merges = {}
  local refused = 0
  for i = 1, #candidates do
    local c = candidates[i]
    local candidateSize = redis.call('SCARD', memKey(c.id))
    if size + candidateSize > cap then
      refused = refused + 1
    elseif not current then
      current, currentSeq, joined = c.id, c.seq, c
      size = size + candidateSize
    else
      local survivor, loser = current, c.id
      if c.seq < currentSeq then
        survivor, loser = c.id, current
        currentSeq = c.seq
      end
      merges[#merges + 1] = mergeInto(survivor, loser, c.method, c.confidence, c.matchWeight, eventId, eventTimeMs)
      current = survivor
      size = size + candidateSize
    end
  end
  return current, joined, merges, refused
end

-- Identity keys in the union of the blocking sets ARGV[from..], without `exclude`, in first-seen order, and the number
-- of sets skipped for holding more than maxBlock identities (a hot key would make scoring quadratic; its evidence is
-- weak anyway). Shared by candidates.lua and cluster-candidates.lua.
local function collectCandidates(exclude, maxBlock, from)
  local seen, keys, skipped = {}, {}, 0
  for i = from, #ARGV do
    local block = BASE .. ':blk:' .. ARGV[i]
    if redis.call('SCARD', block) > maxBlock then
      skipped = skipped + 1
    else
      local members = redis.call('SMEMBERS', block)
      for j = 1, #members do
        local m = members[j]
        if m ~= exclude and not seen[m] then
          seen[m] = true
          keys[#keys + 1] = m
        end
      end
    end
  end
  return keys, skipped
end
