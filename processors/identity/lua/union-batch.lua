-- union-batch: the unions of a group of identities (unionOne, as union.lua), applied one after the other in argument
-- order. A union whose every match is already in the identity's cluster (a record of the same group made that link
-- first) is done, not stale.
-- An item may name every cluster its decision was made on with the version it was read at (register-search.lua): it
-- is stale when any of them changed, and then nothing of it is written. The clusters named include the identity's
-- own (register-search.lua answers it with the candidates). With deferStale, a stale item is set aside, and so is
-- every later item judged on a cluster a set-aside item was judged on (their current roots, "tainted"); the rest go
-- on. That leaves the graph judging in order would: an item applied here touches only its own cluster and those it
-- was judged on, none tainted, and a set-aside item judged again can only touch tainted ones (its candidates are the
-- members of its blocking sets, registered before any judging, so they are still in the clusters it was judged on,
-- now under the tainted roots). The caller judges the set-aside items again, in order.
-- The judged marks (mark-judged.lua) of the same judging go in the same script, so a crash cannot fall between a
-- union and its mark: each identity's mark is written with its union (or its decision to join nothing) unless that is
-- stale, and the identities the judging left where they were without naming clusters are marked too.
-- ARGV: 1 base, 2 the arguments A below as ONE JSON array of strings (one string instead of hundreds, as in
--       register-search.lua).
-- A: 1 maxClusterSize, 2 deferStale '1' / '0', 3 m, then m pairs (identity key, SHA-1) judged without a union, then
--       per identity: key, eventId, eventTimeMs (integer string), expected own root ('' = any), expected own size
--       ('0' = any), SHA-1 of its stored record to mark judged ('' = none), v, then v pairs (cluster id, version
--       judged), n, then n groups of five as in union.lua
-- Returns per identity {alreadyApplied 0/1, root, refused, stale 0/1, MergeEntry JSON...}, or {-1} for an identity
-- the graph does not know (erased meanwhile).
local A = cjson.decode(ARGV[2])
local cap = tonumber(A[1])
local deferStale = A[2] == '1'
local tainted = {}
local m = tonumber(A[3])
for j = 0, m - 1 do
  markJudged(A[4 + 2 * j], A[5 + 2 * j])
end
local replies = {}
local i = 4 + 2 * m
while i <= #A do
  local key, eventId, eventTimeMs, ownRoot, ownSize = A[i], A[i + 1], A[i + 2], A[i + 3], A[i + 4]
  local sha = A[i + 5]
  local v = tonumber(A[i + 6])
  local changed = false
  for j = 0, v - 1 do
    local id, version = A[i + 7 + 2 * j], A[i + 8 + 2 * j]
    -- unchanged means still a root at that version: its own id is its root
    if not changed and ((redis.call('HGET', K.cver, id) or '0') ~= version or tainted[id]) then
      changed = true
    end
  end
  local at = i + 7 + 2 * v
  local n = tonumber(A[at])
  local matches = {}
  for j = 0, n - 1 do
    local k = at + 1 + 5 * j
    matches[#matches + 1] = { key = A[k], confidence = A[k + 1], matchWeight = A[k + 2],
      root = A[k + 3], size = A[k + 4] }
  end
  local reply
  if changed then
    reply = { 0, '', 0, 1 }
  elseif n == 0 then
    local root = rootOfKey(key, true)
    reply = root and { 0, root, 0, 0 } or { -1 }
  else
    reply = unionOne(key, cap, eventId, eventTimeMs, '', '0', ownRoot, ownSize, matches, true) or { -1 }
  end
  if sha ~= '' and reply[1] ~= -1 and tonumber(reply[4]) == 0 then
    markJudged(key, sha)
  end
  if deferStale and reply[1] ~= -1 and tonumber(reply[4]) == 1 then
    for j = 0, v - 1 do
      local root = findRoot(A[i + 7 + 2 * j], false)
      if root then
        tainted[root] = true
      end
    end
  end
  replies[#replies + 1] = reply
  i = at + 1 + 5 * n
end
return replies
