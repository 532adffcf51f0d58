"""Selection that small data cannot fool: k-fold below a row threshold, and probabilities kept
away from 0 and 1 when the metric punishes confidence (log loss)."""

import math

import numpy as np
import pandas as pd
import pytest

from dagml import tasks
from dagml.config import DatasetConfig
from dagml.families.sklearn import SklearnFamily
from dagml.metrics import best_shrinkage, get_metric, shrink
from dagml.prepare import folds, make_recipe, make_split
from dagml.search import search


class OneNeighbour(SklearnFamily):
    """1-nearest-neighbour: its class probabilities are always exactly 0 or 1."""

    def space(self, task, n_rows, n_cols):
        from hyperopt import hp

        return {"p": hp.choice("p", [1, 2])}

    def estimator(self, params, task, seed):
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(n_neighbors=1, p=params["p"])


OneNeighbour.name = "one_neighbour"  # not registered


def _noisy_iris(seed=0):
    from sklearn.datasets import load_iris

    df = load_iris(as_frame=True).frame
    rng = np.random.default_rng(seed)
    flip = rng.random(len(df)) < 0.1  # some rows no neighbour gets right
    df.loc[flip, "target"] = (df.loc[flip, "target"] + 1) % 3
    return df


def test_a_150_row_dataset_is_validated_by_kfold_by_default(tmp_path, stores):
    _noisy_iris().to_csv(tmp_path / "iris.csv", index=False)
    config = DatasetConfig.model_validate({"name": "small", "source": {"uri": str(tmp_path / "iris.csv")},
                                           "target": "target", "families": ["knn"], "budget": {"max_evals": 2}})
    assert config.split.validation == "auto"
    keys = tasks.RunKeys(config.dag_id, "2026-01-01", "r1")
    loaded = tasks.load(config, config.source.uri, keys, stores)
    prepared = tasks.prepare(config, loaded, tasks.profile(config, loaded, keys, stores), keys, stores)
    roles = stores.artifacts.read_parquet(prepared["split_uri"])["role"]
    assert sorted(set(roles)) == ["fold0", "fold1", "fold2", "fold3", "fold4", "test"]
    big = config.model_copy(update={"split": config.split.model_copy(update={"kfold_below": 100})})
    assert big.split.resolved(150) == "holdout" and config.split.resolved(150) == "kfold"


def test_hard_zero_one_probabilities_cannot_reach_an_absurd_log_loss():
    df = _noisy_iris()
    recipe = make_recipe(df, "target", "multiclass")
    roles = make_split(df["target"], "multiclass", 0.2, "kfold", 0.2, 5, seed=0)
    data = folds(df, roles, recipe, scale=True)
    log_loss = get_metric("log_loss")
    uniform = math.log(3)

    result = search(OneNeighbour(), data, "multiclass", 3, log_loss, max_evals=2, seconds=60, seed=0)
    assert 0 < result.shrinkage and result.best_score < uniform  # better than knowing nothing
    y = np.concatenate([f.y_valid for f in data])
    assert result.valid_predictions.min() > 0  # no class is ever certain
    raw = np.where(result.valid_predictions == result.valid_predictions.max(axis=1, keepdims=True), 1.0, 0.0)
    assert log_loss(y, raw) > 3 * uniform  # what one confident mistake per fold does without it
    assert log_loss(y, result.valid_predictions) == pytest.approx(log_loss(y, shrink(raw, result.shrinkage)))


def test_no_shrinkage_where_confidence_costs_nothing():
    y = np.array([0, 1, 1, 0])
    proba = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    assert best_shrinkage(get_metric("roc_auc"), y, proba) == 0.0
    assert best_shrinkage(get_metric("log_loss"), y, proba) > 0


def test_the_stored_champion_predicts_the_shrunk_probabilities(tmp_path, stores):
    from dagml.predictors import load_verified
    from tests.pipeline import run_tasks

    _noisy_iris().to_csv(tmp_path / "iris.csv", index=False)
    config = DatasetConfig.model_validate({
        "name": "shrunk", "source": {"uri": str(tmp_path / "iris.csv")}, "target": "target",
        "metric": "log_loss", "families": [{"name": "knn", "max_evals": 3}], "budget": {"max_evals": 2}})
    run_tasks(config, stores)
    rows = {r["family"]: r for r in stores.results.leaderboard(config.dag_id, "2026-01-01")}
    assert math.isfinite(rows["sklearn:knn"]["test_score"]) and rows["sklearn:knn"]["test_score"] < math.log(3)
    champion = stores.results.champion(config.dag_id)
    predictor = load_verified(stores.artifacts, champion["model_uri"], champion["model_sha256"])
    proba = predictor.predict_proba(pd.read_csv(tmp_path / "iris.csv").drop(columns="target"))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert predictor.manifest["shrinkage"] > 0  # some iris rows sit among the other class's
    assert proba.to_numpy().min() >= predictor.manifest["shrinkage"] / 3 - 1e-12

