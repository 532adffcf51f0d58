"""The Family contract, checked for every registered scikit-learn family and every task it claims."""

import numpy as np
import pytest
from hyperopt.pyll.stochastic import sample

from dagml.families import REGISTRY, get_family

RNG = np.random.default_rng(1)
X = RNG.normal(size=(120, 5))
TARGETS = {
    "binary": (X[:, 0] + X[:, 1] > 0).astype(int),
    "multiclass": np.digitize(X[:, 0], [-0.5, 0.5]),
    "regression": X[:, 0] * 2 + X[:, 2],
}
CASES = [(key, task) for key, cls in sorted(REGISTRY.items()) if cls.kind == "sklearn" for task in sorted(cls.tasks)]


@pytest.mark.parametrize("key, task", CASES, ids=lambda v: str(v))
def test_family_samples_fits_predicts_and_round_trips(key, task, tmp_path):
    family = get_family(key)()
    y = TARGETS[task]
    n_classes = 0 if task == "regression" else int(y.max()) + 1
    params = sample(family.space(task, *X.shape), rng=np.random.default_rng(3))
    model = family.fit(params, X[:90], y[:90], task, n_classes, seed=0)
    pred = model.predict(X[90:])
    if task == "regression":
        assert pred.shape == (30,) and np.isfinite(pred).all()
    else:
        assert pred.shape == (30, n_classes)
        np.testing.assert_allclose(pred.sum(axis=1), 1.0, atol=1e-6)
    model.save(tmp_path)
    np.testing.assert_allclose(family.model_class.load(tmp_path).predict(X[90:]), pred)


@pytest.mark.parametrize("key", sorted(k for k, c in REGISTRY.items() if c.kind == "sklearn"))
def test_first_points_lie_in_the_space(key):
    family = get_family(key)()
    for task in family.tasks:
        space = family.space(task, *X.shape)
        for point in family.init_points(task):
            assert set(point) <= set(space), (key, task, point)


def test_row_cap_subsamples_training_rows():
    svm = get_family("sklearn:svm")()
    svm.max_rows = 50
    model = svm.fit({"C": 1.0, "gamma": 0.1}, X, TARGETS["binary"], "binary", 2, seed=0)
    assert model.estimator.calibrated_classifiers_[0].estimator.shape_fit_[0] == 50


def test_unknown_family_lists_the_valid_ones():
    with pytest.raises(KeyError, match="valid: .*sklearn:random_forest"):
        get_family("sklearn:xgboost")


def test_classifier_trained_without_a_class_still_returns_every_column():
    y = np.where(TARGETS["multiclass"] == 2, 1, TARGETS["multiclass"])  # class 2 never seen
    model = get_family("sklearn:knn")().fit({"n_neighbors": 3, "weights": "uniform", "p": 2}, X, y, "multiclass", 3, 0)
    assert model.predict(X[:5]).shape == (5, 3) and (model.predict(X[:5])[:, 2] == 0).all()
