-- pii-format: how this graph keeps personal data (pii-codec.ts), marked on the first use of an empty graph.
-- ARGV: 1 base, 2 format of this version ('s1'), 3 key id of this process's IDENTITY_PII_KEY
-- Returns {format or '', key id or '', 1 when this call marked the graph else 0}. Format '' means a graph written
-- before sealing: plain-JSON records and plain blocking set names, which this version must not mix with its own.
local meta = BASE .. ':meta'
local format = redis.call('HGET', meta, 'pii-format')
if format then
  return { format, redis.call('HGET', meta, 'pii-key-id') or '', 0 }
end
if redis.call('HLEN', K.rec) > 0 or redis.call('HEXISTS', K.counters, 'cluster') == 1 then
  return { '', '', 0 }
end
redis.call('HSET', meta, 'pii-format', ARGV[2], 'pii-key-id', ARGV[3])
return { ARGV[2], ARGV[3], 1 }
