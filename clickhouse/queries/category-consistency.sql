-- Cross-platform customers per category they showed interest in: on one of their platforms only, or on two or more
-- Interest = a purchased line, a VIEW or an ADD_TO_CART of the category by one of the customer's current identities.
-- Only active customers whose current identities span two or more platforms count; consistency = on_two_or_more /
-- customers. One JOIN (events to current identities); the multi-platform set is an IN subquery.
SELECT
    category_id AS category,
    count() AS customers,
    countIf(platforms_with_interest >= 2) AS on_two_or_more_platforms,
    countIf(platforms_with_interest = 1) AS on_one_platform,
    countIf(platforms_with_interest >= 2) / count() AS consistency
FROM
(
    SELECT
        global_customer_id,
        category_id,
        uniqExact(platform_id) AS platforms_with_interest
    FROM
    (
        SELECT DISTINCT
            identity_id,
            category_id
        FROM
        (
            SELECT
                concat(platform_id, ':', platform_customer_id) AS identity_id,
                category_id
            FROM fact_transaction_line FINAL
            WHERE kind = 'PURCHASE' AND platform_customer_id != '' AND category_id != ''
            UNION ALL
            SELECT
                concat(platform_id, ':', platform_customer_id) AS identity_id,
                category_id
            FROM fact_event FINAL
            WHERE event_type IN ('VIEW', 'ADD_TO_CART') AND platform_customer_id != '' AND category_id != ''
        )
    )
    ALL INNER JOIN
    (
        SELECT
            identity_id,
            global_customer_id,
            platform_id
        FROM v_customer_identity_current
        WHERE global_customer_id IN
            (
                SELECT global_customer_id
                FROM v_customer_identity_current
                WHERE global_customer_id NOT IN (SELECT global_customer_id FROM dim_customer FINAL WHERE merged_into != '')
                GROUP BY global_customer_id
                HAVING uniqExact(platform_id) >= 2
            )
    ) USING (identity_id)
    GROUP BY global_customer_id, category_id
)
GROUP BY category_id
ORDER BY customers DESC, on_two_or_more_platforms DESC, category;
