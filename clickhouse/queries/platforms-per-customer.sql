-- Active customers by number of platforms their current identities are on (platforms_used → customers)
-- "Active" = not retired by a merge (dim_customer.merged_into = ''); mapping = v_customer_identity_current.
SELECT
    platforms_used,
    count() AS customers
FROM
(
    SELECT
        global_customer_id,
        uniqExact(platform_id) AS platforms_used
    FROM v_customer_identity_current
    WHERE global_customer_id NOT IN (SELECT global_customer_id FROM dim_customer FINAL WHERE merged_into != '')
    GROUP BY global_customer_id
)
GROUP BY platforms_used
ORDER BY platforms_used;
