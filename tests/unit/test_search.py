import logging

import numpy as np
import pytest
from hyperopt import hp

from dagml.errors import FamilyFailed
from dagml.families import get_family
from dagml.families.base import Family
from dagml.metrics import get_metric
from dagml.prepare import Fold
from dagml.search import search

RNG = np.random.default_rng(0)
X = RNG.normal(size=(200, 4))
Y = (X[:, 0] > 0).astype(int)
FOLDS = [Fold(X[:150], Y[:150], X[150:], Y[150:])]
AUC = get_metric("roc_auc")


class Flaky(Family):
    """Fails whenever alpha > 0.5; otherwise a real knn. Not registered (no class-level name)."""

    kind = "test"
    calls = 0

    def space(self, task, n_rows, n_cols):
        return {"alpha": hp.uniform("alpha", 0, 1)}

    def fit(self, params, X, y, task, n_classes, seed, eval_set=None):
        type(self).calls += 1
        if params["alpha"] > self.threshold:
            raise ValueError(f"alpha {params['alpha']:.2f} is too large")
        knn = get_family("sklearn:knn")()
        return knn.fit({"n_neighbors": 5, "weights": "uniform", "p": 2}, X, y, task, n_classes, seed)


Flaky.name = "flaky"


def flaky(threshold):
    f = Flaky()
    f.threshold = threshold
    return f


def test_stops_at_the_evaluation_budget_and_logs_progress(caplog):
    family = get_family("sklearn:elastic_net")()
    with caplog.at_level(logging.INFO, logger="dagml.search"):
        result = search(family, FOLDS, "binary", 2, AUC, max_evals=5, seconds=600, seed=1)
    assert result.n_trials == 5 and len(result.trials) == 5
    assert "sklearn:elastic_net trial 5 of 5: roc_auc" in caplog.text and "(best " in caplog.text
    assert result.trials[0]["params"] == {"C": 1.0, "l1_ratio": 0.0}  # the family's first point goes first
    assert result.best_score == max(-t["loss"] for t in result.trials)


def test_stops_at_the_seconds_budget():
    family = get_family("sklearn:random_forest")()
    result = search(family, FOLDS, "binary", 2, AUC, max_evals=10_000, seconds=2, seed=1)
    assert 1 <= result.n_trials < 10_000
    assert result.seconds < 20


def test_same_seed_same_search():
    family = get_family("sklearn:knn")()
    a = search(family, FOLDS, "binary", 2, AUC, max_evals=6, seconds=600, seed=7)
    b = search(family, FOLDS, "binary", 2, AUC, max_evals=6, seconds=600, seed=7)
    assert [t["params"] for t in a.trials] == [t["params"] for t in b.trials]


def test_a_failing_trial_is_logged_and_the_search_goes_on(caplog):
    with caplog.at_level(logging.WARNING, logger="dagml.search"):
        result = search(flaky(0.5), FOLDS, "binary", 2, AUC, max_evals=12, seconds=600, seed=3)
    assert result.n_trials == 12 and 0 < result.n_failed < 12
    assert "failed: ValueError: alpha" in caplog.text
    failed = [t for t in result.trials if t["status"] == "failed"]
    assert all("too large" in t["error"] for t in failed)
    assert result.best_params["alpha"] <= 0.5


def test_a_family_whose_every_trial_fails_fails_with_the_first_reason():
    with pytest.raises(FamilyFailed, match=r"test:flaky: all 4 trial\(s\) failed; first error: ValueError: alpha"):
        search(flaky(-1.0), FOLDS, "binary", 2, AUC, max_evals=4, seconds=600, seed=3)


def test_a_retried_search_resumes_its_saved_trials(tmp_path):
    path = tmp_path / "trials.json"
    family = flaky(2.0)
    first = search(family, FOLDS, "binary", 2, AUC, max_evals=3, seconds=600, seed=5, trials_path=path)
    assert path.exists()
    Flaky.calls = 0
    resumed = search(family, FOLDS, "binary", 2, AUC, max_evals=8, seconds=600, seed=5, trials_path=path)
    assert Flaky.calls == 5  # only the missing evaluations ran
    assert resumed.n_trials == 8
    assert [t["params"] for t in resumed.trials[:3]] == [t["params"] for t in first.trials]


def test_a_truncated_trials_file_starts_over(tmp_path):
    path = tmp_path / "trials.json"
    path.write_bytes(b"\x80\x04cut short")
    result = search(flaky(2.0), FOLDS, "binary", 2, AUC, max_evals=3, seconds=600, seed=5, trials_path=path)
    assert result.n_trials == 3


def test_each_trial_records_hyperopts_own_point():
    from hyperopt import space_eval

    family = get_family("sklearn:knn")()
    result = search(family, FOLDS, "binary", 2, AUC, max_evals=4, seconds=600, seed=2)
    space = family.space("binary", *FOLDS[0].X_train.shape)
    for t in result.trials:
        assert t["warm_start"] is False
        assert set(t["vals"]) == {"n_neighbors", "weights", "p"}
        assert t["vals"]["weights"] in (0, 1) and t["vals"]["p"] in (0, 1)  # choice indices, not the options
        assert space_eval(space, t["vals"]) == t["params"]


def test_a_finite_space_is_searched_once_per_point_whatever_the_budget(caplog):
    with caplog.at_level(logging.INFO, logger="dagml.search"):
        result = search(get_family("sklearn:dummy")(), FOLDS, "binary", 2, AUC, max_evals=500, seconds=600, seed=1)
    assert sorted(t["params"]["strategy"] for t in result.trials) == ["most_frequent", "prior"]
    assert "its space has 2 points; searching 2, not 500" in caplog.text


def test_a_finite_conditional_space_visits_each_distinct_point():
    class Choices(Family):
        kind = "test"

        def space(self, task, n_rows, n_cols):
            return {"model": hp.choice("model", [{"kind": "a", "depth": hp.choice("depth", [1, 2, 3])},
                                                 {"kind": "b"}])}

        def fit(self, params, X, y, task, n_classes, seed, eval_set=None):
            return get_family("sklearn:dummy")().fit({"strategy": "prior"}, X, y, task, n_classes, seed)

    Choices.name = "choices"
    result = search(Choices(), FOLDS, "binary", 2, AUC, max_evals=50, seconds=600, seed=1)
    seen = [(t["params"]["model"]["kind"], t["params"]["model"].get("depth")) for t in result.trials]
    assert sorted(seen, key=str) == sorted([("a", 1), ("a", 2), ("a", 3), ("b", None)], key=str)


# A point whose full fit takes far longer than the trial's 6 s (2,000 trees or rounds on 26 classes).
DEAR_POINTS = {
    "sklearn:random_forest": ("n_estimators", {"n_estimators": 2000, "max_features": 1.0, "min_samples_leaf": 1}),
    "sklearn:extra_trees": ("n_estimators", {"n_estimators": 2000, "max_features": 1.0, "min_samples_leaf": 1}),
    "sklearn:hist_gradient_boosting": ("max_iter", {"learning_rate": 0.01, "max_iter": 2000, "max_leaf_nodes": 31,
                                                    "min_samples_leaf": 20, "l2_regularization": 1e-5}),
    "sklearn:lightgbm": ("max_rounds", {"learning_rate": 0.01, "num_leaves": 31, "min_child_samples": 20,
                                        "subsample": 1.0, "colsample_bytree": 1.0, "reg_alpha": 0.001,
                                        "reg_lambda": 0.001}),
    "sklearn:xgboost": ("max_rounds", {"learning_rate": 0.01, "max_depth": 6, "min_child_weight": 1.0, "subsample": 1.0,
                                       "colsample_bytree": 1.0, "reg_alpha": 0.001, "reg_lambda": 1.0}),
    "sklearn:catboost": ("max_rounds", {"learning_rate": 0.01, "depth": 6, "l2_leaf_reg": 3.0, "subsample": 0.8,
                                        "rsm": 1.0}),
}


@pytest.fixture(scope="module")
def many_classes():
    from sklearn.datasets import make_classification

    X, y = make_classification(8000, 16, n_informative=10, n_classes=26, n_clusters_per_class=1, random_state=0)
    return Fold(X[:6000], y[:6000], X[6000:], y[6000:])


@pytest.mark.parametrize("key", sorted(DEAR_POINTS))
def test_a_fit_the_time_limit_would_kill_stops_itself_and_still_scores(key, many_classes):
    """Trees or boosting rounds grow until the trial's deadline, so a dear point on large data
    gives a model (and the size it reached) instead of a killed trial."""
    import importlib
    import time

    from dagml import threads
    from dagml.search import _fold_predictions
    from dagml.time_limit import call_with_time_limit

    size, point = DEAR_POINTS[key]
    family = get_family(key)()
    for module in family.modules:  # as a search does before forking its trials
        importlib.import_module(module)
    started = time.monotonic()
    with threads.limit(1):
        predictions, cut_short, _ = call_with_time_limit(
            lambda: _fold_predictions(family, point, [many_classes], "multiclass", 26, 0), 6.0,
            soft_share=family.deadline_share)  # as a search calls it
    assert time.monotonic() - started < 6.0
    assert predictions[0].shape == (2000, 26) and np.allclose(predictions[0].sum(axis=1), 1.0)
    assert 1 <= cut_short[size] < 2000
    # the refit outside the time limit keeps the size that scored, so it costs about one trial
    model = family.fit({**point, **cut_short}, many_classes.X_train, many_classes.y_train, "multiclass", 26, 0)
    assert getattr(model, "rounds", None) in (None, *range(1, cut_short[size] + 1))


@pytest.fixture(scope="module")
def letter_sized():
    """As letter: 26 classes, 9,600 search rows and 2,400 validation rows of 16 small-integer features."""
    from sklearn.datasets import make_classification

    X, y = make_classification(12000, 16, n_informative=14, n_redundant=0, n_classes=26, n_clusters_per_class=1,
                               random_state=0)
    X = np.round(X * 3)
    return Fold(X[:9600], y[:9600], X[9600:], y[9600:])


@pytest.mark.parametrize("key", sorted(DEAR_POINTS))
@pytest.mark.parametrize("seconds", [2.0, 4.0])
def test_a_portfolios_first_point_cut_by_a_short_search_still_scores(key, seconds, letter_sized):
    """The first point (early stopping on up to 2,000 rounds, or the first forest) cannot finish in
    a share of a few seconds on 26 classes: it stops growing in time to be predicted and returned,
    rather than being killed (LightGBM was, before its deadline_share left room for that)."""
    result = search(get_family(key)(), [letter_sized], "multiclass", 26, get_metric("log_loss"), max_evals=3,
                    seconds=seconds, seed=0)
    first = result.trials[0]
    assert first["status"] == "ok", first["error"]


class _SlowsDown:
    """A warm-started ensemble whose growing costs 0.05 s a unit, three times that once it has 25
    units: as if another process took the core in the middle of a trial."""

    def __init__(self, n_estimators=100, per_unit=0.05):
        self.n_estimators, self.per_unit, self.warm_start, self.grown = n_estimators, per_unit, False, 0

    def get_params(self):
        return {"n_estimators": self.n_estimators}

    def set_params(self, **params):
        self.__dict__.update(params)
        return self

    def fit(self, X, y):
        import time

        time.sleep((self.n_estimators - self.grown) * self.per_unit * (3 if self.grown >= 25 else 1))
        self.grown = self.n_estimators


def test_a_grown_fit_whose_calls_slow_down_threefold_still_returns_before_the_kill():
    """The next call is never expected to outlast the room between the deadline and the kill: a
    whole step of 25 units (1.25 s expected, 3.75 s taken) started at 1.25 s of a 4 s limit would be
    killed; steps that fit the room (0.8 s) end in time, with what was grown."""
    from dagml.families.sklearn import _grow
    from dagml.time_limit import Deadline, call_with_time_limit

    def grow():
        est = _SlowsDown()
        reached = _grow(est, "n_estimators", None, None, Deadline.now())
        return reached, est.grown

    reached, grown = call_with_time_limit(grow, 4.0)
    assert reached == grown and 25 < grown < 100


def test_a_grown_fit_with_time_to_spare_reaches_its_set_size_whatever_is_left_of_a_step():
    """107 trees in calls of 5, then of 25: the last call grows the 2 that are left (the smallest
    call worth making, a fifth of a step, applies when time limits the growth, not the set size)."""
    from dagml.families.sklearn import _grow
    from dagml.time_limit import Deadline, call_with_time_limit

    def grow():
        est = _SlowsDown(n_estimators=107, per_unit=0.001)
        return _grow(est, "n_estimators", None, None, Deadline.now()), est.grown

    assert call_with_time_limit(grow, 10.0) == (None, 107)


def test_hist_gradient_boosting_stops_at_its_deadline_with_the_trees_a_plain_fit_of_that_size_grows(letter_sized):
    """It has no callback: the deadline is its early-stopping score, so its one fit ends within an
    iteration of the deadline (warm-started calls, as the forests grow, could end a whole call past
    it), the stored model keeps no clock, and the refit of the size it reached, outside any limit,
    is the same model."""
    import pickle
    import time

    from dagml import threads
    from dagml.time_limit import Deadline, call_with_time_limit

    family = get_family("sklearn:hist_gradient_boosting")()
    point = DEAR_POINTS["sklearn:hist_gradient_boosting"][1] | {"learning_rate": 0.1}
    fold = letter_sized

    def fit():
        deadline = Deadline.now()
        model = family.fit(point, fold.X_train, fold.y_train, "multiclass", 26, 0)
        past_deadline = time.monotonic() - deadline.at
        return pickle.dumps(model), past_deadline

    with threads.limit(1):
        stored, past_deadline = call_with_time_limit(fit, 4.0, soft_share=family.deadline_share)
        model = pickle.loads(stored)
        reached = model.cut_short["max_iter"]
        refit = family.fit(point | {"max_iter": reached}, fold.X_train, fold.y_train, "multiclass", 26, 0)
    assert 5 < reached < 2000 and 0 <= past_deadline < 0.3
    assert model.estimator.n_iter_ == reached and not model.estimator.early_stopping
    assert model.estimator.scoring == "loss" and model.estimator._scorer is None
    np.testing.assert_allclose(model.predict(fold.X_valid), refit.predict(fold.X_valid))


def test_a_search_keeps_the_size_a_cut_short_best_trial_reached(many_classes):
    result = search(get_family("sklearn:random_forest")(), [many_classes], "multiclass", 26, get_metric("log_loss"),
                    max_evals=1, seconds=2.0, seed=0)
    assert result.n_failed == 0 and result.best_params["n_estimators"] < 100  # its first point asks for 100


def test_a_holdout_search_returns_its_best_trials_model_and_a_kfold_one_leaves_the_refit(many_classes):
    """With one validation fold the best trial's model was fit on the very rows a refit would use,
    so the search hands it back (no second fit of the same point); k-fold models saw fewer rows."""
    family = get_family("sklearn:random_forest")()
    metric = get_metric("log_loss")
    small = Fold(many_classes.X_train[:1500], many_classes.y_train[:1500],
                 many_classes.X_valid[:500], many_classes.y_valid[:500])
    holdout = search(family, [small], "multiclass", 26, metric, max_evals=3, seconds=60, seed=0)
    assert holdout.best_model is not None and holdout.best_model_seconds > 0
    # the model scores the validation rows as the best trial did (no shrinkage on these rows)
    assert holdout.shrinkage == 0.0
    assert metric(small.y_valid, holdout.best_model.predict(small.X_valid)) == pytest.approx(holdout.best_score)
    halves = [Fold(small.X_train[:750], small.y_train[:750], small.X_valid, small.y_valid),
              Fold(small.X_train[750:], small.y_train[750:], small.X_valid, small.y_valid)]
    kfold = search(family, halves, "multiclass", 26, metric, max_evals=2, seconds=60, seed=0)
    assert kfold.best_model is None
