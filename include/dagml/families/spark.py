"""Spark ML families through pyspark: linear, random forest, gradient-boosted trees.

The Spark master comes from ``dagml.settings.spark_master()`` (an Airflow connection,
default ``local[*]``), so the same task trains in local mode or on a cluster. pyspark is
imported only when a family is used; a worker without Java or pyspark fails the task
with a message saying so. Models are saved with Spark ML's own persistence.
"""

from __future__ import annotations

import json
import shutil
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from dagml.columns import DATE_PARTS
from dagml.errors import FamilyFailed
from dagml.families.base import Family, Model
from dagml.families.base import hyperopt_parts as _hp


@lru_cache(maxsize=1)
def session():
    """One Spark session per worker process (starting one costs seconds)."""
    import logging

    from pyspark.sql import SparkSession

    from dagml.settings import spark_master

    # A trial forked from this process (``dagml.time_limit``) drops, inside os.fork(), the py4j
    # connections of this process's other threads, and py4j logs "Closing down clientserver
    # connection" before the child's logging locks are renewed: a lock another thread held at the
    # fork is never released, and the child hangs until its limit kills it (the dear-point tests
    # CI failed after the Spark tests; docs "A trial forked after Spark"). py4j's info lines stay off.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    return (SparkSession.builder.master(spark_master()).appName("dagml")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .getOrCreate())


def _frame(X, y=None):
    """A Spark frame with a ``features`` vector column (and ``label``), built through Arrow."""
    import numpy as np
    import pandas as pd
    from pyspark.ml.feature import VectorAssembler

    columns = [f"x{i}" for i in range(X.shape[1])]
    pdf = pd.DataFrame(np.asarray(X, dtype=float), columns=columns)
    pdf["row"] = np.arange(len(pdf))
    if y is not None:
        pdf["label"] = np.asarray(y, dtype=float)
    sdf = session().createDataFrame(pdf)
    return VectorAssembler(inputCols=columns, outputCol="features").transform(sdf).select(
        "row", "features", *(["label"] if y is not None else []))


def _raw_frame(pdf):
    import numpy as np

    pdf = pdf.copy()
    pdf["row"] = np.arange(len(pdf))
    return session().createDataFrame(pdf)


class SparkRows:
    """Rows of the run's Parquet partition as a Spark frame, with the recipe's Spark ML stages."""

    def __init__(self, df, n_rows: int, recipe: dict, scale: bool):
        self.df, self.shape, self.recipe, self.scale = df, (n_rows, len(recipe["features"])), recipe, scale

    def preprocessing(self) -> list:
        """The recipe in Spark ML, with the pandas path's column rules: infinite values are
        missing, date columns become year, month, day of week, days since 1970-01-01 and a
        missing flag; median imputation, one-hot or ordinal codes, optional scaling."""
        from pyspark.ml.feature import (Imputer, OneHotEncoder, SQLTransformer, StandardScaler, StringIndexer,
                                        VectorAssembler)

        r = self.recipe
        stages, inputs = [], []
        derived = [*_finite_columns(r["numeric"]), *_date_columns(r.get("dates", []), r.get("date_formats") or {})]
        if derived:
            stages.append(SQLTransformer(statement=f"SELECT *, {', '.join(derived)} FROM __THIS__"))
        dates = [f"{c}__{part}" for c in r.get("dates", []) for part in DATE_PARTS]
        numeric = [f"{c}__finite" for c in r["numeric"]] + dates
        if numeric:
            imputed = [f"{c}__imputed" for c in numeric]
            stages.append(Imputer(strategy="median", inputCols=numeric, outputCols=imputed))
            inputs += imputed
        inputs += [f"{c}__missing" for c in r.get("dates", [])]
        for col in r["onehot"] + r["ordinal"]:
            stages.append(StringIndexer(inputCol=col, outputCol=f"{col}__index", handleInvalid="keep",
                                        stringOrderType="alphabetAsc"))
        if r["onehot"]:
            onehot = [f"{c}__onehot" for c in r["onehot"]]
            stages.append(OneHotEncoder(inputCols=[f"{c}__index" for c in r["onehot"]], outputCols=onehot,
                                        handleInvalid="keep", dropLast=False))
            inputs += onehot
        inputs += [f"{c}__index" for c in r["ordinal"]]
        assembled = "features__raw" if self.scale else "features"
        stages.append(VectorAssembler(inputCols=inputs, outputCol=assembled, handleInvalid="keep"))
        if self.scale:
            stages.append(StandardScaler(inputCol=assembled, outputCol="features", withMean=True, withStd=True))
        return stages


def _quoted(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


def _finite_columns(columns) -> list[str]:
    """SQL giving ``<c>__finite``: the column as a double, infinite values as missing."""
    out = []
    for c in columns:
        value = f"CAST({_quoted(c)} AS DOUBLE)"
        out.append(f"CASE WHEN abs({value}) = CAST('Infinity' AS DOUBLE) THEN NULL ELSE {value} END "
                   f"AS {_quoted(c + '__finite')}")
    return out


# strftime directives (what dagml.columns detects) and their Spark datetime patterns
_SPARK_PATTERN = {"%Y": "yyyy", "%y": "yy", "%m": "MM", "%d": "dd", "%H": "HH", "%I": "hh", "%M": "mm", "%S": "ss",
                  "%f": "SSSSSS", "%p": "a", "%b": "MMM", "%B": "MMMM", "%a": "EEE", "%A": "EEEE", "%z": "Z",
                  "%%": "%"}


def spark_pattern(fmt: str) -> str:
    """A strftime format as a Spark datetime pattern (literal letters quoted); ValueError names
    a directive Spark has no pattern for."""
    import re

    out = []
    for token in re.findall(r"%.|[A-Za-z]+|[^%A-Za-z]+", fmt):
        if token.startswith("%"):
            if token not in _SPARK_PATTERN:
                raise ValueError(f"date format {fmt!r}: {token} has no Spark datetime pattern")
            out.append(_SPARK_PATTERN[token])
        elif token.isalpha():
            out.append(f"'{token}'")
        else:
            out.append(token.replace("'", "''"))
    return "".join(out)


def _date_columns(columns, formats: dict) -> list[str]:
    """SQL giving ``<c>__year|month|day_of_week|days_since_1970|missing`` as ``dagml.dates`` does
    on pandas (Monday is day 0; days count the time of day as a fraction)."""
    out = []
    for c in columns:
        fmt = formats.get(c)
        if fmt in (None, "ISO8601"):
            ts = f"try_to_timestamp(CAST({_quoted(c)} AS STRING))"
        else:
            ts = f"try_to_timestamp(CAST({_quoted(c)} AS STRING), '{spark_pattern(fmt)}')"
        parts = {"year": f"year({ts})", "month": f"month({ts})", "day_of_week": f"(dayofweek({ts}) + 5) % 7",
                 "days_since_1970": f"datediff(to_date({ts}), DATE'1970-01-01') + "
                                    f"(hour({ts}) * 3600 + minute({ts}) * 60 + second({ts})) / 86400.0"}
        out += [f"CAST({sql} AS DOUBLE) AS {_quoted(f'{c}__{name}')}" for name, sql in parts.items()]
        out.append(f"CASE WHEN {ts} IS NULL THEN 1.0 ELSE 0.0 END AS {_quoted(c + '__missing')}")
    return out


class SparkData:
    """The ``prepare.FrameData`` interface over the Parquet partition, read by Spark itself.

    For partitions too large for one worker's memory: rows stay in Spark; only labels and
    predictions of validation and test rows come back, for the shared metric code.
    """

    def __init__(self, data_uri: str, split_uri: str, recipe: dict, scale: bool):
        from pyspark.sql import functions as F

        spark = session()
        raw = spark.read.parquet(data_uri)
        # the split is one role per row in file order; zipWithIndex keeps Parquet's file order
        with_row = raw.rdd.zipWithIndex().map(lambda pair: (*pair[0], pair[1])).toDF([*raw.columns, "row"])
        split = spark.read.parquet(split_uri).rdd.zipWithIndex().map(lambda p: (p[0][0], p[1])).toDF(["role", "row"])
        target = F.col(recipe["target"])
        if recipe.get("classes") is not None:
            mapping = F.create_map(*[F.lit(x) for i, c in enumerate(recipe["classes"]) for x in (c, float(i))])
            label = mapping[target.cast("string")]
        else:
            label = target.cast("double")
        self.df = with_row.join(split, "row").withColumn("label", label).cache()
        self.recipe, self.scale = recipe, scale
        self.counts = {r["role"]: r["count"] for r in self.df.groupBy("role").count().collect()}

    def has(self, role: str) -> bool:
        return self.counts.get(role, 0) > 0

    def training_rows(self) -> int:
        """How many rows a model is fit on (holdout: train; k-fold: all but test), counted by Spark."""
        if self.has("train"):
            return self.counts["train"]
        return sum(n for role, n in self.counts.items() if role not in ("test", "dropped"))

    def sample(self, rows: int, seed: int) -> None:
        """Never: Spark reads the whole partition on its own executors, so no row cap applies."""
        return None

    def _rows(self, condition, n) -> SparkRows:
        return SparkRows(self.df.where(condition), n, self.recipe, self.scale)

    def _labels(self, role):

        labels = self.df.where(self.df.role == role).orderBy("row").select("label").toPandas()["label"]
        return labels.to_numpy(dtype=int if self.recipe.get("classes") is not None else float)

    def folds(self):
        from dagml.prepare import Fold

        names = sorted(r for r in self.counts if r.startswith("fold")) or ["valid"]
        out = []
        for name in names:
            if name == "valid":
                train = self._rows(self.df.role == "train", self.counts.get("train", 0))
            else:
                train = self._rows(~self.df.role.isin(name, "test", "dropped"), 0)
            out.append(Fold(train, None, self._rows(self.df.role == name, self.counts[name]), self._labels(name)))
        return out

    def final(self):
        from sklearn.preprocessing import FunctionTransformer

        role = "train" if self.has("train") else None
        condition = self.df.role == "train" if role else ~self.df.role.isin("test", "dropped")
        # the Spark pipeline carries its own preprocessing: the stored preprocessor passes raw columns on
        return FunctionTransformer(), self._rows(condition, self.counts.get("train", 0)), None

    def rows(self, role: str, pre):
        return self._rows(self.df.role == role, self.counts.get(role, 0)), self._labels(role)


class SparkModel(Model):
    def __init__(self, model, task: str, n_classes: int):
        self.model, self.task, self.n_classes = model, task, n_classes

    def predict(self, X):
        import numpy as np
        from pyspark.ml.functions import vector_to_array

        if isinstance(X, SparkRows):  # the direct path: raw columns, the pipeline preprocesses
            frame, n = X.df, X.shape[0]
        elif hasattr(X, "columns"):  # raw pandas rows, scored later through dagml.predictors
            frame, n = _raw_frame(X), len(X)
        else:
            frame, n = _frame(X), len(X)
        out = self.model.transform(frame).orderBy("row")
        if self.task == "regression":
            return out.select("prediction").toPandas()["prediction"].to_numpy(dtype=float)
        proba = np.stack(out.select(vector_to_array("probability").alias("p")).toPandas()["p"].to_numpy())
        full = np.zeros((n, self.n_classes))
        full[:, : proba.shape[1]] = proba  # a top class unseen in training has no column
        return full

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        self.model.write().overwrite().save(str(folder / "spark_model"))
        cls = type(self.model)
        (folder / "spark_model.json").write_text(json.dumps(
            {"class": f"{cls.__module__}.{cls.__name__}", "task": self.task, "n_classes": self.n_classes}))

    @classmethod
    def load(cls, folder: Path) -> SparkModel:
        import importlib

        meta = json.loads((Path(folder) / "spark_model.json").read_text())
        module, name = meta["class"].rsplit(".", 1)
        session()
        model = getattr(importlib.import_module(module), name).load(str(Path(folder) / "spark_model"))
        return cls(model, meta["task"], meta["n_classes"])


class SparkFamily(Family):
    kind = "spark"
    model_class = SparkModel
    classifier: ClassVar[str]
    regressor: ClassVar[str]

    def check_available(self) -> None:
        try:
            import pyspark  # noqa: F401
        except ImportError as exc:
            raise FamilyFailed(f"{self.key()} needs pyspark on this worker: {exc}") from None
        if not shutil.which("java"):
            raise FamilyFailed(f"{self.key()} needs Java on this worker (Debian: openjdk-17-jre-headless)")

    def estimator(self, params: dict, task: str, seed: int):
        import importlib

        session()  # Spark ML estimators need a live context
        path = self.regressor if task == "regression" else self.classifier
        module, name = path.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)(**self.spark_params(params, task, seed))

    def spark_params(self, params: dict, task: str, seed: int) -> dict:
        raise NotImplementedError

    def fit(self, params, X, y, task, n_classes, seed, eval_set=None):
        if isinstance(X, SparkRows):  # the direct path: preprocessing is part of the Spark pipeline
            from pyspark.ml import Pipeline

            stages = [*X.preprocessing(), self.estimator(params, task, seed)]
            return SparkModel(Pipeline(stages=stages).fit(X.df), task, n_classes)
        return SparkModel(self.estimator(params, task, seed).fit(self._cached_frame(X, y)), task, n_classes)

    def _cached_frame(self, X, y):
        """The training data crosses to the JVM once per search, not once per trial."""
        cached = getattr(self, "_cache", None)
        if cached is None or cached[0] is not X or cached[1] is not y:
            self._cache = (X, y, _frame(X, y).cache())
        return self._cache[2]


class Linear(SparkFamily):
    """Logistic or linear regression with elastic net: the objective of glmnet (regParam = lambda)."""

    name = "linear"
    needs_scaling = True
    classifier = "pyspark.ml.classification.LogisticRegression"
    regressor = "pyspark.ml.regression.LinearRegression"

    def space(self, task, n_rows, n_cols):
        hp, _ = _hp()
        return {"reg": hp.loguniform("reg", -9.2, 0), "elastic_net": hp.uniform("elastic_net", 0, 1)}

    def init_points(self, task):
        return [{"reg": 0.01, "elastic_net": 0.0}]

    def spark_params(self, params, task, seed):
        return {"regParam": params["reg"], "elasticNetParam": params["elastic_net"], "maxIter": 200,
                "standardization": False, "tol": 1e-6}


class RandomForest(SparkFamily):
    name = "random_forest"
    classifier = "pyspark.ml.classification.RandomForestClassifier"
    regressor = "pyspark.ml.regression.RandomForestRegressor"

    def space(self, task, n_rows, n_cols):
        hp, scope = _hp()
        return {
            "num_trees": scope.int(hp.quniform("num_trees", 20, 200, 10)),
            "max_depth": scope.int(hp.quniform("max_depth", 3, 12, 1)),
            "feature_share": hp.uniform("feature_share", 0.1, 1.0),
            "min_instances": scope.int(hp.qloguniform("min_instances", 0, 3, 1)),
        }

    def init_points(self, task):
        return [{"num_trees": 100, "max_depth": 8, "feature_share": 0.5, "min_instances": 1}]

    def spark_params(self, params, task, seed):
        return {"numTrees": int(params["num_trees"]), "maxDepth": int(params["max_depth"]),
                "featureSubsetStrategy": f"{params['feature_share']:.3f}",
                "minInstancesPerNode": max(1, int(params["min_instances"])), "seed": seed}


class GradientBoostedTrees(SparkFamily):
    """Spark's GBT classifier is binary only."""

    name = "gbt"
    tasks = frozenset({"binary", "regression"})
    classifier = "pyspark.ml.classification.GBTClassifier"
    regressor = "pyspark.ml.regression.GBTRegressor"

    def space(self, task, n_rows, n_cols):
        hp, scope = _hp()
        return {
            "max_iter": scope.int(hp.quniform("max_iter", 20, 150, 10)),
            "max_depth": scope.int(hp.quniform("max_depth", 2, 8, 1)),
            "step_size": hp.loguniform("step_size", -4.6, -1.2),
            "subsampling": hp.uniform("subsampling", 0.5, 1.0),
        }

    def init_points(self, task):
        return [{"max_iter": 50, "max_depth": 4, "step_size": 0.1, "subsampling": 1.0}]

    def spark_params(self, params, task, seed):
        return {"maxIter": int(params["max_iter"]), "maxDepth": int(params["max_depth"]),
                "stepSize": params["step_size"], "subsamplingRate": params["subsampling"], "seed": seed}
