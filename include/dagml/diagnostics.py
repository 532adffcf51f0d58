"""What an analyst reads about a run's chosen model, computed once in the run on its test rows
and stored with it (``ResultsStore.record_diagnostics``): pages and reports only draw it.

Bounded so it stays small and cheap: curves keep at most ``MAX_CURVE_POINTS`` points,
predicted-vs-actual at most ``MAX_POINTS`` rows, and permutation importance shuffles each
feature ``REPEATS`` times on at most ``IMPORTANCE_ROWS`` rows (rows sampled with the run's seed).
"""

from __future__ import annotations

MAX_CURVE_POINTS = 300
MAX_POINTS = 2000
IMPORTANCE_ROWS = 1000
REPEATS = 3


def _thin(*columns, limit: int = MAX_CURVE_POINTS) -> list[list[float]]:
    """Curve columns cut to at most ``limit`` evenly spaced points, first and last kept."""
    import numpy as np

    n = len(columns[0])
    keep = np.unique(np.linspace(0, n - 1, limit).round().astype(int)) if n > limit else np.arange(n)
    return [np.asarray(c, dtype=float)[keep].tolist() for c in columns]


def _sample(n: int, limit: int, seed: int):
    import numpy as np

    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _binary_curves(y, proba) -> dict:
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y, proba[:, 1], drop_intermediate=True)
    precision, recall, _ = precision_recall_curve(y, proba[:, 1], drop_intermediate=True)
    fpr_kept, tpr_kept = _thin(fpr, tpr)
    recall_kept, precision_kept = _thin(recall, precision)
    return {"roc": {"fpr": fpr_kept, "tpr": tpr_kept, "auc": float(auc(fpr, tpr))},
            "pr": {"recall": recall_kept, "precision": precision_kept,
                   "average_precision": float(average_precision_score(y, proba[:, 1]))}}


def _confusion(y, proba, classes: list[str]) -> dict:
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(y, proba.argmax(axis=1), labels=list(range(len(classes))))
    return {"labels": list(classes), "matrix": matrix.tolist()}


class _Fitted:
    """A stored model as sklearn's permutation_importance takes it (it asks for a ``fit``; none is called)."""

    def __init__(self, predict):
        self.predict = predict

    def fit(self, *args):
        return self


def _importance(predict, features, y, metric, seed: int) -> list[dict]:
    """Permutation importance of each input column, in the metric's units: how much the test
    score worsens when that column's values are shuffled (near 0: the model ignores it)."""
    from sklearn.inspection import permutation_importance

    rows = _sample(len(features), IMPORTANCE_ROWS, seed)
    sign = 1.0 if metric.greater_is_better else -1.0
    result = permutation_importance(
        _Fitted(predict), features.iloc[rows], y[rows], n_repeats=REPEATS, random_state=seed,
        scoring=lambda model, X, y_true: sign * metric(y_true, model.predict(X)))
    out = [{"feature": str(f), "mean": float(m), "std": float(s)}
           for f, m, s in zip(features.columns, result.importances_mean, result.importances_std)]
    return sorted(out, key=lambda d: -d["mean"])


def compute(predict, features, y, recipe: dict, metric, seed: int) -> dict:
    """The diagnostics of one model on the test rows, as stored.

    ``predict(frame) -> ndarray`` gives class probabilities (n, k) in ``recipe["classes"]``
    order, or values (regression); ``features`` is the test rows' input columns (pandas);
    ``y`` the encoded target (``dagml.prepare.encode_target``); ``metric`` a ``dagml.metrics.Metric``.

    Returns ``{"task", "metric", "test_score", "rows", "importance": [{"feature", "mean", "std"}]
    (best first), "importance_rows", "importance_repeats"}`` plus, for classification,
    ``"classes"`` and ``"confusion": {"labels", "matrix"}`` (rows: actual, columns: predicted),
    for a binary task ``"roc": {"fpr", "tpr", "auc"}`` and ``"pr": {"recall", "precision",
    "average_precision"}`` (of the second class), and for regression ``"points": {"actual",
    "predicted", "of_rows"}`` (a seeded sample of at most MAX_POINTS rows).
    """
    import numpy as np

    y = np.asarray(y)
    raw = np.asarray(predict(features), dtype=float)
    out = {"task": recipe["task"], "metric": metric.name, "test_score": metric(y, raw), "rows": int(len(y))}
    classes = recipe.get("classes")
    if classes is not None:
        out["classes"] = list(classes)
        out["confusion"] = _confusion(y, raw, classes)
        if len(classes) == 2:
            out.update(_binary_curves(y, raw))
    else:
        rows = _sample(len(y), MAX_POINTS, seed)
        out["points"] = {"actual": y[rows].astype(float).tolist(), "predicted": raw[rows].tolist(),
                         "of_rows": int(len(y))}
    out["importance"] = _importance(predict, features, y, metric, seed)
    out["importance_rows"] = int(min(len(y), IMPORTANCE_ROWS))
    out["importance_repeats"] = REPEATS
    return out
