"""Data checks and task inference: fail early, naming the column, before any model trains."""

from __future__ import annotations

import logging

from dagml.columns import quoted
from dagml.errors import DataError
from dagml.metrics import CLASSIFICATION, DEFAULT_METRIC, METRICS

log = logging.getLogger("dagml.profile")

MAX_CLASSES_FOR_INFERENCE = 20  # an integer target with more distinct values is a regression


def _delimiter_hint(columns) -> str:
    if len(columns) == 1:
        for sep in (";", "\t", "|"):
            if sep in str(columns[0]):
                return f" The file has one column {str(columns[0])[:60]!r}: is it {sep!r}-separated? Set source.options.sep."
    return ""


def infer_task(y) -> str:
    import pandas as pd

    values = y.dropna()
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "binary" if values.nunique() == 2 else "multiclass"
    is_integral = bool((values == values.round()).all())
    if is_integral and values.nunique() <= MAX_CLASSES_FOR_INFERENCE:
        return "binary" if values.nunique() == 2 else "multiclass"
    return "regression"


def min_rows_per_class(validation: str, folds: int) -> int:
    """A stratified split needs every class in train, validation and test."""
    return folds + 1 if validation == "kfold" else 3


def profile(df, target: str, task: str | None = None, metric: str | None = None,
            drop_columns=(), min_class_rows: int = 3) -> dict:
    """Check the frame and describe it as small JSON. Raises DataError naming the problem."""
    import pandas as pd

    from dagml.columns import finite, infinite_counts, refuse_duplicates, refuse_mostly_infinite

    if df.shape[1] == 0 or df.shape[0] == 0:
        raise DataError(f"the data is empty ({df.shape[0]} rows, {df.shape[1]} columns)")
    refuse_duplicates(df.columns, "the data")
    if target not in df.columns:
        shown = quoted(list(df.columns)[:10]) + (" ..." if df.shape[1] > 10 else "")
        raise DataError(f"target column {target!r} is not in the data; columns: {shown}.{_delimiter_hint(df.columns)}")
    missing_drops = [c for c in drop_columns if c not in df.columns]
    if missing_drops:
        raise DataError(f"drop_columns: {quoted(missing_drops)} not in the data")
    infinite = infinite_counts(df.drop(columns=list(drop_columns)))
    refuse_mostly_infinite(infinite, len(df))
    for col, n in infinite.items():
        log.info("column %r: %d infinite value(s) treated as missing", col, n)
    df = finite(df)
    y = df[target]
    if y.isna().all():
        raise DataError(f"target column {target!r} has no values (all {len(y)} are missing)")
    features = df.drop(columns=[target, *drop_columns])
    if features.shape[1] == 0:
        raise DataError(f"no feature columns left besides the target {target!r}")
    empty = [c for c in features.columns if features[c].isna().all()]
    if empty:
        raise DataError(
            f"column(s) {quoted(empty)} have no values at all; "
            "fix the source or list them in drop_columns"
        )

    inferred = infer_task(y)
    task = task or inferred
    known = y.dropna()
    if task == "regression" and not pd.api.types.is_numeric_dtype(known):
        example = known.iloc[0]
        raise DataError(
            f"target column {target!r} is not numeric (dtype {known.dtype}, e.g. {example!r}); "
            "a regression target must be numbers"
        )
    summary = {
        "rows": int(len(df)),
        "columns": int(df.shape[1]),
        "features": int(features.shape[1]),
        "missing_share": round(float(features.isna().mean().mean()), 6),
        "target_missing_rows": int(y.isna().sum()),
        "task": task,
        "inferred_task": inferred,
        "infinite_as_missing": infinite,
    }
    if task in CLASSIFICATION:
        counts = known.astype(str).value_counts()
        if len(counts) < 2:
            raise DataError(f"target column {target!r} has a single class ({counts.index[0]!r}); nothing to learn")
        if task == "binary" and len(counts) > 2:
            raise DataError(f"task is binary but target column {target!r} has {len(counts)} classes")
        rare = counts[counts < min_class_rows]
        if len(rare):
            raise DataError(
                f"target column {target!r}: class(es) {quoted(rare.index)} have fewer than "
                f"{min_class_rows} rows, too few to appear in every split"
            )
        summary["classes"] = {str(k): int(v) for k, v in counts.sort_index().items()}
    else:
        summary["target_mean"] = float(known.mean())
        summary["target_std"] = float(known.std())
    metric = metric or DEFAULT_METRIC[task]
    if task not in METRICS[metric].tasks:
        raise DataError(f"metric {metric!r} does not apply to the {task} task inferred from {target!r}; set task or metric")
    summary["metric"] = metric
    return summary
