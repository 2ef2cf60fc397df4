"""model-card.md: what a person reads before trusting a model version (the manifest is what a program reads)."""

from __future__ import annotations

from typing import Any

from .dataset import Splits, iso_time
from .gate import Decision
from .metrics import Metrics

TOP_FEATURES = 20


def _number(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _metrics_rows(name: str, split: str, m: dict[str, Any]) -> str:
    at = {t["threshold"]: t for t in m["at_thresholds"]}
    cells = [name, split, _number(m["roc_auc"]), _number(m["pr_auc"]), _number(m["brier"])]
    for threshold in sorted(at):
        cells += [_number(at[threshold]["precision"], 3), _number(at[threshold]["recall"], 3)]
    return "| " + " | ".join(cells) + " |"


def _calibration_table(title: str, metrics: Metrics) -> list[str]:
    lines = [f"**{title}**", "", "| bin | rows | mean predicted | observed rate |", "| --- | ---: | ---: | ---: |"]
    for b in metrics.calibration:
        lines.append(
            f"| [{b.lower:.1f}, {b.upper:.1f}{']' if b.upper == 1.0 else ')'} | {b.count:,} | "
            f"{_number(b.mean_predicted)} | {_number(b.observed_rate)} |"
        )
    return [*lines, ""]


def _interval(item: dict[str, float] | None, signed: bool = False) -> str:
    if item is None:
        return "(reference)"
    sign = "+" if signed else ""
    return f"{item['estimate']:{sign}.4f} [{item['ci_low']:{sign}.4f}, {item['ci_high']:{sign}.4f}]"


def _comparison_section(metrics: dict[str, Any]) -> list[str]:
    """The candidates and the baselines side by side on the test split, with paired-bootstrap intervals."""
    comparison = metrics.get("comparison") or {}
    if not comparison:
        return []
    reference = comparison["reference"]
    lines = [
        "",
        "## Against the baselines (test split)",
        "",
        f"Estimate [95 % interval]; Δ = model − {reference} (the selected model). Method: {comparison['method']}. "
        "The logistic regression is on log-transformed RFM-style features, fitted on the train split "
        f"(C = {metrics['baselines']['logistic_regression']['c']:g}, chosen on validation); RFM quintiles are "
        "r_score + f_score + m_score. The gate requires beating the logistic regression.",
        "",
        "| model | ROC-AUC | PR-AUC | Δ ROC-AUC | Δ PR-AUC | resamples with Δ ROC-AUC < 0 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, m in comparison["models"].items():
        share = m["share_of_resamples_reference_roc_auc_higher"]
        lines.append(
            f"| {name} | {_interval(m['roc_auc'])} | {_interval(m['pr_auc'])} | "
            f"{_interval(m['roc_auc_minus_reference'], True)} | {_interval(m['pr_auc_minus_reference'], True)} | "
            f"{'–' if share is None else f'{share:.1%}'} |"
        )
    return lines


def render(
    manifest: dict[str, Any],
    splits: Splits,
    test: Metrics,
    test_calibrated: Metrics,
    decision: Decision,
    reproduce: str,
) -> str:
    version = manifest["model_version"]
    data = manifest["training_data"]
    candidates = manifest["metrics"]["candidates"]
    lines = [
        f"# Purchase-intent model {version}",
        "",
        f"- Algorithm: **{manifest['algorithm']}** (chosen on validation; {manifest['metrics']['selection']})",
        f"- Created: {manifest['created_at']}",
        f"- Label: {manifest['label']['definition']} (horizon {manifest['label']['horizon_days']:g} days)",
        f"- Promotion at registration: **{'current' if decision.promote else 'candidate'}**: {decision.reason}",
        f"- Training data: {data['source']} (sha256 {data['sha256'][:16]}…), {data['rows']:,} rows, "
        f"refs {iso_time(data['from_ms'])} … {iso_time(data['to_ms'])} UTC",
        "- Splits by reference time (rows whose label window reaches the next split are purged):",
    ]
    for split in (splits.train, splits.validation, splits.test):
        purged = f", {split.purged:,} purged" if split.purged else ""
        lines.append(f"  - {split.name}: {split.describe(splits.horizon_ms)}{purged}")
    parity = manifest["parity"]
    lines += [
        f"- ONNX parity: max |ONNX − model| {parity['max_abs_diff']:.2e} over {parity['rows']:,} test rows "
        f"(tolerance {parity['tolerance']:g}, {parity['runtime']})",
        "",
        "## Metrics",
        "",
        "Thresholds are the scorer's intent levels (MEDIUM ≥ 0.4, HIGH ≥ 0.7) on the raw probability; – means no row "
        "reached the threshold.",
        "",
        "| model | split | ROC-AUC | PR-AUC | Brier | P@0.4 | R@0.4 | P@0.7 | R@0.7 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, c in candidates.items():
        lines.append(_metrics_rows(name, "validation", c["validation"]))
        lines.append(_metrics_rows(name, "test", c["test"]))
    lines.append(_metrics_rows(f"{manifest['algorithm']} + isotonic", "test", test_calibrated.to_json()))
    lines += _comparison_section(manifest["metrics"])
    lines += ["", "## Calibration (test split)", ""]
    lines += _calibration_table("Raw model probability (intent_score)", test)
    lines += _calibration_table("Isotonic-calibrated (purchase_probability_7d)", test_calibrated)
    lines += [
        f"The calibration table in feature-manifest.json has {len(manifest['calibration']['points'])} points, fitted "
        "on the validation split.",
        "",
        f"## Feature importance (total gain share, top {TOP_FEATURES})",
        "",
        "| # | feature | gain share |",
        "| ---: | --- | ---: |",
    ]
    for rank, item in enumerate(manifest["metrics"]["feature_importance_gain"][:TOP_FEATURES], start=1):
        lines.append(f"| {rank} | {item['name']} | {item['gain_share']:.4f} |")
    lines += [
        "",
        f"## Features ({len(manifest['features'])}, model input order)",
        "",
        ", ".join(f"`{f['name']}`" for f in manifest["features"]),
        "",
        "## Reproduce",
        "",
        "```bash",
        reproduce,
        "```",
        "",
        f"The training set must hash to sha256 `{data['sha256']}`; params: `{manifest['training']['params']}`, "
        f"libraries: {', '.join(f'{k} {v}' for k, v in manifest['training']['libraries'].items())}.",
        "",
    ]
    return "\n".join(lines)
