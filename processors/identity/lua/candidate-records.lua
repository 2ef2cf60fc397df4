-- candidate-records (read-only): the candidates of candidates.lua together with each one's stored record and current
-- root, so the resolver scores them after one round trip instead of two.
-- ARGV: 1 base, 2 excluded identity key, 3 maxBlockSize, 4.. blocking keys
-- Returns { skippedBlocks, key1, record1, root1, key2, … }.
local keys, skipped = collectCandidates(ARGV[2], tonumber(ARGV[3]), 4)
local reply = { skipped }
for i = 1, #keys do
  reply[#reply + 1] = keys[i]
  reply[#reply + 1] = redis.call('HGET', K.rec, keys[i]) or ''
  reply[#reply + 1] = rootOfKey(keys[i], false) or ''
end
return reply
