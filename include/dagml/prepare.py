"""The shared split and preprocessing recipe, computed once per run and used by every family.

The split is a role per row (``train``/``valid``/``test``, or ``fold<i>``/``test`` for
k-fold; ``dropped`` for rows without a target). The recipe is plain JSON (column roles,
classes); ``build_preprocessor`` turns it into a scikit-learn ``ColumnTransformer`` that
is fitted on training rows only, so no statistic leaks from validation or test rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dagml.errors import DataError
from dagml.metrics import CLASSIFICATION

log = logging.getLogger("dagml.prepare")


def make_split(y, task: str, test_size: float, validation: str, valid_size: float, folds: int, seed: int,
               valid_max_rows: int | None = None):
    """Seeded, stratified for classification. Returns an array of role strings, one per row. A holdout
    takes ``valid_size`` of the non-test rows for validation, at most ``valid_max_rows``; the rest train."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    from dagml.columns import finite

    roles = np.full(len(y), "dropped", dtype=object)
    rows = np.flatnonzero(~finite(y.to_frame()).iloc[:, 0].isna().to_numpy())  # an infinite target is missing
    labels = y.iloc[rows].astype(str).to_numpy() if task in CLASSIFICATION else None
    rest, test = train_test_split(rows, test_size=test_size, random_state=seed, stratify=labels)
    roles[test] = "test"
    rest_labels = y.iloc[rest].astype(str).to_numpy() if labels is not None else None
    if validation == "holdout":
        size = valid_size if not valid_max_rows or len(rest) * valid_size <= valid_max_rows else valid_max_rows
        train, valid = train_test_split(rest, test_size=size, random_state=seed, stratify=rest_labels)
        roles[train], roles[valid] = "train", "valid"
    else:
        splitter = StratifiedKFold if labels is not None else KFold
        for i, (_, fold) in enumerate(splitter(folds, shuffle=True, random_state=seed).split(rest, rest_labels)):
            roles[rest[fold]] = f"fold{i}"
    return roles


def make_recipe(df, target: str, task: str, drop_columns=(), onehot_max_categories: int = 20) -> dict:
    """Column roles as JSON. Constant and identifier-like columns are dropped and date columns
    expanded (``dagml.columns`` states the rules); ``dropped`` and ``dates`` record what was done."""
    import pandas as pd

    from dagml.columns import plan

    features = df.drop(columns=[target, *drop_columns])
    columns = plan(features)
    for col, reason in columns.dropped.items():
        log.info("dropped column %r: %s", col, reason)
    for col, fmt in columns.dates.items():
        log.info("date column %r (%s) becomes year, month, day of week and days since 1970-01-01", col,
                 f"text in format {fmt!r}" if fmt else "datetime")
    kept = [c for c in features.columns if c not in columns.dropped]
    if not kept:
        raise DataError(f"no feature columns left: every one was dropped ({_reasons(columns.dropped)}); "
                        "fix the source or check the target")
    numeric, onehot, ordinal = [], [], []
    for col in (c for c in kept if c not in columns.dates):
        s = features[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            numeric.append(col)
        elif s.nunique(dropna=True) <= onehot_max_categories:
            onehot.append(col)
        else:
            ordinal.append(col)
    recipe = {
        "target": target,
        "task": task,
        "features": kept,
        "numeric": numeric,
        "onehot": onehot,
        "ordinal": ordinal,
        "dates": list(columns.dates),
        "date_formats": columns.dates,
        "dropped": columns.dropped,
    }
    if task in CLASSIFICATION:
        recipe["classes"] = sorted(df[target].dropna().astype(str).unique().tolist())
    return recipe


def _reasons(dropped: dict) -> str:
    return "; ".join(f"{c!r}: {why}" for c, why in dropped.items())


def _finite(X):  # kept for the preprocessors stored before _finite32 (they name it)
    import numpy as np

    a = X.to_numpy(dtype=float, na_value=np.nan) if hasattr(X, "to_numpy") else np.asarray(X, dtype=float)
    return np.where(np.isinf(a), np.nan, a)


def _finite32(X):
    """Numbers as 32-bit floats, infinite values missing. Training frames (``compact``) and the raw
    rows a champion scores round to the same values, so both see the same matrix."""
    import numpy as np

    a = X.to_numpy(dtype=np.float32, na_value=np.nan) if hasattr(X, "to_numpy") else np.asarray(X, dtype=np.float32)
    return np.where(np.isinf(a), np.nan, a)  # a copy: to_numpy may be a view of the caller's frame


def compact(df, keep=()):
    """The partition with compact feature dtypes, for training: 64-bit floats as 32-bit (what the
    tree families fit on anyway) and text as categoricals (each value stored once, which the
    encoders then read as references, not copies). Columns in ``keep`` (the target, date columns)
    keep their dtype. On 1M x 50 mixed columns: bench/largedata.py."""
    import numpy as np
    import pandas as pd

    out = {}
    for name, col in df.items():
        if name in keep:
            out[name] = col
        elif col.dtype == np.float64:
            out[name] = col.astype(np.float32)
        elif pd.api.types.is_string_dtype(col.dtype) and pd.api.types.infer_dtype(col, skipna=True) == "string":
            out[name] = col.astype("category")
        else:
            out[name] = col
    return pd.DataFrame(out, index=df.index)


def as_float32(X):
    """A matrix as 32-bit floats (no copy when it is): half the memory of 64-bit ones, and no per-fit
    copy by the tree families (scikit-learn's trees fit on float32)."""
    import numpy as np

    return np.asarray(X, dtype=np.float32)


def _as_object(X):
    # pandas' nullable strings carry pd.NA, which scikit-learn's encoders do not take. Kept for
    # the preprocessors of models stored before ``_object_array``, which pickled a reference to it.
    return X.astype(object).where(X.notna(), None)


def _object_array(X):
    """The text and category columns as one object array, missing values as None. Kept for the
    preprocessors of models stored before ``CategoryCodes``, which pickled a reference to it."""
    import pandas as pd

    values = X.to_numpy(dtype=object, copy=True)  # a view may be read-only (copy-on-write)
    values[pd.isna(values)] = None
    return values


def native_categorical_recipe(recipe: dict) -> dict:
    """The recipe for a family that handles categorical columns itself: every categorical column
    as codes (``dagml.categories.CategoryCodes``: a missing value is one more code when the
    training rows had one, an unseen value -1), placed first in the matrix."""
    return {**recipe, "onehot": [], "ordinal": [*recipe["onehot"], *recipe["ordinal"]], "categoricals_first": True}


def build_preprocessor(recipe: dict, scale: bool):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from dagml.categories import CategoryCodes

    def imputed(indicator=True):
        return [SimpleImputer(strategy="median", add_indicator=indicator, keep_empty_features=True),
                *([StandardScaler()] if scale else [])]

    # every part gives 32-bit floats (infinite values as missing), so the matrix is float32 whole
    finite = FunctionTransformer(_finite32, feature_names_out="one-to-one")
    parts = [("numeric", make_pipeline(finite, *imputed()), recipe["numeric"])]
    if recipe["onehot"]:
        parts.append(("onehot", CategoryCodes(onehot=True), recipe["onehot"]))
    if recipe["ordinal"]:
        if recipe.get("categoricals_first"):  # codes for a family that reads them as categories
            parts.insert(0, ("ordinal", CategoryCodes(), recipe["ordinal"]))
        else:
            parts.append(("ordinal", make_pipeline(CategoryCodes(), *([StandardScaler()] if scale else [])),
                          recipe["ordinal"]))
    if recipe.get("dates"):  # last, so the other parts keep their column positions
        from dagml.dates import DateFeatures

        dates = make_pipeline(DateFeatures(recipe.get("date_formats")), *imputed(indicator=False),  # it flags gaps
                              FunctionTransformer(as_float32, feature_names_out="one-to-one"))
        parts.append(("dates", dates, recipe["dates"]))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0)


def encode_target(y, recipe: dict):
    """Classification labels to 0..k-1 in the recipe's class order; regression to floats."""
    import numpy as np

    if recipe["task"] not in CLASSIFICATION:
        return y.to_numpy(dtype=float)
    index = {c: i for i, c in enumerate(recipe["classes"])}
    return np.array([index[v] for v in y.astype(str)], dtype=int)


@dataclass
class Fold:
    """Numeric matrices for one (train, validation) pair, preprocessed with train's statistics."""

    X_train: object
    y_train: object
    X_valid: object
    y_valid: object
    valid_rows: object = None  # positions of the validation rows in the partition (for ensembles)
    pre: object = None  # the preprocessor fitted on the training rows (a holdout fold's is the refit's)


def folds(df, roles, recipe: dict, scale: bool) -> list[Fold]:
    """Holdout gives one fold; k-fold gives k, each validating on one fold of the non-test rows."""
    import numpy as np

    names = sorted({r for r in roles if r.startswith("fold")}) or ["valid"]
    out = []
    for name in names:
        valid = roles == name
        train = (roles == "train") if name == "valid" else ((roles != name) & (roles != "test") & (roles != "dropped"))
        fold = _fold(df[train], df[valid], recipe, scale)
        fold.valid_rows = np.flatnonzero(valid)
        out.append(fold)
    return out


def _fold(train, valid, recipe, scale) -> Fold:
    pre = build_preprocessor(recipe, scale)
    target = recipe["target"]
    X_train = as_float32(pre.fit_transform(train[recipe["features"]]))
    return Fold(X_train, encode_target(train[target], recipe), as_float32(pre.transform(valid[recipe["features"]])),
                encode_target(valid[target], recipe), pre=pre)


def final_training_rows(roles):
    """Holdout refits on train (so its validation score stays honest); k-fold on all non-test rows."""
    if (roles == "train").any():
        return roles == "train"
    return (roles != "test") & (roles != "dropped")


class FrameData:
    """A run's rows as a pandas frame, preprocessed by scikit-learn with training rows' statistics.

    The interface every family's data goes through (see ``families.spark.SparkData`` for the
    one that never brings the rows into the worker's memory): ``folds`` for the search,
    ``final`` for the refit, ``rows`` to score validation and test rows. The frame is held with
    compact dtypes (``compact``) and the matrices are 32-bit floats.
    """

    def __init__(self, df, roles, recipe: dict, scale: bool):
        keep = [recipe["target"], *recipe.get("dates", [])]
        self.df, self.roles, self.recipe, self.scale = compact(df, keep), roles, recipe, scale

    def has(self, role: str) -> bool:
        return bool((self.roles == role).any())

    def training_rows(self) -> int:
        """How many rows a model of the family is fit on (holdout: train; k-fold: all but test)."""
        return int(final_training_rows(self.roles).sum())

    def sample(self, rows: int, seed: int):
        """The same data with at most ``rows`` training rows, drawn with ``seed``; validation and
        test rows stay whole, so the scores compare with the other families'. Holdout only (k-fold
        folds are validation rows too): None otherwise."""
        import numpy as np

        train = np.flatnonzero(self.roles == "train")
        if len(train) == 0:
            return None
        roles = self.roles.copy()
        dropped = np.random.default_rng(seed).choice(len(train), len(train) - min(rows, len(train)), replace=False)
        roles[train[dropped]] = "unused"
        sampled = object.__new__(FrameData)
        sampled.df, sampled.roles, sampled.recipe, sampled.scale = self.df, roles, self.recipe, self.scale
        return sampled

    def folds(self) -> list[Fold]:
        return folds(self.df, self.roles, self.recipe, self.scale)

    def final(self):
        """(fitted preprocessor, X, y) of the refit's training rows."""
        pre = build_preprocessor(self.recipe, self.scale)
        rows = self.df[final_training_rows(self.roles)]
        return pre, as_float32(pre.fit_transform(rows[self.recipe["features"]])), encode_target(
            rows[self.recipe["target"]], self.recipe)

    def rows(self, role: str, pre):
        rows = self.df[self.roles == role]
        return as_float32(pre.transform(rows[self.recipe["features"]])), encode_target(rows[self.recipe["target"]],
                                                                                      self.recipe)
