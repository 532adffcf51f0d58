"""R and Spark families: the Family contract, and parity with scikit-learn on fixed hyperparameters,
which catches a broken bridge (shuffled rows, lost labels, wrong class order)."""

import logging

import numpy as np
import pytest

from dagml.errors import FamilyFailed
from dagml.families import REGISTRY, get_family
from dagml.families.r import Glmnet
from dagml.metrics import get_metric
from dagml.prepare import Fold
from dagml.search import search

RNG = np.random.default_rng(2)
X = RNG.normal(size=(160, 4))
TARGETS = {
    "binary": (X[:, 0] - X[:, 1] + RNG.normal(scale=0.5, size=160) > 0).astype(int),
    "multiclass": np.digitize(X[:, 0] + RNG.normal(scale=0.3, size=160), [-0.5, 0.5]),
    "regression": X[:, 0] * 2 - X[:, 2] + RNG.normal(scale=0.3, size=160),
}
CASES = [(k, t) for k, c in sorted(REGISTRY.items()) if c.kind in ("r", "spark") for t in sorted(c.tasks)]


# Spark runs a job per boosting iteration or tree level: keep its points small for the suite.
CHEAP = {"spark:gbt": {"max_iter": 10, "max_depth": 3, "step_size": 0.3, "subsampling": 1.0},
         "spark:random_forest": {"num_trees": 20, "max_depth": 5, "feature_share": 0.5, "min_instances": 1}}


def _first_point(family, task):
    from hyperopt.pyll.stochastic import sample

    if family.key() in CHEAP:
        return CHEAP[family.key()]
    points = family.init_points(task)
    if points and set(points[0]) == set(family.space(task, *X.shape)):
        return points[0]
    return sample(family.space(task, *X.shape), rng=np.random.default_rng(0))


@pytest.mark.parametrize("key, task", CASES, ids=str)
def test_family_fits_predicts_and_round_trips(key, task, tmp_path):
    family = get_family(key)()
    family.check_available()
    y = TARGETS[task]
    k = 0 if task == "regression" else int(y.max()) + 1
    model = family.fit(_first_point(family, task), X[:120], y[:120], task, k, seed=0)
    pred = model.predict(X[120:])
    if task == "regression":
        assert pred.shape == (40,)
        assert np.corrcoef(pred, y[120:])[0, 1] > 0.8  # learned something, rows in order
    else:
        assert pred.shape == (40, k)
        np.testing.assert_allclose(pred.sum(axis=1), 1.0, atol=1e-6)
        assert (pred.argmax(axis=1) == y[120:]).mean() > 0.6  # labels and class order survived
    model.save(tmp_path)
    np.testing.assert_allclose(family.model_class.load(tmp_path).predict(X[120:]), pred, rtol=1e-6)


def _scaled():
    return (X - X.mean(0)) / X.std(0)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("l1", [0.0, 0.5])
def test_glmnet_and_spark_linear_match_sklearn_elastic_net(task, l1):
    """Same objective: glmnet's and Spark's lambda is scikit-learn's 1 / (n * C) for classification and
    its alpha for regression, once the response has unit variance (both standardise it internally)."""
    Xs, y = _scaled(), TARGETS[task]
    n, lam = len(y), 0.02
    k = 0 if task == "regression" else int(y.max()) + 1
    if task == "regression":
        y = y / y.std()
        sk_params = {"alpha": lam, "l1_ratio": l1}
    else:
        sk_params = {"C": 1 / (n * lam), "l1_ratio": l1}
    sk = get_family("sklearn:elastic_net")()
    sk.estimator = lambda p, t, s, _orig=sk.estimator: _tight(_orig(p, t, s))
    reference = sk.fit(sk_params, Xs, y, task, k, 0).predict(Xs)
    glmnet = get_family("r:glmnet")().fit({"alpha": l1, "lambda": lam}, Xs, y, task, k, 0).predict(Xs)
    np.testing.assert_allclose(glmnet, reference, atol=0.01)
    if task != "multiclass" or l1 == 0.0:  # keep Spark's share of the suite small
        spark = get_family("spark:linear")().fit({"reg": lam, "elastic_net": l1}, Xs, y, task, k, 0).predict(Xs)
        np.testing.assert_allclose(spark, reference, atol=0.01)


def _tight(estimator):
    estimator.set_params(tol=1e-10, max_iter=100_000)
    return estimator


class _Boom(Glmnet):
    """glmnet that R rejects whenever alpha > 0.5 (a negative lambda)."""

    def fit(self, params, X, y, task, n_classes, seed, eval_set=None):
        if params["alpha"] > 0.5:
            params = {**params, "lambda": -1.0}
        return super().fit(params, X, y, task, n_classes, seed)


_Boom.name = "boom"  # set after class creation: not registered


def test_an_r_error_fails_the_trial_with_rs_message_and_the_search_goes_on(caplog):
    folds = [Fold(_scaled()[:120], TARGETS["binary"][:120], _scaled()[120:], TARGETS["binary"][120:])]
    with caplog.at_level(logging.WARNING, logger="dagml.search"):
        result = search(_Boom(), folds, "binary", 2, get_metric("roc_auc"), max_evals=8, seconds=300, seed=1)
    assert 0 < result.n_failed < result.n_trials == 8
    assert "RRuntimeError" in caplog.text and "lambda" in caplog.text  # R's own words
    assert result.best_params["alpha"] <= 0.5


class _Missing(Glmnet):
    r_package = "notapackage"


_Missing.name = "missing"


def test_a_missing_r_package_fails_with_a_clear_message():
    with pytest.raises(FamilyFailed, match="r:missing needs R with the 'notapackage' package on this worker"):
        _Missing().check_available()


def test_spark_without_java_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(FamilyFailed, match="spark:gbt needs Java on this worker"):
        get_family("spark:gbt")().check_available()


def test_starting_r_leaves_later_subprocesses_their_own_libraries():
    """rpy2 sets LD_LIBRARY_PATH for R; a Python started afterwards (`airflow dags test`, a
    task subprocess) then loaded the system's libpython and failed to import ssl."""
    import os
    import subprocess
    import sys

    from dagml.families.r import _r

    _r()
    assert "/usr/lib/R/lib" not in os.environ.get("LD_LIBRARY_PATH", "")
    child = subprocess.run([sys.executable, "-c", "import ssl"], capture_output=True, text=True)
    assert child.returncode == 0, child.stderr
