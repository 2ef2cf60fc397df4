-- The 180- and 365-day purchase history (issue 13, part 1): purchases and spend in 180 and 365 days, distinct purchase
-- days in 365 days, their rhythm over the year (mean gap, its coefficient of variation, days since the last purchase
-- day over the mean gap; -1 where undefined) and the repurchase hazard (of the past gaps longer than the current one,
-- the share that ended within 7 more days; -1 without one). definitions.ts defines them; rows written before this
-- migration read 0 until `npm run features -- backfill` recomputes their days. One ALTER: all or nothing.
ALTER TABLE feat_customer_rfm ADD COLUMN frequency_180d UInt32,
    ADD COLUMN frequency_365d UInt32,
    ADD COLUMN monetary_180d_minor Int64,
    ADD COLUMN monetary_365d_minor Int64,
    ADD COLUMN active_days_365d UInt16,
    ADD COLUMN mean_gap_days_365d Float64,
    ADD COLUMN gap_cv_365d Float64,
    ADD COLUMN gap_ratio_365d Float64,
    ADD COLUMN repurchase_hazard_365d Float64;
