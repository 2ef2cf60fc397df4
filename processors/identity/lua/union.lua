-- union: links an identity's cluster with the clusters of probabilistic matches, atomically. Roots are resolved here,
-- at apply time, so a merge another instance made in between is respected.
-- ARGV: 1 base, 2 identity key, 3 maxClusterSize, 4 eventId, 5 eventTimeMs (integer string), 6 watermark field
--       ('' = none), 7 watermark offset, then triples: match key, confidence, matchWeight (JSON number literals)
-- Returns {alreadyApplied 0/1, root, refused, MergeEntry JSON...}; an error when the identity key is unknown.
local key, cap, eventId, eventTimeMs = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local wmField, wmOffset = ARGV[6], ARGV[7]

local root = rootOfKey(key, true)
if not root then
  return redis.error_reply('IDG_UNKNOWN_KEY union of an unregistered identity: ' .. key)
end
if wmField ~= '' then
  local stored = redis.call('HGET', K.wmUnion, wmField)
  if stored and tonumber(stored) >= tonumber(wmOffset) then
    return { 1, root, 0 }
  end
end

-- One candidate per distinct root; when several matches land in one cluster the most confident one is its evidence.
local byRoot = {}
local candidates = {}
for i = 8, #ARGV - 2, 3 do
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
local reply = { 0, after, refused }
for i = 1, #merges do
  reply[#reply + 1] = merges[i]
end
return reply
