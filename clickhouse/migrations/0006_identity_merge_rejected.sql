-- A row is a link the identity resolver refused although the match probability reached the threshold: reason CONFLICT
-- (contradicting strong evidence, e.g. different hashed emails and birth dates) or CLUSTER_CAP (the merged customer
-- would exceed IDENTITY_MAX_CLUSTER_SIZE identities). For auditing over-merging guards and tuning; nothing downstream
-- applies these. Re-delivered decisions collapse on event_id.
CREATE TABLE IF NOT EXISTS identity_merge_rejected
(
    event_id String,
    identity_id String,
    global_customer_id String,
    candidate_identity_id String,
    candidate_global_customer_id String,
    reason String,
    match_probability Float64,
    match_weight Float64,
    event_time DateTime('UTC'),
    event_date Date DEFAULT toDate(event_time),
    source_event_id String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_date)
ORDER BY (reason, event_date, event_id);
