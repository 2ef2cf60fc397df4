-- register: stores one platform identity's (already merged) record and links it, atomically (registerOne in
-- graph-lib.lua).
-- ARGV: 1 base, 2 identity key, 3 record JSON, 4 emailSha256 ('' = none), 5 phoneSha256 ('' = none), 6 maxClusterSize,
--       7 eventId, 8 eventTimeMs (integer string), 9 watermark field ('' = none), 10 watermark offset, 11.. blocking keys
-- Returns {1, root or ''} when the watermark says the event was already applied (nothing written), else
--         {0, root, isNew 0/1, method, previous root or '', refused, MergeEntry JSON...}.
countWrite()
local blocks = {}
for i = 11, #ARGV do
  blocks[#blocks + 1] = ARGV[i]
end
return registerOne(ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8], ARGV[9], ARGV[10], blocks)
