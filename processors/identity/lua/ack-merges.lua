-- ack-merges: drops outbox entries once their merge events are produced. ARGV: 1 base, 2.. mergeIds.
-- Returns how many were pending. Acking an unknown or already acked id is a no-op.
local removed = 0
for i = 2, #ARGV do
  removed = removed + redis.call('HDEL', K.outbox, ARGV[i])
  redis.call('ZREM', K.outboxOrder, ARGV[i])
end
return removed
