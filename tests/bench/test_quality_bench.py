"""The model-quality harness (bench/quality) end to end: real AutoGluon and FLAML from their own
venvs, dagml through its task functions, the two untuned scikit-learn models. Select with ``-m bench``.
A missing bench venv fails here with the command that builds it."""

import csv
import json
import math
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

HERE = Path(__file__).resolve().parents[2] / "bench" / "quality"
sys.path.insert(0, str(HERE))
import datasets as dataset_list  # noqa: E402
import ensemble_bags  # noqa: E402
import harness  # noqa: E402
import variants  # noqa: E402
from exchange import PREDICTION, row_digest  # noqa: E402

pytestmark = pytest.mark.bench

TINY = ("wine", "servo")  # 178 rows, 3 classes; 167 rows, regression with categorical features


def _rescore(folder: Path, system: str, split_classes, y_test, metric_name: str) -> float:
    """The score recomputed here from the system's prediction file with dagml's metric."""
    import numpy as np

    from dagml.metrics import get_metric

    predictions = pd.read_parquet(folder / f"{system}.predictions.parquet")
    metric = get_metric(metric_name)
    if split_classes is None:
        return metric(y_test.astype(float), predictions[PREDICTION].to_numpy(dtype=float))
    proba = predictions.reindex(columns=split_classes, fill_value=0.0).to_numpy(dtype=float)
    proba = proba / proba.sum(axis=1, keepdims=True)
    return metric(np.array([split_classes.index(v) for v in y_test]), proba)


def test_five_systems_score_the_same_split_with_dagml_metric_and_a_rerun_resumes(tmp_path):
    listed = {d.name: d for d in dataset_list.read_list()}
    datasets = [listed[name] for name in TINY]
    results, work = tmp_path / "results.csv", tmp_path / "work"
    core = max(os.sched_getaffinity(0))
    # two quick dagml families: this test is about the harness, not about dagml's budget
    options = harness.DagmlOptions(families=("sklearn:hist_gradient_boosting", "sklearn:elastic_net"))
    rows = harness.run(datasets, [0], harness.SYSTEMS, 5, results, work, core, say=lambda m: None,
                       dagml=options, startup=120)

    assert len(rows) == len(TINY) * len(harness.SYSTEMS)
    for row in rows:
        assert row["error"] == "", row
        assert math.isfinite(row["score"]), row
    for ds in datasets:
        mine = [r for r in rows if r["dataset"] == ds.name]
        assert {r["metric"] for r in mine} == {harness.METRIC[ds.task]}
        assert {r["system"] for r in mine} == set(harness.SYSTEMS)
        folder = work / ds.name / "seed0"
        written = {"train": row_digest(pd.read_parquet(folder / "train.parquet")),
                   "test": row_digest(pd.read_parquet(folder / "test.parquet"))}
        split = harness.make_split(dataset_list.load(ds), ds.task, 0, tmp_path / "again" / ds.name)
        assert split.digests == written  # the split is a function of the seed
        for row in mine:
            info = json.loads((folder / f"{row['system']}.info.json").read_text())
            assert info["digests"] == written, row["system"]  # each system read exactly these rows
            assert info["affinity"] == [core]
            assert _rescore(folder, row["system"], split.classes, split.y_test, row["metric"]) == row["score"]
        # the ablations of the same run: every searched family's own predictions, scored the same way
        dagml_row = next(r for r in mine if r["system"] == "dagml")
        scores = variants.score_folder(harness.Split(folder, split.y_test, split.classes, split.digests), ds.task)
        assert set(options.families) | {"best_single", "compared"} <= set(scores)
        champion = json.loads((folder / "dagml.info.json").read_text())["details"]["champion"]
        if champion in options.families:  # refit on all rows: the compared model is what was chosen
            assert scores[champion] == scores["compared"]
        # the ensemble's weights chosen again from the out-of-fold predictions the run kept
        again = ensemble_bags.run_scores(folder, harness.Split(folder, split.y_test, split.classes, split.digests),
                                         ds.task, row["metric"], ["greedy"])
        if champion == "ensemble:greedy":
            assert again["greedy:blend"] == pytest.approx(scores["compared"], rel=1e-6)
        assert math.isfinite(dagml_row["score"])
    table = variants.collect(work, datasets, [0], {(r["dataset"], 0): r["score"] for r in rows if r["system"] == "dagml"})
    assert set(table) == set(TINY) and all("champion" in v and variants.BY_MEAN in v for v in table.values())
    autogluon_python = json.loads((work / "wine" / "seed0" / "autogluon.info.json").read_text())["python"]
    assert ".venv-autogluon" in autogluon_python

    with results.open() as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    assert harness.run(datasets, [0], harness.SYSTEMS, 5, results, work, core, say=lambda m: None) == []


def test_a_missing_bench_venv_names_the_make_target(monkeypatch, tmp_path):
    monkeypatch.setitem(harness.VENVS, "autogluon", tmp_path / ".venv-autogluon")
    with pytest.raises(harness.MissingVenv, match="make bench-venvs"):
        harness.run([], [0], harness.SYSTEMS, 5, tmp_path / "r.csv", tmp_path, 0)


def test_probability_columns_in_any_order_score_alike(tmp_path):
    listed = {d.name: d for d in dataset_list.read_list()}
    split = harness.make_split(dataset_list.load(listed["wine"]), "multiclass", 1, tmp_path)
    n = len(split.y_test)
    ordered = pd.DataFrame({c: [0.2] * n for c in split.classes})
    ordered[split.classes[0]] = 0.6
    shuffled = ordered[list(reversed(split.classes))]
    assert harness.score(split, "multiclass", ordered) == harness.score(split, "multiclass", shuffled)
    with pytest.raises(ValueError, match="classes the data does not have"):
        harness.score(split, "multiclass", ordered.assign(other=0.1))


@pytest.mark.parametrize("text, message", [
    ("name,loader,task,rows\nx,sklearn:load_wine,multiclass,178\n", "the columns must be"),
    ("name,loader,task,rows,notes\nx,sklearn:load_wine,ordinal,178,\n", "line 2: task 'ordinal'"),
    ("name,loader,task,rows,notes\nx,openml:61,multiclass,150,\n", "line 2: loader 'openml:61'"),
    ("name,loader,task,rows,notes\nx,sklearn:load_wine,multiclass,many,\n", "line 2: rows 'many'"),
])
def test_a_bad_dataset_list_names_the_file_line_and_field(tmp_path, text, message):
    path = tmp_path / "datasets.csv"
    path.write_text(text)
    with pytest.raises(dataset_list.DatasetListError, match=message) as err:
        dataset_list.read_list(path)
    assert str(path) in str(err.value)


def test_every_listed_dataset_loads_offline_with_its_listed_rows_and_task():
    listed = dataset_list.read_list()
    assert len(listed) >= 12
    assert {d.task for d in listed} == {"binary", "multiclass", "regression"}
    assert min(d.rows for d in listed) <= 200 and max(d.rows for d in listed) >= 20_000
    with_missing, with_text = set(), set()
    for ds in listed:
        df = dataset_list.load(ds)
        assert len(df) == ds.rows, ds.name
        if ds.task == "binary":
            assert df["target"].nunique() == 2, ds.name
        elif ds.task == "multiclass":
            assert df["target"].nunique() > 2, ds.name
        features = df.drop(columns="target")
        if features.isna().any().any():
            with_missing.add(ds.name)
        if (features.dtypes == object).any():
            with_text.add(ds.name)
    assert {"house_votes", "soybean", "pima_diabetes", "ozone"} <= with_missing
    assert {"house_votes", "soybean", "dna", "servo", "diamonds"} <= with_text


def test_the_report_ranks_normalises_and_counts_ties_within_the_larger_standard_error(tmp_path):
    import report

    systems, rows = ("dagml", "autogluon", "flaml"), []
    scores = {  # roc_auc: higher is better; rmse: lower is better
        ("auc", "dagml"): [0.90, 0.91, 0.92], ("auc", "autogluon"): [0.80, 0.81, 0.82],
        ("auc", "flaml"): [0.92, 0.90, 0.91],  # the same mean as dagml's
        ("err", "dagml"): [3.0, 3.1, 2.9], ("err", "autogluon"): [2.0, 2.1, 1.9],
        ("err", "flaml"): [4.0, 2.0, 3.3],  # worse by 0.1 on average, with a standard error of 0.58: a tie
    }
    for (d, s), values in scores.items():
        for seed, v in enumerate(values):
            rows.append({"dataset": d, "seed": str(seed), "system": s, "budget": "60", "score": str(v), "error": "",
                         "metric": "roc_auc" if d == "auc" else "rmse", "seconds": "1", "overrun": "False"})
    rows.append({**rows[-1], "dataset": "partial", "seed": "0"})
    table, metric, incomplete = report.cells(rows, systems, [0, 1, 2])
    assert incomplete == ["partial"]
    rank = report.ranks(table, metric, systems)
    assert rank["auc"] == {"dagml": 1.5, "flaml": 1.5, "autogluon": 3}
    assert rank["err"] == {"autogluon": 1, "dagml": 2, "flaml": 3}
    norm = report.normalised(table, metric, systems)
    assert norm["err"] == {"autogluon": 1.0, "dagml": pytest.approx(0.1 / 1.1), "flaml": 0.0}
    assert report.wins_ties_losses(table, metric, "dagml", "autogluon") == (1, 0, 1)
    assert report.wins_ties_losses(table, metric, "dagml", "flaml") == (0, 2, 0)
    report.plot(norm, systems, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
