-- link-snapshot: current root per identity key plus a new graph-wide link version, read atomically. A snapshot taken
-- later always has a higher version and sees every write before it, so links stamped with it order by graph state,
-- not by event time (a merge caused by an older event can move an identity after a link with a newer event time).
-- It also writes the publication log of the round about to be sent (graph-store.ts recordPublications), from the same
-- roots, so the round waits on one round trip for both: each record's id is the one an earlier attempt published it
-- under, else its identity's root now.
-- ARGV: 1 base, 2 the arguments A as ONE JSON array of strings: n, then n identity keys, then per input partition:
--       `<topic>:<partition>`, the batch's field (`first-last`), m, then m triples (offset, 1-based index of the
--       record's identity among the n keys, the id an earlier attempt published it under or '').
-- Returns { version, root1 or '', root2 or '', … } for the n keys.
local A = cjson.decode(ARGV[2])
local n = tonumber(A[1])
local reply = { redis.call('HINCRBY', K.counters, 'link', 1) }
for i = 2, n + 1 do
  reply[#reply + 1] = rootOfKey(A[i], false) or ''
end
local i = n + 2
while i <= #A do
  local tp, field, m = A[i], A[i + 1], tonumber(A[i + 2])
  local pairs = {}
  for j = 0, m - 1 do
    local at = i + 3 + 3 * j
    local id = A[at + 2]
    if id == '' then
      id = reply[1 + tonumber(A[at + 1])]
    end
    if id ~= '' then -- an identity without a root fails the round in the caller; nothing to log for it
      pairs[#pairs + 1] = '[' .. A[at] .. ',' .. cjson.encode(id) .. ']'
    end
  end
  if #pairs > 0 then
    redis.call('HSET', BASE .. ':pub:' .. tp, field, '[' .. table.concat(pairs, ',') .. ']')
  end
  i = i + 3 + 3 * m
end
return reply
