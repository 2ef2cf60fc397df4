-- Identity resolution history: platform identity → global customer links (SCD2) and customer merges.

-- A row is one version of the link of a platform identity ('<platform>:<platform_customer_id>') to a global customer,
-- valid from valid_from_ms until the identity's next row. mapping_method is NEW | PLATFORM_ID | EMAIL_HASH | PHONE_HASH
-- | PROBABILISTIC | MERGE. A re-delivered link has the same (identity_id, valid_from_ms) and replaces itself.
-- The current mapping of an identity is argMax(global_customer_id, valid_from_ms): see v_customer_identity_current.
CREATE TABLE IF NOT EXISTS dim_customer_identity
(
    identity_id String,
    global_customer_id String,
    platform_id String,
    platform_customer_id String,
    mapping_method String,
    mapping_confidence Float64,
    match_weight Float64,
    valid_from DateTime('UTC'),
    valid_from_ms UInt64,
    source_event_id String
)
ENGINE = ReplacingMergeTree(valid_from_ms)
ORDER BY (identity_id, valid_from_ms);

-- A row is the current link of one platform identity: its newest SCD2 row. Two links of one identity in the same
-- millisecond are ordered by source_event_id so the answer does not depend on merge state. Inner aliases differ from
-- the column names so no aggregate refers to another one.
CREATE VIEW IF NOT EXISTS v_customer_identity_current AS
SELECT
    identity_id,
    cur_global_customer_id AS global_customer_id,
    cur_platform_id AS platform_id,
    cur_platform_customer_id AS platform_customer_id,
    cur_mapping_method AS mapping_method,
    cur_mapping_confidence AS mapping_confidence,
    cur_match_weight AS match_weight,
    cur_valid_from AS valid_from,
    cur_valid_from_ms AS valid_from_ms,
    cur_source_event_id AS source_event_id
FROM
(
    SELECT
        identity_id,
        argMax(global_customer_id, (valid_from_ms, source_event_id)) AS cur_global_customer_id,
        argMax(platform_id, (valid_from_ms, source_event_id)) AS cur_platform_id,
        argMax(platform_customer_id, (valid_from_ms, source_event_id)) AS cur_platform_customer_id,
        argMax(mapping_method, (valid_from_ms, source_event_id)) AS cur_mapping_method,
        argMax(mapping_confidence, (valid_from_ms, source_event_id)) AS cur_mapping_confidence,
        argMax(match_weight, (valid_from_ms, source_event_id)) AS cur_match_weight,
        argMax(valid_from, (valid_from_ms, source_event_id)) AS cur_valid_from,
        max(valid_from_ms) AS cur_valid_from_ms,
        argMax(source_event_id, (valid_from_ms, source_event_id)) AS cur_source_event_id
    FROM dim_customer_identity
    GROUP BY identity_id
);

-- A row is one merge of two global customers into one person: merged_id is retired, its identities and state move to
-- survivor_id. Keyed by the merge event's id, so a re-delivered merge replaces itself.
CREATE TABLE IF NOT EXISTS identity_merge
(
    event_id String,
    survivor_id String,
    merged_id String,
    method String,
    confidence Float64,
    event_time DateTime('UTC'),
    event_time_ms UInt64,
    source_event_id String
)
ENGINE = ReplacingMergeTree
ORDER BY (survivor_id, event_id);
