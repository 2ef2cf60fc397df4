-- link-snapshot: current root per identity key plus a new graph-wide link version, read atomically. A snapshot taken
-- later always has a higher version and sees every write before it, so links stamped with it order by graph state,
-- not by event time (a merge caused by an older event can move an identity after a link with a newer event time).
-- ARGV: 1 base, 2.. identity keys. Returns { version, root1 or '', root2 or '', … }.
local reply = { redis.call('HINCRBY', K.counters, 'link', 1) }
for i = 2, #ARGV do
  reply[#reply + 1] = rootOfKey(ARGV[i], false) or ''
end
return reply
