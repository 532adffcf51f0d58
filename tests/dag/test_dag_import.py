"""Every DAG imports cleanly, cheaply and without a database; a bad config is a named import error."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


def _dagbag(folder):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def test_every_dag_imports_with_zero_errors():
    bag = _dagbag(DAGS)
    assert bag.import_errors == {}
    expected = {f"automl__{p.stem}" for p in (DAGS / "configs").glob("*.yaml") if not p.name.startswith("_")}
    assert set(bag.dag_ids) == expected


_PROBE = r"""
import json, runpy, sys
import sqlalchemy as sa
from sqlalchemy import event
queries = []
event.listen(sa.engine.Engine, "before_cursor_execute", lambda *a, **k: queries.append(a[2]))
heavy = ("pandas", "numpy", "sklearn", "hyperopt", "pyarrow", "scipy", "pyspark", "rpy2", "mlflow")
before = {m for m in heavy if m in sys.modules}
ns = runpy.run_path(sys.argv[1])
print(json.dumps({"queries": queries, "heavy": sorted({m for m in heavy if m in sys.modules} - before),
                  "dags": sorted(k for k, v in ns.items() if k.startswith("automl__"))}))
"""


def _parse_in_subprocess(path, **env):
    out = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_parsing_runs_no_query_and_imports_nothing_heavy():
    probe = _parse_in_subprocess(DAGS / "automl.py")
    assert probe["queries"] == []
    assert probe["heavy"] == []
    assert len(probe["dags"]) >= 3


def test_a_config_with_a_registry_parses_without_importing_mlflow(tmp_path):
    (tmp_path / "registered.yaml").write_text("source: {uri: sklearn://iris}\ntarget: target\nregistry: {kind: mlflow}\n")
    probe = _parse_in_subprocess(DAGS / "automl.py", DAGML_CONFIGS=str(tmp_path))
    assert probe["dags"] == ["automl__registered"] and probe["heavy"] == [] and probe["queries"] == []


def test_a_task_process_builds_only_its_own_dag():
    probe = _parse_in_subprocess(DAGS / "automl.py", _AIRFLOW_PARSING_CONTEXT_DAG_ID="automl__wine",
                                 _AIRFLOW_PARSING_CONTEXT_TASK_ID="load")
    assert probe["dags"] == ["automl__wine"]


def test_an_invalid_config_is_an_import_error_naming_file_and_field_and_hides_nothing(tmp_path):
    folder = tmp_path / "dags"
    shutil.copytree(DAGS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "configs" / "broken.yaml").write_text("source: {uri: sklearn://iris}\ntarget: target\nmetric: auc\n")
    bag = _dagbag(folder)
    assert {"automl__breast_cancer", "automl__wine", "automl__diabetes"} <= set(bag.dag_ids)
    (path, message), = bag.import_errors.items()
    assert path.endswith("automl_config_errors.py")
    assert "broken.yaml: metric: unknown metric 'auc'" in message


def test_generated_dag_structure():
    dag = _dagbag(DAGS).dags["automl__breast_cancer"]
    edges = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert edges == {
        "load": ["prepare", "profile"],
        "profile": ["prepare"],
        "prepare": ["promote", "search_sklearn", "select"],
        "search_sklearn": ["select"],
        "select": ["promote"],
        "promote": ["publish_champion", "report"],
        "publish_champion": ["report"],
        "report": [],
    }
    search = dag.get_task("search_sklearn")
    assert search.queue == "default"
    # select runs after every search, failed or not, but not after a failed prepare
    assert dag.get_task("select").trigger_rule == "all_done_min_one_success"
    assert [a.uri for a in dag.get_task("publish_champion").outlets] == ["dagml://breast_cancer/champion"]
    assert dag.max_active_runs == 1 and "dagml" in dag.tags
    assert "```yaml" in dag.doc_md and "sklearn:svm" in dag.doc_md
    assert dag.default_args["retries"] == 1

    # the trigger form, as the UI reads it: the serialised Params (choices fixed at parse time)
    from airflow.serialization.serialized_objects import DagSerialization

    served = DagSerialization.from_dict(DagSerialization.to_dict(dag)).params
    form = {name: served.get_param(name).dump() for name in served}
    assert list(form) == ["partition", "test_size", "seed", "families", "metric", "total_seconds", "max_evals",
                          "seconds", "note"]
    assert all(p["schema"].get("title") and p["schema"].get("section") and p["description"] for p in form.values())
    families = form["families"]
    configured = ["sklearn:elastic_net", "sklearn:random_forest", "sklearn:extra_trees",
                  "sklearn:hist_gradient_boosting", "sklearn:svm", "sklearn:knn", "sklearn:dummy"]
    assert families["value"] == configured and families["schema"]["examples"] == configured
    assert families["schema"]["type"] == "array" and set(families["schema"]["values_display"]) == set(configured)
    metric = form["metric"]  # a binary dataset offers the classification metrics only
    assert metric["value"] == "roc_auc"
    assert metric["schema"]["enum"] == ["roc_auc", "log_loss", "accuracy", "balanced_accuracy", "f1"]
    assert form["test_size"]["value"] == 0.25 and form["test_size"]["schema"]["exclusiveMaximum"] == 0.9
    assert form["seed"]["schema"]["type"] == "integer"
    for budget in ("max_evals", "seconds", "total_seconds"):  # blank: the config's budget
        assert form[budget]["value"] is None and "maximum" in form[budget]["schema"]
    regression = _dagbag(DAGS).dags["automl__diabetes"].params.get_param("metric").schema
    assert regression["enum"] == ["rmse", "mae", "r2"]


@pytest.mark.parametrize("name, cron", [("wine", "0 0 * * 0"), ("diabetes", "0 0 * * *")])
def test_a_cron_schedule_runs_on_completed_data_intervals(name, cron):
    """Airflow 3's default for a cron string (CronTriggerTimetable) gives the midnight run a
    zero-length interval; dagml's run at midnight of 2 January trains on 1 January."""
    from datetime import datetime, timezone

    from airflow.serialization.encoders import coerce_to_core_timetable

    dag = _dagbag(DAGS).dags[f"automl__{name}"]
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable" and dag.timetable.expression == cron
    assert dag.catchup is False
    first = coerce_to_core_timetable(dag.timetable).next_dagrun_info(
        last_automated_data_interval=None, restriction=_restriction(datetime(2026, 1, 1, tzinfo=timezone.utc)))
    days = 7 if name == "wine" else 1
    assert (first.data_interval.end - first.data_interval.start).days == days
    assert first.run_after == first.data_interval.end  # it runs once its interval is over


def _restriction(earliest):
    from airflow.timetables.base import TimeRestriction

    return TimeRestriction(earliest=earliest, latest=None, catchup=True)


def test_task_process_fast_path_builds_the_same_dag_as_a_full_parse():
    from dagml.factory import dags_from_folder

    full = dags_from_folder(DAGS / "configs")["automl__wine"]
    (only,) = dags_from_folder(DAGS / "configs", "automl__wine").values()
    assert only.dag_id == "automl__wine"
    assert {t.task_id for t in only.tasks} == {t.task_id for t in full.tasks}
    assert only.doc_md == full.doc_md  # defaults merged the same way


@pytest.mark.parametrize("schedule, timetable", [
    (["warehouse://sales"], "AssetTriggeredTimetable"),
    ({"assets": ["warehouse://sales", "warehouse://prices"], "partitioned": True}, "PartitionedAssetTimetable"),
])
def test_asset_schedules_become_airflow_asset_timetables(tmp_path, schedule, timetable):
    import yaml

    folder = tmp_path / "dags"
    (folder / "configs").mkdir(parents=True)
    shutil.copy(DAGS / "automl.py", folder)
    (folder / "configs" / "sales.yaml").write_text(yaml.safe_dump(
        {"source": {"uri": "/data/{{ partition }}.csv"}, "target": "y", "schedule": schedule}))
    bag = _dagbag(folder)
    assert bag.import_errors == {}
    dag = bag.dags["automl__sales"]
    assert type(dag.timetable).__name__ == timetable
    uris = schedule if isinstance(schedule, list) else schedule["assets"]
    condition = dag.timetable.asset_condition
    assert sorted(a.uri.rstrip("/") for a in getattr(condition, "objects", [condition])) == sorted(uris)
