"""Paired bootstrap confidence intervals for ROC-AUC and PR-AUC, resampling customers.

A test split holds one row per customer and reference day, so a customer's rows are strongly correlated; resampling
rows would pretend there are far more independent observations than there are and give intervals that are too
narrow. A resample therefore draws customers with replacement and keeps all of a drawn customer's rows (a cluster
bootstrap). It is paired: every model is scored on the same resample, so the interval of a difference between two
models accounts for their scores being computed on the same rows.

A resample is a vector of per-row weights (how often the row's customer was drawn), and the metrics are computed with
those weights in O(rows) from one sort per model, so a thousand resamples take seconds, not minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DEFAULT_RESAMPLES = 1000
LEVEL = 0.95
# Resamples scored at once: a (chunk x rows) weight matrix; 64 x 200k rows is ~100 MB of float64.
CHUNK = 64


@dataclass(frozen=True)
class _Ranked:
    """One model's rows sorted once by ascending score: their labels and clusters in that order, and where each group
    of tied scores starts. A resample's weights are then gathered straight into sorted order."""

    positive: npt.NDArray[np.float64]
    cluster: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]


def _rank(scores: npt.NDArray[np.floating], y: npt.NDArray[np.integer], cluster: npt.NDArray[np.int64]) -> _Ranked:
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1]))).astype(np.int64)
    return _Ranked((y[order] == 1).astype(np.float64), cluster[order], starts)


def _weighted(ranked: _Ranked, cluster_weights: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], ...]:
    """ROC-AUC and average precision (sklearn's definitions, with sample weights) for each row of `cluster_weights`
    (one weight per cluster; a row weighs what its cluster does).

    Ties: ROC-AUC counts a tied positive–negative pair as half; average precision treats a group of tied scores as one
    threshold. NaN where a resample drew no positive or no negative.
    """
    w = np.atleast_2d(cluster_weights)[:, ranked.cluster]
    pos = w * ranked.positive
    pos_g = np.add.reduceat(pos, ranked.starts, axis=1)
    neg_g = np.add.reduceat(w, ranked.starts, axis=1) - pos_g
    total_pos = pos_g.sum(axis=1)
    total_neg = neg_g.sum(axis=1)
    # Ascending scores: negatives strictly below each group, plus half of those tied with it.
    neg_below = np.cumsum(neg_g, axis=1) - neg_g
    with np.errstate(invalid="ignore", divide="ignore"):
        roc = (pos_g * (neg_below + 0.5 * neg_g)).sum(axis=1) / (total_pos * total_neg)
        # Descending thresholds: precision at each group, weighted by the recall it adds.
        tp = np.cumsum(pos_g[:, ::-1], axis=1)
        seen = np.cumsum((pos_g + neg_g)[:, ::-1], axis=1)
        precision = np.where(seen > 0, tp / np.maximum(seen, 1e-300), 0.0)
        ap = (pos_g[:, ::-1] * precision).sum(axis=1) / total_pos
    bad = (total_pos <= 0) | (total_neg <= 0)
    roc[bad] = np.nan
    ap[bad] = np.nan
    return roc, ap


def weighted_metrics(
    scores: npt.NDArray[np.floating], y: npt.NDArray[np.integer], weights: npt.NDArray[np.floating]
) -> tuple[float, float]:
    """ROC-AUC and average precision of `scores` with per-row `weights` (exposed for tests against sklearn)."""
    rows = np.arange(y.shape[0], dtype=np.int64)  # every row its own cluster
    roc, ap = _weighted(_rank(np.asarray(scores, dtype=np.float64), y, rows), np.asarray(weights, dtype=np.float64))
    return float(roc[0]), float(ap[0])


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        return {"estimate": self.estimate, "ci_low": self.low, "ci_high": self.high}

    def text(self, digits: int = 4, signed: bool = False) -> str:
        f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
        return f"{f.format(self.estimate)} [{f.format(self.low)}, {f.format(self.high)}]"


@dataclass(frozen=True)
class ModelComparison:
    name: str
    roc_auc: Interval
    pr_auc: Interval
    # This model minus the reference model, on the same resamples (None for the reference itself).
    roc_auc_diff: Interval | None
    pr_auc_diff: Interval | None
    # Share of resamples in which this model's ROC-AUC is below the reference's (a one-sided bootstrap p-value of
    # "the reference is not better"; None for the reference).
    share_reference_better: float | None

    def to_json(self) -> dict[str, object]:
        return {
            "roc_auc": self.roc_auc.to_json(),
            "pr_auc": self.pr_auc.to_json(),
            "roc_auc_minus_reference": self.roc_auc_diff.to_json() if self.roc_auc_diff else None,
            "pr_auc_minus_reference": self.pr_auc_diff.to_json() if self.pr_auc_diff else None,
            "share_of_resamples_reference_roc_auc_higher": self.share_reference_better,
        }


def _interval(point: float, draws: npt.NDArray[np.float64]) -> Interval:
    draws = draws[np.isfinite(draws)]
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail]) if draws.size else (np.nan, np.nan)
    return Interval(point, float(low), float(high))


def compare(
    scores: dict[str, npt.NDArray[np.floating]],
    y: npt.NDArray[np.integer],
    clusters: npt.NDArray[np.str_],
    reference: str,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 42,
) -> list[ModelComparison]:
    """Every model's ROC-AUC and PR-AUC with 95 % percentile intervals, and its difference to `reference`.

    `clusters` names the unit that is resampled (the customer of each row). Order of the result: `scores`' order.
    """
    if reference not in scores:
        raise ValueError(f"reference {reference!r} is not among the scored models {list(scores)}")
    _, cluster_of_row = np.unique(clusters, return_inverse=True)
    n_clusters = int(cluster_of_row.max()) + 1
    cluster_of_row = cluster_of_row.astype(np.int64)
    ranked = {name: _rank(np.asarray(s, dtype=np.float64), y, cluster_of_row) for name, s in scores.items()}
    ones = np.ones(n_clusters)
    points = {name: _weighted(r, ones) for name, r in ranked.items()}
    rng = np.random.default_rng(seed)
    draws: dict[str, tuple[list[npt.NDArray[np.float64]], list[npt.NDArray[np.float64]]]] = {
        name: ([], []) for name in scores
    }
    done = 0
    while done < resamples:
        size = min(CHUNK, resamples - done)
        counts = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=size).astype(np.float64)
        for name, r in ranked.items():
            roc, ap = _weighted(r, counts)
            draws[name][0].append(roc)
            draws[name][1].append(ap)
        done += size
    roc_draws = {name: np.concatenate(d[0]) for name, d in draws.items()}
    ap_draws = {name: np.concatenate(d[1]) for name, d in draws.items()}
    out = []
    for name in scores:
        roc_point, ap_point = float(points[name][0][0]), float(points[name][1][0])
        is_reference = name == reference
        roc_diff = roc_draws[name] - roc_draws[reference]
        ap_diff = ap_draws[name] - ap_draws[reference]
        ref_roc, ref_ap = float(points[reference][0][0]), float(points[reference][1][0])
        finite = roc_diff[np.isfinite(roc_diff)]
        out.append(
            ModelComparison(
                name=name,
                roc_auc=_interval(roc_point, roc_draws[name]),
                pr_auc=_interval(ap_point, ap_draws[name]),
                roc_auc_diff=None if is_reference else _interval(roc_point - ref_roc, roc_diff),
                pr_auc_diff=None if is_reference else _interval(ap_point - ref_ap, ap_diff),
                share_reference_better=None if is_reference else float((finite < 0).mean()) if finite.size else None,
            )
        )
    return out
