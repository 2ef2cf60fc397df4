-- Net revenue per platform and currency in minor units: purchases minus returns (fact_transaction FINAL)
-- Returns are summed by magnitude, whatever sign the source gave them; currencies are never added together.
SELECT
    platform_id,
    currency,
    countIf(kind = 'PURCHASE') AS purchases,
    countIf(kind = 'RETURN') AS returns,
    sumIf(total_minor, kind = 'PURCHASE') AS purchases_minor,
    sumIf(if(total_minor < 0, -total_minor, total_minor), kind = 'RETURN') AS returns_minor,
    purchases_minor - returns_minor AS net_minor
FROM fact_transaction FINAL
GROUP BY platform_id, currency
ORDER BY platform_id, currency;
