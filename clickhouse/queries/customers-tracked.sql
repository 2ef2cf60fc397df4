-- Customers tracked: active global customers, how many of them hold a score, platforms they came from
-- "Active" = not retired by a merge (dim_customer.merged_into = ''); scored = at least one intent_score row. Anonymous
-- sessions are scored too but are no customer (intent-level-distribution counts them).
SELECT
    (SELECT count() FROM dim_customer FINAL WHERE merged_into = '') AS customers,
    (
        SELECT uniqExact(global_customer_id)
        FROM intent_score
        WHERE global_customer_id IN (SELECT global_customer_id FROM dim_customer FINAL WHERE merged_into = '')
    ) AS scored_customers,
    (SELECT uniqExact(platform_id) FROM v_customer_identity_current) AS platforms;
