-- candidates (read-only): identity keys sharing at least one blocking key with the record, excluding the identity
-- itself. A block larger than the limit is skipped and counted: a hot key (a common surname, a shared device) would
-- turn scoring quadratic, and its evidence is weak anyway.
-- ARGV: 1 base, 2 excluded identity key, 3 maxBlockSize, 4.. blocking keys
-- Returns {skipped block count, key...} with keys sorted, so callers see a deterministic order.
local exclude, maxBlock = ARGV[2], tonumber(ARGV[3])
local seen = {}
local keys = {}
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
        keys[#keys + 1] = m
      end
    end
  end
end
table.sort(keys)
table.insert(keys, 1, skipped)
return keys
