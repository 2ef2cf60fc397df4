-- Warehouse row counts: active customers, identities, platforms, transactions, transaction lines, events, dead letters
-- Facts are counted with FINAL so a re-delivered event is counted once. platforms = distinct platform ids in
-- dim_platform (the sink adds one for every transaction and event) or in the identity links.
SELECT
    (SELECT count() FROM dim_customer FINAL WHERE merged_into = '') AS customers,
    (SELECT uniqExact(identity_id) FROM dim_customer_identity) AS identities,
    (
        SELECT uniqExact(platform_id)
        FROM
        (
            SELECT platform_id FROM dim_platform
            UNION ALL
            SELECT platform_id FROM dim_customer_identity
        )
        WHERE platform_id != ''
    ) AS platforms,
    (SELECT count() FROM fact_transaction FINAL) AS transactions,
    (SELECT count() FROM fact_transaction_line FINAL) AS transaction_lines,
    (SELECT count() FROM fact_event FINAL) AS events,
    (SELECT count() FROM dead_letter FINAL) AS dead_letters;
