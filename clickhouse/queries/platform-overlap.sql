-- Pairs of platforms with the number of active customers whose current identities are on both
-- One self-join of (customer, platform) sets; ClickHouse 18.16 allows only one JOIN per SELECT.
SELECT
    platform_a,
    platform_b,
    count() AS customers
FROM
(
    SELECT DISTINCT
        global_customer_id,
        platform_id AS platform_a
    FROM v_customer_identity_current
    WHERE global_customer_id NOT IN (SELECT global_customer_id FROM dim_customer FINAL WHERE merged_into != '')
)
ALL INNER JOIN
(
    SELECT DISTINCT
        global_customer_id,
        platform_id AS platform_b
    FROM v_customer_identity_current
) USING (global_customer_id)
WHERE platform_a < platform_b
GROUP BY platform_a, platform_b
ORDER BY customers DESC, platform_a, platform_b;
