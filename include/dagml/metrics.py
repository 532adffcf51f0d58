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
    # one confident mistake can decide it (log loss): probabilities are shrunk toward uniform
    # by the amount that scores best on validation rows (``best_shrinkage``)
    punishes_confidence: bool = False

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
        Metric("log_loss", _log_loss, False, _C, needs_proba=True, punishes_confidence=True),
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


SHRINKAGE = (0.0, 1e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1)


def shrink(proba, alpha: float):
    """Class probabilities pulled toward uniform: (1 - alpha) p + alpha / k (rows still sum to 1)."""
    import numpy as np

    proba = np.asarray(proba, dtype=float)
    return proba if not alpha else (1 - alpha) * proba + alpha / proba.shape[1]


def best_shrinkage(metric: Metric, y, proba) -> float:
    """The shrinkage in SHRINKAGE that scores best on these (validation) rows; 0 for a metric
    that a confident mistake cannot blow up. One number fitted on many rows: it keeps a family
    whose probabilities are hard 0/1 (kNN with distance weights, small forests) from being
    judged, or chosen, on a log loss that one wrong row makes absurd."""
    if not metric.punishes_confidence:
        return 0.0
    scores = [(metric(y, shrink(proba, a)), a) for a in SHRINKAGE]
    return min(scores)[1] if not metric.greater_is_better else max(scores)[1]
