"""The baselines fitted beside every model, and the paired customer bootstrap behind the comparison's intervals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from patternos_training.baselines import (
    LOGISTIC_FEATURES,
    NO_PURCHASE_FLAG,
    fit_logistic,
    rfm_quintile_scores,
)
from patternos_training.bootstrap import compare, weighted_metrics
from patternos_training.cli import main as cli_main
from patternos_training.contract import ContractError


def test_weighted_metrics_equal_sklearn_with_sample_weights_and_ties() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.2).astype(np.int8)
    # Rounded scores make many ties, the case where ROC-AUC and average precision are easiest to get wrong.
    scores = np.round(rng.random(500) + 0.4 * y, 1)
    weights = rng.integers(0, 4, size=500).astype(np.float64)
    roc, ap = weighted_metrics(scores, y, weights)
    assert roc == pytest.approx(roc_auc_score(y, scores, sample_weight=weights), abs=1e-12)
    assert ap == pytest.approx(average_precision_score(y, scores, sample_weight=weights), abs=1e-12)
    roc1, ap1 = weighted_metrics(scores, y, np.ones(500))
    assert roc1 == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert ap1 == pytest.approx(average_precision_score(y, scores), abs=1e-12)


def _clustered(customers: int, days: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows per customer and day; a customer's propensity drives its labels, so its rows are correlated."""
    rng = np.random.default_rng(seed)
    propensity = rng.normal(size=customers)
    ids = np.repeat(np.array([f"c{i}" for i in range(customers)]), days)
    p = np.repeat(propensity, days)
    y = (rng.random(p.size) < 1 / (1 + np.exp(-(p - 1.5)))).astype(np.int8)
    good = p + rng.normal(scale=0.5, size=p.size)
    weak = p + rng.normal(scale=2.0, size=p.size)
    return ids, y, good, weak


def test_paired_bootstrap_reports_each_model_and_its_difference_to_the_reference() -> None:
    ids, y, good, weak = _clustered(300, 10, seed=1)
    result = {c.name: c for c in compare({"model": good, "weak": weak}, y, ids, reference="model", resamples=300)}
    model, other = result["model"], result["weak"]
    assert model.roc_auc_diff is None and model.share_reference_better is None
    assert model.roc_auc.estimate == pytest.approx(roc_auc_score(y, good))
    assert other.pr_auc.estimate == pytest.approx(average_precision_score(y, weak))
    for interval in (model.roc_auc, model.pr_auc, other.roc_auc, other.pr_auc):
        assert interval.low < interval.estimate < interval.high
    assert other.roc_auc_diff is not None and other.roc_auc_diff.high < 0  # clearly worse: the whole interval below 0
    assert other.share_reference_better == pytest.approx(1.0)
    # Reproducible for a seed.
    again = {c.name: c for c in compare({"model": good, "weak": weak}, y, ids, reference="model", resamples=300)}
    assert again["weak"].roc_auc_diff == other.roc_auc_diff


def test_resampling_customers_not_rows_widens_the_interval_of_correlated_rows() -> None:
    ids, y, good, _ = _clustered(200, 20, seed=2)
    by_customer = compare({"m": good}, y, ids, reference="m", resamples=400)[0].roc_auc
    by_row = compare({"m": good}, y, np.arange(y.size).astype(str), reference="m", resamples=400)[0].roc_auc
    assert (by_customer.high - by_customer.low) > 1.3 * (by_row.high - by_row.low)


def _features(names: list[str], rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.5, 20.0, size=(rows, len(names))).astype(np.float32)
    col = {n: i for i, n in enumerate(names)}
    x[: rows // 10, col["recency_days"]] = -1  # no purchase yet
    logit = -1.0 - 0.05 * np.maximum(x[:, col["recency_days"]], 0) + 0.04 * x[:, col["frequency_90d"]]
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return x, y


def test_logistic_regression_is_fitted_on_train_with_c_chosen_on_validation() -> None:
    names = [*LOGISTIC_FEATURES, "r_score", "f_score", "m_score", "views_7d"]
    x_train, y_train = _features(names, 3000, seed=4)
    x_val, y_val = _features(names, 1000, seed=5)
    model = fit_logistic(names, x_train, y_train, x_val, y_val)
    assert set(model.c_search) == {0.01, 0.1, 1.0, 10.0}
    assert model.c_search[model.c] == max(model.c_search.values())
    p = model.predict(x_val)
    assert p.shape == (1000,) and ((p > 0) & (p < 1)).all()
    assert roc_auc_score(y_val, p) > 0.65
    saved = model.to_json()
    assert saved["features"] == [*LOGISTIC_FEATURES, NO_PURCHASE_FLAG]
    assert saved["coefficients"]["recency_days"] < 0 < saved["coefficients"]["frequency_90d"]
    # What the manifest records is enough to reproduce the predictions without sklearn.
    raw = x_val[:, : len(LOGISTIC_FEATURES)].astype(np.float64)
    z = np.column_stack([np.log1p(np.maximum(raw, 0)), (x_val[:, 0] < 0)])
    means = np.array([saved["mean"][n] for n in saved["features"]])
    scales = np.array([saved["scale"][n] for n in saved["features"]])
    coefs = np.array([saved["coefficients"][n] for n in saved["features"]])
    again = 1 / (1 + np.exp(-(((z - means) / scales) @ coefs + saved["intercept"])))
    assert np.allclose(again, p, atol=1e-12)


def test_rfm_quintiles_sum_the_three_scores_and_baselines_need_their_features() -> None:
    names = ["r_score", "views_7d", "f_score", "m_score"]
    x = np.array([[5, 9, 4, 3], [0, 1, 0, 0]], dtype=np.float32)
    assert rfm_quintile_scores(names, x).tolist() == [12.0, 0.0]
    with pytest.raises(ContractError, match="m_score"):
        rfm_quintile_scores(["r_score", "f_score"], x[:, :2])


def test_compare_command_reads_a_scores_csv_and_prints_the_table_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids, y, good, weak = _clustered(100, 5, seed=6)
    path = tmp_path / "scores.csv"
    lines = ["customer,label,model,weak"] + [f"{c},{v},{g},{w}" for c, v, g, w in zip(ids, y, good, weak, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    assert cli_main(["compare", str(path), "--reference", "model", "--resamples", "200"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert summary["rows"] == 500 and summary["customers"] == 100 and summary["reference"] == "model"
    assert summary["models"]["weak"]["roc_auc"]["estimate"] == pytest.approx(roc_auc_score(y, weak))
    assert any(line.strip().startswith("weak") and "Δ ROC-AUC" in line for line in out)
    assert cli_main(["compare", str(path), "--reference", "nope"]) == 1
