import json
import logging

import numpy as np
from hyperopt import hp

from dagml.families import get_family
from dagml.families.base import Family
from dagml.metrics import get_metric
from dagml.prepare import Fold
from dagml.search import search
from dagml.warm_start import reenter

RNG = np.random.default_rng(0)
X = RNG.normal(size=(200, 4))
Y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
FOLDS = [Fold(X[:150], Y[:150], X[150:], Y[150:])]
SMALL = [Fold(X[:30], Y[:30], X[150:], Y[150:])]  # 30 training rows: knn's n_neighbors bound is 15
AUC = get_metric("roc_auc")
EN_INIT = {"C": 1.0, "l1_ratio": 0.0}  # sklearn:elastic_net's init point (binary)


def run(key, warm=None, folds=FOLDS, max_evals=5, seed=1, **kw):
    return search(get_family(key)(), folds, "binary", 2, AUC, max_evals=max_evals, seconds=600, seed=seed,
                  warm_points=warm, **kw)


def best_vals(result, n):
    ok = sorted((t for t in result.trials if t["status"] == "ok"), key=lambda t: (t["loss"], t["trial"]))
    return [t["vals"] for t in ok[:n]]


def test_a_second_search_evaluates_the_first_searchs_best_points_first(caplog):
    first = run("sklearn:knn", max_evals=8, seed=1)
    json.dumps(first.trials)  # what the results store writes
    assert all(t["warm_start"] is False for t in first.trials)
    points = best_vals(first, 2)
    with caplog.at_level(logging.INFO, logger="dagml.search"):
        second = run("sklearn:knn", warm=points, max_evals=6, seed=2)
    assert second.n_trials == 6
    assert [t["warm_start"] for t in second.trials] == [True, True, False, False, False, False]
    assert second.trials[0]["params"] == first.best_params
    assert [t["vals"] for t in second.trials[:2]] == points
    assert second.trials[0]["loss"] == -first.best_score  # same point, same data: same score
    assert "sklearn:knn trial 1 of 6 (warm start): roc_auc" in caplog.text
    assert "sklearn:knn trial 3 of 6: roc_auc" in caplog.text


def test_warm_points_go_before_the_familys_own_and_a_duplicate_is_evaluated_once():
    other = {"C": 20.0, "l1_ratio": 0.5}
    result = run("sklearn:elastic_net", warm=[other, EN_INIT, other], max_evals=5)
    assert [t["params"] for t in result.trials[:2]] == [other, EN_INIT]
    assert [t["warm_start"] for t in result.trials] == [True, True, False, False, False]
    assert [t["params"] for t in result.trials].count(EN_INIT) == 1
    assert [t["params"] for t in result.trials].count(other) == 1


def test_warm_points_leave_at_least_one_evaluation_to_tpe():
    points = [{"C": c, "l1_ratio": 0.1} for c in (0.5, 2.0, 8.0, 32.0)]
    result = run("sklearn:elastic_net", warm=points, max_evals=3)
    assert [t["warm_start"] for t in result.trials] == [True, True, False]
    assert result.trials[2]["params"] not in points + [EN_INIT]


def test_a_point_outside_a_row_dependent_space_is_clipped_or_dropped_and_logged(caplog):
    too_far = {"n_neighbors": 40.0, "weights": 1, "p": 0}  # found on more rows than the 30 of SMALL
    bad_index = {"n_neighbors": 5.0, "weights": 2, "p": 0}  # weights has 2 options
    with caplog.at_level(logging.INFO, logger="dagml.search"):
        result = run("sklearn:knn", warm=[bad_index, too_far], folds=SMALL, max_evals=4)
    assert result.n_trials == 4 and result.n_failed == 0
    assert result.trials[0]["warm_start"] and not result.trials[1]["warm_start"]
    assert result.trials[0]["params"] == {"n_neighbors": 15, "weights": "distance", "p": 1}
    assert "sklearn:knn: warm-start point: n_neighbors = 40.0 clipped to 15" in caplog.text
    assert "sklearn:knn: warm-start point dropped: weights = 2 is not an index of its 2 options" in caplog.text
    assert "warm start with 1 of 2 stored points" in caplog.text


def test_unknown_labels_are_ignored_and_points_missing_a_label_or_broken_are_dropped(caplog):
    points = [
        {"C": 2.0},  # l1_ratio missing
        None,
        {"C": "high", "l1_ratio": 0.2},
        {"C": float("nan"), "l1_ratio": 0.2},
        {"C": 2.0, "l1_ratio": 0.3, "alpha": 0.1},  # alpha: the regression space's, not this one's
    ]
    with caplog.at_level(logging.INFO, logger="dagml.search"):
        result = run("sklearn:elastic_net", warm=points, max_evals=4)
    assert result.n_trials == 4
    assert [t["warm_start"] for t in result.trials] == [True, False, False, False]
    assert result.trials[0]["params"] == {"C": 2.0, "l1_ratio": 0.3}
    assert result.trials[0]["vals"] == {"C": 2.0, "l1_ratio": 0.3}
    assert "sklearn:elastic_net: warm-start point dropped: it has no value for l1_ratio" in caplog.text
    assert "C = 'high' is not a finite number" in caplog.text and "C = nan is not a finite number" in caplog.text
    assert "label 'alpha' (value 0.1) is not in the space; ignored" in caplog.text


def test_a_resumed_search_does_not_add_warm_points_again(tmp_path):
    path = tmp_path / "trials.json"
    a, b = {"C": 3.0, "l1_ratio": 0.7}, {"C": 0.01, "l1_ratio": 0.9}
    first = run("sklearn:elastic_net", warm=[a], max_evals=3, trials_path=path)
    assert [t["warm_start"] for t in first.trials] == [True, False, False]
    resumed = run("sklearn:elastic_net", warm=[b], max_evals=6, trials_path=path)
    assert resumed.n_trials == 6
    assert [t["params"] for t in resumed.trials[:3]] == [t["params"] for t in first.trials]
    assert [t["warm_start"] for t in resumed.trials] == [True, False, False, False, False, False]
    assert b not in [t["params"] for t in resumed.trials]


class Nested(Family):
    """A conditional space: k exists only in branch 0 of m, a only in branch 1."""

    kind = "test"

    def space(self, task, n_rows, n_cols):
        return {"m": hp.choice("m", [{"k": hp.quniform("k", 1, 9, 1)}, {"a": hp.uniform("a", 0, 1)}])}

    def fit(self, params, X, y, task, n_classes, seed, eval_set=None):
        k = int(params["m"].get("k", 3))
        return get_family("sklearn:knn")().fit({"n_neighbors": k, "weights": "uniform", "p": 2}, X, y, task,
                                               n_classes, seed)


Nested.name = "nested"


def test_reenter_requires_only_the_active_labels_of_a_conditional_space():
    space = Nested().space("binary", 100, 4)
    assert reenter(space, {"m": 1, "a": 0.25}, "test:nested") == {"m": 1, "a": 0.25}
    assert reenter(space, {"m": 0, "k": 12.0, "a": 0.25}, "test:nested") == {"m": 0, "k": 9}  # a: inactive
    assert reenter(space, {"m": 0, "a": 0.25}, "test:nested") is None  # k is active and missing
    assert reenter(space, {"m": 1.5, "a": 0.25}, "test:nested") is None


def test_a_conditional_space_is_warm_started_and_tpe_goes_on_past_its_random_start():
    result = search(Nested(), FOLDS, "binary", 2, AUC, max_evals=22, seconds=600, seed=4,
                    warm_points=[{"m": 1, "a": 0.3}, {"m": 0, "k": 30.0, "a": 0.1}])
    assert result.n_trials == 22 and result.n_failed == 0  # tpe.suggest models the history after 20 trials
    assert [t["vals"] for t in result.trials[:2]] == [{"m": 1, "a": 0.3}, {"m": 0, "k": 9}]
    assert [t["params"] for t in result.trials[:2]] == [{"m": {"a": 0.3}}, {"m": {"k": 9.0}}]
