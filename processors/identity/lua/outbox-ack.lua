-- outbox-ack: drops outbox entries once they are produced. ARGV: 1 base, 2 'merges' / 'rejections', 3.. their ids.
-- Returns how many were pending. Acking an unknown or already acked id is a no-op.
local entries, order = K.outbox, K.outboxOrder
if ARGV[2] == 'rejections' then
  entries, order = K.rejects, K.rejectsOrder
end
local removed = 0
for i = 3, #ARGV do
  removed = removed + redis.call('HDEL', entries, ARGV[i])
  redis.call('ZREM', order, ARGV[i])
end
return removed
