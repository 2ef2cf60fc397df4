"""The promotion rule on its own (the end-to-end tests run it on real models)."""

from __future__ import annotations

from patternos_training.gate import Baseline, GateConfig, Score, better, decide

PERIOD = "the newest period"


def test_first_model_is_promoted_when_above_the_floor() -> None:
    decision = decide(Score(0.71, 0.3), None, GateConfig(), PERIOD)
    assert decision.promote and decision.reason.startswith("first model")


def test_first_model_below_the_floor_stays_candidate() -> None:
    decision = decide(Score(0.5, 0.3), None, GateConfig(min_roc_auc=0.5), PERIOD)
    assert not decision.promote and "below the floor" in decision.reason


def test_better_roc_auc_wins_and_worse_loses_with_the_numbers_in_the_reason() -> None:
    current = Baseline("20260101T000000Z", Score(0.80, 0.40))
    up = decide(Score(0.81, 0.30), current, GateConfig(), PERIOD)
    down = decide(Score(0.79, 0.50), current, GateConfig(), PERIOD)
    assert up.promote and up.reason.startswith("beats current 20260101T000000Z")
    assert not down.promote and down.reason.startswith("does not beat current 20260101T000000Z")
    assert "ROC-AUC 0.7900 vs 0.8000, PR-AUC 0.5000 vs 0.4000 (decided on ROC-AUC, margin 0.0)" in down.reason


def test_roc_auc_tie_is_decided_on_pr_auc() -> None:
    assert better(Score(0.8, 0.41), Score(0.8, 0.40), 0.0)
    assert not better(Score(0.8, 0.40), Score(0.8, 0.40), 0.0)  # equal is not better: the current model stays
    decision = decide(Score(0.8, 0.41), Baseline("v", Score(0.8, 0.40)), GateConfig(), PERIOD)
    assert decision.promote and "tie, decided on PR-AUC" in decision.reason


def test_margin_is_required_improvement() -> None:
    current = Baseline("v", Score(0.80, 0.40))
    assert not decide(Score(0.805, 0.4), current, GateConfig(min_improvement=0.01), PERIOD).promote
    assert decide(Score(0.815, 0.4), current, GateConfig(min_improvement=0.01), PERIOD).promote


def test_a_current_model_that_cannot_be_scored_is_not_replaced_automatically() -> None:
    current = Baseline("v", None, "it uses features the new data lacks: ['x']")
    decision = decide(Score(0.9, 0.9), current, GateConfig(), PERIOD)
    assert not decision.promote and "could not be scored" in decision.reason and "['x']" in decision.reason
