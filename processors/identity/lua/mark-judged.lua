-- mark-judged: an identity's record was judged against the clusters it could join (cluster-link.ts), as it is stored
-- now. A later search of the same stored record (a batch repeated after a crash, an unchanged identity read back after
-- a restart) then knows it was judged, and clusters do not depend on where batches and restarts fell.
-- ARGV: 1 base, then pairs (identity key, SHA-1 of the stored record that was judged, as register-search.lua returned
--       it). A record re-registered meanwhile (another SHA-1) is not marked: its new version still needs judging.
-- Returns how many identities were marked.
countWrite()
local marked = 0
for i = 2, #ARGV - 1, 2 do
  marked = marked + markJudged(ARGV[i], ARGV[i + 1])
end
return marked
