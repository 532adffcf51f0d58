"""Date columns as numbers: a transformer stored inside the fitted preprocessor, so scoring new
rows parses and expands their dates exactly as training did (imported only where sklearn is)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from dagml.columns import DATE_PARTS, parse_dates

EPOCH = pd.Timestamp("1970-01-01")


class DateFeatures(TransformerMixin, BaseEstimator):
    """Each date column to year, month, day of week (Monday 0), days since 1970-01-01, and
    ``missing`` (1 where the date is missing or does not parse; the four are then imputed).

    ``formats``: column -> the format its text parses with (None for a datetime column, or to
    let pandas infer it).
    """

    def __init__(self, formats: dict | None = None):
        self.formats = formats

    def fit(self, X, y=None):
        self.columns_ = [str(c) for c in X.columns]
        self.n_features_in_ = len(self.columns_)
        return self

    def transform(self, X):
        parts = []
        for col in self.columns_:
            t = parse_dates(X[col], (self.formats or {}).get(col))
            parts += [t.dt.year, t.dt.month, t.dt.day_of_week, (t - EPOCH) / pd.Timedelta(days=1),
                      t.isna().astype(float)]
        if not parts:
            return np.empty((len(X), 0))
        return np.column_stack([p.to_numpy(dtype=float, na_value=np.nan) for p in parts])

    def get_feature_names_out(self, input_features=None):
        return np.array([f"{c}__{p}" for c in self.columns_ for p in (*DATE_PARTS, "missing")], dtype=object)
