-- union: links an identity's cluster with the clusters of probabilistic matches, atomically (unionOne in
-- graph-lib.lua). Roots are resolved here, at apply time, so a merge another instance made in between is respected.
-- ARGV: 1 base, 2 identity key, 3 maxClusterSize, 4 eventId, 5 eventTimeMs (integer string), 6 watermark field
--       ('' = none), 7 watermark offset, 8 expected own root ('' = any), 9 expected own size ('0' = any), then groups
--       of five: match key, confidence, matchWeight (JSON number literals), expected root of the match ('' = any),
--       expected size of that root ('0' = any)
-- Returns {alreadyApplied 0/1, root, refused, stale 0/1, MergeEntry JSON...}; an error when the identity key is unknown.
-- Stale: a cluster the caller judged changed since (another root, another size); then nothing is written and the
-- caller judges again against what the clusters are now, so no record joins a cluster it was not compared with.
countWrite()
local matches = {}
for i = 10, #ARGV - 4, 5 do
  matches[#matches + 1] = { key = ARGV[i], confidence = ARGV[i + 1], matchWeight = ARGV[i + 2], root = ARGV[i + 3],
    size = ARGV[i + 4] }
end
local reply = unionOne(ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], matches, false)
if not reply then
  return redis.error_reply('IDG_UNKNOWN_KEY union of an unregistered identity: ' .. ARGV[2])
end
return reply
