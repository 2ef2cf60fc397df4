-- pending-merges (read-only): the oldest un-acked outbox entries, in the order the merges happened.
-- ARGV: 1 base, 2 limit. Returns MergeEntry JSON strings.
local ids = redis.call('ZRANGE', K.outboxOrder, 0, tonumber(ARGV[2]) - 1)
local reply = {}
for i = 1, #ids do
  -- one HGET per id rather than HMGET with unpack(): unpack is bounded by the Lua C stack (about 8000 values)
  local json = redis.call('HGET', K.outbox, ids[i])
  if json then
    reply[#reply + 1] = json
  end
end
return reply
