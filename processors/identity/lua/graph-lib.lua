-- Shared prelude of every identity-graph script: graph-store.ts prepends it to each script before defineCommand, so
-- the union-find rules live in one place. Every script is called with the same KEYS (fixed keys of the graph) and
-- ARGV[1] = the key base `<prefix>idg:v1:{<prefix>idg}`; per-cluster, per-block and per-hash sets are built from that
-- base inside the script. They carry the same hash tag as KEYS, so under Redis Cluster they are in the declared slot.
--
-- Numbers: Lua numbers are doubles. Counters (cluster and merge sequences), watermark offsets and event times stay far
-- below 2^53, so tonumber() and comparisons are exact; event times and scores are never turned into Lua numbers at all,
-- they are spliced into JSON as the decimal strings the caller sent (cjson would round them to 14 digits).
local K = {
  counters = KEYS[1], -- hash: cluster -> last cluster sequence, merge -> last merge sequence, writes -> countWrite
  rec = KEYS[2], -- hash: identity key -> record JSON (as stored by the caller)
  idc = KEYS[3], -- hash: identity key -> root cluster id (kept at the root eagerly: merges rewrite it)
  cseq = KEYS[4], -- hash: cluster id -> creation sequence (every cluster ever created, roots and retired)
  parent = KEYS[5], -- hash: retired cluster id -> the cluster it was merged into (path-compressed)
  outbox = KEYS[6], -- hash: mergeId -> MergeEntry JSON, until acked
  outboxOrder = KEYS[7], -- sorted set: mergeId scored by merge sequence, so pending merges come out in order
  wmRegister = KEYS[8], -- hash: `<topic>:<partition>` -> last offset applied by register
  wmUnion = KEYS[9], -- hash: `<topic>:<partition>` -> last offset applied by union
  cver = KEYS[10], -- hash: root cluster id -> version, bumped by every change of its members or their records
  judged = KEYS[11], -- hash: identity key -> SHA-1 of its stored record when it was last judged (mark-judged.lua)
  rejects = KEYS[12], -- hash: rejection eventId -> IdentityMergeRejection JSON, written with the judgement, until acked
  rejectsOrder = KEYS[13], -- sorted set: rejection eventId by outbox sequence (the merges' counter)
  fresh = KEYS[14], -- hash: identity key -> the cluster the resolver's registration made for it, until it is judged
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

-- Every script that changes what a resolver's in-process picture of the graph holds (graph-picture.ts: records, roots,
-- clusters, index sets, judged and fresh marks, watermarks) counts it here, once per call, so that picture's single
-- write per part (picture-write.lua) can tell nobody else wrote since it was exact. Path compression (root-of.lua) and
-- the outboxes change no answer the picture gives, and are not counted.
local function countWrite()
  redis.call('HINCRBY', K.counters, 'writes', 1)
end

-- A cluster's members or one of their records changed: readers that keep clusters (graph-store.ts) read it again.
-- Only roots have a version; a root of a graph written before versions has none and counts as version '0'.
local function bumpVersion(root)
  redis.call('HINCRBY', K.cver, root, 1)
end

-- The creation sequence of an existing cluster: newCluster names it `c-<sequence>`, so it is read off the id; the hash
-- only for an id of another form.
local function seqOf(clusterId)
  local n = string.match(clusterId, '^c%-(%d+)$')
  if n then
    return tonumber(n)
  end
  return tonumber(redis.call('HGET', K.cseq, clusterId))
end

-- Member count of a root, through `sizes` (a table root -> count, or nil) when given: one call's memo, valid while
-- nothing that call writes has changed that root.
local function sizeOf(root, sizes)
  local n = sizes and sizes[root]
  if not n then
    n = redis.call('SCARD', memKey(root))
    if sizes then
      sizes[root] = n
    end
  end
  return n
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
-- are JSON number literals (strings) or 'null'. Returns the MergeEntry JSON, or nil when the loser was a fresh cluster
-- (below) and nothing needs publishing.
local function mergeInto(survivor, loser, method, confidence, matchWeight, eventId, eventTimeMs)
  redis.call('HSET', K.parent, loser, survivor)
  local loserMembers = memKey(loser)
  local moved = redis.call('SMEMBERS', loserMembers)
  -- A cluster the resolver made for an identity at registration and that still holds only that identity, not yet
  -- judged: nothing was ever published under it (the resolver publishes an identity's events only once it is judged,
  -- processor.ts), so no reader downstream has state to hand over. The identity moves without a MergeEntry; the parent
  -- pointer still answers anyone who read the id from the graph meanwhile.
  local fresh = #moved == 1 and redis.call('HGET', K.fresh, moved[1]) == loser
  if fresh then
    redis.call('HDEL', K.fresh, moved[1])
  end
  table.sort(moved) -- the MergeEntry lists them: the same merge always reads the same
  for i = 1, #moved do
    redis.call('HSET', K.idc, moved[i], survivor)
  end
  -- SADD of the moved members: O(loser), where SUNIONSTORE would rewrite the survivor's whole set.
  for from = 1, #moved, 1000 do
    redis.call('SADD', memKey(survivor), unpack(moved, from, math.min(#moved, from + 999)))
  end
  redis.call('DEL', loserMembers)
  redis.call('HDEL', K.cver, loser)
  bumpVersion(survivor)
  if fresh then
    return nil
  end
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
-- refused. `sizes` (optional): member counts the caller read of `current` and the candidates in this same script, before
-- anything changed them (a union changes only its survivor and loser, and each candidate is a distinct root).
local function growCluster(current, candidates, cap, eventId, eventTimeMs, sizes)
  table.sort(candidates, function(a, b)
    return a.seq < b.seq
  end)
  local size = 1
  local currentSeq = nil
  if current then
    size = sizeOf(current, sizes)
    currentSeq = seqOf(current)
  end
  local joined = nil
  local merges = {}
  local refused = 0
  for i = 1, #candidates do
    local c = candidates[i]
    local candidateSize = sizeOf(c.id, sizes)
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
      local merge = mergeInto(survivor, loser, c.method, c.confidence, c.matchWeight, eventId, eventTimeMs)
      if merge then
        merges[#merges + 1] = merge
      end
      current = survivor
      size = size + candidateSize
    end
  end
  return current, joined, merges, refused
end

-- Identity keys in the union of the blocking sets `blocks` (set names), without `exclude`, in first-seen order, and the
-- number of sets skipped for holding more than maxBlock identities (a hot key would make scoring quadratic; its
-- evidence is weak anyway). `cache` (optional) keeps each set's members (false = skipped) across calls of one script.
local function candidatesOfBlocks(exclude, maxBlock, blocks, cache)
  local seen, keys, skipped = {}, {}, 0
  for i = 1, #blocks do
    local members = cache and cache[blocks[i]]
    if members == nil then
      local block = BASE .. ':blk:' .. blocks[i]
      if redis.call('SCARD', block) > maxBlock then
        members = false
      else
        members = redis.call('SMEMBERS', block)
      end
      if cache then
        cache[blocks[i]] = members
      end
    end
    if members == false then
      skipped = skipped + 1
    else
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

-- The same over the blocking set names ARGV[from..]. Shared by candidates.lua and cluster-candidates.lua.
local function collectCandidates(exclude, maxBlock, from)
  local blocks = {}
  for i = from, #ARGV do
    blocks[#blocks + 1] = ARGV[i]
  end
  return candidatesOfBlocks(exclude, maxBlock, blocks, nil)
end

-- The cluster ids `B:idc` holds for `keys` (ids[i] false for an unknown identity), by HMGETs of up to 1,000, and the
-- distinct ones in first-seen order.
local function clusterIdsOfKeys(keys)
  local ids = {}
  for from = 1, #keys, 1000 do
    local part = redis.call('HMGET', K.idc, unpack(keys, from, math.min(#keys, from + 999)))
    for i = 1, #part do
      ids[from + i - 1] = part[i]
    end
  end
  local distinct, seen = {}, {}
  for i = 1, #keys do
    local id = ids[i]
    if id and not seen[id] then
      seen[id] = true
      distinct[#distinct + 1] = id
    end
  end
  return ids, distinct
end

-- rootOfKey(key, false) of each of `keys`, in order, with three HMGETs for all of them (false where rootOfKey gives nil):
-- an id with a parent takes findRoot's path, one without is its own root if the graph ever created it.
local function rootsOfKeyList(keys)
  local ids, distinct = clusterIdsOfKeys(keys)
  local rootOf = {}
  for from = 1, #distinct, 1000 do
    local to = math.min(#distinct, from + 999)
    local parents = redis.call('HMGET', K.parent, unpack(distinct, from, to))
    local created = redis.call('HMGET', K.cseq, unpack(distinct, from, to))
    for i = 1, to - from + 1 do
      local id = distinct[from + i - 1]
      if parents[i] then
        rootOf[id] = findRoot(id, false) or false
      else
        rootOf[id] = created[i] and id or false
      end
    end
  end
  local roots = {}
  for i = 1, #keys do
    roots[i] = ids[i] and rootOf[ids[i]] or false
  end
  return roots
end

-- Roots of many identity keys with one HMGET: `B:idc` always names a root (merges rewrite it eagerly), so a parent
-- lookup is needed only for an entry that is somehow not one; those (checked with one HMGET of the parent hash over
-- the distinct roots) take the slow path. Returns a table key -> root ('' for an unknown identity).
local function rootsOfKeys(keys)
  local result = {}
  local n = #keys
  if n == 0 then
    return result
  end
  local roots, distinct = clusterIdsOfKeys(keys)
  local fixed = {}
  for from = 1, #distinct, 1000 do
    local to = math.min(#distinct, from + 999)
    local parents = redis.call('HMGET', K.parent, unpack(distinct, from, to))
    for i = 1, #parents do
      if parents[i] then
        local id = distinct[from + i - 1]
        fixed[id] = findRoot(id, false) or ''
      end
    end
  end
  for i = 1, n do
    local r = roots[i]
    if r then
      result[keys[i]] = fixed[r] or r
    else
      result[keys[i]] = ''
    end
  end
  return result
end

-- Stores one identity's (already merged) record and links it by the exact-hash rules (register.lua, register-search.lua).
-- `blocks` is a list of blocking set names. With `fresh` (the resolver, which judges every identity it registers before
-- it publishes it), a cluster made for a new identity is noted in K.fresh until the identity is judged (mergeInto).
-- Returns {1, root or ''} when the watermark says the event was already applied (nothing written), else {0, root,
-- isNew 0/1, method, previous root or '', refused, MergeEntry JSON...}.
local function registerOne(key, recordJson, email, phone, cap, eventId, eventTimeMs, wmField, wmOffset, blocks,
                           fresh)
  if wmField ~= '' then
    local stored = redis.call('HGET', K.wmRegister, wmField)
    if stored and tonumber(stored) >= tonumber(wmOffset) then
      return { 1, rootOfKey(key, true) or '' }
    end
  end

  local previous = rootOfKey(key, true)

  -- Every cluster holding an identity with the same exact hash, email evidence first (it names the method when a
  -- cluster shares both). The identity's own cluster is not a candidate.
  local byRoot = {}
  local candidates = {}
  local function collect(indexKey, method)
    local keys = redis.call('SMEMBERS', indexKey)
    for i = 1, #keys do
      if keys[i] ~= key then
        local root = rootOfKey(keys[i], true)
        if root and root ~= previous and not byRoot[root] then
          local c = { id = root, seq = seqOf(root), method = method, confidence = '1', matchWeight = 'null' }
          byRoot[root] = c
          candidates[#candidates + 1] = c
        end
      end
    end
  end
  if email ~= '' then
    collect(BASE .. ':email:' .. email, 'EMAIL_HASH')
  end
  if phone ~= '' then
    collect(BASE .. ':phone:' .. phone, 'PHONE_HASH')
  end

  local root, joined, merges, refused = growCluster(previous, candidates, cap, eventId, eventTimeMs)
  local isNew, method = 0, 'PLATFORM_ID'
  if not previous then
    if joined then
      method = joined.method
    else
      root = newCluster()
      isNew, method = 1, 'NEW'
      if fresh then
        redis.call('HSET', K.fresh, key, root)
      end
    end
    redis.call('HSET', K.idc, key, root)
    redis.call('SADD', memKey(root), key)
  end

  redis.call('HSET', K.rec, key, recordJson)
  if email ~= '' then
    redis.call('SADD', BASE .. ':email:' .. email, key)
  end
  if phone ~= '' then
    redis.call('SADD', BASE .. ':phone:' .. phone, key)
  end
  for i = 1, #blocks do
    redis.call('SADD', BASE .. ':blk:' .. blocks[i], key)
  end
  if wmField ~= '' then
    redis.call('HSET', K.wmRegister, wmField, wmOffset)
  end
  bumpVersion(root) -- a new member, or a member's record rewritten

  local reply = { 0, root, isNew, method, previous or '', refused }
  for i = 1, #merges do
    reply[#reply + 1] = merges[i]
  end
  return reply
end

-- Links an identity's cluster with the clusters of probabilistic matches (union.lua, union-batch.lua). `matches` is a
-- list of { key, confidence, matchWeight (JSON number literals), root, size (expected; '' / '0' = any) }. With
-- `joinedIsDone`, a call whose every match is already in the identity's cluster (another record of the same batch made
-- that link first) is a no-op rather than stale. Returns {alreadyApplied 0/1, root, refused, stale 0/1, MergeEntry
-- JSON...}, or nil when the identity is unknown.
local function unionOne(key, cap, eventId, eventTimeMs, wmField, wmOffset, ownRoot, ownSize, matches, joinedIsDone)
  local root = rootOfKey(key, true)
  if not root then
    return nil
  end
  if wmField ~= '' then
    local stored = redis.call('HGET', K.wmUnion, wmField)
    if stored and tonumber(stored) >= tonumber(wmOffset) then
      return { 1, root, 0, 0 }
    end
  end
  -- Each match's root (false: unknown), looked up once for the checks below and the union; member counts likewise.
  local matchKeys = {}
  for i = 1, #matches do
    matchKeys[i] = matches[i].key
  end
  local matchRoots = rootsOfKeyList(matchKeys)
  local sizes = {}
  if joinedIsDone and #matches > 0 then
    local done = true
    for i = 1, #matches do
      if matchRoots[i] ~= root then
        done = false
        break
      end
    end
    if done then
      return { 0, root, 0, 0 }
    end
  end

  local function changed(actualRoot, expectedRoot, expectedSize)
    if expectedRoot == '' then
      return false
    end
    if actualRoot ~= expectedRoot then
      return true
    end
    return expectedSize ~= '0' and sizeOf(actualRoot, sizes) ~= tonumber(expectedSize)
  end
  if changed(root, ownRoot, ownSize) then
    return { 0, root, 0, 1 }
  end
  for i = 1, #matches do
    local m = matches[i]
    if changed(matchRoots[i], m.root, m.size) then
      return { 0, root, 0, 1 }
    end
  end

  -- One candidate per distinct root; when several matches land in one cluster the most confident one is its evidence.
  local byRoot = {}
  local candidates = {}
  for i = 1, #matches do
    local m = matches[i]
    local matchRoot = matchRoots[i] -- nothing was written since it was looked up
    if matchRoot and matchRoot ~= root then
      local c = byRoot[matchRoot]
      if not c then
        c = { id = matchRoot, seq = seqOf(matchRoot), method = 'PROBABILISTIC', confidence = m.confidence,
          matchWeight = m.matchWeight }
        byRoot[matchRoot] = c
        candidates[#candidates + 1] = c
      elseif tonumber(m.confidence) > tonumber(c.confidence) then
        c.confidence, c.matchWeight = m.confidence, m.matchWeight
      end
    end
  end

  local after, _, merges, refused = growCluster(root, candidates, cap, eventId, eventTimeMs, sizes)
  if wmField ~= '' then
    redis.call('HSET', K.wmUnion, wmField, wmOffset)
  end
  local reply = { 0, after, refused, 0 }
  for i = 1, #merges do
    reply[#reply + 1] = merges[i]
  end
  return reply
end

-- Marks `key` judged as the record whose SHA-1 is `sha`, which the caller knows is the stored one. It is no longer
-- fresh (registerOne): from now on it may be published.
local function markJudgedAs(key, sha)
  redis.call('HSET', K.judged, key, sha)
  redis.call('HDEL', K.fresh, key)
end

-- Marks `key` judged as its record is stored now, if that record is still the one whose SHA-1 `sha` the caller judged
-- (register-search.lua answered it); a record re-registered meanwhile stays unjudged. Returns 1 when marked.
local function markJudged(key, sha)
  local stored = redis.call('HGET', K.rec, key)
  if stored and redis.sha1hex(stored) == sha then
    markJudgedAs(key, sha)
    return 1
  end
  return 0
end
