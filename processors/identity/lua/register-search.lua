-- register-search: for a group of identities, registers each one (registerOne; skipped when ARGV[5] is '0', for a
-- record judged again), THEN finds for each the clusters it might join, as cluster-candidates.lua does. Registering
-- every identity of the group before any search is what concurrent records need (of two records of one person, each
-- search sees the other), and one script per group instead of two per identity is what makes the resolver fast: the
-- script's fixed cost, the round trips and the lookups shared by the group (blocking sets, clusters, records) are paid
-- once. Roots come from one HMGET of `B:idc` (rootsOfKeys), member records from HMGETs of `B:rec`, each record once.
-- ARGV: 1 base, 2 maxClusterSize, 3 maxBlockSize, 4 maxMembers, 5 register '1' / '0', then per identity: key, record
--       JSON, emailSha256 ('' = none), phoneSha256 ('' = none), eventId, eventTimeMs (integer string), watermark field
--       ('' = none), watermark offset, n, then n blocking set names (record … offset are ignored without register)
-- Returns { identities, records }: identities = per identity in argument order { register reply (as register.lua; {}
-- without register), skippedBlocks, own root or '', clusters }, clusters = own cluster first (when the identity has
-- one), then the candidates' roots in first-seen order, each { root, size, { member key... } } with up to maxMembers
-- members (sorted by key); records = { key, record JSON, ... } once per member listed anywhere in the reply.
local cap, maxBlock, maxMembers, register = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'

local groups = {}
local i = 6
while i <= #ARGV do
  local n = tonumber(ARGV[i + 8])
  local blocks = {}
  for j = 1, n do
    blocks[j] = ARGV[i + 8 + j]
  end
  groups[#groups + 1] = { key = ARGV[i], record = ARGV[i + 1], email = ARGV[i + 2], phone = ARGV[i + 3],
    eventId = ARGV[i + 4], eventTimeMs = ARGV[i + 5], wmField = ARGV[i + 6], wmOffset = ARGV[i + 7], blocks = blocks }
  i = i + 9 + n
end

local registered = {}
for g = 1, #groups do
  local x = groups[g]
  if register then
    registered[g] = registerOne(x.key, x.record, x.email, x.phone, cap, x.eventId, x.eventTimeMs, x.wmField,
      x.wmOffset, x.blocks)
  else
    registered[g] = {}
  end
end

-- Candidate identity keys of every identity, then all their roots at once.
local blockCache = {}
local found, skippedOf = {}, {}
local lookup, inLookup = {}, {}
for g = 1, #groups do
  local x = groups[g]
  local keys, skipped = candidatesOfBlocks(x.key, maxBlock, x.blocks, blockCache)
  found[g], skippedOf[g] = keys, skipped
  for _, k in ipairs(keys) do
    if not inLookup[k] then
      inLookup[k] = true
      lookup[#lookup + 1] = k
    end
  end
  if not inLookup[x.key] then
    inLookup[x.key] = true
    lookup[#lookup + 1] = x.key
  end
end
local rootOf = rootsOfKeys(lookup)

local clusterCache = {}
local needed, recordKeys = {}, {}
local function clusterOf(root)
  local c = clusterCache[root]
  if not c then
    local members = redis.call('SMEMBERS', memKey(root))
    table.sort(members)
    local listed = {}
    for j = 1, math.min(#members, maxMembers) do
      local m = members[j]
      listed[j] = m
      if not needed[m] then
        needed[m] = true
        recordKeys[#recordKeys + 1] = m
      end
    end
    c = { root, #members, listed }
    clusterCache[root] = c
  end
  return c
end

local identities = {}
for g = 1, #groups do
  local x = groups[g]
  local own = rootOf[x.key]
  local seen, clusters = {}, {}
  if own ~= '' then
    seen[own] = true
    clusters[1] = clusterOf(own)
  end
  for _, k in ipairs(found[g]) do
    local root = rootOf[k]
    if root ~= '' and not seen[root] then
      seen[root] = true
      clusters[#clusters + 1] = clusterOf(root)
    end
  end
  identities[g] = { registered[g], skippedOf[g], own, clusters }
end

local records = {}
for from = 1, #recordKeys, 1000 do
  local to = math.min(#recordKeys, from + 999)
  local values = redis.call('HMGET', K.rec, unpack(recordKeys, from, to))
  for j = 1, to - from + 1 do
    records[#records + 1] = recordKeys[from + j - 1]
    records[#records + 1] = values[j] or ''
  end
end
return { identities, records }
