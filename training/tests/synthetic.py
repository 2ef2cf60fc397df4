"""TEST FIXTURE: synthetic training sets in the exact CSV contract of `npm run features -- training-set`.

Not real data and not a model of real customers: a per-customer latent propensity drives a few features and the label,
so a model can learn something, and knobs make a weaker or a useless training period for the promotion-gate tests.

    python -m tests.synthetic --customers 4000 --days 25 --out /tmp/big.csv   (from training/, for timing runs)
"""

from __future__ import annotations

import argparse
import csv
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from patternos_training.contract import Feature, expected_header, load_features

DAY_MS = 86_400_000
START_MS = int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
CATEGORIES = ("garden", "kitchen", "toys", "")

# Features that carry the signal (the rest are noise with plausible ranges).
SIGNAL_WEIGHTS = {
    "frequency_30d": 0.35,
    "views_24h": 0.25,
    "add_to_carts_7d": 0.45,
    "cart_abandonment_rate": -1.2,
    "recency_days": -0.03,
}


def synthetic_rows(
    features: tuple[Feature, ...],
    *,
    customers: int,
    days: int,
    seed: int,
    noise_labels_before_day: int = 0,
) -> tuple[list[str], list[list[object]]]:
    """Header and rows; labels of reference days < noise_labels_before_day are coin flips (nothing to learn there)."""
    rng = np.random.default_rng(seed)
    # Its own stream, so adding coin-flip labels leaves every other value (and the test period) unchanged.
    coin = np.random.default_rng(seed + 1_000_003)
    names = [f.name for f in features]
    propensity = rng.normal(0.0, 1.0, size=customers)
    rows: list[list[object]] = []
    for day in range(days):
        ref_ms = START_MS + day * DAY_MS
        x = np.empty((customers, len(features)))
        for j, f in enumerate(features):
            if f.kind == "integer":
                x[:, j] = rng.poisson(np.exp(0.3 * propensity) * 2.0)
            else:
                x[:, j] = np.round(rng.gamma(2.0, 1.0 + 0.2 * np.abs(propensity)), 6)
        col = {n: i for i, n in enumerate(names)}
        x[:, col["cart_abandonment_rate"]] = np.round(rng.beta(2, 2 + np.exp(propensity)), 6)
        x[:, col["recency_days"]] = np.round(rng.exponential(20 / np.exp(propensity)), 6)
        logit = -2.2 + 0.9 * propensity
        for name, weight in SIGNAL_WEIGHTS.items():
            logit = logit + weight * (x[:, col[name]] - x[:, col[name]].mean())
        label = rng.random(customers) < 1 / (1 + np.exp(-logit))
        if day < noise_labels_before_day:
            label = coin.random(customers) < label.mean()
        for c in range(customers):
            rows.append(
                [
                    f"c-{c:05d}",
                    ref_ms,
                    ref_ms - int(rng.integers(1, DAY_MS)),
                    *[_text(v, f.kind) for v, f in zip(x[c], features, strict=True)],
                    CATEGORIES[c % len(CATEGORIES)],
                    int(label[c]),
                ]
            )
    return expected_header(features), rows


def _text(value: float, kind: str) -> str:
    return str(int(value)) if kind == "integer" else repr(float(value))


def write_synthetic_csv(
    path: Path,
    features: tuple[Feature, ...] | None = None,
    *,
    customers: int,
    days: int,
    seed: int,
    noise_labels_before_day: int = 0,
) -> Path:
    header, rows = synthetic_rows(
        features or load_features(),
        customers=customers,
        days=days,
        seed=seed,
        noise_labels_before_day=noise_labels_before_day,
    )
    with path.open("w", newline="", encoding="utf8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _main() -> None:
    parser = argparse.ArgumentParser(description="write a synthetic training-set CSV (test fixture)")
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--days", type=int, default=25)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    write_synthetic_csv(args.out, customers=args.customers, days=args.days, seed=args.seed)


if __name__ == "__main__":
    _main()
