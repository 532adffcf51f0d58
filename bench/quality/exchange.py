"""What the harness and the systems' processes exchange, readable from any of the bench venvs
(this module needs pandas and pyarrow only, never dagml).

A run's folder holds ``train.parquet`` (features and the target), ``test.parquet`` (features
only: the held-out labels stay with the harness), and, per system, ``<system>.predictions.parquet``
and ``<system>.info.json``. Classification predictions are one probability column per class,
named by the class label; regression predictions are one column, ``prediction``.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

TARGET = "target"
PREDICTION = "prediction"


def _text(value) -> str:
    # pandas 2 reads a missing text cell as None, pandas 3 as NaN: both are the empty string here
    if value is None or (isinstance(value, float) and math.isnan(value)) or type(value).__name__ == "NAType":
        return ""
    return str(value)


def row_digest(df) -> str:
    """SHA-256 over the rows' values as text (column names first): the same rows give the same
    digest in every venv, whatever its pandas version, because Python's ``str`` does the formatting."""
    h = hashlib.sha256("\x1f".join(map(str, df.columns)).encode())
    for row in df.itertuples(index=False, name=None):
        h.update(b"\n" + "\x1f".join(map(_text, row)).encode())
    return h.hexdigest()


def read_split(folder: Path):
    """(train frame, test features, digests of what was read) from a run's folder."""
    import pandas as pd

    train = pd.read_parquet(folder / "train.parquet")
    test = pd.read_parquet(folder / "test.parquet")
    return train, test, {"train": row_digest(train), "test": row_digest(test)}


def write_info(path: Path, info: dict) -> None:
    path.write_text(json.dumps(info, indent=1, default=str), encoding="utf-8")
