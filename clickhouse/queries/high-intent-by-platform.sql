-- Active customers whose latest intent level is HIGH, per platform of their current identities
-- A customer on two platforms counts once on each.
SELECT
    platform_id,
    uniqExact(global_customer_id) AS high_intent_customers
FROM v_customer_identity_current
WHERE global_customer_id IN
    (
        SELECT global_customer_id
        FROM
        (
            SELECT
                global_customer_id,
                argMax(intent_level, (feature_time_ms, scored_at, model_version)) AS latest_level
            FROM intent_score
            GROUP BY global_customer_id
        )
        WHERE latest_level = 'HIGH'
    )
    AND global_customer_id NOT IN (SELECT global_customer_id FROM dim_customer FINAL WHERE merged_into != '')
GROUP BY platform_id
ORDER BY high_intent_customers DESC, platform_id;
