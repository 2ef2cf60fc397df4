-- An identity's links are ordered by the graph-wide link version the resolver stamps on them (a later graph state has
-- a higher version), then by valid_from_ms: a merge caused by an older event can move an identity after a link with a
-- newer event time, so event time alone can name a stale mapping. Rows written before this column read as version 0.
ALTER TABLE dim_customer_identity ADD COLUMN link_version UInt64 DEFAULT 0;

DROP TABLE IF EXISTS v_customer_identity_current;

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
    cur_source_event_id AS source_event_id,
    cur_link_version AS link_version
FROM
(
    SELECT
        identity_id,
        argMax(global_customer_id, (link_version, valid_from_ms, source_event_id)) AS cur_global_customer_id,
        argMax(platform_id, (link_version, valid_from_ms, source_event_id)) AS cur_platform_id,
        argMax(platform_customer_id, (link_version, valid_from_ms, source_event_id)) AS cur_platform_customer_id,
        argMax(mapping_method, (link_version, valid_from_ms, source_event_id)) AS cur_mapping_method,
        argMax(mapping_confidence, (link_version, valid_from_ms, source_event_id)) AS cur_mapping_confidence,
        argMax(match_weight, (link_version, valid_from_ms, source_event_id)) AS cur_match_weight,
        argMax(valid_from, (link_version, valid_from_ms, source_event_id)) AS cur_valid_from,
        argMax(valid_from_ms, (link_version, valid_from_ms, source_event_id)) AS cur_valid_from_ms,
        argMax(source_event_id, (link_version, valid_from_ms, source_event_id)) AS cur_source_event_id,
        max(link_version) AS cur_link_version
    FROM dim_customer_identity
    GROUP BY identity_id
);
