-- cluster-candidates (read-only): the clusters a changed identity might join, judged whole by the resolver: the roots
-- of the candidates of its blocking keys (as candidates.lua finds them), each with its size and the stored records of
-- up to maxMembers of its members (sorted by key), and the identity's own cluster first.
-- ARGV: 1 base, 2 identity key, 3 maxBlockSize, 4 maxMembers, 5.. blocking keys
-- Returns { skippedBlocks, own root or '', then per cluster: root, size, n, key1, record1, ..., keyn, recordn }.
local key, maxMembers = ARGV[2], tonumber(ARGV[4])
local keys, skipped = collectCandidates(key, tonumber(ARGV[3]), 5)
local own = rootOfKey(key, false)
local seen, order = {}, {}
if own then
  seen[own] = true
  order[1] = own
end
for i = 1, #keys do
  local root = rootOfKey(keys[i], false)
  if root and not seen[root] then
    seen[root] = true
    order[#order + 1] = root
  end
end
local reply = { skipped, own or '' }
for i = 1, #order do
  local root = order[i]
  local members = redis.call('SMEMBERS', memKey(root))
  table.sort(members)
  local n = math.min(#members, maxMembers)
  reply[#reply + 1] = root
  reply[#reply + 1] = #members
  reply[#reply + 1] = n
  for j = 1, n do
    reply[#reply + 1] = members[j]
    reply[#reply + 1] = redis.call('HGET', K.rec, members[j]) or ''
  end
end
return reply
