-- A row is one ad decision of the prediction API (POST /ad-decision): the creative chosen for a global customer, the
-- score and model it was chosen from, and the experiment variant if any. These are the exposures A/B experiments
-- count. A re-delivered decision has the same key and replaces itself.
CREATE TABLE IF NOT EXISTS fact_ad_decision
(
    decision_id String,
    global_customer_id String,
    requested_id String,
    decided_at DateTime('UTC'),
    decided_at_ms UInt64,
    decided_date Date DEFAULT toDate(decided_at),
    ad_type String,
    creative_id String,
    category String,
    placement String,
    intent_score Float64,
    intent_level String,
    predicted_category String,
    model_version String,
    score_source String,
    experiment String,
    variant String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(decided_date)
ORDER BY (global_customer_id, decided_at_ms, decision_id);
