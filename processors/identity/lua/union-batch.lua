-- union-batch: the unions of a group of identities (unionOne, as union.lua), applied one after the other in argument
-- order, each judged stale on its own. A union whose every match is already in the identity's cluster (a record of the
-- same group made that link first) is done, not stale.
-- The judged marks (mark-judged.lua) of the same judging go in the same script, so a crash cannot fall between a
-- union and its mark: each identity's mark is written with its union unless that is stale, and the identities the
-- judging left where they were are marked too.
-- ARGV: 1 base, 2 maxClusterSize, 3 m, then m pairs (identity key, SHA-1) judged without a union, then per identity:
--       key, eventId, eventTimeMs (integer string), expected own root ('' = any), expected own size ('0' = any), SHA-1
--       of its stored record to mark judged ('' = none), n, then n groups of five as in union.lua
-- Returns per identity {alreadyApplied 0/1, root, refused, stale 0/1, MergeEntry JSON...}, or {-1} for an identity
-- the graph does not know (erased meanwhile).
local cap = tonumber(ARGV[2])
local m = tonumber(ARGV[3])
for j = 0, m - 1 do
  markJudged(ARGV[4 + 2 * j], ARGV[5 + 2 * j])
end
local replies = {}
local i = 4 + 2 * m
while i <= #ARGV do
  local key, eventId, eventTimeMs, ownRoot, ownSize = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local sha = ARGV[i + 5]
  local n = tonumber(ARGV[i + 6])
  local matches = {}
  for j = 0, n - 1 do
    local at = i + 7 + 5 * j
    matches[#matches + 1] = { key = ARGV[at], confidence = ARGV[at + 1], matchWeight = ARGV[at + 2],
      root = ARGV[at + 3], size = ARGV[at + 4] }
  end
  local reply = unionOne(key, cap, eventId, eventTimeMs, '', '0', ownRoot, ownSize, matches, true) or { -1 }
  if sha ~= '' and reply[1] ~= -1 and tonumber(reply[4]) == 0 then
    markJudged(key, sha)
  end
  replies[#replies + 1] = reply
  i = i + 7 + 5 * n
end
return replies
