"""scikit-learn families: each declares its hyperopt space once and builds one estimator."""

from __future__ import annotations

from pathlib import Path

from dagml.families.base import Family, Model
from dagml.families.base import hyperopt_parts as _hp


class SklearnModel(Model):
    """A fitted scikit-learn estimator; classifiers return probabilities for all k classes."""

    def __init__(self, estimator, n_classes: int = 0):
        self.estimator = estimator
        self.n_classes = n_classes

    def predict(self, X):
        import numpy as np

        if not self.n_classes:
            return np.asarray(self.estimator.predict(X), dtype=float)
        proba = self.estimator.predict_proba(X)
        full = np.zeros((proba.shape[0], self.n_classes))
        full[:, self.estimator.classes_.astype(int)] = proba  # a class unseen in training gets 0
        return full

    def save(self, folder: Path) -> None:
        import joblib

        joblib.dump(self, Path(folder) / "model.joblib")

    @classmethod
    def load(cls, folder: Path) -> SklearnModel:
        import joblib

        return joblib.load(Path(folder) / "model.joblib")


class SklearnFamily(Family):
    kind = "sklearn"
    hard_time_limit = True
    modules = ("sklearn.calibration", "sklearn.dummy", "sklearn.ensemble", "sklearn.linear_model",
               "sklearn.neighbors", "sklearn.svm")
    model_class = SklearnModel

    def estimator(self, params: dict, task: str, seed: int):
        raise NotImplementedError

    # An ensemble parameter (trees, boosting iterations) a fit under a deadline stops growing at it
    # (``dagml.time_limit``), keeping what it has: its name. ``grow`` says how.
    grown: str | None = None

    def fit(self, params, X, y, task, n_classes, seed, eval_set=None):
        from dagml.time_limit import Deadline

        X, y = self.capped(X, y, seed)
        est = self.estimator(params, task, seed)
        deadline = Deadline.now()
        reached = None
        if self.grown and deadline is not None:
            reached = self.grow(est, X, y, deadline)
        else:
            est.fit(X, y)
        model = SklearnModel(est, n_classes if task != "regression" else 0)
        if reached is not None:
            model.cut_short = {self.grown: reached}
        return model

    def grow(self, est, X, y, deadline) -> int | None:
        """Fit ``est`` growing ``grown`` until ``deadline``: the size reached if short of the set one."""
        return _grow(est, self.grown, X, y, deadline)


GROWTH_STEP = 25  # trees per warm-started call; a fifth of it first


def _grow(est, name: str, X, y, deadline) -> int | None:
    """Fit ``est`` with warm start, its ``name`` grown by up to ``GROWTH_STEP`` (a fifth of it
    first) to its set value while the next call is expected to end before ``deadline`` (a
    ``time_limit.Deadline``); the size reached if short of the set value.

    No call is expected to last longer than the deadline's room (the seconds from the deadline to
    the kill), so a call that overruns its estimate on a loaded machine still ends near the deadline
    rather than past the kill, as a whole step could. A call's cost is read from the last call as
    well as from the average: a machine that gets busier slows the later calls."""
    import time

    target, smallest_call = int(est.get_params()[name]), GROWTH_STEP // 5
    first, size, began = time.monotonic(), min(smallest_call, target), 0
    est.set_params(warm_start=True)
    while True:
        started = time.monotonic()
        est.set_params(**{name: size})
        est.fit(X, y)
        if size >= target:
            est.set_params(warm_start=False)
            return None
        now = time.monotonic()
        per_unit = max((now - first) / size, (now - started) / (size - began))
        fits = int(min(deadline.at - now, deadline.room) / (1.2 * per_unit))
        if fits < min(smallest_call, target - size):  # no call worth making fits
            est.set_params(warm_start=False)
            return size
        began, size = size, size + min(GROWTH_STEP, target - size, fits)


class _UntilDeadline:
    """An early-stopping score that rises at every iteration until the deadline passes, then stays:
    with ``n_iter_no_change=1`` and ``tol=0`` scikit-learn's HistGradientBoosting stops right there."""

    def __init__(self, deadline):
        self.deadline, self.iterations = deadline, 0

    def __call__(self, estimator, X, y) -> int:
        if not self.deadline.passed():
            self.iterations += 1
        return self.iterations


class Dummy(SklearnFamily):
    """The baseline row every leaderboard carries: predicts the prior or the mean."""

    name = "dummy"
    cost = 0.1

    def space(self, task, n_rows, n_cols):
        hp, _ = _hp()
        if task == "regression":
            return {"strategy": hp.choice("strategy", ["mean", "median"])}
        return {"strategy": hp.choice("strategy", ["prior", "most_frequent"])}

    def estimator(self, params, task, seed):
        from sklearn.dummy import DummyClassifier, DummyRegressor

        if task == "regression":
            return DummyRegressor(strategy=params["strategy"])
        return DummyClassifier(strategy=params["strategy"], random_state=seed)


class ElasticNet(SklearnFamily):
    """Logistic regression (classification) or linear regression with elastic-net penalty."""

    name = "elastic_net"
    needs_scaling = True
    cost = 1.0
    search_rows = 100_000

    def space(self, task, n_rows, n_cols):
        hp, _ = _hp()
        strength = "alpha" if task == "regression" else "C"
        low, high = (-11.5, 2.3) if task == "regression" else (-9.2, 6.9)  # 1e-5..10, 1e-4..1e3
        return {strength: hp.loguniform(strength, low, high), "l1_ratio": hp.uniform("l1_ratio", 0, 1)}

    def init_points(self, task):
        if task == "regression":  # nearly least squares; then a lasso-like, sparser fit
            return [{"alpha": 1e-3, "l1_ratio": 0.5}, {"alpha": 0.1, "l1_ratio": 0.9}]
        # scikit-learn's default (L2, C = 1); then stronger L2, which keeps probabilities off 0 and 1
        return [{"C": 1.0, "l1_ratio": 0.0}, {"C": 0.1, "l1_ratio": 0.0}]

    def estimator(self, params, task, seed):
        from sklearn.linear_model import ElasticNet as SkElasticNet
        from sklearn.linear_model import LogisticRegression

        if task == "regression":
            return SkElasticNet(alpha=params["alpha"], l1_ratio=params["l1_ratio"], max_iter=5000, random_state=seed)
        # saga is the solver for an L1 part; a pure L2 point (the first points) takes lbfgs, 10-20
        # times faster to the same fit: saga's 5 folds on satellite outlasted elastic net's share
        solver = "lbfgs" if params["l1_ratio"] == 0 else "saga"
        return LogisticRegression(
            C=params["C"], l1_ratio=params["l1_ratio"], solver=solver, max_iter=2000, random_state=seed
        )


class _Forest(SklearnFamily):
    grown = "n_estimators"

    def space(self, task, n_rows, n_cols):
        hp, scope = _hp()
        return {
            "n_estimators": scope.int(hp.quniform("n_estimators", 25, 300, 25)),
            "max_features": hp.uniform("max_features", 0.1, 1.0),
            "min_samples_leaf": scope.int(hp.qloguniform("min_samples_leaf", 0, 3, 1)),  # 1..20
        }

    def init_points(self, task):
        # scikit-learn's default features per split: all (regression), about sqrt(columns) (classification)
        default_features = 1.0 if task == "regression" else 0.3
        return [
            {"n_estimators": 100, "max_features": 0.5, "min_samples_leaf": 1},
            {"n_estimators": 300, "max_features": default_features, "min_samples_leaf": 1},
            # larger leaves: smoother probabilities, fewer hard 0/1 ones for log loss
            {"n_estimators": 300, "max_features": 0.5, "min_samples_leaf": 5},
        ]

    def estimator(self, params, task, seed):
        from sklearn import ensemble

        kind = "Regressor" if task == "regression" else "Classifier"
        cls = getattr(ensemble, self.sklearn_prefix + kind)
        return cls(
            n_estimators=int(params["n_estimators"]),
            max_features=params["max_features"],
            min_samples_leaf=max(1, int(params["min_samples_leaf"])),
            n_jobs=self.threads,
            random_state=seed,
        )


class RandomForest(_Forest):
    name = "random_forest"
    cost = 3.0
    search_rows = 25_000
    sklearn_prefix = "RandomForest"
    # After its last tree a trial still predicts the validation rows and sends its model back
    # through the pipe: 0.15-0.23 of the growing time on letter and diamonds, so growing may take
    # at most 0.81 of the limit (bench/quality/forest_reserve.py, docs "A forest's reserve").
    deadline_share = 0.7


class ExtraTrees(_Forest):
    name = "extra_trees"
    cost = 2.0
    search_rows = 50_000
    sklearn_prefix = "ExtraTrees"
    # Its random splits grow deeper trees, a larger model to send back: 0.29-0.57 of the growing
    # time (at most 0.64 of the limit); at 0.8 its first point on diamonds was killed in a 60 s run.
    deadline_share = 0.55


class HistGradientBoosting(SklearnFamily):
    name = "hist_gradient_boosting"
    cost = 2.0
    search_rows = 100_000
    grown = "max_iter"
    # Past its deadline it ends an iteration, then predicts: with 8 busy processes on 2 cores one
    # iteration took the whole room of a 2 s limit at 0.8 (docs "A grown fit's last call, again").
    deadline_share = 0.7

    def space(self, task, n_rows, n_cols):
        hp, scope = _hp()
        return {
            "learning_rate": hp.loguniform("learning_rate", -4.6, -1.2),  # 0.01..0.3
            "max_iter": scope.int(hp.quniform("max_iter", 50, 400, 25)),
            "max_leaf_nodes": scope.int(hp.qloguniform("max_leaf_nodes", 2.08, 4.16, 1)),  # 8..64
            "min_samples_leaf": scope.int(hp.qloguniform("min_samples_leaf", 1.6, 3.9, 1)),  # 5..50
            "l2_regularization": hp.loguniform("l2_regularization", -13.8, 2.3),
        }

    def init_points(self, task):
        defaults = {"learning_rate": 0.1, "max_iter": 100, "max_leaf_nodes": 31, "min_samples_leaf": 20,
                    "l2_regularization": 1e-5}  # scikit-learn's defaults (its L2 of 0 as 1e-5: 1e-6 is below the floor)
        return [
            defaults,
            defaults | {"learning_rate": 0.05, "max_iter": 300},  # slower and longer
            defaults | {"max_leaf_nodes": 15, "min_samples_leaf": 10, "l2_regularization": 1.0},  # small data
        ]

    def estimator(self, params, task, seed):
        from sklearn import ensemble

        cls = ensemble.HistGradientBoostingRegressor if task == "regression" else ensemble.HistGradientBoostingClassifier
        return cls(
            learning_rate=params["learning_rate"],
            max_iter=int(params["max_iter"]),
            max_leaf_nodes=max(2, int(params["max_leaf_nodes"])),
            min_samples_leaf=max(1, int(params["min_samples_leaf"])),
            l2_regularization=params["l2_regularization"],
            early_stopping=False,
            random_state=seed,
        )

    def grow(self, est, X, y, deadline) -> int | None:
        """One fit that stops at the first iteration ending past ``deadline``: the estimator has no
        callback, so the deadline is its early-stopping score (``_UntilDeadline``), on no held-out
        rows; its trees are those a plain fit of the iterations it reached grows. Warm-started
        calls, as the forests grow, predicted every tree they had on the training rows again, so
        their last call could end a whole call past the deadline (docs/benchmarks.md, "A grown
        fit's last call, again")."""
        stopping = ("early_stopping", "scoring", "validation_fraction", "n_iter_no_change", "tol")
        kept = {k: v for k, v in est.get_params().items() if k in stopping}
        est.set_params(early_stopping=True, scoring=_UntilDeadline(deadline), validation_fraction=None,
                       n_iter_no_change=1, tol=0.0)
        try:
            est.fit(X, y)
        finally:  # the stored model keeps no clock
            est.set_params(**kept)
            est._scorer = None
        return est.n_iter_ if est.n_iter_ < est.max_iter else None


class SVM(SklearnFamily):
    """RBF support vector machine; fit cost grows with rows squared, hence the row cap."""

    name = "svm"
    needs_scaling = True
    max_rows = 5000
    cost = 2.0

    def space(self, task, n_rows, n_cols):
        hp, _ = _hp()
        space = {"C": hp.loguniform("C", -4.6, 6.9), "gamma": hp.loguniform("gamma", -9.2, 0)}
        if task == "regression":
            space["epsilon"] = hp.loguniform("epsilon", -6.9, 0)
        return space

    def init_points(self, task):
        if task == "regression":  # targets are not scaled: a larger C lets predictions leave the intercept
            return [{"C": 1.0, "gamma": 0.01, "epsilon": 0.1}, {"C": 100.0, "gamma": 0.01, "epsilon": 0.1}]
        return [{"C": 1.0, "gamma": 0.01}, {"C": 10.0, "gamma": 0.1}]

    def estimator(self, params, task, seed):
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC, SVR

        if task == "regression":
            return SVR(C=params["C"], gamma=params["gamma"], epsilon=params["epsilon"])
        # Platt scaling for probabilities, as SVC(probability=True) did before scikit-learn 1.9
        return CalibratedClassifierCV(SVC(C=params["C"], gamma=params["gamma"], random_state=seed),
                                      method="sigmoid", cv=3, ensemble=False)


class KNearestNeighbours(SklearnFamily):
    name = "knn"
    needs_scaling = True
    max_rows = 20_000  # each validation and test row is compared with every training row
    cost = 0.5

    def space(self, task, n_rows, n_cols):
        hp, scope = _hp()
        k_max = max(2, min(50, n_rows // 2))
        return {
            "n_neighbors": scope.int(hp.quniform("n_neighbors", 1, k_max, 1)),
            "weights": hp.choice("weights", ["uniform", "distance"]),
            "p": hp.choice("p", [1, 2]),
        }

    def init_points(self, task):
        # hyperopt's raw values: a choice is its option's index (weights 0: uniform; p 1: Euclidean).
        # Uniform weights: distance weights give hard 0/1 probabilities, which log loss punishes.
        return [{"n_neighbors": 5, "weights": 0, "p": 1}, {"n_neighbors": 15, "weights": 0, "p": 1}]

    def estimator(self, params, task, seed):
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

        cls = KNeighborsRegressor if task == "regression" else KNeighborsClassifier
        return cls(n_neighbors=max(1, int(params["n_neighbors"])), weights=params["weights"], p=params["p"],
                   n_jobs=self.threads)
