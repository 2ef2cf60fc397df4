-- outbox-pending (read-only): the oldest un-acked entries of one outbox, in the order they were written: merges
-- (MergeEntry JSON, B:outbox) or merge rejections (IdentityMergeRejection JSON, B:rejects).
-- ARGV: 1 base, 2 'merges' / 'rejections', 3 limit. Returns the JSON strings.
local entries, order = K.outbox, K.outboxOrder
if ARGV[2] == 'rejections' then
  entries, order = K.rejects, K.rejectsOrder
end
local ids = redis.call('ZRANGE', order, 0, tonumber(ARGV[3]) - 1)
local reply = {}
for i = 1, #ids do
  -- one HGET per id rather than HMGET with unpack(): unpack is bounded by the Lua C stack (about 8000 values)
  local json = redis.call('HGET', entries, ids[i])
  if json then
    reply[#reply + 1] = json
  end
end
return reply
