-- register-search: for a group of identities, registers each one (registerOne; skipped when A[4] is '0', for a
-- record judged again), THEN answers what the caller needs to find the clusters each might join. Registering every
-- identity of the group before any search is what concurrent records need (of two records of one person, each search
-- sees the other), and one script per group is what makes the resolver fast.
--
-- The caller (graph-store.ts) keeps blocking sets, identity roots and clusters in its process; this script answers
-- only what changed since, so a group costs Redis its registrations and a few O(1) checks, not a re-read of every
-- candidate cluster:
-- - a blocking set whose size is the one the caller expects is unchanged (sets only grow; an erasure moves the
--   erasure count, and the caller then expects nothing); otherwise its members come back with their roots;
-- - a cluster the caller names with the version it holds is unchanged when that is still its version (every change of
--   members or records bumps it, graph-lib.lua); otherwise its size, version, up to maxMembers members (sorted by key)
--   and their records come back. A retired cluster comes back as the root it was merged into (members never leave a
--   cluster but by erasure), an erased or unknown one with root ''.
-- Every cluster named, every root of a returned member and every identity's own root is either current as the caller
-- holds it or answered, all from this one atomic snapshot.
--
-- ARGV: 1 base, 2 the arguments A below as ONE JSON array of strings (a group sends ~1,000 of them: one string costs
--       the client and the server a fraction of a thousand, and cjson decodes it in C).
-- A new identity's cluster is noted fresh (graph-lib.lua registerOne): the caller judges it before it publishes it.
-- A: 1 maxClusterSize, 2 maxBlockSize, 3 maxMembers, 4 register '1' / '0', 5 how records come back: '0'
--       whole, else as their first A[5] characters (format, key id and IV: the name of one sealing, pii-codec.ts
--       tagLength; the caller holds the records it sealed or opened by that name and reads whole only those it lacks),
--       6 the erasure count the caller's state is from ('' = none: it holds nothing), 7 c, then c cluster ids, then
--       their c versions held ('' = none), then b, then
--       b pairs (blocking set name, expected size or -1), then per identity: key, record, emailSha256 ('' = none),
--       phoneSha256 ('' = none), eventId, eventTimeMs (integer string), watermark field ('' = none), watermark offset,
--       n, then n indexes (1-based) into the b sets (record … offset are ignored without register)
-- Returns, as ONE JSON string (cjson; an empty list comes as {}), { erasure count, registrations, own roots, sets,
-- clusters, records, judged }: registrations and own roots per
-- identity in argument order (a register reply as register.lua, {} without register; root or ''); sets per set in
-- argument order: { -1 } over maxBlockSize, { size } as expected, else { size, key1, root1, ... } (root '' = none);
-- clusters, for every id answered (not current as held): { id, root } for a retired or unknown id (root ''), else
-- { id, id, size, version, member... }; records: { key, record or its tag (A[5]), ... } once per member listed;
-- judged per identity: { SHA-1 of its stored record ('' = none), 1 when that record was judged before }.
-- ARGV[3] (optional): a JSON array of keys the caller took for new identities without reading their stored records
-- (processor.ts skips that read while the identities it has not seen keep turning out new). When any of them has a
-- stored record, nothing is written and the reply is { 'STORED', key... }: the caller reads those and calls again.
if ARGV[3] then
  local stored = {}
  for _, key in ipairs(cjson.decode(ARGV[3])) do
    if redis.call('HEXISTS', K.rec, key) == 1 then stored[#stored + 1] = key end
  end
  if #stored > 0 then return { 'STORED', unpack(stored) } end
end
local A = cjson.decode(ARGV[2])
local cap, maxBlock, maxMembers, register = tonumber(A[1]), tonumber(A[2]), tonumber(A[3]), A[4] == '1'
local erasures = redis.call('HGET', K.counters, 'erasures') or '0'
local trusted = A[6] == erasures
local tagChars = tonumber(A[5])

local order, named, current = {}, {}, {}
local function answer(id)
  if id ~= '' and not named[id] and not current[id] then
    named[id] = true
    order[#order + 1] = id
  end
end

local c = tonumber(A[7])
local i = 8 + 2 * c
local b = tonumber(A[i])
i = i + 1
local sets = {}
for j = 1, b do
  sets[j] = { name = A[i], expected = tonumber(A[i + 1]) }
  i = i + 2
end
local groups = {}
while i <= #A do
  local n = tonumber(A[i + 8])
  local blocks = {}
  for j = 1, n do
    blocks[j] = sets[tonumber(A[i + 8 + j])].name
  end
  groups[#groups + 1] = { key = A[i], record = A[i + 1], email = A[i + 2], phone = A[i + 3],
    eventId = A[i + 4], eventTimeMs = A[i + 5], wmField = A[i + 6], wmOffset = A[i + 7], blocks = blocks }
  i = i + 9 + n
end

if register then
  countWrite()
end
local registered = {}
for g = 1, #groups do
  local x = groups[g]
  if register then
    registered[g] = registerOne(x.key, x.record, x.email, x.phone, cap, x.eventId, x.eventTimeMs, x.wmField,
      x.wmOffset, x.blocks, true)
  else
    registered[g] = {}
  end
end

-- Clusters the caller holds, checked after the registrations (which change clusters too): one HMGET of their versions
-- (only roots have one); the current ones need no answer.
if trusted then
  for from = 0, c - 1, 4000 do
    local to = math.min(c - 1, from + 3999)
    local versions = redis.call('HMGET', K.cver, unpack(A, 8 + from, 8 + to))
    for k = 1, #versions do
      local id, version = A[8 + from + k - 1], versions[k]
      if version and version == A[8 + c + from + k - 1] then
        current[id] = true
      else
        answer(id)
      end
    end
  end
end
-- Sets: size first; members (and, below, their roots) only when the caller's picture of the set is not current.
local lookup, inLookup = {}, {}
local function need(k)
  if not inLookup[k] then
    inLookup[k] = true
    lookup[#lookup + 1] = k
  end
end
local setReplies = {}
for j = 1, b do
  local set = BASE .. ':blk:' .. sets[j].name
  local size = redis.call('SCARD', set)
  if size > maxBlock then
    setReplies[j] = { -1 }
  elseif trusted and size == sets[j].expected then
    setReplies[j] = { size }
  else
    local members = redis.call('SMEMBERS', set)
    sets[j].members = members
    for k = 1, #members do
      need(members[k])
    end
    setReplies[j] = { size }
  end
end
for g = 1, #groups do
  need(groups[g].key)
end
local rootOf = rootsOfKeys(lookup)
for j = 1, b do
  local members = sets[j].members
  if members then
    local reply = setReplies[j]
    for k = 1, #members do
      local root = rootOf[members[k]]
      reply[#reply + 1] = members[k]
      reply[#reply + 1] = root
      answer(root)
    end
  end
end
local owns = {}
for g = 1, #groups do
  owns[g] = rootOf[groups[g].key]
  answer(owns[g])
end

-- Clusters the caller does not hold as they are now: members and records.
local clusters = {}
local needed, recordKeys = {}, {}
local at = 1
while at <= #order do
  local id = order[at]
  at = at + 1
  local version = redis.call('HGET', K.cver, id)
  local root = id
  if not version then -- retired, erased, or a root of a graph written before versions
    root = findRoot(id, false)
    version = '0'
  end
  if root == nil then
    clusters[#clusters + 1] = { id, '' }
  elseif root ~= id then
    clusters[#clusters + 1] = { id, root }
    answer(root)
  else
    local members = redis.call('SMEMBERS', memKey(id))
    table.sort(members)
    local reply = { id, id, #members, version }
    for j = 1, math.min(#members, maxMembers) do
      local m = members[j]
      reply[#reply + 1] = m
      if not needed[m] then
        needed[m] = true
        recordKeys[#recordKeys + 1] = m
      end
    end
    clusters[#clusters + 1] = reply
  end
end

local records = {}
for from = 1, #recordKeys, 1000 do
  local to = math.min(#recordKeys, from + 999)
  local values = redis.call('HMGET', K.rec, unpack(recordKeys, from, to))
  for j = 1, to - from + 1 do
    records[#records + 1] = recordKeys[from + j - 1]
    local value = values[j] or ''
    if tagChars > 0 then
      value = string.sub(value, 1, tagChars)
    end
    records[#records + 1] = value
  end
end
-- Whether each identity's record, as stored now, was judged before (mark-judged.lua): a batch repeated after a crash,
-- or an unchanged identity read back after a restart, is not judged again against clusters that have grown since.
-- An identity this script registered new to the graph (no root before) is stored as sent and was never judged (an
-- erasure drops the mark with the record): no read needed.
local judged = {}
for g = 1, #groups do
  local r = registered[g]
  if r[1] == 0 and r[5] == '' then
    judged[g] = { redis.sha1hex(groups[g].record), 0 }
  else
    local stored = redis.call('HGET', K.rec, groups[g].key)
    local sha = stored and redis.sha1hex(stored) or ''
    judged[g] = { sha, (sha ~= '' and redis.call('HGET', K.judged, groups[g].key) == sha) and 1 or 0 }
  end
end
return cjson.encode({ erasures, registered, owns, setReplies, clusters, records, judged })
