"""The Family contract, checked for every registered scikit-learn family (the boosting libraries
included) and every task it claims; then what the boosting families add: early stopping on the
search's validation fold, their own holdout in the final refit, lazy imports."""

import subprocess
import sys

import numpy as np
import pytest
from hyperopt.pyll.stochastic import sample

from dagml.errors import FamilyFailed
from dagml.families import REGISTRY, get_family
from dagml.families.base import Family
from dagml.families.boosting import BoostingFamily
from dagml.metrics import DEFAULT_METRIC, get_metric
from dagml.prepare import Fold
from dagml.search import search
from dagml.warm_start import hyperparameters, reenter

RNG = np.random.default_rng(1)
X = RNG.normal(size=(120, 5))
TARGETS = {
    "binary": (X[:, 0] + X[:, 1] > 0).astype(int),
    "multiclass": np.digitize(X[:, 0], [-0.5, 0.5]),
    "regression": X[:, 0] * 2 + X[:, 2],
}
SKLEARN = sorted(k for k, c in REGISTRY.items() if c.kind == "sklearn")
BOOSTING = sorted(k for k, c in REGISTRY.items() if issubclass(c, BoostingFamily))
CASES = [(key, task) for key in SKLEARN for task in sorted(REGISTRY[key].tasks)]
BOOSTING_CASES = [(key, task) for key in BOOSTING for task in sorted(REGISTRY[key].tasks)]
WITH_FIRST_POINTS = [(key, task) for key, task in CASES if REGISTRY[key]().init_points(task)]


def n_classes_of(task, y):
    return 0 if task == "regression" else int(y.max()) + 1


def quick(key):
    """The family, with boosting capped at 60 rounds: these targets have no noise, so nothing stops early."""
    family = get_family(key)()
    if isinstance(family, BoostingFamily):
        family.max_rounds = 60
    return family


def test_the_boosting_libraries_are_registered_as_sklearn_families():
    assert BOOSTING == ["sklearn:catboost", "sklearn:lightgbm", "sklearn:xgboost"]


@pytest.mark.parametrize("key, task", CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("with_eval_set", [True, False], ids=["search fit", "final refit"])
def test_family_samples_fits_predicts_and_round_trips(key, task, with_eval_set, tmp_path):
    family = quick(key)
    y = TARGETS[task]
    n_classes = n_classes_of(task, y)
    params = sample(family.space(task, *X.shape), rng=np.random.default_rng(3))
    eval_set = (X[90:105], y[90:105]) if with_eval_set else None
    model = family.fit(params, X[:90], y[:90], task, n_classes, seed=0, eval_set=eval_set)
    pred = model.predict(X[105:])
    if task == "regression":
        assert pred.shape == (15,) and np.isfinite(pred).all()
    else:
        assert pred.shape == (15, n_classes) and (pred >= 0).all()
        np.testing.assert_allclose(pred.sum(axis=1), 1.0, atol=1e-6)
    model.save(tmp_path)
    np.testing.assert_allclose(family.model_class.load(tmp_path).predict(X[105:]), pred)


@pytest.mark.parametrize("key", SKLEARN)
@pytest.mark.parametrize("n_rows", [60, 1_000, 1_000_000])
def test_first_points_lie_in_the_space_for_any_row_count(key, n_rows):
    family = get_family(key)()
    for task in family.tasks:
        space = family.space(task, n_rows, 5)
        for point in family.init_points(task):
            assert set(point) == set(hyperparameters(space)), (key, task, point)
            kept = reenter(space, point, key)  # None if dropped; a value outside its bounds comes back clipped
            assert kept is not None and kept == pytest.approx(point), (key, task, n_rows, point, kept)


@pytest.mark.parametrize("key, task", WITH_FIRST_POINTS, ids=lambda v: str(v))
def test_the_search_evaluates_every_first_point(key, task):
    family = quick(key)
    y = TARGETS[task]
    points = family.init_points(task)
    result = search(family, [Fold(X[:90], y[:90], X[90:], y[90:])], task, n_classes_of(task, y),
                    get_metric(DEFAULT_METRIC[task]), max_evals=len(points) + 1, seconds=120, seed=0)
    assert [t["status"] for t in result.trials] == ["ok"] * (len(points) + 1), result.trials
    assert [t["vals"] for t in result.trials[:-1]] == [pytest.approx(p) for p in points]  # then one of TPE's


def test_only_the_dummy_lacks_first_points():  # its two strategies are searched once each
    assert [k for k in SKLEARN if not get_family(k)().init_points("binary")] == ["sklearn:dummy"]
    assert all(2 <= len(get_family(k)().init_points("binary")) <= 4 for k in BOOSTING)


def test_every_sklearn_family_declares_its_cost():
    for key in SKLEARN:
        cls = REGISTRY[key]
        assert any("cost" in c.__dict__ for c in cls.__mro__ if c is not Family), key
        assert cls.cost > 0
    costs = [get_family(k).cost for k in ("sklearn:dummy", "sklearn:elastic_net", "sklearn:catboost")]
    assert costs == sorted(costs) and len(set(costs)) == 3


# Labels that do not depend on X: past the first few rounds every tree fits noise, so the
# validation loss rises and early stopping must end the fit long before max_rounds.
NOISE_X = np.random.default_rng(7).normal(size=(400, 6))
NOISE = {"binary": np.random.default_rng(8).integers(0, 2, 400),
         "multiclass": np.random.default_rng(8).integers(0, 3, 400),
         "regression": np.random.default_rng(8).normal(size=400)}


def fast_overfitting_point(family, task):
    """The family's first point with a high learning rate, so the loss turns within a few rounds."""
    return family.init_points(task)[0] | {"learning_rate": 0.3}


def first_trees_predict(key, estimator, X, rounds, task):
    """What ``estimator`` predicts with its first ``rounds`` trees only, in each library's own terms."""
    method = estimator.predict if task == "regression" else estimator.predict_proba
    if key == "sklearn:lightgbm":
        return method(X, num_iteration=rounds)
    if key == "sklearn:xgboost":
        return method(X, iteration_range=(0, rounds))
    estimator.shrink(rounds)  # catboost
    return method(X)


@pytest.mark.parametrize("key, task", BOOSTING_CASES, ids=lambda v: str(v))
def test_early_stopping_on_the_eval_set_ends_before_max_rounds(key, task):
    family = get_family(key)()
    family.max_rounds = 300
    y = NOISE[task]
    params = fast_overfitting_point(family, task)
    model = family.fit(params, NOISE_X[:300], y[:300], task, n_classes_of(task, y), seed=0,
                       eval_set=(NOISE_X[300:], y[300:]))
    assert model.rounds_from == "eval_set"
    assert 1 <= model.rounds <= family.max_rounds - family.patience
    # it predicts with those rounds: the same fit run to max_rounds, cut to that many trees, predicts the same
    full = family.train(params, task, 0, NOISE_X[:300], y[:300], family.max_rounds, None)
    np.testing.assert_allclose(model.predict(NOISE_X[300:]),
                               first_trees_predict(key, full, NOISE_X[300:], model.rounds, task), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("key, task", BOOSTING_CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("n_rows, found_on", [(400, "median of 3 folds"), (1200, "own holdout of 120 rows")])
def test_the_final_refit_finds_its_rounds_on_rows_of_its_own_then_fits_every_row(key, task, n_rows, found_on):
    family = get_family(key)()
    X_noise = np.random.default_rng(9).normal(size=(n_rows, 6))
    y = np.resize(NOISE[task], n_rows)
    model = family.fit(fast_overfitting_point(family, task), X_noise, y, task, n_classes_of(task, y), seed=0)
    assert model.rounds_from == found_on
    assert 1 <= model.rounds <= family.max_rounds - family.patience
    assert family.rounds_of(model.estimator) == model.rounds  # the refit grew exactly that many trees


@pytest.mark.parametrize("key", BOOSTING)
def test_after_a_k_fold_search_the_fit_on_all_rows_is_one_fit_of_the_folds_median_rounds(key):
    from statistics import median

    from dagml.search import _fold_predictions, found_params

    family = get_family(key)()
    family.max_rounds = 300
    y = NOISE["binary"]
    folds = [Fold(NOISE_X[np.arange(400) % 4 != k], y[np.arange(400) % 4 != k],
                  NOISE_X[np.arange(400) % 4 == k], y[np.arange(400) % 4 == k]) for k in range(4)]
    point = fast_overfitting_point(family, "binary")
    models = _fold_predictions(family, point, folds, "binary", 2, seed=0)[2]
    found = found_params(models)
    assert found == {"rounds": int(median(m.rounds for m in models))}
    assert found_params(models[:1]) == {}  # a holdout search keeps its best trial's model
    result = search(family, folds, "binary", 2, get_metric("log_loss"), max_evals=2, seconds=600, seed=0)
    assert isinstance(result.best_params.get("rounds"), int)  # the best point carries its folds' median
    model = family.fit(point | found, NOISE_X, y, "binary", 2, seed=0)
    assert (model.rounds, model.rounds_from) == (found["rounds"], "k-fold search")
    assert family.rounds_of(model.estimator) == found["rounds"]


@pytest.mark.parametrize("key", BOOSTING)
def test_a_tiny_refit_uses_the_fallback_rounds(key):
    family = get_family(key)()
    point = family.init_points("binary")[0]
    if "min_child_samples" in point:  # LightGBM stops adding trees once no leaf of 30 rows can be split
        point = point | {"min_child_samples": 2}
    model = family.fit(point, X[:30], TARGETS["binary"][:30], "binary", 2, seed=0)
    assert (model.rounds, model.rounds_from) == (family.fallback_rounds, "fallback (under 40 rows)")
    assert family.rounds_of(model.estimator) == family.fallback_rounds


@pytest.mark.parametrize("key", BOOSTING)
def test_a_class_missing_from_training_rows_gets_probability_zero(key):
    family = quick(key)
    y = TARGETS["multiclass"]
    train = y != 1  # class 1 never seen in training; the eval rows of class 1 are left out of early stopping
    model = family.fit(family.init_points("multiclass")[0], X[train][:60], y[train][:60], "multiclass", 3,
                       seed=0, eval_set=(X[90:], y[90:]))
    pred = model.predict(X[:10])
    assert pred.shape == (10, 3) and (pred[:, 1] == 0).all()
    np.testing.assert_allclose(pred.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("key", BOOSTING)
def test_a_single_training_class_is_a_clear_error(key):
    with pytest.raises(ValueError, match="single class"):
        quick(key).fit(get_family(key)().init_points("binary")[0], X[:50], np.zeros(50, int), "binary", 2, 0)


@pytest.mark.parametrize("key", BOOSTING)
def test_a_missing_library_fails_the_family_with_its_name(key, monkeypatch):
    family = get_family(key)()
    family.check_available()  # installed here
    monkeypatch.setitem(sys.modules, family.package, None)  # what `import` meets when it is not installed
    with pytest.raises(FamilyFailed, match=rf"{key} needs the Python package '{family.package}'.*requirements.txt"):
        family.check_available()


def test_listing_the_families_imports_no_boosting_library():
    code = ("import sys, dagml.families as f; assert 'sklearn:lightgbm' in f.REGISTRY; "
            "print(sorted(m for m in ('lightgbm', 'xgboost', 'catboost', 'sklearn') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_row_cap_subsamples_training_rows():
    svm = get_family("sklearn:svm")()
    svm.max_rows = 50
    model = svm.fit({"C": 1.0, "gamma": 0.1}, X, TARGETS["binary"], "binary", 2, seed=0)
    assert model.estimator.calibrated_classifiers_[0].estimator.shape_fit_[0] == 50


def test_unknown_family_lists_the_valid_ones():
    with pytest.raises(KeyError, match="valid: .*sklearn:random_forest"):
        get_family("sklearn:no_such_family")


def test_classifier_trained_without_a_class_still_returns_every_column():
    y = np.where(TARGETS["multiclass"] == 2, 1, TARGETS["multiclass"])  # class 2 never seen
    model = get_family("sklearn:knn")().fit({"n_neighbors": 3, "weights": "uniform", "p": 2}, X, y, "multiclass", 3, 0)
    assert model.predict(X[:5]).shape == (5, 3) and (model.predict(X[:5])[:, 2] == 0).all()


def test_catboost_takes_categorical_columns_as_codes_first_and_scores_raw_rows(tmp_path):
    """A family with native_categoricals gets every categorical column (one-hot-sized or not) as an
    integer code at the front of its matrix, tells its library they are categories, and its model,
    saved and loaded, predicts from the same preprocessor's matrix of new rows."""
    import pandas as pd

    from dagml.prepare import FrameData, build_preprocessor, make_recipe

    rng = np.random.default_rng(0)
    n = 400
    city = rng.choice([f"city {i}" for i in range(40)], n)  # above onehot_max_categories: ordinal
    colour = rng.choice(["red", "green", "blue"], n)  # one-hot for the other families
    signal = {f"city {i}": i % 2 for i in range(40)}
    y = np.array([signal[c] ^ (k == "red") for c, k in zip(city, colour)]).astype(int)
    df = pd.DataFrame({"x": rng.normal(size=n), "city": city, "colour": colour, "y": y.astype(str)})
    recipe = make_recipe(df, "y", "binary")
    assert recipe["onehot"] == ["colour"] and recipe["ordinal"] == ["city"]
    family = quick("sklearn:catboost")
    own = family.adopt(recipe)
    assert (own["onehot"], own["ordinal"], family.categoricals) == ([], ["colour", "city"], 2)
    assert quick("sklearn:lightgbm").adopt(recipe) is recipe  # the others keep the shared recipe

    roles = np.array(["train"] * 300 + ["valid"] * 50 + ["test"] * 50)
    fold = FrameData(df, roles, own, scale=False).folds()[0]
    assert fold.X_train.shape[1] == 3 and set(np.unique(fold.X_train[:, 1])) <= set(range(40))  # codes first
    family.max_rounds = 200
    model = family.fit({"learning_rate": 0.2, "depth": 4, "l2_leaf_reg": 1.0, "subsample": 0.8, "rsm": 1.0},
                       fold.X_train, fold.y_train, "binary", 2, seed=0, eval_set=(fold.X_valid, fold.y_valid))
    assert model.estimator.get_cat_feature_indices() == [0, 1]
    assert get_metric("roc_auc")(fold.y_valid, model.predict(fold.X_valid)) > 0.95  # the codes carry the signal
    model.save(tmp_path)
    pre = build_preprocessor(own, scale=False).fit(df[own["features"]][:300])
    X_new = pre.transform(df[own["features"]][350:])
    np.testing.assert_allclose(family.model_class.load(tmp_path).predict(X_new), model.predict(X_new))


def test_the_elastic_nets_first_point_on_many_one_hot_columns_fits_well_within_a_short_share():
    """Its first points are pure L2, which lbfgs fits in a fraction of a second on 360 one-hot-like
    columns (as dna); saga took 10 s to its iteration cap here, and its 5 folds on satellite were
    killed at elastic net's 2.7 s share, so the family scored nothing."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, size=(1900, 360)).astype(float)
    y = np.argmax(X[:, :20] @ rng.normal(size=(20, 3)) + rng.gumbel(size=(1900, 3)), axis=1)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    fold = Fold(X[:1520], y[:1520], X[1520:], y[1520:])
    result = search(get_family("sklearn:elastic_net")(), [fold], "multiclass", 3, get_metric("log_loss"),
                    max_evals=3, seconds=3.0, seed=0)
    first = result.trials[:2]  # the first points, both pure L2
    assert [t["params"]["l1_ratio"] for t in first] == [0.0, 0.0]
    assert [t["status"] for t in first] == ["ok", "ok"], [t["error"] for t in first]
