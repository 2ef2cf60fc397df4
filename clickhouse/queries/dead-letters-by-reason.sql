-- Dead letters per source topic, error code and reason prefix (first 80 characters, digit runs folded to #)
SELECT
    source_topic,
    error_code,
    reason_prefix,
    count() AS dead_letters,
    min(failed_at) AS first_failed_at,
    max(failed_at) AS last_failed_at
FROM
(
    SELECT
        source_topic,
        error_code,
        substringUTF8(replaceRegexpAll(reason, '[0-9]+', '#'), 1, 80) AS reason_prefix,
        failed_at
    FROM dead_letter FINAL
)
GROUP BY source_topic, error_code, reason_prefix
ORDER BY dead_letters DESC, source_topic, error_code, reason_prefix;
