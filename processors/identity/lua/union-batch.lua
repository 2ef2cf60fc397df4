-- union-batch: the unions of a group of identities (unionOne, as union.lua), applied one after the other in argument
-- order. A union whose every match is already in the identity's cluster (a record of the same group made that link
-- first) is done, not stale.
-- An item may name every cluster its decision was made on with the version it was read at (register-search.lua): it
-- is stale when any of them changed, and then nothing of it is written. The clusters named include the identity's
-- own (register-search.lua answers it with the candidates).
-- Sequenced (A[2] = '1'): the caller judged the items one after the other on ONE search's snapshot, each on the
-- snapshot as the unions before it leave it (it merges its pictures as the unions would; processor.ts
-- JudgingPicture), and says for each item the root it expects the identity in once the item is applied (its own root
-- and each match's root and size are the expected ones of unionOne). So the versions named are checked once, before
-- anything is written: each item's decision stands if every cluster of the snapshot it used is unchanged then, every
-- item before it applied, and the graph is where the caller expected at its turn (unionOne's checks, then the root
-- after it). The first item for which that fails is set aside, stale, with every item after it (their pictures
-- assumed it applied); the caller searches and judges those again. Outside that mode each item is checked on its own
-- at its turn.
-- The judged marks (mark-judged.lua) of the same judging go in the same script, so a crash cannot fall between a
-- union and its mark: each identity's mark is written with its union (or its decision to join nothing) unless that is
-- stale, and the identities the judging left where they were without naming clusters are marked too.
-- ARGV: 1 base, 2 the arguments A below as ONE JSON array of strings (one string instead of hundreds, as in
--       register-search.lua).
-- A: 1 maxClusterSize, 2 sequenced '1' / '0', 3 m, then m pairs (identity key, SHA-1) judged without a union, then,
--       sequenced only: u, then u triples (cluster id, version judged, the first item, 1-based, judged on it): every
--       cluster the items were judged on, once (one snapshot: the items name the same clusters again and again), then
--       per identity: key, eventId, eventTimeMs (integer string), expected own root ('' = any), expected own size
--       ('0' = any), SHA-1 of its stored record to mark judged ('' = none), expected root after ('' = any), v, then v
--       pairs (cluster id, version judged; v = 0 when sequenced), n, then n groups of five as in union.lua, r, then r
--       pairs (rejection eventId, IdentityMergeRejection JSON): the links the judgement refused, written to the
--       rejection outbox when the item applies
-- Returns per identity {alreadyApplied 0/1, root, refused, stale 0/1, version of root ('' when stale), MergeEntry
-- JSON...}, or {-1} for an identity the graph does not know (erased meanwhile).
countWrite()
local A = cjson.decode(ARGV[2])
local cap = tonumber(A[1])
local sequenced = A[2] == '1'
local m = tonumber(A[3])
for j = 0, m - 1 do
  markJudged(A[4 + 2 * j], A[5 + 2 * j])
end

local i = 4 + 2 * m
local snapshotAt, u = i + 1, 0
if sequenced then
  u = tonumber(A[i])
  i = i + 1 + 3 * u
end
local items = {}
while i <= #A do
  local v = tonumber(A[i + 7])
  local judged = {}
  for j = 0, v - 1 do
    judged[#judged + 1] = A[i + 8 + 2 * j]
  end
  local at = i + 8 + 2 * v
  local n = tonumber(A[at])
  local matches = {}
  for j = 0, n - 1 do
    local k = at + 1 + 5 * j
    matches[#matches + 1] = { key = A[k], confidence = A[k + 1], matchWeight = A[k + 2],
      root = A[k + 3], size = A[k + 4] }
  end
  local r = tonumber(A[at + 1 + 5 * n])
  items[#items + 1] = { key = A[i], eventId = A[i + 1], eventTimeMs = A[i + 2], ownRoot = A[i + 3],
    ownSize = A[i + 4], sha = A[i + 5], after = A[i + 6], judged = judged, versionsAt = i + 9, matches = matches,
    rejectionsAt = at + 2 + 5 * n, rejections = r }
  i = at + 2 + 5 * n + 2 * r
end

-- Whether the clusters an item names are at the versions it was judged on: unchanged means still a root at that
-- version (its own id is its root; a retired id has no version).
local function unchanged(item)
  local ids = item.judged
  for from = 1, #ids, 4000 do
    local to = math.min(#ids, from + 3999)
    local versions = redis.call('HMGET', K.cver, unpack(ids, from, to))
    for j = 1, #versions do
      if (versions[j] or '0') ~= A[item.versionsAt + 2 * (from + j - 2)] then
        return false
      end
    end
  end
  return true
end

-- In sequenced mode every check of the snapshot comes first: the unions below change the versions of the clusters.
-- The first item judged on a cluster that changed is set aside, with every later one.
local setAsideFrom = #items + 1
local named = {} -- clusters of the snapshot: an item whose own root is one of them was judged on its stored record
if sequenced then
  for from = 0, u - 1, 4000 do
    local to = math.min(u - 1, from + 3999)
    local ids = {}
    for j = from, to do
      ids[#ids + 1] = A[snapshotAt + 3 * j]
      named[A[snapshotAt + 3 * j]] = true
    end
    local versions = redis.call('HMGET', K.cver, unpack(ids))
    for j = from, to do
      if (versions[j - from + 1] or '0') ~= A[snapshotAt + 3 * j + 1] then
        setAsideFrom = math.min(setAsideFrom, tonumber(A[snapshotAt + 3 * j + 2]))
      end
    end
  end
end

local STALE = { 0, '', 0, 1 }
local replies = {}
for k = 1, #items do
  local item = items[k]
  local reply
  if k >= setAsideFrom or (not sequenced and not unchanged(item)) then
    reply = STALE
  elseif #item.matches == 0 then
    local root = rootOfKey(item.key, true)
    reply = root and { 0, root, 0, 0 } or { -1 }
  else
    reply = unionOne(item.key, cap, item.eventId, item.eventTimeMs, '', '0', item.ownRoot, item.ownSize, item.matches,
      true) or { -1 }
  end
  local applied = reply[1] ~= -1 and tonumber(reply[4]) == 0
  if applied then
    if item.sha ~= '' then
      if sequenced and named[item.ownRoot] then
        -- Its own root unchanged since the search that read the SHA-1 (every registration bumps it): the stored record
        -- is that one, no need to read and hash it again.
        markJudgedAs(item.key, item.sha)
      else
        markJudged(item.key, item.sha)
      end
    end
    -- the links this judgement refused, in the rejection outbox with it: judged once, published even after a crash
    for j = 0, item.rejections - 1 do
      local id = A[item.rejectionsAt + 2 * j]
      if redis.call('HSETNX', K.rejects, id, A[item.rejectionsAt + 2 * j + 1]) == 1 then
        redis.call('ZADD', K.rejectsOrder, redis.call('HINCRBY', K.counters, 'merge', 1), id)
      end
    end
  end
  if reply[1] ~= -1 then
    -- the version of the identity's root once applied: the caller keeps the clusters the unions made (graph-store.ts)
    reply = { reply[1], reply[2], reply[3], reply[4], applied and (redis.call('HGET', K.cver, reply[2]) or '0') or '',
      unpack(reply, 5) }
  end
  if sequenced and k < setAsideFrom then
    if reply[1] ~= -1 and not applied then
      setAsideFrom = k -- stale at its turn: nothing of it was written
    elseif not applied or (item.after ~= '' and reply[2] ~= item.after) then
      setAsideFrom = k + 1 -- not where the caller expected: the items after it were judged on pictures assuming it
    end
  end
  replies[#replies + 1] = reply
end
return replies
