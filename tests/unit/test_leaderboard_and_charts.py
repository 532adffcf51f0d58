"""One leaderboard model for every view; plotly figures from stored data; a self-contained report."""

import re

import pytest

from dagml import charts
from dagml import leaderboard as board


def _row(family, status="ok", val=None, test=None, fit=1.0, params=None, error=None, trials=3):
    return {"family": family, "status": status, "error": error, "metric": "roc_auc", "params": params,
            "val_score": val, "test_score": test, "fit_seconds": fit if status == "ok" else None,
            "search_seconds": 2.0, "n_trials": trials, "n_failed_trials": 0, "model_uri": None, "model_sha256": None}


ROWS = [
    _row("sklearn:dummy", val=0.5, test=0.5, params={"strategy": "prior"}),
    _row("sklearn:svm", "failed", error="FamilyFailed: every trial failed", trials=2),
    _row("sklearn:knn", val=0.97, test=0.95, fit=0.2, params={"n_neighbors": 7, "p": 1.23456789}),
    _row("sklearn:random_forest", val=0.97, test=0.96, fit=0.9, params={"max_depth": 4}),
]


def test_entries_are_ranked_by_validation_with_the_tie_broken_by_fit_time_and_failures_last():
    entries = board.entries(ROWS, "roc_auc", selected="sklearn:knn")
    assert [(e["rank"], e["family"]) for e in entries] == [
        (1, "sklearn:knn"), (2, "sklearn:random_forest"), (3, "sklearn:dummy"), (4, "sklearn:svm")]
    knn, failed = entries[0], entries[-1]
    assert knn["selected"] and not entries[1]["selected"]
    assert knn["hyperparameters"] == "n_neighbors=7, p=1.235"
    assert failed["reason"] == "FamilyFailed: every trial failed" and failed["hyperparameters"] == ""
    assert board.cells(failed) == ["4", "sklearn:svm", "failed", "", "", "", "2 (0)", "FamilyFailed: every trial failed"]
    assert board.cells(knn)[3:6] == ["0.97000", "0.95000", "0.20"]


def test_a_lower_is_better_metric_ranks_the_smallest_first_and_no_metric_keeps_the_order():
    rows = [_row("a", val=0.3, test=0.3), _row("b", val=0.1, test=0.2)]
    assert [e["family"] for e in board.entries(rows, "log_loss")] == ["b", "a"]
    assert [e["family"] for e in board.entries(rows, None)] == ["a", "b"]


def test_the_json_document_carries_the_run_its_trigger_values_and_the_entries():
    run = {"dag_id": "automl__x", "partition": "2026-01-01", "run_id": "r", "status": "success", "error": None,
           "failed_task": None, "metric": "roc_auc", "selected_family": "sklearn:knn", "promoted": True,
           "promotion_reason": "no champion yet", "trigger": {"families": ["sklearn:knn"], "note": "why", "seed": None}}
    doc = board.document(run, ROWS)
    assert doc["trigger"]["note"] == "why" and doc["rows"][0]["family"] == "sklearn:knn" and doc["champion"] is None
    assert board.trigger_text(run["trigger"]) == "families=[sklearn:knn], note=why"


def test_search_traces_plot_the_best_score_so_far():
    trials = {"sklearn:knn": [{"trial": 0, "status": "ok", "loss": -0.8}, {"trial": 1, "status": "failed", "loss": None},
                              {"trial": 2, "status": "ok", "loss": -0.9}, {"trial": 3, "status": "ok", "loss": -0.85}]}
    (trace,) = charts.search_traces(trials, "roc_auc").data
    assert list(trace.x) == [0, 1, 2, 3] and list(trace.y) == [0.8, 0.8, 0.9, 0.9]
    (trace,) = charts.search_traces({"a": [{"trial": 0, "status": "ok", "loss": 2.0}]}, "rmse").data
    assert list(trace.y) == [2.0]  # a lower-is-better metric's loss is its score


def test_scores_and_partitions_figures_hold_the_stored_values():
    fig = charts.scores_by_family(board.entries(ROWS, "roc_auc"), "roc_auc")
    assert [t.name for t in fig.data] == ["validation", "test"]
    assert list(fig.data[1].x) == ["sklearn:knn", "sklearn:random_forest", "sklearn:dummy"]
    assert list(fig.data[1].y) == [0.95, 0.96, 0.5]
    history = [{"partition": "2026-01-01", "val_score": 0.9, "test_score": 0.8, "promoted": True, "winner": "a"},
               {"partition": "2026-01-02", "val_score": None, "test_score": None, "promoted": None, "winner": None},
               {"partition": "2026-01-03", "val_score": 0.9, "test_score": 0.7, "promoted": False, "winner": "b"}]
    fig = charts.over_partitions(history, "roc_auc")
    assert list(fig.data[1].x) == ["2026-01-01", "2026-01-03"] and list(fig.data[1].y) == [0.8, 0.7]
    assert list(fig.data[2].x) == ["2026-01-01"]  # the promoted partition is marked


BINARY = {"task": "binary", "metric": "roc_auc", "test_score": 0.9, "rows": 4, "classes": ["no", "yes"],
          "confusion": {"labels": ["no", "yes"], "matrix": [[2, 0], [1, 1]]},
          "roc": {"fpr": [0, 0, 1], "tpr": [0, 0.5, 1], "auc": 0.75},
          "pr": {"recall": [1, 0.5, 0], "precision": [0.5, 1, 1], "average_precision": 0.8},
          "importance": [{"feature": "a", "mean": 0.1, "std": 0.01}], "importance_rows": 4, "importance_repeats": 3}
REGRESSION = {"task": "regression", "metric": "rmse", "test_score": 1.0, "rows": 2,
              "points": {"actual": [1.0, 3.0], "predicted": [2.0, 2.5], "of_rows": 2},
              "importance": [{"feature": "a", "mean": 0.1, "std": 0.0}], "importance_rows": 2, "importance_repeats": 3}


@pytest.mark.parametrize("diagnostics, titles", [
    (BINARY, ["ROC", "Precision-recall", "Confusion", "Permutation"]),
    ({**BINARY, "classes": ["a", "b", "c"], "roc": None}, ["Confusion", "Permutation"]),
    (REGRESSION, ["Predicted vs actual", "Residuals", "Permutation"]),
    ({"error": "ValueError: boom"}, []), (None, []),
])
def test_the_champion_figures_fit_the_task(diagnostics, titles):
    if diagnostics and diagnostics.get("roc", True) is None:
        diagnostics = {k: v for k, v in diagnostics.items() if k not in ("roc", "pr")}
    figures = charts.champion_figures(diagnostics)
    assert len(figures) == len(titles)
    assert all(f.layout.title.text.startswith(t) for f, t in zip(figures, titles)), [f.layout.title.text for f in figures]


def test_residuals_are_actual_minus_predicted():
    (points,) = charts.residuals(REGRESSION).data
    assert list(points.y) == [-1.0, 0.5] and list(points.x) == [2.0, 2.5]


def test_the_report_is_one_self_contained_file_with_plotly_inlined_once(stores):
    from dagml.config import DatasetConfig
    from dagml.report import render_report

    config = DatasetConfig.model_validate({"name": "x", "source": {"uri": "sklearn://iris"}, "target": "t"})
    run = {"partition": "2026-01-01", "run_id": "r", "task": "binary", "metric": "roc_auc",
           "selected_family": "sklearn:knn", "trigger": {"note": "after the fix"}, "profile": {"rows": 4}}
    trials = {"sklearn:knn": [{"trial": 0, "status": "ok", "loss": -0.9}]}
    promotion = {"promoted": True, "reason": "no champion yet", "champion_family": "sklearn:knn"}
    html = render_report(config, run, ROWS, trials, promotion, [], BINARY)
    assert html.count("<script>") - html.count("Plotly.newPlot") == 1  # plotly.js once, then one call per figure
    assert not re.search(r"<script[^>]+src=", html) and "cdn.plot.ly" not in html.split("</head>")[1]
    assert html.count('class="plotly-graph-div"') == 7  # scores, search, 4 champion figures, partitions
    assert "Trigger values: <code>note=after the fix</code>" in html
    assert "<td>sklearn:svm</td><td>failed</td>" in html and "FamilyFailed: every trial failed" in html
