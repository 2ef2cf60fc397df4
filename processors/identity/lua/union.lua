-- union: links an identity's cluster with the clusters of probabilistic matches, atomically. Roots are resolved here,
-- at apply time, so a merge another instance made in between is respected.
-- ARGV: 1 base, 2 identity key, 3 maxClusterSize, 4 eventId, 5 eventTimeMs (integer string), 6 watermark field
--       ('' = none), 7 watermark offset, 8 expected own root ('' = any), 9 expected own size ('0' = any), then groups
--       of five: match key, confidence, matchWeight (JSON number literals), expected root of the match ('' = any),
--       expected size of that root ('0' = any)
-- Returns {alreadyApplied 0/1, root, refused, stale 0/1, MergeEntry JSON...}; an error when the identity key is unknown.
-- Stale: a cluster the caller judged changed since (another root, another size); then nothing is written and the
-- caller judges again against what the clusters are now, so no record joins a cluster it was not compared with.
local key, cap, eventId, eventTimeMs = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local wmField, wmOffset = ARGV[6], ARGV[7]

local root = rootOfKey(key, true)
if not root then
  return redis.error_reply('IDG_UNKNOWN_KEY union of an unregistered identity: ' .. key)
end
if wmField ~= '' then
  local stored = redis.call('HGET', K.wmUnion, wmField)
  if stored and tonumber(stored) >= tonumber(wmOffset) then
    return { 1, root, 0, 0 }
  end
end

local function changed(actualRoot, expectedRoot, expectedSize)
  if expectedRoot == '' then
    return false
  end
  if actualRoot ~= expectedRoot then
    return true
  end
  return expectedSize ~= '0' and redis.call('SCARD', memKey(actualRoot)) ~= tonumber(expectedSize)
end
if changed(root, ARGV[8], ARGV[9]) then
  return { 0, root, 0, 1 }
end
for i = 10, #ARGV - 4, 5 do
  if changed(rootOfKey(ARGV[i], false), ARGV[i + 3], ARGV[i + 4]) then
    return { 0, root, 0, 1 }
  end
end

-- One candidate per distinct root; when several matches land in one cluster the most confident one is its evidence.
local byRoot = {}
local candidates = {}
for i = 10, #ARGV - 4, 5 do
  local matchRoot = rootOfKey(ARGV[i], true)
  if matchRoot and matchRoot ~= root then
    local confidence = ARGV[i + 1]
    local c = byRoot[matchRoot]
    if not c then
      c = { id = matchRoot, seq = seqOf(matchRoot), method = 'PROBABILISTIC', confidence = confidence,
        matchWeight = ARGV[i + 2] }
      byRoot[matchRoot] = c
      candidates[#candidates + 1] = c
    elseif tonumber(confidence) > tonumber(c.confidence) then
      c.confidence, c.matchWeight = confidence, ARGV[i + 2]
    end
  end
end

local after, _, merges, refused = growCluster(root, candidates, cap, eventId, eventTimeMs)
if wmField ~= '' then
  redis.call('HSET', K.wmUnion, wmField, wmOffset)
end
local reply = { 0, after, refused, 0 }
for i = 1, #merges do
  reply[#reply + 1] = merges[i]
end
return reply
