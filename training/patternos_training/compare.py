"""`npm run train -- compare <scores.csv> --reference <column>`: ROC-AUC and PR-AUC of several scores of the same rows,
with paired customer-bootstrap intervals (bootstrap.py), for evaluations outside a training run.

The CSV has a header `customer,label,<score>,<score>,…`: one row per customer and day, label 0/1, one column per
model or baseline (higher = more likely to buy). stdout: the table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .bootstrap import DEFAULT_RESAMPLES, compare
from .dataset import DataError
from .pipeline import comparison_lines


def read_scores(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    with path.open(newline="", encoding="utf8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        rows = list(reader)
    if not header or header[:2] != ["customer", "label"] or len(header) < 3:
        raise DataError(f"{path}: the header must be customer,label,<score>,… (got {header})")
    if not rows:
        raise DataError(f"{path} has no rows")
    try:
        values = np.array([r[1:] for r in rows], dtype=np.float64)
    except ValueError as err:
        raise DataError(f"{path}: a label or score is not a number ({err})") from err
    if not np.isfinite(values).all():
        raise DataError(f"{path}: a label or score is not finite")
    labels = values[:, 0]
    if not np.isin(labels, (0.0, 1.0)).all() or labels.min() == labels.max():
        raise DataError(f"{path}: labels must be 0 or 1, both present")
    customers = np.array([r[0] for r in rows], dtype=np.str_)
    return customers, labels.astype(np.int8), {name: values[:, i + 1] for i, name in enumerate(header[2:])}


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="patternos_training compare", description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--reference", required=True, help="the column the others are compared with")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(list(argv))
    try:
        customers, labels, scores = read_scores(args.csv)
        if args.reference not in scores:
            raise DataError(f"--reference {args.reference} is not a column of {args.csv}: {list(scores)}")
        result = compare(scores, labels, customers, args.reference, args.resamples, args.seed)
    except (DataError, OSError) as err:
        print(f"[compare] error: {err}", file=sys.stderr)
        return 1
    for line in comparison_lines(result, args.reference, what=f"{labels.size:,} rows"):
        print(line)
    print(
        json.dumps(
            {
                "rows": int(labels.size),
                "customers": int(np.unique(customers).size),
                "positives": int(labels.sum()),
                "reference": args.reference,
                "resamples": args.resamples,
                "seed": args.seed,
                "models": {c.name: c.to_json() for c in result},
            }
        )
    )
    return 0
