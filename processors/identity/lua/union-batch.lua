-- union-batch: the unions of a group of identities (unionOne, as union.lua), applied one after the other in argument
-- order, each judged stale on its own. A union whose every match is already in the identity's cluster (a record of the
-- same group made that link first) is done, not stale.
-- The judged marks (mark-judged.lua) of the same judging go in the same script, so a crash cannot fall between a
-- union and its mark: each identity's mark is written with its union unless that is stale, and the identities the
-- judging left where they were are marked too.
-- ARGV: 1 base, 2 the arguments A below as ONE JSON array of strings (one string instead of hundreds, as in
--       register-search.lua).
-- A: 1 maxClusterSize, 2 m, then m pairs (identity key, SHA-1) judged without a union, then per identity:
--       key, eventId, eventTimeMs (integer string), expected own root ('' = any), expected own size ('0' = any), SHA-1
--       of its stored record to mark judged ('' = none), n, then n groups of five as in union.lua
-- Returns per identity {alreadyApplied 0/1, root, refused, stale 0/1, MergeEntry JSON...}, or {-1} for an identity
-- the graph does not know (erased meanwhile).
local A = cjson.decode(ARGV[2])
local cap = tonumber(A[1])
local m = tonumber(A[2])
for j = 0, m - 1 do
  markJudged(A[3 + 2 * j], A[4 + 2 * j])
end
local replies = {}
local i = 3 + 2 * m
while i <= #A do
  local key, eventId, eventTimeMs, ownRoot, ownSize = A[i], A[i + 1], A[i + 2], A[i + 3], A[i + 4]
  local sha = A[i + 5]
  local n = tonumber(A[i + 6])
  local matches = {}
  for j = 0, n - 1 do
    local at = i + 7 + 5 * j
    matches[#matches + 1] = { key = A[at], confidence = A[at + 1], matchWeight = A[at + 2],
      root = A[at + 3], size = A[at + 4] }
  end
  local reply = unionOne(key, cap, eventId, eventTimeMs, '', '0', ownRoot, ownSize, matches, true) or { -1 }
  if sha ~= '' and reply[1] ~= -1 and tonumber(reply[4]) == 0 then
    markJudged(key, sha)
  end
  replies[#replies + 1] = reply
  i = i + 7 + 5 * n
end
return replies
