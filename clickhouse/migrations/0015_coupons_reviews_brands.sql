-- Schema evolution of the platform events (issue 13): Transaction.couponCode and BehaviorEvent.reviewText are new
-- optional Avro fields, and the features gain brand consistency, coupon usage and review sentiment.
-- coupon_code is '' for an order without a coupon (and for every row written before this migration); review_text is ''
-- for a click without a review; review_sentiment is the review's score from processors/features/sentiment.ts (AFINN
-- per word, in thousandths, an integer so that sums are exact), stored by the sink and recomputed by
-- `npm run features -- backfill`; 0 without a review. One ALTER per table: ClickHouse applies its list or none of it.
ALTER TABLE fact_transaction ADD COLUMN coupon_code String DEFAULT '';

ALTER TABLE fact_event ADD COLUMN review_text String DEFAULT '',
    ADD COLUMN review_sentiment Int32 DEFAULT 0;

ALTER TABLE feat_customer_rfm ADD COLUMN brand_consistency_90d Float64,
    ADD COLUMN coupon_usage_rate_90d Float64,
    ADD COLUMN reviews_90d UInt32,
    ADD COLUMN review_sentiment_90d Float64;
