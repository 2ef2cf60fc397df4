-- The purchase-rhythm features (definitions.ts purchaseRhythm, over the distinct purchase days of the 90-day window):
-- gap between the last two purchase days, mean gap, its coefficient of variation, days since the last purchase day
-- over the mean gap (-1 where undefined), and distinct Monday-based weeks with a purchase. One ALTER: all or nothing.
ALTER TABLE feat_customer_rfm ADD COLUMN last_gap_days_90d Int32,
    ADD COLUMN mean_gap_days_90d Float64,
    ADD COLUMN gap_cv_90d Float64,
    ADD COLUMN gap_ratio_90d Float64,
    ADD COLUMN active_weeks_90d UInt16;
