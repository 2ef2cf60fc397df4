-- register: stores one platform identity's (already merged) record and links it, atomically.
-- ARGV: 1 base, 2 identity key, 3 record JSON, 4 emailSha256 ('' = none), 5 phoneSha256 ('' = none), 6 maxClusterSize,
--       7 eventId, 8 eventTimeMs (integer string), 9 watermark field ('' = none), 10 watermark offset, 11.. blocking keys
-- Returns {1, root or ''} when the watermark says the event was already applied (nothing written), else
--         {0, root, isNew 0/1, method, previous root or '', refused, MergeEntry JSON...}.
local key, recordJson, email, phone = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local cap, eventId, eventTimeMs = tonumber(ARGV[6]), ARGV[7], ARGV[8]
local wmField, wmOffset = ARGV[9], ARGV[10]

if wmField ~= '' then
  local stored = redis.call('HGET', K.wmRegister, wmField)
  if stored and tonumber(stored) >= tonumber(wmOffset) then
    return { 1, rootOfKey(key, true) or '' }
  end
end

local previous = rootOfKey(key, true)

-- Every cluster holding an identity with the same exact hash, email evidence first (it names the method when a cluster
-- shares both). The identity's own cluster is not a candidate.
local byRoot = {}
local candidates = {}
local function collect(indexKey, method)
  local keys = redis.call('SMEMBERS', indexKey)
  for i = 1, #keys do
    if keys[i] ~= key then
      local root = rootOfKey(keys[i], true)
      if root and root ~= previous and not byRoot[root] then
        local c = { id = root, seq = seqOf(root), method = method, confidence = '1', matchWeight = 'null' }
        byRoot[root] = c
        candidates[#candidates + 1] = c
      end
    end
  end
end
if email ~= '' then
  collect(BASE .. ':email:' .. email, 'EMAIL_HASH')
end
if phone ~= '' then
  collect(BASE .. ':phone:' .. phone, 'PHONE_HASH')
end

local root, joined, merges, refused = growCluster(previous, candidates, cap, eventId, eventTimeMs)
local isNew, method = 0, 'PLATFORM_ID'
if not previous then
  if joined then
    method = joined.method
  else
    root = newCluster()
    isNew, method = 1, 'NEW'
  end
  redis.call('HSET', K.idc, key, root)
  redis.call('SADD', memKey(root), key)
end

redis.call('HSET', K.rec, key, recordJson)
if email ~= '' then
  redis.call('SADD', BASE .. ':email:' .. email, key)
end
if phone ~= '' then
  redis.call('SADD', BASE .. ':phone:' .. phone, key)
end
for i = 11, #ARGV do
  redis.call('SADD', BASE .. ':blk:' .. ARGV[i], key)
end
if wmField ~= '' then
  redis.call('HSET', K.wmRegister, wmField, wmOffset)
end

local reply = { 0, root, isNew, method, previous or '', refused }
for i = 1, #merges do
  reply[#reply + 1] = merges[i]
end
return reply
