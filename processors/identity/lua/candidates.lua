-- candidates (read-only): identity keys sharing at least one blocking key with the record, excluding the identity
-- itself. A block larger than the limit is skipped and counted (see collectCandidates in graph-lib.lua).
-- ARGV: 1 base, 2 excluded identity key, 3 maxBlockSize, 4.. blocking keys
-- Returns {skipped block count, key...} with keys sorted, so callers see a deterministic order.
local keys, skipped = collectCandidates(ARGV[2], tonumber(ARGV[3]), 4)
table.sort(keys)
table.insert(keys, 1, skipped)
return keys
