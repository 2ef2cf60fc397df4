-- Model outputs and point-in-time features, for analysts and for training.

-- A row is one purchase-intent score of a global customer by one model version, computed from features as of
-- feature_time_ms. A re-delivered score has the same key and replaces itself. intent_level is HIGH (>= 0.7),
-- MEDIUM (>= 0.4) or LOW; the latest score of a customer is argMax(…, feature_time_ms).
CREATE TABLE IF NOT EXISTS intent_score
(
    global_customer_id String,
    intent_score Float64,
    intent_level String,
    predicted_category String,
    purchase_probability_7d Float64,
    model_version String,
    feature_time DateTime('UTC'),
    feature_time_ms UInt64,
    scored_at DateTime('UTC'),
    event_id String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(feature_time)
ORDER BY (global_customer_id, feature_time_ms, model_version);

-- A row is the RFM and behaviour features of one global customer as of the end of snapshot_date (UTC);
-- feature_time_ms is the event time of the newest event they reflect. Recomputing a snapshot replaces it (higher
-- version wins). Scores are 1..5 quintiles; rfm_score = 100 r + 10 f + m.
CREATE TABLE IF NOT EXISTS feat_customer_rfm
(
    snapshot_date Date,
    global_customer_id String,
    recency_days Float64,
    frequency_7d UInt32,
    frequency_30d UInt32,
    frequency_90d UInt32,
    monetary_7d_minor Int64,
    monetary_30d_minor Int64,
    monetary_90d_minor Int64,
    days_since_first_purchase Float64,
    lifetime_days Float64,
    r_score UInt8,
    f_score UInt8,
    m_score UInt8,
    rfm_score UInt16,
    top_category String,
    cart_abandonment_rate Float64,
    search_to_purchase_ratio Float64,
    preferred_hour UInt8,
    avg_session_duration_s Float64,
    feature_time_ms UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(snapshot_date)
ORDER BY (snapshot_date, global_customer_id);
