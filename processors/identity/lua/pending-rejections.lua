-- pending-rejections (read-only): the oldest un-acked merge rejections, in the order they were judged.
-- ARGV: 1 base, 2 limit. Returns IdentityMergeRejection JSON strings.
local ids = redis.call('ZRANGE', K.rejectsOrder, 0, tonumber(ARGV[2]) - 1)
local reply = {}
for i = 1, #ids do
  local json = redis.call('HGET', K.rejects, ids[i])
  if json then
    reply[#reply + 1] = json
  end
end
return reply
