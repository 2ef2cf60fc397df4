-- union-batch: the unions of a group of identities (unionOne, as union.lua), applied one after the other in argument
-- order, each judged stale on its own. A union whose every match is already in the identity's cluster (a record of the
-- same group made that link first) is done, not stale.
-- ARGV: 1 base, 2 maxClusterSize, then per identity: key, eventId, eventTimeMs (integer string), expected own root
--       ('' = any), expected own size ('0' = any), n, then n groups of five as in union.lua
-- Returns per identity {alreadyApplied 0/1, root, refused, stale 0/1, MergeEntry JSON...}, or {-1} for an identity
-- the graph does not know (erased meanwhile).
local cap = tonumber(ARGV[2])
local replies = {}
local i = 3
while i <= #ARGV do
  local key, eventId, eventTimeMs, ownRoot, ownSize = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local n = tonumber(ARGV[i + 5])
  local matches = {}
  for j = 0, n - 1 do
    local at = i + 6 + 5 * j
    matches[#matches + 1] = { key = ARGV[at], confidence = ARGV[at + 1], matchWeight = ARGV[at + 2],
      root = ARGV[at + 3], size = ARGV[at + 4] }
  end
  replies[#replies + 1] = unionOne(key, cap, eventId, eventTimeMs, '', '0', ownRoot, ownSize, matches, true) or { -1 }
  i = i + 6 + 5 * n
end
return replies
