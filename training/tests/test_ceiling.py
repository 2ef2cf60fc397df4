"""The Online Retail ceiling estimate's per-customer rows: population, labels and point-in-time features."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from patternos_training.ceiling import DAY_S, _customer_rows, _epoch, _read

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def _file(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "retail.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write(HEADER + "".join(line + "\n" for line in lines))
    return str(path)


def test_rows_follow_the_evaluation_population_and_label(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        [
            "1,A,X,2,2011-01-01 10:00:00,5.0,17850.0,United Kingdom",
            "1,B,Y,1,2011-01-01 10:00:00,3.0,17850.0,United Kingdom",
            "C2,A,X,-1,2011-01-03 09:00:00,5.0,17850.0,United Kingdom",  # a cancellation: a return, not a purchase
            "3,A,X,1,2011-01-10 12:00:00,5.0,17850.0,United Kingdom",
            "4,A,X,1,2011-01-05 12:00:00,5.0,,United Kingdom",  # no CustomerID: nobody's
        ],
    )
    by_customer = _read(path)
    assert list(by_customer) == [17850]
    refs = np.array([_epoch(d) for d in ("2011-01-01 00:00:00", "2011-01-02 00:00:00", "2011-01-04 00:00:00")])
    rows = list(_customer_rows(by_customer[17850], refs))
    # Not in the population before the first purchase; on 01-02 and 01-04 the next purchase (01-10) is 8 and 6 days off.
    assert [(r, label) for r, _, label in rows] == [(refs[1], 0), (refs[2], 1)]
    first = rows[0][1]
    assert first["recency"] == (refs[1] - _epoch("2011-01-01 10:00:00")) / DAY_S
    assert (first["invoices"], first["spend"], first["lines_per_order"], first["products"]) == (1, 13.0, 2, 2)
    assert first["returns"] == 0  # the cancellation comes later
    assert rows[1][1]["returns"] == 5.0
    assert rows[1][1]["returns_share"] == 5.0 / 13.0
    assert first["uk"] == 1.0
