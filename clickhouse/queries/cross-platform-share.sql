-- Share of active customers whose current identities span two or more platforms
SELECT
    count() AS customers,
    countIf(platforms_used >= 2) AS cross_platform_customers,
    if(count() = 0, 0., countIf(platforms_used >= 2) / count()) AS share
FROM
(
    SELECT
        global_customer_id,
        uniqExact(platform_id) AS platforms_used
    FROM v_customer_identity_current
    WHERE global_customer_id NOT IN (SELECT global_customer_id FROM dim_customer FINAL WHERE merged_into != '')
    GROUP BY global_customer_id
);
