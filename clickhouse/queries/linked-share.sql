-- Share of platform identities whose global customer has more than one identity (linked to at least one other)
SELECT
    sum(identity_count) AS identities,
    sumIf(identity_count, identity_count > 1) AS linked_identities,
    if(sum(identity_count) = 0, 0., sumIf(identity_count, identity_count > 1) / sum(identity_count)) AS share
FROM
(
    SELECT
        global_customer_id,
        count() AS identity_count
    FROM v_customer_identity_current
    GROUP BY global_customer_id
);
