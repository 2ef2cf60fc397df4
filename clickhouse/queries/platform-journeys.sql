-- Customer journeys across platforms: customers who went from one platform to the next (step 1 = first to second)
-- A customer's platforms are ordered by when each was first linked to it (the first link of an identity is made by
-- its first event); only active customers on two or more platforms have a journey. A tie in time goes by platform id.
SELECT
    step,
    from_platform,
    to_platform,
    count() AS customers
FROM
(
    SELECT
        arrayJoin(arrayEnumerate(arrayPopBack(platforms))) AS step,
        platforms[step] AS from_platform,
        platforms[step + 1] AS to_platform
    FROM
    (
        SELECT
            cur_gid,
            arrayMap(t -> tupleElement(t, 2), arraySort(groupArray((platform_first_ms, cur_platform)))) AS platforms
        FROM
        (
            SELECT
                cur_gid,
                cur_platform,
                min(identity_first_ms) AS platform_first_ms
            FROM
            (
                SELECT
                    identity_id,
                    argMax(global_customer_id, (link_version, valid_from_ms, source_event_id)) AS cur_gid,
                    any(platform_id) AS cur_platform,
                    min(valid_from_ms) AS identity_first_ms
                FROM dim_customer_identity
                GROUP BY identity_id
            )
            WHERE cur_gid NOT IN (SELECT global_customer_id FROM dim_customer FINAL WHERE merged_into != '')
            GROUP BY cur_gid, cur_platform
        )
        GROUP BY cur_gid
        HAVING length(platforms) >= 2
    )
)
GROUP BY step, from_platform, to_platform
ORDER BY step, customers DESC, from_platform, to_platform;
