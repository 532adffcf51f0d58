"""Readers for a run's partition. The URI arrives rendered (Airflow templates it per run).

- a local path (``file://`` optional), CSV or Parquet by suffix or ``source.format``;
- an object in an object store (``s3://bucket/key``), credentials from ``source.conn_id``;
- ``sklearn://<name>``: a dataset that ships inside scikit-learn, for examples and tests.
"""

from __future__ import annotations

from dagml.errors import DataError

BUNDLED = {
    "breast_cancer": "load_breast_cancer",
    "wine": "load_wine",
    "iris": "load_iris",
    "digits": "load_digits",
    "diabetes": "load_diabetes",
}


def read_source(uri: str, fmt: str = "auto", options: dict | None = None, storage_options: dict | None = None):
    """The partition at ``uri`` as a DataFrame; ``storage_options`` reach an object store (fsspec)."""
    options = dict(options or {})
    if uri.startswith("sklearn://"):
        return _read_bundled(uri.removeprefix("sklearn://"))
    import fsspec
    import pandas as pd

    try:
        fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
        found = fs.exists(path)
    except (ImportError, ValueError, OSError) as exc:  # an unknown scheme, an unreachable server
        raise DataError(f"source {uri}: cannot reach it: {exc}") from None
    if not found:
        raise DataError(f"source {uri}: no such file")
    if fmt == "auto":
        fmt = "parquet" if path.lower().endswith((".parquet", ".pq")) else "csv"
    try:
        with fs.open(path, "rb") as fh:
            return pd.read_parquet(fh, **options) if fmt == "parquet" else pd.read_csv(fh, **options)
    except pd.errors.EmptyDataError:
        raise DataError(f"source {uri}: the file is empty") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"source {uri}: cannot read as {fmt}: {exc}") from None


def _read_bundled(name: str):
    import sklearn.datasets

    if name not in BUNDLED:
        raise DataError(f"source sklearn://{name}: unknown bundled dataset; valid: {', '.join(sorted(BUNDLED))}")
    bunch = getattr(sklearn.datasets, BUNDLED[name])(as_frame=True)
    frame = bunch.frame
    if hasattr(bunch, "target_names") and name != "diabetes":
        # class names read better on a leaderboard than 0/1/2
        frame["target"] = frame["target"].map(dict(enumerate(bunch.target_names))).astype("string")
    return frame
