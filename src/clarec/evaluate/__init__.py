"""Evaluation: accuracy and beyond-accuracy metrics, full-ranking evaluator, significance tests."""

from clarec.evaluate.beyond import (
    BEYOND_METRICS,
    average_popularity,
    gini_index,
    intra_list_diversity,
    item_coverage,
    novelty,
    recommendation_counts,
)
from clarec.evaluate.evaluator import ALL_METRICS, EvalResult, Evaluator, evaluate_rankings
from clarec.evaluate.external import evaluate_recommendation_file, read_recommendations
from clarec.evaluate.metrics import ACCURACY_METRICS, hit_matrix, mean_metrics, per_user_metrics
from clarec.evaluate.stats import (
    PairedTestResult,
    bootstrap_ci,
    holm,
    paired_t_test,
    paired_test,
    wilcoxon_test,
)

__all__ = [
    "ACCURACY_METRICS",
    "ALL_METRICS",
    "BEYOND_METRICS",
    "EvalResult",
    "Evaluator",
    "PairedTestResult",
    "average_popularity",
    "bootstrap_ci",
    "evaluate_rankings",
    "evaluate_recommendation_file",
    "gini_index",
    "hit_matrix",
    "holm",
    "intra_list_diversity",
    "item_coverage",
    "mean_metrics",
    "novelty",
    "paired_t_test",
    "paired_test",
    "per_user_metrics",
    "read_recommendations",
    "recommendation_counts",
    "wilcoxon_test",
]
