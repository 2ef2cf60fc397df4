"""The feature contract, read from the TypeScript source of truth (processors/features/definitions.ts).

Parsing TypeScript from Python is deliberate: a copied list would drift silently, while this parser is strict and
fails loudly when the file no longer has the expected shape (a literal array of quoted names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS_PATH = REPO_ROOT / "processors" / "features" / "definitions.ts"

# CSV columns around the features (`npm run -s features -- training-set`): identification, the label, and a
# categorical column that is reported by the scorer but is not a model input.
ID_COLUMNS = ("customer_id", "ref_ms", "feature_time_ms")
TRAILING_COLUMNS = ("top_category", "label")

FeatureKind = Literal["integer", "real"]


class ContractError(Exception):
    """The feature definitions or a training CSV do not match the contract."""


@dataclass(frozen=True)
class Feature:
    name: str
    # "integer": counts, sums and scores that the TypeScript side computes exactly (EXACT_FEATURES); "real": ratios
    # and durations. Both reach the model as float32.
    kind: FeatureKind


_NAME = re.compile(r"""'([a-z][a-z0-9_]*)'|"([a-z][a-z0-9_]*)\"""")


def _quoted_names(block: str, what: str) -> list[str]:
    without_comments = re.sub(r"//[^\n]*", "", block)
    names = [single or double for single, double in _NAME.findall(without_comments)]
    leftover = _NAME.sub("", without_comments).replace(",", "").strip()
    if leftover or not names:
        raise ContractError(f"{what} is not a plain list of quoted feature names (unexpected: {leftover[:80]!r})")
    if len(set(names)) != len(names):
        raise ContractError(f"{what} names a feature twice")
    return names


# `export const FEATURE_NAMES = [ … ] as const;` and `export const EXACT_FEATURES… = new Set<FeatureName>([ … ]);`
_FEATURE_NAMES = re.compile(r"export const FEATURE_NAMES\s*=\s*\[(.*?)\]\s*as const\s*;", re.DOTALL)
_EXACT_FEATURES = re.compile(r"export const EXACT_FEATURES\b[^=]*=\s*new Set(?:<\w+>)?\(\[(.*?)\]\)\s*;", re.DOTALL)


def _block(source: str, pattern: re.Pattern[str], what: str) -> str:
    match = pattern.search(source)
    if not match:
        raise ContractError(f"cannot find the literal {what} in the feature definitions")
    return match.group(1)


def load_features(path: Path = DEFINITIONS_PATH) -> tuple[Feature, ...]:
    """FEATURE_NAMES in model order, each with its kind (EXACT_FEATURES → integer)."""
    try:
        source = path.read_text(encoding="utf8")
    except OSError as err:
        raise ContractError(f"cannot read the feature definitions {path}: {err}") from err
    names = _quoted_names(_block(source, _FEATURE_NAMES, "FEATURE_NAMES"), "FEATURE_NAMES")
    exact = set(_quoted_names(_block(source, _EXACT_FEATURES, "EXACT_FEATURES"), "EXACT_FEATURES"))
    unknown = exact.difference(names)
    if unknown:
        raise ContractError(f"EXACT_FEATURES names features that FEATURE_NAMES lacks: {sorted(unknown)}")
    return tuple(Feature(name, "integer" if name in exact else "real") for name in names)


def expected_header(features: tuple[Feature, ...]) -> list[str]:
    return [*ID_COLUMNS, *(f.name for f in features), *TRAILING_COLUMNS]


def check_header(header: list[str], features: tuple[Feature, ...], source: str) -> None:
    """The training CSV must have exactly the contract's columns, features in model order."""
    expected = expected_header(features)
    if header == expected:
        return
    missing = [c for c in expected if c not in header]
    extra = [c for c in header if c not in expected]
    detail = []
    if missing:
        detail.append(f"missing {missing}")
    if extra:
        detail.append(f"unknown {extra}")
    if not detail:
        detail.append("features out of model order")
    raise ContractError(
        f"{source} does not follow the training-set contract ({'; '.join(detail)}); it was probably written by an "
        "older or newer `npm run features -- training-set` than processors/features/definitions.ts"
    )
