"""``shards: 2`` on a family in real DAG runs (dag.test()): two mapped instances of the search task,
each fitting with a seed of its own, and one leaderboard row for the family, the better shard's, in
everything users see; a trigger form that leaves the family out ends both shards with nothing searched."""

import json

import pytest
from typer.testing import CliRunner

from dagml import settings
from dagml.cli import app
from dagml.predictors import load_verified
from dagml.store.artifacts import ArtifactStore
from dagml.store.results import ResultsStore
from tests.dag.dagfile import dag_of

pytestmark = pytest.mark.dag
FOREST = "sklearn:random_forest"
SHARDS = [f"{FOREST}#1of2", f"{FOREST}#2of2"]
CONFIG = """
source: {uri: sklearn://breast_cancer}
target: target
task: binary
metric: roc_auc
families: [elastic_net, {name: random_forest, shards: 2}]
budget: {max_evals: 4, seconds: 120}
ensemble: false
retries: 0
"""


def _dag(tmp_path, monkeypatch, name):
    return dag_of(tmp_path, monkeypatch, name, CONFIG)


def _searches(run) -> dict:
    return {ti.rendered_map_index: ti.state for ti in run.get_task_instances() if ti.task_id.startswith("search_")}


def _fitted_seed(artifacts, row) -> int:
    """The random_state the stored forest was fit with: what the shard's search actually used."""
    model = load_verified(artifacts, row["model_uri"], row["model_sha256"]).model
    return getattr(model, "inner", model).estimator.random_state


def test_shards_are_map_indexes_of_their_familys_search_task_and_one_shard_changes_nothing(monkeypatch):
    from airflow.serialization.serialized_objects import DagSerialization

    from dagml.config import DatasetConfig
    from dagml.factory import SEARCH_POOL_ENV, build_dag

    monkeypatch.delenv(SEARCH_POOL_ENV, raising=False)
    dag = build_dag(DatasetConfig.model_validate({
        "name": "sharded_shape", "source": {"uri": "sklearn://breast_cancer"}, "target": "target",
        "families": ["elastic_net", {"name": "knn", "shards": 1},
                     {"name": "hist_gradient_boosting", "threads": 2, "shards": 3}]}))
    served = DagSerialization.from_dict(DagSerialization.to_dict(dag))  # what the scheduler reads
    searches = {t.task_id: t for t in served.tasks if t.task_id.startswith("search_")}
    assert {k: t.pool_slots for k, t in searches.items()} == {"search_sklearn": 1, "search_sklearn_t2": 2}
    mapped = {k: t.op_kwargs_expand_input.value["family"] for k, t in
              ((t.task_id, t) for t in dag.tasks if t.task_id.startswith("search_"))}
    assert mapped == {"search_sklearn": ["sklearn:elastic_net", "sklearn:knn", "sklearn:dummy"],
                      "search_sklearn_t2": [f"sklearn:hist_gradient_boosting#{i}of3" for i in (1, 2, 3)]}
    assert {t.map_index_template for t in searches.values()} == {"{{ family }}"}


def test_two_shards_search_as_two_mapped_instances_and_the_family_keeps_the_better(airflow_db, tmp_path, monkeypatch):
    dag = _dag(tmp_path, monkeypatch, "sharded")
    assert [t.task_id for t in dag.tasks if t.task_id.startswith("search_")] == ["search_sklearn"]
    run = dag.test(run_conf={"partition": "2026-03-01"})
    assert run.state == "success"
    assert _searches(run) == {"sklearn:elastic_net": "success", SHARDS[0]: "success", SHARDS[1]: "success",
                              "sklearn:dummy": "success"}

    artifacts, results = ArtifactStore(settings.artifacts_root()), ResultsStore(settings.results_url())
    shards = {r["family"]: r for r in results.leaderboard(dag.dag_id, "2026-03-01", shards=True)}
    assert set(shards) == set(SHARDS) and {r["status"] for r in shards.values()} == {"ok"}
    fitted = {label: _fitted_seed(artifacts, row) for label, row in shards.items()}
    assert fitted[SHARDS[0]] != fitted[SHARDS[1]], fitted
    assert fitted == {label: row["seed"] for label, row in shards.items()}
    assert {label: row["n_trials"] for label, row in shards.items()} == {SHARDS[0]: 2, SHARDS[1]: 2}

    rows = {r["family"]: r for r in results.leaderboard(dag.dag_id, "2026-03-01")}
    assert set(rows) == {"sklearn:elastic_net", FOREST, "sklearn:dummy"}
    better = max(shards.values(), key=lambda r: r["val_score"])
    forest = rows[FOREST]
    assert (forest["val_score"], forest["test_score"], forest["model_uri"]) == (
        better["val_score"], better["test_score"], better["model_uri"])
    assert forest["n_trials"] == 4 and len(results.trials(dag.dag_id, "2026-03-01", FOREST)) == 4
    assert [s["shard"] for s in forest["shards"] if s["best"]] == [better["family"]]

    recorded = results.run(dag.dag_id, "2026-03-01")
    assert recorded["status"] == "success" and recorded["promoted"]  # the dataset's first champion
    champion = results.champion(dag.dag_id)
    assert champion["family"] == recorded["selected_family"]
    assert champion["test_score"] > rows["sklearn:dummy"]["test_score"]

    # one row per family wherever users look (`dagml leaderboard`, the report; the plugin's page
    # renders the same entries and cells), the sharded one marked as such
    board = json.loads(CliRunner().invoke(app, ["leaderboard", "sharded", "--json"]).output)
    assert sorted(e["family"] for e in board["rows"]) == sorted(rows)
    entry = next(e for e in board["rows"] if e["family"] == FOREST)
    assert [s["shard"] for s in entry["shards"]] == SHARDS
    report = artifacts.read_bytes(recorded["report_uri"]).decode()
    table = report[report.index("<table class='leaderboard'>"):]
    table = table[:table.index("</table>")]
    assert table.count("<tr class=") == 3
    assert f"<td>{FOREST} (best of 2 shards: #{better['family'].rpartition('#')[2]})</td>" in table


def test_a_family_the_form_leaves_out_ends_all_its_shards_with_nothing_searched(airflow_db, tmp_path, monkeypatch):
    dag = _dag(tmp_path, monkeypatch, "sharded_unchosen")
    run = dag.test(run_conf={"partition": "2026-03-02", "families": ["sklearn:elastic_net"]})
    assert run.state == "success"
    assert _searches(run) == {"sklearn:elastic_net": "success", SHARDS[0]: "success", SHARDS[1]: "success",
                              "sklearn:dummy": "success"}
    results = ResultsStore(settings.results_url())
    assert {r["family"] for r in results.leaderboard(dag.dag_id, "2026-03-02")} == {"sklearn:elastic_net",
                                                                                   "sklearn:dummy"}
    assert results.leaderboard(dag.dag_id, "2026-03-02", shards=True) == []
    assert results.trials(dag.dag_id, "2026-03-02", FOREST) == []
