-- Per platform: purchases and the share redeemed with a coupon, reviews and their mean sentiment (FINAL reads)
-- Sentiment is AFINN valence per word (fact_event.review_sentiment / 1000, scored by processors/features/sentiment.ts);
-- a review is a non-empty review_text, a coupon a non-empty coupon_code, as in the features.
SELECT
    platform_id,
    sum(p) AS purchases,
    sum(c) AS coupon_purchases,
    if(purchases > 0, coupon_purchases / purchases, 0) AS coupon_share,
    sum(r) AS reviews,
    if(reviews > 0, sum(s) / reviews / 1000, 0) AS mean_review_sentiment
FROM
(
    SELECT
        platform_id,
        countIf(kind = 'PURCHASE') AS p,
        countIf(kind = 'PURCHASE' AND coupon_code != '') AS c,
        toUInt64(0) AS r,
        toInt64(0) AS s
    FROM fact_transaction FINAL
    GROUP BY platform_id
    UNION ALL
    SELECT
        platform_id,
        toUInt64(0) AS p,
        toUInt64(0) AS c,
        count() AS r,
        sum(toInt64(review_sentiment)) AS s
    FROM fact_event FINAL
    WHERE review_text != ''
    GROUP BY platform_id
)
GROUP BY platform_id
ORDER BY platform_id;
