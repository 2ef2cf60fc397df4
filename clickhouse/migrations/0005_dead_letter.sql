-- Operations.

-- A row is one Kafka record a processor could not read or accept, with the reason, located by topic/partition/offset
-- (its identity: a record re-dead-lettered after a replay replaces itself). original_value_base64 holds the exact
-- bytes read, wire-format header included, so the record can be re-published after a fix.
CREATE TABLE IF NOT EXISTS dead_letter
(
    event_id String,
    processor String,
    source_topic String,
    source_partition UInt32,
    source_offset UInt64,
    error_code String,
    reason String,
    failed_at DateTime('UTC'),
    original_key String,
    original_value_base64 String
)
ENGINE = ReplacingMergeTree
ORDER BY (source_topic, source_partition, source_offset, processor);
