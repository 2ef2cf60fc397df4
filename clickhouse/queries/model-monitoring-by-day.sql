-- Online model quality per day and model version (npm run monitor): ROC-AUC, PR-AUC, precision/recall at 0.4 and 0.7
-- The newest run of a day and version wins (argMax on computed_at_ms). calibration is JSON: per decile of
-- purchase_probability_7d, [mean predicted, observed rate, customers].
SELECT
    day,
    model_version,
    argMax(customers, computed_at_ms) AS day_customers,
    argMax(positives, computed_at_ms) AS day_positives,
    argMax(roc_auc, computed_at_ms) AS day_roc_auc,
    argMax(pr_auc, computed_at_ms) AS day_pr_auc,
    argMax(precision_at_0_4, computed_at_ms) AS day_precision_at_0_4,
    argMax(recall_at_0_4, computed_at_ms) AS day_recall_at_0_4,
    argMax(precision_at_0_7, computed_at_ms) AS day_precision_at_0_7,
    argMax(recall_at_0_7, computed_at_ms) AS day_recall_at_0_7,
    argMax(calibration, computed_at_ms) AS day_calibration
FROM model_monitoring
GROUP BY day, model_version
ORDER BY day, model_version;
