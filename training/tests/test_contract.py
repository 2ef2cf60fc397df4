"""The feature contract comes from processors/features/definitions.ts, parsed strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from patternos_training.contract import ContractError, Feature, check_header, expected_header, load_features


def test_reads_feature_names_in_model_order_with_kinds(features: tuple[Feature, ...]) -> None:
    names = [f.name for f in features]
    assert len(names) == 55
    assert names[0] == "recency_days" and names[-1] == "repurchase_hazard_365d"
    assert len(set(names)) == len(names)
    kinds = {f.name: f.kind for f in features}
    assert kinds["frequency_7d"] == "integer"  # in EXACT_FEATURES
    assert kinds["cart_abandonment_rate"] == "real"
    assert kinds["reviews_90d"] == "integer" and kinds["brand_consistency_90d"] == "real"
    assert kinds["frequency_365d"] == "integer" and kinds["gap_ratio_365d"] == "real"


def _definitions(tmp_path: Path, names: str, exact: str = "'a'") -> Path:
    path = tmp_path / "definitions.ts"
    path.write_text(
        f"export const FEATURE_NAMES = [\n{names}\n] as const;\n"
        f"export const EXACT_FEATURES: ReadonlySet<FeatureName> = new Set<FeatureName>([{exact}]);\n"
    )
    return path


def test_accepts_comments_and_either_quote(tmp_path: Path) -> None:
    path = _definitions(tmp_path, "  'a', // first\n  \"b\",\n")
    assert load_features(path) == (Feature("a", "integer"), Feature("b", "real"))


@pytest.mark.parametrize(
    ("names", "exact", "message"),
    [
        ("'a', ...OTHER,", "'a'", "not a plain list"),
        ("'a', 'a',", "'a'", "twice"),
        ("'a', 'b',", "'c'", "lacks"),
    ],
)
def test_refuses_what_it_cannot_read_exactly(tmp_path: Path, names: str, exact: str, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        load_features(_definitions(tmp_path, names, exact))


def test_header_must_match_the_contract(features: tuple[Feature, ...]) -> None:
    header = expected_header(features)
    check_header(header, features, "x.csv")
    swapped = header.copy()
    swapped[3], swapped[4] = swapped[4], swapped[3]
    with pytest.raises(ContractError, match="out of model order"):
        check_header(swapped, features, "x.csv")
    with pytest.raises(ContractError, match=r"missing \['views_1h'\]"):
        check_header([c for c in header if c != "views_1h"], features, "x.csv")
    with pytest.raises(ContractError, match=r"unknown \['platform'\]"):
        check_header([*header, "platform"], features, "x.csv")
