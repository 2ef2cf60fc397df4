-- picture-write: one part's writes from a resolver's in-process picture of the graph (graph-picture.ts), applied only
-- when no other script wrote the graph since the picture was exact (countWrite's count is still the one it holds):
-- the picture then moved exactly as the scripts would have moved the graph (graph-model.ts, proven on random
-- sequences), and its final values are what those scripts would have written. Otherwise nothing is written and the
-- caller runs the part through the scripts that check the graph as it is.
-- ARGV: 1 base, 2 ONE JSON array A of strings: 1 the write count the picture is at, 2 the count to leave (a random
--       number the caller draws: a graph restored from an older state, or one that lost this write and was written
--       by others since, cannot show the count the picture expects next by chance), then commands, each: op, target,
--       n, then n strings:
--         'H' HSET into K[target] n/2 field-value pairs; 'D' HDEL from K[target] n fields;
--         'S' SADD to BASE:target n members; 'X' DEL BASE:target (n = 0), before its 'S' when it is written whole;
--         'O' n/2 (mergeId, MergeEntry JSON) pairs into the merge outbox, each ordered by the next merge sequence;
--         'R' n/2 (eventId, IdentityMergeRejection JSON) pairs into the rejection outbox, unless already there
--       (target '' for 'O' and 'R'). Every command is checked before anything is written.
-- Returns { 1, A[2] } when written, { 0, the write count found } when not.
local A = cjson.decode(ARGV[2])
local found = redis.call('HGET', K.counters, 'writes') or '0'
if found ~= A[1] then
  return { 0, found }
end
local SET_KINDS = { mem = true, blk = true, email = true, phone = true }
local commands = {}
local i = 3
while i <= #A do
  local op, target, n = A[i], A[i + 1], tonumber(A[i + 2])
  if not n or n < 0 or i + 2 + n > #A then
    return redis.error_reply('IDG_BAD_WRITE command at ' .. i .. ' runs past the arguments')
  end
  if op == 'H' or op == 'D' then
    if not K[target] or (op == 'H' and n % 2 == 1) then
      return redis.error_reply('IDG_BAD_WRITE ' .. op .. ' on ' .. tostring(target))
    end
  elseif op == 'S' or op == 'X' then
    if not SET_KINDS[string.match(target, '^(%a+):.')] then
      return redis.error_reply('IDG_BAD_WRITE ' .. op .. ' on ' .. tostring(target))
    end
  elseif op == 'O' or op == 'R' then
    if n % 2 == 1 then
      return redis.error_reply('IDG_BAD_WRITE ' .. op .. ' with an odd count')
    end
  else
    return redis.error_reply('IDG_BAD_WRITE unknown command ' .. tostring(op))
  end
  commands[#commands + 1] = { op = op, target = target, from = i + 3, to = i + 2 + n }
  i = i + 3 + n
end

for _, c in ipairs(commands) do
  if c.op == 'H' or c.op == 'D' then
    local command = c.op == 'H' and 'HSET' or 'HDEL'
    for s = c.from, c.to, 2000 do
      redis.call(command, K[c.target], unpack(A, s, math.min(c.to, s + 1999)))
    end
  elseif c.op == 'S' then
    for s = c.from, c.to, 2000 do
      redis.call('SADD', BASE .. ':' .. c.target, unpack(A, s, math.min(c.to, s + 1999)))
    end
  elseif c.op == 'X' then
    redis.call('DEL', BASE .. ':' .. c.target)
  elseif c.op == 'O' then
    for s = c.from, c.to, 2 do
      redis.call('HSET', K.outbox, A[s], A[s + 1])
      redis.call('ZADD', K.outboxOrder, redis.call('HINCRBY', K.counters, 'merge', 1), A[s])
    end
  else
    for s = c.from, c.to, 2 do
      if redis.call('HSETNX', K.rejects, A[s], A[s + 1]) == 1 then
        redis.call('ZADD', K.rejectsOrder, redis.call('HINCRBY', K.counters, 'merge', 1), A[s])
      end
    end
  end
end
redis.call('HSET', K.counters, 'writes', A[2])
return { 1, A[2] }
