"""The scoring DAG score__<name> under dag.test(), on a champion trained first: one row out per
row in, the same predictions as `dagml score`, key columns carried, a tampered champion or bad
input refused (the run fails and nothing is written), unseen categories scored."""

import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dagml import scoring, tasks
from dagml.config import load_config
from dagml.errors import DataError
from dagml.store.artifacts import ChecksumMismatch
from tests.pipeline import run_tasks

REPO = Path(__file__).resolve().parents[2]
NAME = "scoring_t"
DAG_ID = f"score__{NAME}"
pytestmark = pytest.mark.dag


def _frame(n=240, seed=0, target=True):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], n)
    city = np.array([f"city{i}" for i in rng.integers(0, 60, n)])  # above the one-hot cap: ordinal
    df = pd.DataFrame({"customer_id": [f"c{seed}-{i}" for i in range(n)], "x1": x1, "x2": x2, "colour": colour,
                       "city": city})
    if target:
        df["y"] = np.where(x1 + (colour == "red") * 1.5 + rng.normal(scale=0.3, size=n) > 0.5, "yes", "no")
    return df


CONFIG = """\
source: {{uri: '{root}/train.csv'}}
target: y
drop_columns: [customer_id]
families: [elastic_net]
budget: {{max_evals: 2, seconds: 60}}
retries: 1
retry_delay: 1
scoring:
  source: {{uri: '{root}/new/{{{{ ds }}}}.csv', wait: {{timeout: 60, poke_interval: 5}}}}
  output: '{root}/scored/{{{{ partition }}}}.parquet'
  key_columns: [customer_id]
  schedule: '@daily'
"""


@pytest.fixture(scope="module")
def trained(airflow_db, tmp_path_factory):
    """A champion for automl__scoring_t, trained by the task bodies on the embedded stores."""
    root = tmp_path_factory.mktemp("scoring")
    (root / "dags" / "configs").mkdir(parents=True)
    shutil.copy(REPO / "dags" / "score.py", root / "dags")
    _frame().to_csv(root / "train.csv", index=False)
    (root / "dags" / "configs" / f"{NAME}.yaml").write_text(CONFIG.format(root=root))
    config = load_config(root / "dags" / "configs" / f"{NAME}.yaml")
    stores = tasks.Stores.from_settings()
    run_tasks(config, stores, partition="2026-02-01", run_id="train")
    assert stores.results.champion(config.dag_id) is not None
    return root, config, stores


@pytest.fixture
def dag(trained, monkeypatch):
    """score__scoring_t as Airflow parses it: dags/score.py over the test's configs folder."""
    from airflow.dag_processing.dagbag import DagBag

    root = trained[0]
    monkeypatch.setenv("DAGML_CONFIGS", str(root / "dags" / "configs"))
    bag = DagBag(dag_folder=str(root / "dags"))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {DAG_ID}
    return bag.dags[DAG_ID]


def _run(dag, partition):
    run = dag.test(run_conf={"partition": partition})
    return run, {ti.task_id: ti for ti in run.get_task_instances()}


def _write_input(root, day, df):
    (root / "new").mkdir(exist_ok=True)
    df.to_csv(root / "new" / f"{day}.csv", index=False)


def test_scores_every_row_as_dagml_score_does_and_carries_the_keys(trained, dag, tmp_path):
    from typer.testing import CliRunner

    from dagml.cli import app

    root, config, stores = trained
    new = _frame(50, seed=1, target=False)
    _write_input(root, "2026-03-01", new)
    run, tis = _run(dag, "2026-03-01")
    assert run.state == "success"
    assert {t: ti.state for t, ti in tis.items()} == {"wait_for_source": "success", "score": "success"}

    out = pd.read_parquet(root / "scored" / "2026-03-01.parquet")
    champion = stores.results.champion(config.dag_id)
    assert list(out.columns) == ["customer_id", "prediction", "proba_no", "proba_yes", "champion_family",
                                 "champion_partition", "champion_sha256"]
    assert len(out) == len(new) and out["customer_id"].tolist() == new["customer_id"].tolist()
    assert set(out["champion_family"]) == {champion["family"]}
    assert set(out["champion_partition"]) == {"2026-02-01"}
    assert set(out["champion_sha256"]) == {champion["model_sha256"]}

    result = CliRunner().invoke(app, ["score", NAME, str(root / "new" / "2026-03-01.csv"), "--configs",
                                      str(root / "dags" / "configs"), "--output", str(tmp_path / "cli.csv")])
    assert result.exit_code == 0, result.output
    cli = pd.read_csv(tmp_path / "cli.csv")
    assert out["prediction"].tolist() == cli["prediction"].tolist()
    np.testing.assert_allclose(out[["proba_no", "proba_yes"]].to_numpy(), cli[["proba_no", "proba_yes"]].to_numpy(),
                               rtol=0, atol=1e-12)
    assert set(out["prediction"]) == {"no", "yes"}  # the champion learnt something


def test_unseen_categories_are_scored_in_a_scheduled_run(trained, dag):
    """A run of the @daily schedule: its data interval (2 March, the day before the run) is the partition."""
    root = trained[0]
    new = _frame(20, seed=2, target=False)
    new.loc[:4, "colour"] = "purple"
    new.loc[3:9, "city"] = "Atlantis"
    _write_input(root, "2026-03-02", new)
    run = dag.test(logical_date=datetime(2026, 3, 3, tzinfo=timezone.utc))
    assert run.state == "success"
    out = pd.read_parquet(root / "scored" / "2026-03-02.parquet")
    assert len(out) == 20 and set(out["prediction"]) <= {"no", "yes"}


def _refused(dag, root, partition, capfd):
    run, tis = _run(dag, partition)
    printed = "".join(capfd.readouterr())
    assert run.state == "failed"
    assert tis["score"].state == "failed" and tis["score"].try_number == 1  # failed at once, not retried
    assert not (root / "scored" / f"{partition}.parquet").exists()
    assert not list((root / "scored").glob(f"{partition}*"))  # not even a temporary file
    return printed


def test_a_tampered_champion_is_refused_and_nothing_is_written(trained, dag, capfd):
    root, config, stores = trained
    _write_input(root, "2026-03-03", _frame(10, seed=3, target=False))
    champion = stores.results.champion(config.dag_id)
    path = stores.artifacts.local_path(champion["model_uri"])
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        printed = _refused(dag, root, "2026-03-03", capfd)
        with pytest.raises(ChecksumMismatch, match="does not match the recorded"):
            scoring.score(config, str(root / "new" / "2026-03-03.csv"), str(root / "scored" / "direct.csv"),
                          "2026-03-03", stores)
    finally:
        path.write_bytes(original)
    assert "does not match the recorded" in printed
    assert not (root / "scored" / "direct.csv").exists()


def test_input_missing_a_feature_column_fails_naming_it(trained, dag, capfd):
    root, config, stores = trained
    _write_input(root, "2026-03-04", _frame(10, seed=4, target=False).drop(columns=["x2"]))
    printed = _refused(dag, root, "2026-03-04", capfd)
    assert "input is missing 1 column(s) the model needs: 'x2'" in printed
    with pytest.raises(DataError, match="input is missing 1 column.* needs: 'x2' "):
        scoring.score(config, str(root / "new" / "2026-03-04.csv"), str(root / "scored" / "d.csv"), "p", stores)


def test_a_numeric_column_with_text_fails_naming_it(trained, dag, capfd):
    root, config, stores = trained
    new = _frame(10, seed=5, target=False).astype({"x1": object})
    new.loc[2, "x1"] = "twelve"
    _write_input(root, "2026-03-05", new)
    printed = _refused(dag, root, "2026-03-05", capfd)
    assert "numeric feature column(s) hold values that are not numbers: 'x1' (" in printed
    with pytest.raises(DataError, match=r"not numbers: 'x1' \(\w+: 'twelve'\)"):
        scoring.score(config, str(root / "new" / "2026-03-05.csv"), str(root / "scored" / "d.csv"), "p", stores)


def test_a_missing_key_column_is_named(trained):
    root, config, stores = trained
    _write_input(root, "2026-03-06", _frame(5, seed=6, target=False).drop(columns=["customer_id"]))
    with pytest.raises(DataError, match="scoring.key_columns: input has no column.* customer_id"):
        scoring.score(config, str(root / "new" / "2026-03-06.csv"), str(root / "scored" / "d.csv"), "p", stores)


def test_csv_output_and_no_champion(trained, tmp_path):
    root, config, stores = trained
    _write_input(root, "2026-03-07", _frame(5, seed=7, target=False))
    summary = scoring.score(config, str(root / "new" / "2026-03-07.csv"), str(tmp_path / "out" / "s.csv"),
                            "2026-03-07", stores)
    assert summary["rows"] == 5 and summary["output_uri"] == str(tmp_path / "out" / "s.csv")
    assert pd.read_csv(tmp_path / "out" / "s.csv").shape == (5, 7)
    orphan = config.model_copy(update={"name": "never_trained"})
    with pytest.raises(DataError, match="automl__never_trained has no champion yet"):
        scoring.score(orphan, str(root / "new" / "2026-03-07.csv"), str(tmp_path / "x.csv"), "p", stores)


def test_a_sql_source_is_scored_with_its_parameters_bound(trained, tmp_path, monkeypatch):
    import sqlite3

    from dagml.config import Source

    root, config, stores = trained
    db = tmp_path / "new.db"
    new = _frame(30, seed=8, target=False).assign(day=["2026-03-08"] * 20 + ["2026-03-09"] * 10)
    with sqlite3.connect(db) as conn:
        new.to_sql("customers", conn, index=False)
    monkeypatch.setenv("AIRFLOW_CONN_SCORING_DB", f"sqlite:///{db}")
    source = Source(sql="select * from customers where day = :day", conn_id="scoring_db",
                    parameters={"day": "{{ ds }}"})
    sql_config = config.model_copy(update={"scoring": config.scoring.model_copy(update={"source": source})})
    summary = scoring.score(sql_config, None, str(tmp_path / "sql.parquet"), "2026-03-08", stores,
                            parameters={"day": "2026-03-08"})
    out = pd.read_parquet(tmp_path / "sql.parquet")
    assert summary["rows"] == 20 and out["customer_id"].tolist() == new["customer_id"][:20].tolist()


def _config(tmp_path, schedule):
    path = tmp_path / "s.yaml"
    path.write_text("source: {uri: sklearn://iris}\ntarget: target\nscoring:\n  source: {uri: /in.csv}\n"
                    f"  output: /out.csv\n  schedule: {schedule}\n")
    return load_config(path)


@pytest.mark.parametrize("schedule, timetable", [("'@daily'", "CronDataIntervalTimetable"),
                                                 ("'5 4 * * *'", "CronDataIntervalTimetable"),
                                                 ("champion", "AssetTriggeredTimetable"),
                                                 ("null", "NullTimetable")])
def test_schedules(tmp_path, schedule, timetable):
    dag = scoring.build_scoring_dag(_config(tmp_path, schedule))
    assert dag.dag_id == "score__s" and type(dag.timetable).__name__ == timetable
    assert [t.task_id for t in dag.tasks] == ["score"] and set(dag.params) == {"partition"}
    if schedule == "champion":
        assert [a.uri for a in dag.schedule] == ["dagml://s/champion"]


_PROBE = r"""
import json, runpy, sys
heavy = ("pandas", "numpy", "sklearn", "hyperopt", "pyarrow", "scipy")
before = {m for m in heavy if m in sys.modules}
ns = runpy.run_path(sys.argv[1])
print(json.dumps({"heavy": sorted({m for m in heavy if m in sys.modules} - before),
                  "dags": sorted(k for k in ns if k.startswith(("score__", "automl__")))}))
"""


def test_the_dag_file_imports_nothing_heavy_and_a_task_process_builds_only_its_own_dag(tmp_path):
    import json

    configs = tmp_path / "configs"
    configs.mkdir()
    for name in ("one", "two"):
        (configs / f"{name}.yaml").write_text(f"source: {{uri: sklearn://iris}}\ntarget: target\nscoring:\n"
                                              f"  source: {{uri: /in.csv}}\n  output: /out.csv\n")
    (configs / "unscored.yaml").write_text("source: {uri: sklearn://iris}\ntarget: target\n")

    def probe(**env):
        out = subprocess.run([sys.executable, "-c", _PROBE, str(REPO / "dags" / "score.py")], capture_output=True,
                             text=True, check=True, env={**os.environ, "DAGML_CONFIGS": str(configs), **env})
        return json.loads(out.stdout.strip().splitlines()[-1])

    full = probe()
    assert full == {"heavy": [], "dags": ["score__one", "score__two"]}
    assert probe(_AIRFLOW_PARSING_CONTEXT_DAG_ID="score__two", _AIRFLOW_PARSING_CONTEXT_TASK_ID="score")["dags"] == [
        "score__two"]
