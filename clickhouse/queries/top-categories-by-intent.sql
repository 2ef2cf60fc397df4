-- Predicted category of active customers' latest scores: customers, average intent score, HIGH-intent customers
-- predicted_category '' = the model predicted none.
SELECT
    latest_category AS predicted_category,
    count() AS customers,
    avg(latest_score) AS avg_intent_score,
    countIf(latest_level = 'HIGH') AS high_intent_customers
FROM
(
    SELECT
        global_customer_id,
        argMax(predicted_category, (feature_time_ms, scored_at, model_version)) AS latest_category,
        argMax(intent_score, (feature_time_ms, scored_at, model_version)) AS latest_score,
        argMax(intent_level, (feature_time_ms, scored_at, model_version)) AS latest_level
    FROM intent_score
    WHERE global_customer_id NOT IN (SELECT global_customer_id FROM dim_customer FINAL WHERE merged_into != '')
    GROUP BY global_customer_id
)
GROUP BY predicted_category
ORDER BY customers DESC, avg_intent_score DESC, predicted_category;
