"""The chosen model's diagnostics are computed once in the run, stored with it, and right:
real runs on scikit-learn's bundled datasets."""

import math

import pytest

from dagml.config import load_config
from tests.pipeline import run_tasks

CASES = {
    "binary": "source: {uri: sklearn://breast_cancer}\ntarget: target\ntask: binary\nmetric: roc_auc\n"
              "families: [elastic_net]\nbudget: {max_evals: 2}\n",
    "multiclass": "source: {uri: sklearn://iris}\ntarget: target\nmetric: accuracy\nfamilies: [knn]\n"
                  "budget: {max_evals: 2}\n",
    "regression": "source: {uri: sklearn://diabetes}\ntarget: target\ntask: regression\nmetric: rmse\n"
                  "families: [elastic_net]\nbudget: {max_evals: 2}\n",
}
FEATURES = {"binary": 30, "multiclass": 4, "regression": 10}


@pytest.fixture(scope="module", params=list(CASES))
def stored(request, tmp_path_factory):
    from dagml.store.artifacts import ArtifactStore
    from dagml.store.results import ResultsStore
    from dagml.tasks import Stores

    tmp = tmp_path_factory.mktemp(request.param)
    stores = Stores(ArtifactStore(str(tmp / "artifacts")), ResultsStore(f"sqlite:///{tmp}/results.db"))
    (tmp / "d.yaml").write_text(CASES[request.param])
    keys, prepared, selection, promotion = run_tasks(load_config(tmp / "d.yaml"), stores)
    return request.param, stores.results.diagnostics(keys.dag_id, keys.partition), selection, promotion, stores, keys


def test_diagnostics_are_stored_for_the_runs_chosen_model(stored):
    task, diagnostics, selection, promotion, stores, keys = stored
    assert diagnostics["task"] == task and diagnostics["test_score"] == pytest.approx(promotion["challenger_score"])
    assert stores.results.diagnostics(keys.dag_id, keys.partition, keys.run_id) == diagnostics
    assert stores.results.diagnostics(keys.dag_id, keys.partition, "another-run") is None


def test_importance_has_one_entry_per_input_column_best_first(stored):
    task, diagnostics, *_ = stored
    means = [d["mean"] for d in diagnostics["importance"]]
    assert len(means) == FEATURES[task] == len({d["feature"] for d in diagnostics["importance"]})
    assert means == sorted(means, reverse=True) and means[0] > 0  # the model relies on some column
    assert diagnostics["importance_rows"] == diagnostics["rows"] and diagnostics["importance_repeats"] == 3


def test_the_stored_roc_curve_gives_the_test_score(stored):
    task, diagnostics, selection, *_ = stored
    if task != "binary":
        assert "roc" not in diagnostics
        return
    from sklearn.metrics import auc

    roc = diagnostics["roc"]
    assert auc(roc["fpr"], roc["tpr"]) == pytest.approx(selection["test_score"], abs=1e-12)
    assert (roc["fpr"][0], roc["tpr"][-1]) == (0.0, 1.0) and len(roc["fpr"]) <= 300
    assert 0 < diagnostics["pr"]["average_precision"] <= 1 and diagnostics["pr"]["recall"][0] == 1.0


def test_the_confusion_matrix_counts_every_test_row(stored):
    task, diagnostics, selection, *_ = stored
    if task == "regression":
        assert "confusion" not in diagnostics
        return
    matrix = diagnostics["confusion"]["matrix"]
    assert len(matrix) == len(diagnostics["classes"]) == len(diagnostics["confusion"]["labels"])
    assert sum(map(sum, matrix)) == diagnostics["rows"]
    if task == "multiclass":  # the metric is accuracy: the diagonal's share
        diagonal = sum(matrix[i][i] for i in range(len(matrix)))
        assert diagonal / diagnostics["rows"] == pytest.approx(selection["test_score"])


def test_regression_points_give_the_test_rmse(stored):
    task, diagnostics, selection, *_ = stored
    if task != "regression":
        assert "points" not in diagnostics
        return
    points = diagnostics["points"]
    assert len(points["actual"]) == points["of_rows"] == diagnostics["rows"]  # fewer than MAX_POINTS: all rows
    rmse = math.sqrt(sum((a - p) ** 2 for a, p in zip(points["actual"], points["predicted"])) / len(points["actual"]))
    assert rmse == pytest.approx(selection["test_score"])


def test_large_test_sets_are_bounded_and_sampled_with_the_seed():
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.linear_model import Ridge

    from dagml import diagnostics
    from dagml.metrics import get_metric

    X, y = load_digits(return_X_y=True, as_frame=True)
    X = X.loc[:, X.std() > 0]
    model = Ridge().fit(X, y)
    repeat = np.tile(np.arange(len(X)), 2)  # 3,594 rows: above MAX_POINTS and IMPORTANCE_ROWS
    frame, target = X.iloc[repeat].reset_index(drop=True), y.to_numpy(dtype=float)[repeat]
    recipe = {"task": "regression"}
    first = diagnostics.compute(model.predict, frame, target, recipe, get_metric("rmse"), seed=5)
    assert len(first["points"]["actual"]) == diagnostics.MAX_POINTS and first["points"]["of_rows"] == len(frame)
    # wide data shuffles fewer rows: the model predicts at most MAX_PERMUTED_ROWS shuffled rows
    assert first["importance_rows"] * frame.shape[1] * diagnostics.REPEATS <= diagnostics.MAX_PERMUTED_ROWS
    assert diagnostics.MIN_IMPORTANCE_ROWS <= first["importance_rows"] < diagnostics.IMPORTANCE_ROWS
    again = diagnostics.compute(model.predict, frame, target, recipe, get_metric("rmse"), seed=5)
    assert again == first


def test_a_slow_model_shuffles_fewer_rows_then_fewer_repeats(monkeypatch):
    """An ensemble with an SVM on 180 one-hot columns took 25 s of permutation importance: the
    plan follows the speed the model predicted the test rows at."""
    import time

    import numpy as np
    import pandas as pd

    from dagml import diagnostics
    from dagml.metrics import get_metric

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(400, 40)), columns=[f"x{i}" for i in range(40)])
    target = frame["x0"].to_numpy() * 2
    predicted_rows = []

    def slow(rows):  # 0.5 ms a row, as a slow model predicts
        time.sleep(0.0005 * len(rows))
        predicted_rows.append(len(rows))
        return rows["x0"].to_numpy() * 2

    monkeypatch.setattr(diagnostics, "IMPORTANCE_SECONDS", 1.0)
    out = diagnostics.compute(slow, frame, target, {"task": "regression"}, get_metric("rmse"), seed=1)
    # at 0.5 ms a row or more, 1 s affords at most 50 shuffled copies of a row over 40 columns
    assert (out["importance_rows"], out["importance_repeats"]) == (diagnostics.MIN_IMPORTANCE_ROWS, 1)
    shuffled = sum(predicted_rows) - len(frame) - out["importance_rows"]  # less the test rows and the base
    assert shuffled == out["importance_rows"] * 40 * 1
    assert out["importance"][0]["feature"] == "x0" and out["importance"][0]["mean"] > 0
    # a fast model keeps the full plan
    assert diagnostics.importance_plan(1000, 40, 1e-7) == (diagnostics.IMPORTANCE_ROWS, diagnostics.REPEATS)


def test_a_long_roc_curve_is_thinned_to_its_bound():
    import numpy as np

    from dagml import diagnostics

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 20_000)
    score = np.clip(y * 0.2 + rng.random(20_000), 0, 1)
    curves = diagnostics._binary_curves(y, np.column_stack([1 - score, score]))
    assert len(curves["roc"]["fpr"]) <= diagnostics.MAX_CURVE_POINTS
    assert (curves["roc"]["fpr"][0], curves["roc"]["fpr"][-1]) == (0.0, 1.0)
    assert len(curves["pr"]["recall"]) <= diagnostics.MAX_CURVE_POINTS
