"""Every score in dagml goes through this registry: name -> function, direction, input kind.

A metric takes the true labels (classification: encoded 0..k-1) and the model's output:
class probabilities of shape (n, k) when ``needs_proba`` or for any classifier, values
for regression. Label metrics take the argmax of the probabilities themselves, so every
family hands over the same thing and scores stay comparable across kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # numpy is imported lazily: config validation at DAG parse time uses this module
    import numpy as np

TASKS = ("binary", "multiclass", "regression")
CLASSIFICATION = frozenset({"binary", "multiclass"})


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    greater_is_better: bool
    tasks: frozenset[str]
    needs_proba: bool = False

    def __call__(self, y_true, y_pred) -> float:
        import numpy as np

        return float(self.fn(np.asarray(y_true), np.asarray(y_pred)))

    def loss(self, score: float) -> float:
        """What a minimiser (hyperopt) should minimise."""
        return -score if self.greater_is_better else score

    def better(self, a: float, b: float, margin: float = 0.0) -> bool:
        """True when score ``a`` beats ``b`` by more than ``margin``."""
        return a - b > margin if self.greater_is_better else b - a > margin


def _labels(proba: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.asarray(proba).argmax(axis=1)


def _roc_auc(y, proba):
    from sklearn.metrics import roc_auc_score

    if proba.shape[1] == 2:
        return roc_auc_score(y, proba[:, 1])
    return roc_auc_score(y, proba, multi_class="ovr", labels=list(range(proba.shape[1])))


def _log_loss(y, proba):
    from sklearn.metrics import log_loss

    return log_loss(y, proba, labels=list(range(proba.shape[1])))


def _accuracy(y, proba):
    return float((_labels(proba) == y).mean())


def _balanced_accuracy(y, proba):
    from sklearn.metrics import balanced_accuracy_score

    return balanced_accuracy_score(y, _labels(proba))


def _f1(y, proba):
    from sklearn.metrics import f1_score

    average = "binary" if proba.shape[1] == 2 else "macro"
    return f1_score(y, _labels(proba), average=average, labels=list(range(proba.shape[1])))


def _rmse(y, pred):
    return float((((y.astype(float) - pred) ** 2).mean()) ** 0.5)


def _mae(y, pred):
    return float(abs(y.astype(float) - pred).mean())


def _r2(y, pred):
    from sklearn.metrics import r2_score

    return r2_score(y, pred)


_C, _R = CLASSIFICATION, frozenset({"regression"})
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("roc_auc", _roc_auc, True, _C, needs_proba=True),
        Metric("log_loss", _log_loss, False, _C, needs_proba=True),
        Metric("accuracy", _accuracy, True, _C),
        Metric("balanced_accuracy", _balanced_accuracy, True, _C),
        Metric("f1", _f1, True, _C),
        Metric("rmse", _rmse, False, _R),
        Metric("mae", _mae, False, _R),
        Metric("r2", _r2, True, _R),
    )
}

DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; valid: {', '.join(sorted(METRICS))}") from None
