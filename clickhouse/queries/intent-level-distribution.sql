-- Active customers per intent level of their latest score (argMax on feature_time_ms)
-- Ties on feature_time_ms (two model versions scoring the same features) go to the later scored_at, then model_version.
SELECT
    latest_level AS intent_level,
    count() AS customers
FROM
(
    SELECT
        global_customer_id,
        argMax(intent_level, (feature_time_ms, scored_at, model_version)) AS latest_level
    FROM intent_score
    WHERE global_customer_id NOT IN (SELECT global_customer_id FROM dim_customer FINAL WHERE merged_into != '')
    GROUP BY global_customer_id
)
GROUP BY intent_level
ORDER BY indexOf(['HIGH', 'MEDIUM', 'LOW'], intent_level), intent_level;
