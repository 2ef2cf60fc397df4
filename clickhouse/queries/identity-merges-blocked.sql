-- Links the resolver refused, by reason and day: how often the over-merging guards fire (conflict, cluster cap)
SELECT
    reason,
    event_date,
    count() AS refused_links,
    uniqExact(identity_id) AS identities,
    round(avg(match_probability), 4) AS avg_match_probability
FROM identity_merge_rejected FINAL
GROUP BY reason, event_date
ORDER BY event_date, reason;
