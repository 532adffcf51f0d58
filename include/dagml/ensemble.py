"""``ensemble:greedy``: Caruana-style ensemble selection over the finalists' out-of-fold predictions.

Greedy selection with replacement: each round adds the member whose addition makes the running
mean score best; after ``rounds`` rounds the weights are the counts of the best round's prefix
divided by their sum, so the ensemble never scores worse on those rows than its best member.
Every round scores as every family is judged (``fold_score``: the metric per validation fold,
averaged). Not on the folds pooled: each fold's models differ (a prior learned per fold is a
different constant per fold), and pooled, a ranking metric rewards blending in those offsets.
"""

from __future__ import annotations

import numpy as np

from dagml.metrics import Metric

FAMILY = "ensemble:greedy"
# Candidates: the best families by validation score, up to this many (the baseline is never one).
# Greedy selection keeps only those that help, so a cap this wide costs only scoring: with the 5
# best, on satellite at 300 s the better-tuned boosting families pushed kNN out, and the blends
# with it scored better on held-out rows (docs/benchmarks.md).
MAX_FINALISTS = 20
ROUNDS = 25


def finalists(rows: list[dict], metric: Metric,
              has_predictions=lambda row: bool(row.get("predictions_uri"))) -> list[dict]:
    """The leaderboard rows a blend is chosen over, best first: the ``MAX_FINALISTS`` best ok rows
    with out-of-fold predictions, never an earlier blend nor the baseline (it predicts a constant:
    nothing a blend should rely on)."""
    from dagml.config import BASELINE_FAMILY
    from dagml.selection import rank

    return [r for r in rank(rows, metric) if r["status"] == "ok" and has_predictions(r)
            and r["family"] not in (FAMILY, BASELINE_FAMILY)][:MAX_FINALISTS]


def fold_scores(metric: Metric, y, predictions, groups) -> list[float]:
    """The metric on each validation fold's rows, in the order of the folds' labels."""
    return [float(metric(y[groups == g], predictions[groups == g])) for g in np.unique(groups)]


def fold_score(metric: Metric, y, predictions, groups) -> float:
    """The metric on each fold's rows, averaged: how a family's validation score is computed."""
    return float(np.mean(fold_scores(metric, y, predictions, groups)))


def blend(predictions: list, weights) -> np.ndarray:
    """The weighted mean of members' predictions (values, or class probabilities (n, k))."""
    return sum(w * np.asarray(p, dtype=float) for w, p in zip(weights, predictions))


def greedy_weights(predictions: list, y, groups, metric: Metric, rounds: int = ROUNDS) -> tuple[np.ndarray, float]:
    """(one weight per member, summing to 1; the ensemble's score). Ties go to the earlier member,
    so finalists are passed best first."""
    counts = np.zeros(len(predictions))
    total = np.zeros_like(np.asarray(predictions[0], dtype=float))
    best_counts, best = None, None
    for n in range(1, rounds + 1):
        scores = [fold_score(metric, y, (total + p) / n, groups) for p in predictions]
        pick = 0
        for i, s in enumerate(scores):
            if metric.better(s, scores[pick]):
                pick = i
        counts[pick] += 1
        total = total + predictions[pick]
        if best is None or metric.better(scores[pick], best):
            best, best_counts = scores[pick], counts.copy()
    return best_counts / best_counts.sum(), best


def aligned(frames: dict[str, object]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(rows, {member: predictions on those rows}) from out-of-fold frames (``row`` then the
    prediction columns). Members whose rows differ from the first's are left out: a blend needs
    every member's prediction for every row."""
    rows, out = None, {}
    for name, frame in frames.items():
        frame = frame.sort_values("row")
        values = frame.drop(columns="row").to_numpy(dtype=float)
        values = values[:, 0] if list(frame.columns) == ["row", "prediction"] else values
        if rows is None:
            rows = frame["row"].to_numpy()
        elif not np.array_equal(frame["row"].to_numpy(), rows) or values.shape != next(iter(out.values())).shape:
            continue
        out[name] = values
    return rows, out
