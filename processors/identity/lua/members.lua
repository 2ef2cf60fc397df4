-- members (read-only): the root of a global id and the identity keys of that root's cluster, from one snapshot.
-- ARGV: 1 base, 2 global id. Returns {root or '', member...} (members sorted).
local root = findRoot(ARGV[2], false)
if not root then
  return { '' }
end
local members = redis.call('SMEMBERS', memKey(root))
table.sort(members)
table.insert(members, 1, root)
return members
