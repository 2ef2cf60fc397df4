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


# The logistic-regression baseline (issue 13): a model is promoted only if it also beats the run's logistic regression
# on the same newest period, the first model included.


def test_a_first_model_that_does_not_beat_the_logistic_regression_stays_candidate() -> None:
    decision = decide(Score(0.72, 0.30), None, GateConfig(), PERIOD, logistic=Score(0.73, 0.31))
    assert not decision.promote
    assert decision.reason.startswith("does not beat the logistic-regression baseline: ROC-AUC 0.7200 vs 0.7300")
    assert "first model" in decision.reason and "none is current" in decision.reason


def test_a_first_model_that_beats_the_logistic_regression_is_promoted_with_both_figures() -> None:
    decision = decide(Score(0.75, 0.35), None, GateConfig(), PERIOD, logistic=Score(0.73, 0.31))
    assert decision.promote and decision.reason.startswith("first model")
    figures = "ROC-AUC 0.7500 vs 0.7300, PR-AUC 0.3500 vs 0.3100"
    assert f"beats the logistic-regression baseline: {figures}" in decision.reason


def test_beating_the_current_model_is_not_enough_without_beating_the_logistic_regression() -> None:
    current = Baseline("v1", Score(0.70, 0.30))
    decision = decide(Score(0.72, 0.31), current, GateConfig(), PERIOD, logistic=Score(0.725, 0.32))
    assert not decision.promote
    # What decided it comes first; the comparison with the current model is still recorded.
    assert decision.reason.startswith("does not beat the logistic-regression baseline: ROC-AUC 0.7200 vs 0.7250")
    assert "beats current v1: ROC-AUC 0.7200 vs 0.7000" in decision.reason


def test_beating_the_logistic_regression_is_not_enough_without_beating_the_current_model() -> None:
    current = Baseline("v1", Score(0.76, 0.30))
    decision = decide(Score(0.75, 0.35), current, GateConfig(), PERIOD, logistic=Score(0.73, 0.31))
    assert not decision.promote and decision.reason.startswith("does not beat current v1: ROC-AUC 0.7500 vs 0.7600")
    assert "beats the logistic-regression baseline" in decision.reason


def test_beating_both_promotes_and_the_logistic_margin_applies() -> None:
    current = Baseline("v1", Score(0.70, 0.30))
    new, logistic = Score(0.735, 0.33), Score(0.73, 0.31)
    promoted = decide(new, current, GateConfig(), PERIOD, logistic=logistic)
    assert promoted.promote and promoted.reason.startswith("beats current v1")
    assert promoted.reason.endswith(f"all scored on {PERIOD}")
    # The same model against a margin of 0.01 over the logistic regression: 0.005 is not enough.
    strict = decide(new, current, GateConfig(min_improvement_over_logistic=0.01), PERIOD, logistic=logistic)
    assert not strict.promote and strict.reason.startswith("does not beat the logistic-regression baseline")
    # A tie with the logistic regression on ROC-AUC goes to PR-AUC, as for the current model.
    assert decide(Score(0.73, 0.32), current, GateConfig(), PERIOD, logistic=logistic).promote
    assert not decide(Score(0.73, 0.30), current, GateConfig(), PERIOD, logistic=logistic).promote
