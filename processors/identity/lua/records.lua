-- records (read-only): stored record JSON and current root per identity key, in one consistent snapshot.
-- ARGV: 1 base, 2.. identity keys. Returns {record JSON or '', root or ''} pairs in argument order.
local reply = {}
for i = 2, #ARGV do
  reply[#reply + 1] = redis.call('HGET', K.rec, ARGV[i]) or ''
  reply[#reply + 1] = rootOfKey(ARGV[i], false) or ''
end
return reply
