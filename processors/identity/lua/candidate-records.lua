-- Read-only: the candidates of candidates.lua together with each one's stored record and current root, so the resolver
-- scores them after one round trip instead of two. ARGV[2] = identity to exclude, ARGV[3] = max block size,
-- ARGV[4..] = blocking keys. Reply: { skippedBlocks, key1, record1, root1, key2, … }.
local exclude, maxBlock = ARGV[2], tonumber(ARGV[3])
local seen = {}
local reply = { 0 }
local skipped = 0
for i = 4, #ARGV do
  local block = BASE .. ':blk:' .. ARGV[i]
  if redis.call('SCARD', block) > maxBlock then
    skipped = skipped + 1
  else
    local members = redis.call('SMEMBERS', block)
    for j = 1, #members do
      local m = members[j]
      if m ~= exclude and not seen[m] then
        seen[m] = true
        reply[#reply + 1] = m
        reply[#reply + 1] = redis.call('HGET', K.rec, m) or ''
        reply[#reply + 1] = rootOfKey(m, false) or ''
      end
    end
  end
end
reply[1] = skipped
return reply
