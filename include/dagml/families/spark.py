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

from dagml.errors import FamilyFailed
from dagml.families.base import Family, Model
from dagml.families.base import hyperopt_parts as _hp


@lru_cache(maxsize=1)
def session():
    """One Spark session per worker process (starting one costs seconds)."""
    from pyspark.sql import SparkSession

    from dagml.settings import spark_master

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


class SparkModel(Model):
    def __init__(self, model, task: str, n_classes: int):
        self.model, self.task, self.n_classes = model, task, n_classes

    def predict(self, X):
        import numpy as np
        from pyspark.ml.functions import vector_to_array

        out = self.model.transform(_frame(X)).orderBy("row")
        if self.task == "regression":
            return out.select("prediction").toPandas()["prediction"].to_numpy(dtype=float)
        proba = np.stack(out.select(vector_to_array("probability").alias("p")).toPandas()["p"].to_numpy())
        full = np.zeros((len(X), self.n_classes))
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

    def fit(self, params, X, y, task, n_classes, seed):
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
                "standardization": False, "tol": 1e-9}


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
