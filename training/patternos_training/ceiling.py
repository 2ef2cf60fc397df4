"""How far customer-level transactional features can go on Online Retail, independently of the streaming system.

`npm run train -- ceiling <online_retail.csv.gz> [--from 2011-10-04] [--to 2011-11-01]` computes, straight from the
file (no Kafka, no warehouse, none of processors/features), a broad set of per-customer features at every UTC
midnight: recency; invoices, spend and active days over 7/30/90/180/365 days; tenure and lifetime totals; order
size; inter-purchase gap statistics with an empirical hazard of buying within the next 7 days; returns; distinct and
new products; country; weekday regularity. Population and label follow `npm run eval -- online-retail`: every
customer with a non-cancelled invoice before d, label = a non-cancelled invoice in [d, d + 7 days). LightGBM (the
configuration `npm run train` uses) trains on the midnights from 30 days after the first invoice up to 7 days before
--from and is scored on [--from, --to). It prints ROC-AUC for a recency-only score, a compact RFM-style set and the
full set, then one JSON line: an estimate of what this data allows at those dates, to read the system's figure against.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
from collections import defaultdict
from datetime import datetime, timezone

import numpy as np

DAY_S = 86_400
WINDOWS = (7, 30, 90, 180, 365)
COMPACT = [
    "recency",
    "invoices_7",
    "spend_7",
    "invoices_30",
    "spend_30",
    "invoices_90",
    "spend_90",
    "active_days_90",
    "tenure",
    "invoices",
    "spend",
    "avg_order",
    "lines_per_order",
    "mean_gap",
    "last_gap",
    "gap_cv",
    "returns_share",
    "recency_over_gap",
]


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def _read(path: str) -> dict[int, list[tuple[float, str, str, int, float, str]]]:
    rows: dict[int, list[tuple[float, str, str, int, float, str]]] = defaultdict(list)
    with gzip.open(path, "rt", newline="") if path.endswith(".gz") else open(path, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for invoice, code, _desc, qty, date, price, customer, country in reader:
            if customer:
                rows[int(float(customer))].append((_epoch(date), invoice, code, int(qty), float(price), country))
    return rows


def _customer_rows(lines: list[tuple[float, str, str, int, float, str]], refs: np.ndarray):
    """Yields (ref, features, label) for each reference time at which the customer has a purchase before it."""
    lines.sort()
    invoices: dict[str, list] = {}
    returns: list[tuple[float, float]] = []
    for t, invoice, code, qty, price, _country in lines:
        if invoice.startswith("C") or qty < 0:
            returns.append((t, -qty * price))
            continue
        entry = invoices.setdefault(invoice, [t, 0.0, 0, set()])
        entry[1] += qty * price
        entry[2] += 1
        entry[3].add(code)
    if not invoices:
        return
    ordered = sorted(invoices.values(), key=lambda v: v[0])
    times = np.array([v[0] for v in ordered])
    cum_spend = np.concatenate([[0.0], np.cumsum([v[1] for v in ordered])])
    cum_lines = np.concatenate([[0], np.cumsum([v[2] for v in ordered])])
    days = np.floor(times / DAY_S)
    return_times = np.array([r[0] for r in returns])
    cum_returns = np.concatenate([[0.0], np.cumsum([r[1] for r in returns])])
    first_seen: dict[str, float] = {}
    for v in ordered:
        for code in v[3]:
            first_seen.setdefault(code, v[0])
    product_times = np.sort(np.array(list(first_seen.values())))
    uk = 1.0 if lines[0][5] == "United Kingdom" else 0.0
    for ref in refs:
        n = int(np.searchsorted(times, ref))
        if n == 0:
            continue
        label = int(np.searchsorted(times, ref + 7 * DAY_S) > n)
        f: dict[str, float] = {"recency": (ref - times[n - 1]) / DAY_S}
        for w in WINDOWS:
            k = int(np.searchsorted(times, ref - w * DAY_S))
            f[f"invoices_{w}"] = n - k
            f[f"spend_{w}"] = cum_spend[n] - cum_spend[k]
            f[f"active_days_{w}"] = len(np.unique(days[k:n]))
        f.update(tenure=(ref - times[0]) / DAY_S, invoices=n, spend=cum_spend[n], avg_order=cum_spend[n] / n)
        f["lines_per_order"] = cum_lines[n] / n
        active = np.unique(days[:n])
        gaps = np.diff(active)
        if len(gaps):
            longer = gaps[gaps > f["recency"]]
            f.update(
                mean_gap=gaps.mean(),
                median_gap=float(np.median(gaps)),
                last_gap=gaps[-1],
                gap_cv=gaps.std() / gaps.mean(),
                min_gap=gaps.min(),
                max_gap=gaps.max(),
                recency_over_gap=f["recency"] / gaps.mean(),
                hazard_7d=float(np.mean(longer <= f["recency"] + 7)) if len(longer) else -1.0,
                gaps_longer=len(longer),
            )
        else:
            for name in ("mean_gap", "median_gap", "last_gap", "gap_cv", "min_gap", "max_gap", "recency_over_gap"):
                f[name] = -1.0
            f.update(hazard_7d=-1.0, gaps_longer=0)
        k = int(np.searchsorted(return_times, ref))
        f.update(returns=cum_returns[k], returns_share=cum_returns[k] / max(cum_spend[n], 1e-9))
        products = int(np.searchsorted(product_times, ref))
        f.update(products=products, new_products_90=products - int(np.searchsorted(product_times, ref - 90 * DAY_S)))
        weekdays = np.bincount(((active + 3) % 7).astype(int), minlength=7)
        f.update(uk=uk, weekday_mode_share=weekdays.max() / len(active))
        yield ref, f, label


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="npm run train -- ceiling", description=__doc__.splitlines()[0])
    parser.add_argument("file", help="online_retail.csv.gz")
    parser.add_argument("--from", dest="from_date", default="2011-10-04")
    parser.add_argument("--to", dest="to_date", default="2011-11-01")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import lightgbm as lgb  # heavy imports after argument errors
    from sklearn.metrics import average_precision_score, roc_auc_score

    by_customer = _read(args.file)
    first = min(min(t for t, *_ in lines) for lines in by_customer.values())
    start = (int(first // DAY_S) + 30) * DAY_S
    from_s, to_s = _epoch(args.from_date), _epoch(args.to_date)
    refs = np.arange(start, to_s, DAY_S, dtype=float)
    names: list[str] = []
    table: list[list[float]] = []
    labels: list[int] = []
    ref_of: list[float] = []
    for lines in by_customer.values():
        for ref, f, label in _customer_rows(lines, refs):
            if not names:
                names = list(f)
            table.append([f[k] for k in names])
            labels.append(label)
            ref_of.append(ref)
    x = np.array(table, dtype=np.float32)
    y = np.array(labels)
    at = np.array(ref_of)
    train = at <= from_s - 7 * DAY_S
    test = (at >= from_s) & (at < to_s)
    print(f"{int(train.sum())} training rows, {int(test.sum())} test rows ({int(y[test].sum())} positive)", file=sys.stderr)

    def fit(columns: list[str]) -> tuple[float, float]:
        idx = [names.index(c) for c in columns]
        model = lgb.LGBMClassifier(
            n_estimators=600,
            num_leaves=15,
            learning_rate=0.03,
            min_child_samples=200,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            verbose=-1,
            n_jobs=args.threads,
        ).fit(x[train][:, idx], y[train])
        p = model.predict_proba(x[test][:, idx])[:, 1]
        return float(roc_auc_score(y[test], p)), float(average_precision_score(y[test], p))

    recency = -x[test][:, names.index("recency")]
    result = {
        "ceiling": "online-retail",
        "from": args.from_date,
        "to": args.to_date,
        "testRows": int(test.sum()),
        "positives": int(y[test].sum()),
        "recencyRocAuc": round(float(roc_auc_score(y[test], recency)), 4),
    }
    for label, columns in (("compact", COMPACT), ("full", names)):
        roc, pr = fit(columns)
        result[f"{label}Features"] = len(columns)
        result[f"{label}RocAuc"] = round(roc, 4)
        result[f"{label}PrAuc"] = round(pr, 4)
        print(f"{label:8s} {len(columns):2d} features: ROC-AUC {roc:.4f}  PR-AUC {pr:.4f}", file=sys.stderr)
    print(f"recency  ROC-AUC {result['recencyRocAuc']:.4f}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
