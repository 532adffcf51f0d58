"""``shards: k``: a family's search as k searches, each with its own seed and a k-th of the family's
budget, merged by select into one leaderboard row (the best shard's), their trials kept as the
family's trials."""

import logging

import pytest

from dagml import leaderboard, shards, tasks
from dagml.budget import Ledger, SharedBudget
from dagml.config import DatasetConfig
from dagml.families import get_family
from dagml.metrics import get_metric
from dagml.selection import NO_RESULT, merge_shards
from dagml.shards import Shard
from tests.pipeline import run_tasks

AUC, RMSE = get_metric("roc_auc"), get_metric("rmse")
KNN = "sklearn:knn"


def _config(**extra):
    return DatasetConfig.model_validate({
        "name": "sharded", "source": {"uri": "sklearn://breast_cancer"}, "target": "target", "task": "binary",
        "metric": "roc_auc", "families": ["elastic_net", {"name": "knn", "shards": 2}],
        "budget": {"max_evals": 4, "seconds": 60}, "ensemble": False, **extra})


def test_one_shard_is_the_family_itself():
    """The default: the search keeps the family's name, paths, seed and whole budget."""
    entry = DatasetConfig.model_validate({"name": "x", "source": {"uri": "a.csv"}, "target": "y",
                                          "families": ["knn"]}).families[0]
    assert entry.shards == 1
    (shard,) = shards.of(entry)
    assert (shard.label, shard.folder, shard.position) == (KNN, (), (0, 1))
    assert (shard.seed(42), shard.evaluations(30), shard.seconds(120.0)) == (42, 30, 120.0)
    assert Shard.parse(KNN) == shard and shard.first_points([1, 2, 3]) == [1, 2, 3]


@pytest.mark.parametrize("count", [2, 3, 7, 64])
def test_shards_split_the_familys_evaluations_seconds_and_first_points_and_have_distinct_seeds(count):
    every = [Shard(KNN, i, count) for i in range(1, count + 1)]
    assert every[1].label == f"{KNN}#2of{count}" and every[1].folder == (f"shard-2of{count}",)
    assert [Shard.parse(s.label) for s in every] == every  # the map label names the shard
    for seed in (0, 42, 2**32 - 1):
        seeds = [s.seed(seed) for s in every]
        # R's set.seed and the boosting libraries take 32-bit signed seeds: derived ones stay below 2**31
        assert seeds[0] == seed and len(set(seeds)) == count and all(0 <= x < 2**31 for x in seeds[1:])
    for max_evals in sorted({count, count + 1, max(count, 30), 10_000}):  # config: at least one each
        parts = [s.evaluations(max_evals) for s in every]
        assert sum(parts) == max_evals and max(parts) - min(parts) <= 1, parts
    assert sum(s.seconds(120.0) for s in every) == pytest.approx(120.0)
    points = list(range(10))  # warm-start and the family's own first points: each evaluated once
    dealt = [s.first_points(points) for s in every]
    assert sorted(p for part in dealt for p in part) == points


def test_in_a_shared_budget_a_familys_share_is_split_among_its_shards(stores):
    config = _config(budget={"max_evals": 10, "total_seconds": 60})
    costs = tasks._costs(config)
    labels = [f"{KNN}#1of2", f"{KNN}#2of2"]
    assert set(costs) == {"sklearn:elastic_net", *labels, "sklearn:dummy"}
    assert costs[labels[0]] == costs[labels[1]] == get_family(KNN).cost / 2
    ledger = Ledger(stores.results, config.dag_id, "2026-01-01", "load-1")
    budgets = {name: SharedBudget(ledger, name, 60, costs) for name in costs}
    assert sum(b.allowance() for b in budgets.values()) == pytest.approx(60)
    unsharded = 60 * get_family(KNN).cost / sum(get_family(f.name).cost for f in config.families)
    assert budgets[labels[0]].allowance() + budgets[labels[1]].allowance() == pytest.approx(unsharded)
    before = budgets[labels[1]].allowance()
    ledger.spend(labels[0], 1.0, done=True)  # a shard that ends early hands its seconds to every other search
    assert budgets[labels[1]].allowance() > before
    assert 1.0 + sum(budgets[n].allowance() for n in costs if n != labels[0]) == pytest.approx(60)


def _shard_row(index, val_score, status="ok", count=3, **extra):
    label = f"{KNN}#{index}of{count}"
    return {"family": label, "shard_of": KNN, "status": status, "error": None if status == "ok" else "ValueError: x",
            "metric": "roc_auc", "params": {"n_neighbors": index}, "val_score": val_score,
            "test_score": None if val_score is None else val_score - 0.01, "fit_seconds": 0.1 * index,
            "search_seconds": 10.0 * index, "n_trials": 2 * index, "n_failed_trials": 1, "model_uri": f"m{index}",
            "model_sha256": f"s{index}", "predictions_uri": f"p{index}", "threads": None, "seed": 1000 + index,
            **extra}


def test_select_keeps_the_best_shard_as_the_familys_row_and_counts_every_shards_trials():
    labels = [f"{KNN}#{i}of3" for i in (1, 2, 3)]
    rows = [_shard_row(1, 0.80), _shard_row(2, 0.90), _shard_row(3, None, status="failed"),
            _shard_row(1, 0.99, count=2)]  # left by an earlier run with 2 shards: not this run's
    row = merge_shards(labels, rows, AUC)
    assert (row["status"], row["val_score"], row["test_score"]) == ("ok", 0.90, pytest.approx(0.89))
    assert (row["model_uri"], row["model_sha256"], row["predictions_uri"], row["seed"]) == ("m2", "s2", "p2", 1002)
    assert (row["n_trials"], row["n_failed_trials"], row["search_seconds"]) == (12, 3, 60.0)
    assert [(s["shard"], s["best"], s["status"]) for s in row["shards"]] == [
        (labels[0], False, "ok"), (labels[1], True, "ok"), (labels[2], False, "failed")]
    assert row["shards"][2]["error"] == "ValueError: x" and row["shards"][0]["seed"] == 1001
    # the metric's direction decides, as among families: for rmse the lower is the better
    assert merge_shards(labels, rows, RMSE)["model_uri"] == "m1"
    entry, = leaderboard.entries([{"family": KNN, **row}], "roc_auc")
    assert leaderboard.cells(entry)[1] == f"{KNN} (best of 3 shards: #2of3)"
    assert entry["shards"] == row["shards"]


def test_a_family_none_of_whose_shards_succeeded_is_a_failed_row_naming_each_shards_reason():
    labels = [f"{KNN}#1of2", f"{KNN}#2of2"]  # the second shard's task ended without writing its row
    row = merge_shards(labels, [_shard_row(1, None, status="failed", count=2)], AUC)
    assert row["status"] == "failed" and row.get("model_uri") is None and row["n_trials"] == 2
    assert row["error"] == f"every shard failed: {labels[0]}: ValueError: x; {labels[1]}: {NO_RESULT}"
    assert [s["status"] for s in row["shards"]] == ["failed", "failed"]
    entry, = leaderboard.entries([{"family": KNN, **row}], "roc_auc")
    assert leaderboard.cells(entry)[1] == f"{KNN} (best of 2 shards, none succeeded)"


def test_a_sharded_run_has_one_row_per_family_and_rerunning_the_date_duplicates_nothing(stores):
    config = _config()
    keys, prepared, selection, promotion = run_tasks(config, stores)
    rows = {r["family"]: r for r in stores.results.leaderboard(keys.dag_id, keys.partition)}
    assert set(rows) == {"sklearn:elastic_net", KNN, "sklearn:dummy"}
    shard_rows = sorted(stores.results.leaderboard(keys.dag_id, keys.partition, shards=True), key=lambda r: r["family"])
    assert [(r["family"], r["shard_of"], r["n_trials"]) for r in shard_rows] == [
        (f"{KNN}#1of2", KNN, 2), (f"{KNN}#2of2", KNN, 2)]  # each a half of the family's 4 evaluations
    assert shard_rows[0]["seed"] == config.seed != shard_rows[1]["seed"]
    best = max(shard_rows, key=lambda r: r["val_score"])
    knn = rows[KNN]
    assert (knn["val_score"], knn["model_uri"], knn["seed"]) == (best["val_score"], best["model_uri"], best["seed"])
    assert knn["n_trials"] == 4 and knn["shard_of"] is None and len(knn["shards"]) == 2
    assert len(stores.results.trials(keys.dag_id, keys.partition, KNN)) == 4  # every shard's, as the family's
    for shard in ("shard-1of2", "shard-2of2"):  # each shard's trials in a file of its own, for its retry
        assert stores.artifacts.exists(stores.load_uri(keys, prepared["load_id"], KNN, shard, "trials.json"))
    assert promotion["champion"]["family"] == selection["family"]

    run_tasks(config, stores)  # the same date again: its rows are replaced, not added to
    assert len(stores.results.leaderboard(keys.dag_id, keys.partition)) == 3
    assert len(stores.results.leaderboard(keys.dag_id, keys.partition, shards=True)) == 2
    assert len(stores.results.trials(keys.dag_id, keys.partition, KNN)) == 4


def test_a_retried_shard_resumes_its_own_trials(stores, caplog):
    config = _config()
    keys = tasks.RunKeys(config.dag_id, "2026-01-01", "r1")
    loaded = tasks.load(config, config.source.uri, keys, stores)
    prepared = tasks.prepare(config, loaded, tasks.profile(config, loaded, keys, stores), keys, stores)
    first, second = shards.of(config.families[1])
    tasks.search_family(config, KNN, prepared, keys, stores, first)
    tasks.search_family(config, KNN, prepared, keys, stores, second)
    before = {t["trial"]: t["params"] for t in stores.results.trials(keys.dag_id, keys.partition, KNN)}
    with caplog.at_level(logging.INFO, logger="dagml.search"):
        tasks.search_family(config, KNN, prepared, keys, stores, second)  # Airflow's retry of the second shard
    resumed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resuming")]
    assert len(resumed) == 1 and "resuming 2 saved trials" in resumed[0] and "shard-2of2" in resumed[0], resumed
    assert {t["trial"]: t["params"] for t in stores.results.trials(keys.dag_id, keys.partition, KNN)} == before


def test_a_sharded_familys_warm_start_deals_the_earlier_partitions_points_among_its_shards(stores):
    config = _config()
    run_tasks(config, stores, partition="2026-01-01", run_id="r1")
    keys, _, _, _ = run_tasks(config, stores, partition="2026-01-02", run_id="r2")
    trials = stores.results.trials(keys.dag_id, keys.partition, KNN)
    warm = [t for t in trials if t["warm_start"]]
    # the best two points of 2026-01-01, one to each shard (its first evaluation), none evaluated twice
    assert sorted(t["trial"] % 2 for t in warm) == [0, 1], trials
    assert len({tuple(sorted(t["vals"].items())) for t in warm}) == 2


def test_the_dagml_pages_live_progress_shows_a_sharded_family_as_one_search(stores, monkeypatch):
    """plugins/dagml_ui: while its shards search (no leaderboard row yet), the family is one line
    whose trials are every shard's, read from the shards' trial files."""
    from pathlib import Path

    from dagml.store.results import leaderboard as board

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "plugins"))
    monkeypatch.setenv("AIRFLOW_CONN_DAGML_RESULTS", stores.results.url)
    monkeypatch.setenv("DAGML_ARTIFACTS_ROOT", stores.artifacts.root)
    from dagml_ui import data

    config = _config(families=[{"name": "knn", "shards": 2}])
    keys = tasks.RunKeys(config.dag_id, "2026-01-01", "r1")
    loaded = tasks.load(config, config.source.uri, keys, stores)
    prepared = tasks.prepare(config, loaded, tasks.profile(config, loaded, keys, stores), keys, stores)
    for shard in shards.of(config.families[0]):
        tasks.search_family(config, KNN, prepared, keys, stores, shard)
    with stores.results.engine.begin() as conn:  # as while the searches run: no row written yet
        conn.execute(board.delete())

    progress = data.progress(keys.dag_id, keys.run_id)
    assert [(s["family"], s["done"], s["finished"]) for s in progress["searches"]] == [(KNN, 4, False)]
    assert progress["trials_done"] == 4
