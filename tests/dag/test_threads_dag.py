"""``threads: N`` on a family entry: its search is a mapped task of its own that holds N slots of the
search pool (a mapped task has one pool_slots value for all its instances)."""

import pytest

from dagml.config import DatasetConfig


def _dag(monkeypatch, pool=None):
    from dagml.factory import SEARCH_POOL_ENV, build_dag

    if pool is None:
        monkeypatch.delenv(SEARCH_POOL_ENV, raising=False)
    else:
        monkeypatch.setenv(SEARCH_POOL_ENV, pool)
    config = DatasetConfig.model_validate({
        "name": "threads_shape", "source": {"uri": "sklearn://breast_cancer"}, "target": "target",
        "families": ["elastic_net", {"name": "hist_gradient_boosting", "threads": 2},
                     {"name": "random_forest", "threads": 2}, {"name": "knn", "threads": 3}]})
    return build_dag(config)


def _served(dag):
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


def _searches(dag):
    return {t.task_id: t for t in dag.tasks if t.task_id.startswith("search_")}


@pytest.mark.parametrize("pool", [None, "dagml_search"])
def test_each_threads_value_is_its_own_mapped_search_holding_as_many_pool_slots(monkeypatch, pool):
    dag = _dag(monkeypatch, pool)
    for graph in (dag, _served(dag)):  # what the scheduler reads is the serialised DAG
        searches = _searches(graph)
        assert {k: t.pool_slots for k, t in searches.items()} == {
            "search_sklearn": 1, "search_sklearn_t2": 2, "search_sklearn_t3": 3}
        assert {t.pool for t in searches.values()} == {pool or "default_pool"}
        assert {t.queue for t in searches.values()} == {"default"}
        assert all(sorted(t.downstream_task_ids) == ["select"] for t in searches.values())
    families = {k: sorted(t.op_kwargs_expand_input.value["family"]) for k, t in _searches(dag).items()}
    assert families == {"search_sklearn": ["sklearn:dummy", "sklearn:elastic_net"],
                        "search_sklearn_t2": ["sklearn:hist_gradient_boosting", "sklearn:random_forest"],
                        "search_sklearn_t3": ["sklearn:knn"]}
    assert dag.get_task("load").pool == "default_pool"  # only searches take the search pool's slots


def test_without_threads_the_dag_keeps_its_one_search_task_per_kind(monkeypatch):
    from dagml.factory import SEARCH_POOL_ENV, build_dag

    monkeypatch.delenv(SEARCH_POOL_ENV, raising=False)
    dag = build_dag(DatasetConfig.model_validate({
        "name": "threads_plain", "source": {"uri": "sklearn://breast_cancer"}, "target": "target",
        "families": ["elastic_net", "random_forest"]}))
    assert {k: (t.pool, t.pool_slots) for k, t in _searches(dag).items()} == {"search_sklearn": ("default_pool", 1)}
