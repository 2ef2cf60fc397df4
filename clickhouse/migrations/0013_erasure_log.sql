-- Erasure log: one row per erasure request, without personal data (a keyed digest of the request, times, counts)
CREATE TABLE IF NOT EXISTS erasure_log
(
    erasure_id String,
    request_digest String,
    subject_kind String,
    requested_at DateTime('UTC'),
    requested_at_ms UInt64,
    finished_at_ms UInt64,
    status String,
    counts_json String
)
ENGINE = MergeTree
ORDER BY (requested_at, erasure_id);
