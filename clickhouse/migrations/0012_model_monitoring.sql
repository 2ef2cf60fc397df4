-- A row is how one model version's live scores turned out on one day (npm run monitor): the score each active
-- customer held at 00:00 UTC of `day` (from features before that instant) against "a purchase in [day, day + 7 days)".
-- calibration is JSON: per decile of purchase_probability_7d, [mean predicted, observed rate, customers]. A re-run
-- of the same day and version replaces its row (the highest computed_at_ms wins).
CREATE TABLE IF NOT EXISTS model_monitoring
(
    day Date,
    model_version String,
    customers UInt32,
    positives UInt32,
    roc_auc Float64,
    pr_auc Float64,
    precision_at_0_4 Float64,
    recall_at_0_4 Float64,
    precision_at_0_7 Float64,
    recall_at_0_7 Float64,
    calibration String,
    computed_at_ms UInt64
)
ENGINE = ReplacingMergeTree(computed_at_ms)
PARTITION BY toYYYYMM(day)
ORDER BY (model_version, day);
