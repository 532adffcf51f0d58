"""The Spark large-data path: above ``spark.direct_read_mb`` a Spark family trains on the Parquet
partition as Spark reads it, never as a pandas frame in the worker."""

import pytest

from dagml import tasks
from dagml.config import DatasetConfig
from dagml.metrics import get_metric
from dagml.predictors import load_verified
from dagml.store.artifacts import ArtifactStore
from tests.unit.test_tasks import _frame


def test_a_partition_above_the_threshold_trains_without_pandas(tmp_path, stores, monkeypatch):
    _frame(n=400).to_csv(tmp_path / "d.csv", index=False)
    config = DatasetConfig.model_validate({
        "name": "big", "source": {"uri": str(tmp_path / "d.csv")}, "target": "y", "metric": "roc_auc",
        "families": [{"name": "spark:linear", "max_evals": 2}], "spark": {"direct_read_mb": 0},
        "split": {"validation": "holdout"}})  # one Spark job per fit: k-fold would be 5
    keys = tasks.RunKeys(config.dag_id, "2026-01-01", "r1")
    loaded = tasks.load(config, config.source.uri, keys, stores)
    prepared = tasks.prepare(config, loaded, tasks.profile(config, loaded, keys, stores), keys, stores)

    original = ArtifactStore.read_parquet

    def no_pandas_for_the_data(self, uri):
        assert uri != prepared["data_uri"], "the Spark family read the partition through pandas"
        return original(self, uri)

    with monkeypatch.context() as patch:
        patch.setattr(ArtifactStore, "read_parquet", no_pandas_for_the_data)
        summary = tasks.search_family(config, "spark:linear", prepared, keys, stores)
    tasks.search_family(config, "sklearn:dummy", prepared, keys, stores)

    rows = {r["family"]: r for r in stores.results.leaderboard(keys.dag_id, keys.partition)}
    assert rows["spark:linear"]["status"] == "ok" and rows["spark:linear"]["n_trials"] == 2
    # Spark counts its training rows itself, and both families fit on the same ones
    train_rows = int((stores.artifacts.read_parquet(prepared["split_uri"])["role"] == "train").sum())
    assert rows["spark:linear"]["fit_rows"] == rows["spark:linear"]["search_rows"] == train_rows
    assert rows["sklearn:dummy"]["fit_rows"] == train_rows
    assert summary["test_score"] > rows["sklearn:dummy"]["test_score"] + 0.2
    # the stored pipeline scores raw pandas rows later, like any other champion, and
    # reproduces the test score the direct path recorded
    predictor = load_verified(stores.artifacts, rows["spark:linear"]["model_uri"], rows["spark:linear"]["model_sha256"])
    df = stores.artifacts.read_parquet(prepared["data_uri"])
    roles = stores.artifacts.read_parquet(prepared["split_uri"])["role"].to_numpy()
    recipe = stores.artifacts.read_json(prepared["recipe_uri"])
    rescored = tasks._test_score(predictor, df, roles, recipe, get_metric("roc_auc"))
    assert rescored == pytest.approx(summary["test_score"], abs=1e-9)


def test_the_direct_path_applies_the_recipes_column_rules(tmp_path, stores):
    """Infinite values are missing and a date column becomes its parts, as on the pandas path:
    here the label is the date's half of the year, so only the date parts can predict it."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 400
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 366, n), unit="D")
    noise = rng.normal(size=n)
    noise[::10] = np.inf  # a tenth of the noise column is infinite
    pd.DataFrame({"day": days.strftime("%d/%m/%Y"), "noise": noise,
                  "y": (days.month >= 7).astype(int)}).to_csv(tmp_path / "d.csv", index=False)
    config = DatasetConfig.model_validate({
        "name": "dated", "source": {"uri": str(tmp_path / "d.csv")}, "target": "y", "metric": "roc_auc",
        "families": [{"name": "spark:gbt", "max_evals": 1}], "spark": {"direct_read_mb": 0},
        "split": {"validation": "holdout"}})
    keys = tasks.RunKeys(config.dag_id, "2026-01-01", "r1")
    loaded = tasks.load(config, config.source.uri, keys, stores)
    prepared = tasks.prepare(config, loaded, tasks.profile(config, loaded, keys, stores), keys, stores)
    recipe = stores.artifacts.read_json(prepared["recipe_uri"])
    assert recipe["dates"] == ["day"] and recipe["date_formats"] == {"day": "%d/%m/%Y"}

    summary = tasks.search_family(config, "spark:gbt", prepared, keys, stores)

    assert summary["test_score"] > 0.95  # the month decides the label: the date parts reached the trees
    row = stores.results.leaderboard(keys.dag_id, keys.partition)[0]
    predictor = load_verified(stores.artifacts, row["model_uri"], row["model_sha256"])
    df = stores.artifacts.read_parquet(prepared["data_uri"])
    roles = stores.artifacts.read_parquet(prepared["split_uri"])["role"].to_numpy()
    rescored = tasks._test_score(predictor, df, roles, recipe, get_metric("roc_auc"))
    assert rescored == pytest.approx(summary["test_score"], abs=1e-9)  # scoring pandas rows later agrees


def test_strftime_formats_become_spark_patterns():
    from dagml.families.spark import spark_pattern

    assert spark_pattern("%d/%m/%Y") == "dd/MM/yyyy"
    assert spark_pattern("%Y-%m-%dT%H:%M:%S") == "yyyy-MM-dd'T'HH:mm:ss"
    with pytest.raises(ValueError, match="%j"):
        spark_pattern("%Y-%j")
