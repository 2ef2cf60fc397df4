-- ack-rejections: drops rejections once they are produced. ARGV: 1 base, 2.. eventIds. Returns how many were pending.
local removed = 0
for i = 2, #ARGV do
  removed = removed + redis.call('HDEL', K.rejects, ARGV[i])
  redis.call('ZREM', K.rejectsOrder, ARGV[i])
end
return removed
