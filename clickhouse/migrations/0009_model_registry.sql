-- The model registry of training/ (npm run train): every trained model version and its promotion status. The files
-- live under MODEL_DIR (default models/): <version>/model.onnx, feature-manifest.json, model-card.md; the scorer
-- follows MODEL_DIR/current. models/registry.json mirrors this table.
--
-- A row is one state of one model version. A status change (candidate -> current, current -> retired) inserts the
-- whole row again with a higher updated_ms, which replaces the older state at merge time; read with FINAL (or
-- argMax(…, updated_ms) per version). status is 'current' (what the scorer serves; at most one), 'candidate' (trained
-- and registered, not promoted: reason says why) or 'retired' (was current, replaced). Metrics are the model's on its
-- own test split: the newest reference period of its training data, described by test_from_ms / test_to_ms (reference
-- times, inclusive) and eval_period. baseline_* is the model it was gated against on that same split ('' and 0 when
-- there was none).
CREATE TABLE IF NOT EXISTS model_registry
(
    version String,
    status String,
    created_at DateTime('UTC'),
    algorithm String,
    roc_auc Float64,
    pr_auc Float64,
    test_rows UInt64,
    test_positive_rate Float64,
    test_from_ms UInt64,
    test_to_ms UInt64,
    eval_period String,
    train_from_ms UInt64,
    train_to_ms UInt64,
    training_rows UInt64,
    horizon_days Float64,
    feature_count UInt16,
    baseline_version String,
    baseline_roc_auc Float64,
    baseline_pr_auc Float64,
    reason String,
    manifest_path String,
    model_sha256 String,
    updated_ms UInt64
)
ENGINE = ReplacingMergeTree(updated_ms)
ORDER BY version;
