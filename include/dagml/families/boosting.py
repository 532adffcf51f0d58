"""Gradient-boosting libraries as scikit-learn-kind families: LightGBM, XGBoost and CatBoost.

The number of trees is not searched. Each fit grows up to ``max_rounds`` trees and stops once
``patience`` rounds in a row have not improved the loss (the library's own objective: log loss
or squared error) on an evaluation set:

- in a search, the evaluation set is the validation fold the search passes as ``eval_set``;
- in the fit on all rows after a k-fold search, the best point carries ``rounds``: the median of
  the rounds its folds stopped at (``BoostingModel.found_params``), so that fit is one fit;
- in any other final refit (``eval_set=None``) the family finds the number of rounds on rows of its
  own, then fits all the rows with that number of rounds, so its model has seen every training
  row. From 1,000 rows it holds out 10% of them (stratified for classification, drawn with the
  run's seed): the refit costs about two fits. Below 1,000 rows 10% is under 100 rows, too few
  to stop on (breast_cancer and diabetes stopped after 8-10 rounds on some seeds), so it takes
  the median of the rounds found on 3 folds: about three fits, each cheap at that size (on
  6 seeds of breast_cancer, diabetes and wine, at LightGBM's and XGBoost's first two points,
  the test error fell by 8%, 0.5% and 4% against the 10% holdout). Below 40 rows, or if no
  held-out row has a class the rest has, it fits ``fallback_rounds`` trees.

A holdout search's round count is not reused: its best trial's model is kept, and after a search
on a sample, the fit on all rows wants more rounds than the sample did.

Each fit uses ``threads`` native threads (the family entry's ``threads``, 1 by default: a search
runs in one worker slot). Labels are
re-encoded to the classes present in the training rows (XGBoost needs 0..m-1); a class the
training rows lack gets probability 0, and evaluation rows of such a class are left out.
CatBoost handles categorical columns itself (``native_categoricals``): its matrix starts with
every categorical column as integer codes, which it one-hot encodes (few values) or encodes by
ordered target statistics (more), instead of the shared recipe's one-hot and ordinal columns.
Libraries are imported only inside methods.
"""

from __future__ import annotations

import math
from typing import ClassVar

from dagml.errors import FamilyFailed
from dagml.families.base import hyperopt_parts as _hp
from dagml.families.sklearn import SklearnFamily, SklearnModel
from dagml.time_limit import Deadline


class BoostingModel(SklearnModel):
    """A fitted booster, the training classes it saw, and how many rounds it uses (and why)."""

    def __init__(self, estimator, n_classes: int, classes, rounds: int, rounds_from: str, categoricals: int = 0):
        super().__init__(estimator, n_classes)
        self.classes, self.rounds, self.rounds_from = classes, rounds, rounds_from
        self.categoricals = categoricals

    @property
    def found_params(self) -> dict:
        """The rounds early stopping found on the evaluation set: a k-fold search gives its best point
        the folds' median, so the fit on all rows is one fit of that many trees."""
        return {"rounds": self.rounds} if self.rounds_from == "eval_set" else {}

    def predict(self, X):
        import numpy as np

        X = with_codes(X, getattr(self, "categoricals", 0))  # models stored before it lack the attribute
        if not self.n_classes:
            return np.asarray(self.estimator.predict(X), dtype=float)
        proba = self.estimator.predict_proba(X)
        full = np.zeros((proba.shape[0], self.n_classes))
        full[:, self.classes[np.asarray(self.estimator.classes_, dtype=int)]] = proba
        return full / full.sum(axis=1, keepdims=True)  # XGBoost's float32 rows may miss 1 by more than 1e-7


def with_codes(X, categoricals: int):
    """The matrix as a library that handles categories itself takes it: a frame whose first
    ``categoricals`` columns are integer codes; the matrix itself when there are none."""
    if not categoricals:
        return X
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    codes = frame.columns[:categoricals]
    frame[codes] = frame[codes].astype(np.int64)
    return frame


def _log_range(hp, label: str, low: float, high: float):
    return hp.loguniform(label, math.log(low), math.log(high))


def _int_log_range(hp, scope, label: str, low: int, high: int):
    return scope.int(hp.qloguniform(label, math.log(low), math.log(high), 1))


class BoostingFamily(SklearnFamily):
    # cost: trial seconds measured against sklearn:hist_gradient_boosting's (cost 2) at the same search
    # time (docs/benchmarks.md, boosting_families): LightGBM 0.3-0.9 times, XGBoost 0.4-0.6, CatBoost 0.3-4.8
    # (multiclass is dear), so 1, 1 and 3.
    model_class = BoostingModel
    package: ClassVar[str]  # the module to import (check_available)
    max_rounds: ClassVar[int] = 2000
    patience: ClassVar[int] = 50
    fallback_rounds: ClassVar[int] = 100
    holdout_share: ClassVar[float] = 0.1
    folds_below: ClassVar[int] = 1000  # fewer training rows: the refit's rounds come from 3 folds

    def check_available(self) -> None:
        import importlib

        try:
            importlib.import_module(self.package)
        except ImportError as exc:
            raise FamilyFailed(f"{self.key()} needs the Python package {self.package!r} on this worker "
                               f"({type(exc).__name__}: {exc}); install dagml's requirements.txt") from None

    def train(self, params: dict, task: str, seed: int, X, y, rounds: int, eval_set, deadline: Deadline | None = None):
        """The library's estimator fitted with up to ``rounds`` trees, stopping early on ``eval_set``
        if given, and growing no tree after ``deadline`` (which then records that it was hit)."""
        raise NotImplementedError

    def rounds_of(self, estimator) -> int:
        """How many trees the fitted estimator predicts with."""
        raise NotImplementedError

    def fit(self, params, X, y, task, n_classes, seed, eval_set=None):
        import numpy as np

        X, y = self.capped(X, y, seed)
        y = np.asarray(y)
        cap = int(params.get("max_rounds", self.max_rounds))  # a trial cut short by time fixes it for the refit
        if eval_set is not None:
            deadline = Deadline.now()
            stopped = self._stopped(params, task, seed, X, y, *eval_set, rounds=cap, deadline=deadline)
            if stopped is not None:
                estimator, classes = stopped
                model = BoostingModel(estimator, self._k(task, n_classes), classes, self.rounds_of(estimator),
                                      "eval_set", self.categoricals)
                if deadline is not None and deadline.hit:
                    model.cut_short = {"max_rounds": model.rounds}
                return model
        if "rounds" in params:  # found by a k-fold search's early stopping (``found_params``)
            rounds, rounds_from = int(params["rounds"]), "k-fold search"
        else:
            rounds, rounds_from = self._rounds_on_own_holdout(params, task, seed, X, y, cap)
        y_fit, classes = _encode(y, task)
        estimator = self.train(params, task, seed, X, y_fit, rounds, None)
        return BoostingModel(estimator, self._k(task, n_classes), classes, rounds, rounds_from, self.categoricals)

    @staticmethod
    def _k(task, n_classes):
        return 0 if task == "regression" else n_classes

    def _stopped(self, params, task, seed, X, y, X_eval, y_eval, rounds: int, deadline: Deadline | None = None):
        """(estimator, classes) stopped early on the evaluation rows; None if none of them is usable."""
        import numpy as np

        y_fit, classes = _encode(y, task)
        y_eval = np.asarray(y_eval)
        if classes is not None:
            known = np.isin(y_eval, classes)
            X_eval, y_eval = X_eval[known], np.searchsorted(classes, y_eval[known])
        if not len(y_eval):
            return None
        return self.train(params, task, seed, X, y_fit, rounds, (X_eval, y_eval), deadline), classes

    def _rounds_on_own_holdout(self, params, task, seed, X, y, cap: int) -> tuple[int, str]:
        if len(y) < 40:
            return min(cap, self.fallback_rounds), "fallback (under 40 rows)"
        from statistics import median

        splits = _own_splits(y, task, seed, self.holdout_share, self.folds_below)
        found = [stopped for inner, held in splits
                 if (stopped := self._stopped(params, task, seed, X[inner], y[inner], X[held], y[held], cap)) is not None]
        if not found:
            return min(cap, self.fallback_rounds), "fallback (no usable held-out row)"
        rounds = int(median(self.rounds_of(estimator) for estimator, _ in found))
        if len(splits) == 1:
            return rounds, f"own holdout of {len(splits[0][1])} rows"
        return rounds, f"median of {len(found)} folds"


def _own_splits(y, task, seed: int, share: float, folds_below: int) -> list:
    """(inner, held) row indices: 3 folds below ``folds_below`` rows, else one holdout of ``share``."""
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    stratified = task != "regression" and _smallest_class(y) >= 3
    if len(y) < folds_below:
        splitter = StratifiedKFold if stratified else KFold
        return list(splitter(3, shuffle=True, random_state=seed).split(y, y))
    rows = range(len(y))
    return [train_test_split(rows, test_size=round(share * len(y)), random_state=seed,
                             stratify=y if stratified else None)]


def _encode(y, task):
    """Labels as 0..m-1 over the m classes present, and those classes; regression targets as they are."""
    import numpy as np

    if task == "regression":
        return y, None
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"the training rows hold a single class ({classes.tolist()}): nothing to boost")
    return np.searchsorted(classes, y), classes


def _smallest_class(y) -> int:
    import numpy as np

    return int(np.unique(y, return_counts=True)[1].min())


class LightGBM(BoostingFamily):
    """LightGBM, leaf-wise trees. Leaves and minimum leaf size scale with the training rows
    (above 1,280 rows the leaf bound grows, up to 1,024)."""

    name = "lightgbm"
    package = "lightgbm"
    cost = 1.0
    modules = ("lightgbm",)
    # Its fit rebuilds the model from text after the last round, and predicting takes as long
    # again: on 26 classes and 9,600 rows, stopped at 0.8 of a 2-4 s limit, its first point took
    # 0.3 s more to rebuild and 0.5 s to predict, and was killed with nothing to show.
    deadline_share = 0.6

    def space(self, task, n_rows, n_cols):
        hp, scope = _hp()
        return {
            "learning_rate": _log_range(hp, "learning_rate", 0.01, 0.4),
            "num_leaves": _int_log_range(hp, scope, "num_leaves", 4, min(1024, max(128, n_rows // 10))),
            "min_child_samples": _int_log_range(hp, scope, "min_child_samples", 2, min(500, max(50, n_rows // 10))),
            "subsample": hp.uniform("subsample", 0.5, 1.0),
            "colsample_bytree": hp.uniform("colsample_bytree", 0.3, 1.0),
            "reg_alpha": _log_range(hp, "reg_alpha", 1 / 1024, 100),
            "reg_lambda": _log_range(hp, "reg_lambda", 1 / 1024, 100),
        }

    def init_points(self, task):
        defaults = {"learning_rate": 0.1, "num_leaves": 31, "min_child_samples": 20, "subsample": 1.0,
                    "colsample_bytree": 1.0, "reg_alpha": 1 / 1024, "reg_lambda": 1 / 1024}
        return [
            defaults,  # the library's defaults (its L1/L2 of 0 as the space's floor)
            defaults | {"learning_rate": 0.05},  # AutoGluon's default learning rate for LightGBM
            # AutoGluon's "large" LightGBM: many leaves, small leaves, a little feature subsampling
            defaults | {"learning_rate": 0.03, "num_leaves": 128, "min_child_samples": 3, "colsample_bytree": 0.9},
        ]

    def train(self, params, task, seed, X, y, rounds, eval_set, deadline=None):
        import lightgbm

        cls = lightgbm.LGBMRegressor if task == "regression" else lightgbm.LGBMClassifier
        estimator = cls(
            n_estimators=rounds, learning_rate=params["learning_rate"], num_leaves=max(2, int(params["num_leaves"])),
            min_child_samples=max(1, int(params["min_child_samples"])), subsample=params["subsample"],
            subsample_freq=1, colsample_bytree=params["colsample_bytree"], reg_alpha=params["reg_alpha"],
            reg_lambda=params["reg_lambda"], n_jobs=self.threads, random_state=seed, verbosity=-1,
        )
        if eval_set is None:
            return estimator.fit(X, y)
        callbacks = [lightgbm.early_stopping(self.patience, verbose=False)]
        if deadline is not None:
            def stop_at_deadline(env):
                if deadline.passed():  # keep every tree so far
                    raise lightgbm.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

            callbacks.append(stop_at_deadline)
        return estimator.fit(X, y, eval_X=eval_set[0], eval_y=eval_set[1], callbacks=callbacks)

    def rounds_of(self, estimator):
        return int(estimator.best_iteration_ or estimator.booster_.current_iteration())


class XGBoost(BoostingFamily):
    """XGBoost, depth-wise histogram trees."""

    name = "xgboost"
    package = "xgboost"
    cost = 1.0
    modules = ("xgboost",)

    def space(self, task, n_rows, n_cols):
        hp, scope = _hp()
        return {
            "learning_rate": _log_range(hp, "learning_rate", 0.01, 0.4),
            "max_depth": scope.int(hp.quniform("max_depth", 2, 12, 1)),
            "min_child_weight": _log_range(hp, "min_child_weight", 0.01, 100),
            "subsample": hp.uniform("subsample", 0.5, 1.0),
            "colsample_bytree": hp.uniform("colsample_bytree", 0.3, 1.0),
            "reg_alpha": _log_range(hp, "reg_alpha", 1 / 1024, 100),
            "reg_lambda": _log_range(hp, "reg_lambda", 1 / 1024, 100),
        }

    def init_points(self, task):
        defaults = {"learning_rate": 0.3, "max_depth": 6, "min_child_weight": 1.0, "subsample": 1.0,
                    "colsample_bytree": 1.0, "reg_alpha": 1 / 1024, "reg_lambda": 1.0}
        return [
            defaults,  # the library's defaults (its L1 of 0 as the space's floor)
            defaults | {"learning_rate": 0.1},  # AutoGluon's default learning rate for XGBoost
            # deep, slow and feature-subsampled: a setting from AutoGluon's zero-shot portfolio
            defaults | {"learning_rate": 0.018, "max_depth": 10, "min_child_weight": 0.6, "colsample_bytree": 0.69},
        ]

    def train(self, params, task, seed, X, y, rounds, eval_set, deadline=None):
        import xgboost

        cls = xgboost.XGBRegressor if task == "regression" else xgboost.XGBClassifier
        estimator = cls(
            n_estimators=rounds, learning_rate=params["learning_rate"], max_depth=max(1, int(params["max_depth"])),
            min_child_weight=params["min_child_weight"], subsample=params["subsample"],
            colsample_bytree=params["colsample_bytree"], reg_alpha=params["reg_alpha"],
            reg_lambda=params["reg_lambda"], tree_method="hist", n_jobs=self.threads, random_state=seed,
            verbosity=0, early_stopping_rounds=self.patience if eval_set is not None else None,
            callbacks=[_xgboost_deadline(deadline)] if deadline is not None else None,
        )
        if eval_set is None:
            return estimator.fit(X, y)
        estimator.fit(X, y, eval_set=[eval_set], verbose=False)
        return estimator.set_params(callbacks=None)  # the deadline's callback is local: it would not pickle

    def rounds_of(self, estimator):
        try:
            return int(estimator.best_iteration) + 1  # predict uses trees 0..best_iteration
        except AttributeError:  # fitted without early stopping: every tree
            return int(estimator.get_booster().num_boosted_rounds())


def _xgboost_deadline(deadline: Deadline):
    import xgboost

    class StopAtDeadline(xgboost.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log) -> bool:
            return deadline.passed()  # True stops training; early stopping still picks the best round

    return StopAtDeadline()


class _CatBoostDeadline:
    def __init__(self, deadline: Deadline):
        self.deadline = deadline

    def after_iteration(self, info) -> bool:
        return not self.deadline.passed()  # False stops training


class CatBoost(BoostingFamily):
    """CatBoost, symmetric (oblivious) trees, rows subsampled by MVS (multiclass's default Bayesian
    bootstrap takes no subsample rate). Its trees cost more than the others' on one thread, hence
    at most 1,000 rounds (the library's default) and depth at most 8. On small data the split
    search over 254 borders per feature dominates (breast_cancer, 364 rows: 18 ms a tree), so a
    feature gets one border per 20 training rows, 32 to 254: 2-3 times faster there, and the
    same validation scores on breast_cancer and diabetes (measured on two seeds each)."""

    name = "catboost"
    package = "catboost"
    cost = 3.0
    native_categoricals = True
    # Categorical columns with at most this many values are one-hot encoded inside CatBoost, the
    # rest by its ordered target statistics (as dagml's recipe one-hot encodes up to 20 values).
    # 100 rounds on a fold of soybean (35 categoricals of at most 7 values, 19 classes): 0.4 s
    # this way, 38 s with target statistics for every column, 4.7 s on dagml's one-hot matrix.
    one_hot_max_size = 20
    modules = ("catboost",)
    max_rounds = 1000

    def space(self, task, n_rows, n_cols):
        hp, scope = _hp()
        return {
            "learning_rate": _log_range(hp, "learning_rate", 0.01, 0.4),
            "depth": scope.int(hp.quniform("depth", 3, 8, 1)),
            "l2_leaf_reg": _log_range(hp, "l2_leaf_reg", 0.5, 50),
            "subsample": hp.uniform("subsample", 0.5, 1.0),
            "rsm": hp.uniform("rsm", 0.3, 1.0),
        }

    def init_points(self, task):
        defaults = {"learning_rate": 0.05, "depth": 6, "l2_leaf_reg": 3.0, "subsample": 0.8, "rsm": 1.0}
        return [
            defaults,  # the library's defaults at AutoGluon's default learning rate for CatBoost
            defaults | {"learning_rate": 0.1, "depth": 8, "l2_leaf_reg": 1.0},  # deeper, faster, less L2
            defaults | {"depth": 4, "l2_leaf_reg": 10.0},  # shallow and strongly regularised, for small data
        ]

    def train(self, params, task, seed, X, y, rounds, eval_set, deadline=None):
        import catboost

        cls = catboost.CatBoostRegressor if task == "regression" else catboost.CatBoostClassifier
        estimator = cls(
            iterations=rounds, learning_rate=params["learning_rate"], depth=max(1, int(params["depth"])),
            l2_leaf_reg=params["l2_leaf_reg"], bootstrap_type="MVS",
            subsample=params["subsample"], rsm=params["rsm"], border_count=min(254, max(32, len(y) // 20)),
            thread_count=self.threads, random_seed=seed,
            verbose=False, allow_writing_files=False,
            **({"cat_features": list(range(self.categoricals)), "one_hot_max_size": self.one_hot_max_size}
               if self.categoricals else {}),
        )
        X = with_codes(X, self.categoricals)
        eval_set = eval_set if eval_set is None else (with_codes(eval_set[0], self.categoricals), eval_set[1])
        if eval_set is None:
            return estimator.fit(X, y)
        return estimator.fit(X, y, eval_set=eval_set, early_stopping_rounds=self.patience, use_best_model=True,
                             callbacks=[_CatBoostDeadline(deadline)] if deadline is not None else None)

    def rounds_of(self, estimator):
        return int(estimator.tree_count_)
