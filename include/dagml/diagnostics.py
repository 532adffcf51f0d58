"""What an analyst reads about a run's chosen model, computed once in the run on its test rows
and stored with it (``ResultsStore.record_diagnostics``): pages and reports only draw it.

Bounded so it stays small and cheap: curves keep at most ``MAX_CURVE_POINTS`` points,
predicted-vs-actual at most ``MAX_POINTS`` rows, and permutation importance shuffles each
feature ``REPEATS`` times on at most ``IMPORTANCE_ROWS`` rows (fewer for wide data, and fewer
rows then fewer repeats for a model too slow to predict them in about ``IMPORTANCE_SECONDS``;
rows sampled with the run's seed), predicting the shuffled copies in a few large batches.
"""

from __future__ import annotations

MAX_CURVE_POINTS = 300
MAX_POINTS = 2000
IMPORTANCE_ROWS = 500
# the floor a slow model's plan falls to: dna's ensemble (180 columns, an SVM member) took 10.7 s
# for one repeat at 100 rows, twice IMPORTANCE_SECONDS
MIN_IMPORTANCE_ROWS = 50
MAX_PERMUTED_ROWS = 60_000
BATCH_ROWS = 20_000
REPEATS = 3
# Predicting the shuffled copies, at the speed the model predicted the test rows: an ensemble
# with an SVM took 25 s for 180 columns x 3 repeats x 111 rows (dna) before this bound.
IMPORTANCE_SECONDS = 5.0


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


def importance_plan(n_rows: int, n_columns: int, seconds_per_row: float = 0.0) -> tuple[int, int]:
    """(rows, repeats) of permutation importance: at most ``IMPORTANCE_ROWS`` rows, fewer for wide
    data so the model predicts at most ``MAX_PERMUTED_ROWS`` shuffled rows in all, and fewer (down
    to ``MIN_IMPORTANCE_ROWS``, then fewer repeats, at least one) for a model that would take more
    than about ``IMPORTANCE_SECONDS`` to predict them at ``seconds_per_row``."""
    rows = min(IMPORTANCE_ROWS, max(MIN_IMPORTANCE_ROWS, MAX_PERMUTED_ROWS // (n_columns * REPEATS)))
    repeats = REPEATS
    if seconds_per_row > 0:
        affordable = IMPORTANCE_SECONDS / (seconds_per_row * n_columns)  # shuffled copies of one row
        rows = min(rows, max(MIN_IMPORTANCE_ROWS, int(affordable / REPEATS)))
        repeats = max(1, min(REPEATS, int(affordable / rows)))
    return int(min(n_rows, rows)), repeats


def _importance(predict, features, y, metric, seed: int, rows: int, repeats: int) -> list[dict]:
    """Permutation importance of each input column, in the metric's units: how much the test
    score worsens when that column's values are shuffled (near 0: the model ignores it).

    The shuffled copies are predicted in batches of about ``BATCH_ROWS`` rows: one call per
    column and repeat would cost a model's per-call overhead (an ensemble's, a Spark job's)
    hundreds of times."""
    import numpy as np
    import pandas as pd

    rows = _sample(len(features), rows, seed)
    X, y = features.iloc[rows].reset_index(drop=True), np.asarray(y)[rows]
    sign = 1.0 if metric.greater_is_better else -1.0
    base = sign * metric(y, np.asarray(predict(X), dtype=float))
    rng = np.random.default_rng(seed)
    jobs = [(j, rng.permutation(len(X))) for j in range(X.shape[1]) for _ in range(repeats)]
    drops = np.zeros((X.shape[1], repeats))
    per_batch = max(1, BATCH_ROWS // len(X))
    for start in range(0, len(jobs), per_batch):
        batch = jobs[start:start + per_batch]
        copies = []
        for j, order in batch:
            copy = X.copy()
            copy.isetitem(j, X.iloc[order, j].to_numpy())
            copies.append(copy)
        predicted = np.asarray(predict(pd.concat(copies, ignore_index=True)), dtype=float)
        for k, (j, _) in enumerate(batch):
            part = predicted[k * len(X):(k + 1) * len(X)]
            drops[j, (start + k) % repeats] = base - sign * metric(y, part)
    out = [{"feature": str(f), "mean": float(d.mean()), "std": float(d.std())} for f, d in zip(X.columns, drops)]
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
    import time

    import numpy as np

    y = np.asarray(y)
    started = time.perf_counter()
    raw = np.asarray(predict(features), dtype=float)
    seconds_per_row = (time.perf_counter() - started) / max(1, len(y))
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
    rows, repeats = importance_plan(len(y), features.shape[1], seconds_per_row)
    out["importance"] = _importance(predict, features, y, metric, seed, rows, repeats)
    out["importance_rows"], out["importance_repeats"] = rows, repeats
    return out
