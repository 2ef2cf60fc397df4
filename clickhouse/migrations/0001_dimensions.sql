-- Dimensions of the star schema. Every migration runs unchanged on ClickHouse 18.16 and current releases: plain String
-- (no LowCardinality), no TTL, no data-skipping indexes, no DateTime64. Statements are idempotent (IF NOT EXISTS) since
-- ClickHouse DDL is not transactional and a half-applied file is re-run from its start. Tables are created unqualified,
-- in the database of the connection that runs the migration. Applied files are immutable: add a new file instead.
-- Every dimension is a ReplacingMergeTree(version): the row with the highest version wins at merge time, so read with
-- FINAL (or argMax(col, version)) when exact values matter. Times are DateTime('UTC') in seconds.

-- A row is one platform (web shop, app, marketplace) that produces events; version = event time (ms) that described it.
CREATE TABLE IF NOT EXISTS dim_platform
(
    platform_id String,
    display_name String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY platform_id;

-- A row is one product category; parent_id is '' for a top-level category.
CREATE TABLE IF NOT EXISTS dim_category
(
    category_id String,
    name String,
    parent_id String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY category_id;

-- A row is one product of one platform as last described by an event; version = event time (ms) of the newest event
-- that described it, so a replay produces the same winner.
CREATE TABLE IF NOT EXISTS dim_product
(
    platform_id String,
    product_id String,
    product_name String,
    category_id String,
    brand String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (platform_id, product_id);

-- A row is one global customer (a resolved person across platforms). merged_into is '' while the id is active and the
-- survivor's id once an identity merge retired it.
CREATE TABLE IF NOT EXISTS dim_customer
(
    global_customer_id String,
    first_seen DateTime('UTC'),
    last_seen DateTime('UTC'),
    total_platforms_used UInt16,
    identity_count UInt32,
    merged_into String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY global_customer_id;
