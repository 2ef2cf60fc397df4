-- Customer features from processors/features/definitions.ts: feat_customer_rfm gains a column for every feature the
-- model reads (FEATURE_NAMES) plus each category's affinity, and the RFM quintile cut points get a table of their own.

-- A row is one computation of the RFM quintile cut points: the 20/40/60/80th percentiles (nearest rank) of recency_days,
-- frequency_90d and monetary_90d_minor over the customers with a purchase in the 90-day window as of as_of_ms
-- (`npm run features -- cutpoints`). Recomputing for the same as_of_ms replaces the row (higher version wins). Features
-- as of a time T use the newest row with as_of_ms <= T, so training never sees cut points from its own future.
CREATE TABLE IF NOT EXISTS feat_rfm_cutpoints
(
    computed_at DateTime('UTC'),
    as_of_ms UInt64,
    recency Array(Float64),
    frequency Array(Float64),
    monetary Array(Float64),
    source String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY as_of_ms;

-- One ALTER rather than one per column: ClickHouse applies the whole list or none of it, so a failed run never leaves
-- half the columns behind (which a re-run, lacking IF NOT EXISTS on 18.16, could not get past). Counts are UInt32,
-- money Int64 minor units, ratios and durations Float64 (-1 where undefined, see finalizeFeatures). affinity_categories
-- and affinity_scores are parallel arrays: the affinity of every category with an interaction in 90 days.
ALTER TABLE feat_customer_rfm ADD COLUMN orders_lifetime UInt32,
    ADD COLUMN monetary_lifetime_minor Int64,
    ADD COLUMN avg_order_value_90d_minor Float64,
    ADD COLUMN lines_per_order_90d Float64,
    ADD COLUMN active_days_90d UInt16,
    ADD COLUMN mean_interpurchase_days Float64,
    ADD COLUMN purchase_cycle_ratio Float64,
    ADD COLUMN returns_share_90d Float64,
    ADD COLUMN top_category_affinity Float64,
    ADD COLUMN categories_90d UInt32,
    ADD COLUMN sessions_30d UInt32,
    ADD COLUMN views_1h UInt32,
    ADD COLUMN views_24h UInt32,
    ADD COLUMN views_7d UInt32,
    ADD COLUMN searches_1h UInt32,
    ADD COLUMN searches_24h UInt32,
    ADD COLUMN searches_7d UInt32,
    ADD COLUMN add_to_carts_1h UInt32,
    ADD COLUMN add_to_carts_24h UInt32,
    ADD COLUMN add_to_carts_7d UInt32,
    ADD COLUMN affinity_categories Array(String),
    ADD COLUMN affinity_scores Array(Float64);
