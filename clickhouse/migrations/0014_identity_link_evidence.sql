-- Why each probabilistic link was made, kept with the link (issue: stable, explainable ids). For a PROBABILISTIC row:
-- matched_identity_id is the member of the joined cluster that matched best; comparison_attributes, comparison_levels
-- and comparison_weights are parallel arrays, one entry per compared attribute (level '' when either side was missing,
-- weight log2(m/u) of the level, 0 when missing); adjustment_weight is the term-frequency adjustment minus the
-- household penalty, so match_weight = arraySum(comparison_weights) + adjustment_weight; cluster_log_odds is the mean
-- bounded log2-odds against the cluster's members that decided the join. Other methods, and rows written before
-- this migration, have empty arrays and zeros.
ALTER TABLE dim_customer_identity ADD COLUMN matched_identity_id String DEFAULT '';

ALTER TABLE dim_customer_identity ADD COLUMN comparison_attributes Array(String);

ALTER TABLE dim_customer_identity ADD COLUMN comparison_levels Array(String);

ALTER TABLE dim_customer_identity ADD COLUMN comparison_weights Array(Float64);

ALTER TABLE dim_customer_identity ADD COLUMN adjustment_weight Float64 DEFAULT 0;

ALTER TABLE dim_customer_identity ADD COLUMN cluster_log_odds Float64 DEFAULT 0;
