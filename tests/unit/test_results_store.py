"""The results store on every database dagml supports, against the real servers."""

import pytest
import sqlalchemy as sa

from dagml.store.results import ResultsStore
from tests.services import scratch_database


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def results(request, tmp_path):
    if request.param == "sqlite":
        store = ResultsStore(f"sqlite:///{tmp_path}/r.db")
        store.migrate()
        yield store
        return
    with scratch_database(request.param) as url:
        store = ResultsStore(url)
        store.migrate()
        yield store
        store.engine.dispose()


def test_migrations_reach_head_and_are_idempotent(results):
    results.migrate()
    tables = set(sa.inspect(results.engine).get_table_names())
    assert {"dagml_runs", "dagml_leaderboard", "dagml_trials", "dagml_champions", "dagml_alembic_version"} <= tables


def test_rerunning_a_partition_replaces_its_rows_instead_of_duplicating(results):
    results.start_run("d", "2026-01-01", "run1")
    results.record_family("d", "2026-01-01", "sklearn:svm", "run1", status="ok", val_score=0.8, params={"C": 1})
    results.record_family("d", "2026-01-01", "sklearn:knn", "run1", status="ok", val_score=0.7)
    results.start_run("d", "2026-01-01", "run2")
    results.record_family("d", "2026-01-01", "sklearn:svm", "run2", status="ok", val_score=0.9, params={"C": 2})
    rows = results.leaderboard("d", "2026-01-01")
    assert [(r["family"], r["val_score"], r["params"]) for r in rows] == [("sklearn:svm", 0.9, {"C": 2})]
    with results.engine.connect() as conn:
        n = conn.execute(sa.text("SELECT COUNT(*) FROM dagml_leaderboard WHERE family = 'sklearn:svm'")).scalar()
    assert n == 1
    assert results.run("d", "2026-01-01")["run_id"] == "run2"


def test_other_partitions_are_untouched(results):
    for day, score in (("2026-01-01", 0.7), ("2026-01-02", 0.8)):
        results.start_run("d", day, f"run-{day}")
        results.record_family("d", day, "sklearn:svm", f"run-{day}", status="ok", val_score=score)
    results.record_family("d", "2026-01-02", "sklearn:svm", "run-2026-01-02", status="ok", val_score=0.85)
    assert results.leaderboard("d", "2026-01-01")[0]["val_score"] == 0.7
    assert results.latest_run("d")["partition"] == "2026-01-02"


def test_trials_are_replaced_per_family(results):
    rows = [{"trial": i, "status": "ok", "params": {"k": i}, "loss": -i / 10, "seconds": 0.1, "error": None}
            for i in range(3)]
    results.record_trials("d", "p", "sklearn:knn", "r1", rows)
    results.record_trials("d", "p", "sklearn:knn", "r2", rows[:2])
    assert [t["trial"] for t in results.trials("d", "p", "sklearn:knn")] == [0, 1]


def _crown(results, partition, family, expected):
    return results.replace_champion("d", expected, partition, f"r-{partition}", family, "roc_auc", 0.9,
                                    f"/m/{partition}", "a" * 64, "test")


def test_promotion_retires_the_old_champion_and_keeps_history(results):
    assert results.champion("d") is None
    first = _crown(results, "p1", "sklearn:svm", None)
    assert _crown(results, "p2", "sklearn:knn", first) is not None
    assert results.champion("d")["family"] == "sklearn:knn"
    history = results.champion_history("d")
    assert [h["family"] for h in history] == ["sklearn:svm", "sklearn:knn"]
    assert history[0]["retired_at"] is not None and history[1]["retired_at"] is None


def test_a_swap_against_a_champion_that_changed_meanwhile_writes_nothing(results):
    first = _crown(results, "p1", "sklearn:svm", None)
    assert _crown(results, "p2", "sklearn:knn", None) is None  # believed there was no champion
    assert _crown(results, "p2", "sklearn:knn", first) is not None
    assert _crown(results, "p3", "sklearn:rf", first) is None  # believed the first was still active
    assert [h["family"] for h in results.champion_history("d")] == ["sklearn:svm", "sklearn:knn"]
    assert results.champion("d")["partition"] == "p2"


def test_concurrent_promotions_leave_exactly_one_active_champion(results):
    """Eight threads, each with its own connection, crown against the same champion at once."""
    import threading

    first = _crown(results, "p0", "sklearn:dummy", None)
    barrier, won = threading.Barrier(8), []

    def contend(i):
        store = ResultsStore(results.url)
        barrier.wait()
        if store.replace_champion("d", first, f"p{i + 1}", f"r{i}", "sklearn:knn", "roc_auc", 0.9, f"/m{i}",
                                  "b" * 64, "test") is not None:
            won.append(i)
        store.engine.dispose()

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    history = results.champion_history("d")
    assert len(history) == 2 and [h["retired_at"] is None for h in history] == [False, True]
    with results.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM dagml_active_champions")).scalar() == 1


def test_latest_run_is_the_newest_partition_not_the_last_started(results):
    results.start_run("d", "2026-03-01", "scheduled")
    results.start_run("d", "2025-01-01", "backfill")  # started later, older data
    assert results.latest_run("d")["partition"] == "2026-03-01"
    assert [r["partition"] for r in results.runs("d")] == ["2025-01-01", "2026-03-01"]


def test_a_failure_is_recorded_once_and_never_over_a_finished_run(results):
    results.start_run("d", "p", "r1")
    assert results.fail_run("d", "r1", "load", "load: source /x: no such file")
    assert not results.fail_run("d", "r1", "report", "report: later")
    run = results.run("d", "p")
    assert (run["status"], run["failed_task"], run["error"]) == ("failed", "load", "load: source /x: no such file")
    results.start_run("d", "p2", "r2")
    results.update_run("d", "p2", status="success")
    assert not results.fail_run("d", "r2", "report", "late")
    assert results.run("d", "p2")["status"] == "success"


def test_a_run_that_failed_before_its_row_was_written_gets_one(results):
    assert results.fail_run("d", "asset__r1", "load", "load: the events carry no partition")
    run = results.latest_run("d")
    assert (run["partition"], run["status"], run["failed_task"]) == ("(no partition)", "failed", "load")
    results.start_run("d", "2026-01-01", "r2")
    assert results.latest_run("d")["partition"] == "2026-01-01"  # never the "latest partition"
    assert results.fail_run("d", "r3", "load", "load: no connection", partition="2026-01-02")
    assert results.run("d", "2026-01-02")["error"] == "load: no connection"


def test_a_champion_records_its_refit_and_the_model_that_was_compared(results):
    results.start_run("d", "p1", "r1")
    results.update_run("d", "p1", refit_rows=569, refit_error=None)
    crowned = results.replace_champion("d", None, "p1", "r1", "ensemble:greedy", "roc_auc", 0.97, "/m/refit.tar",
                                       "c" * 64, "no champion yet", refit_rows=569, compared_model_uri="/m/model.tar",
                                       compared_model_sha256="d" * 64)
    champion = results.champion("d")
    assert champion["id"] == crowned
    assert (champion["model_uri"], champion["refit_rows"], champion["refit_error"]) == ("/m/refit.tar", 569, None)
    assert (champion["compared_model_uri"], champion["compared_model_sha256"]) == ("/m/model.tar", "d" * 64)
    assert results.run("d", "p1")["refit_rows"] == 569
    # without a refit, the compared model is the stored one
    _crown(results, "p2", "sklearn:knn", crowned)
    assert results.champion("d")["compared_model_uri"] == "/m/p2" and results.champion("d")["refit_rows"] is None


def test_a_leaderboard_row_keeps_its_thread_report(results):
    report = [{"user_api": "openmp", "internal_api": "openmp", "prefix": "libgomp", "version": None, "num_threads": 2},
              {"user_api": "blas", "internal_api": "openblas", "prefix": "libscipy_openblas", "version": "0.3.29",
               "num_threads": 2}]
    results.start_run("d", "p", "r1")
    results.record_family("d", "p", "sklearn:hist_gradient_boosting", "r1", status="ok", val_score=0.9, threads=report)
    results.record_family("d", "p", "sklearn:knn", "r1", status="failed", error="boom")
    rows = {r["family"]: r["threads"] for r in results.leaderboard("d", "p")}
    assert rows == {"sklearn:hist_gradient_boosting": report, "sklearn:knn": None}


def test_a_sharded_familys_trials_interleave_and_each_shard_replaces_only_its_own(results):
    """``shards: k``: the i-th shard's trial t is the family's trial t * k + i (dagml.shards)."""
    def rows(n, tag):
        return [{"trial": t, "status": "ok", "loss": float(t), "params": {"tag": tag}} for t in range(n)]

    def stored():
        return [(t["trial"], t["params"]["tag"]) for t in results.trials("d", "p", "sklearn:knn")]

    results.record_trials("d", "p", "sklearn:knn", "run1", rows(3, "old"))  # an earlier run, one search
    results.record_trials("d", "p", "sklearn:knn", "run2", rows(3, "a"), (0, 2))
    results.record_trials("d", "p", "sklearn:knn", "run2", rows(2, "b"), (1, 2))
    assert stored() == [(0, "a"), (1, "b"), (2, "a"), (3, "b"), (4, "a")]
    results.record_trials("d", "p", "sklearn:knn", "run2", rows(1, "b-retried"), (1, 2))
    assert stored() == [(0, "a"), (1, "b-retried"), (2, "a"), (4, "a")]
    results.record_trials("d", "p", "sklearn:knn", "run3", rows(2, "one"))  # one search again: replaces them all
    assert stored() == [(0, "one"), (1, "one")]


def test_shard_rows_stay_out_of_the_leaderboard_users_see(results):
    results.start_run("d", "2026-01-01", "run1")
    for i, seed in ((1, 42), (2, 2**32 - 1)):
        results.record_family("d", "2026-01-01", f"sklearn:knn#{i}of2", "run1", status="ok", val_score=0.5 + i / 10,
                              shard_of="sklearn:knn", seed=seed)
    results.record_family("d", "2026-01-01", "sklearn:knn", "run1", status="ok", val_score=0.7, seed=2**32 - 1,
                          shards=[{"shard": "sklearn:knn#2of2", "best": True}])
    assert [r["family"] for r in results.leaderboard("d", "2026-01-01")] == ["sklearn:knn"]
    shards = sorted(results.leaderboard("d", "2026-01-01", shards=True), key=lambda r: r["family"])
    assert [(r["family"], r["shard_of"], r["seed"]) for r in shards] == [
        ("sklearn:knn#1of2", "sklearn:knn", 42), ("sklearn:knn#2of2", "sklearn:knn", 2**32 - 1)]



def test_dag_ids_are_every_dataset_with_a_run_once_sorted(results):
    assert results.dag_ids() == []
    for dag_id, partition in (("b", "p1"), ("a", "p1"), ("a", "p2")):
        results.start_run(dag_id, partition, f"r-{partition}")
    assert results.dag_ids() == ["a", "b"]


def test_winner_series_gives_each_run_its_selected_familys_scores_in_one_list(results):
    results.start_run("d", "2026-01-02", "r2", metric="roc_auc", profile={"rows": 10})
    results.fail_run("d", "r2", "load", "load: no file")
    results.start_run("d", "2026-01-01", "r1", metric="roc_auc")  # started last, an older partition
    results.record_family("d", "2026-01-01", "sklearn:knn", "r1", status="ok", val_score=0.8, test_score=0.7)
    results.record_family("d", "2026-01-01", "sklearn:svm", "r1", status="ok", val_score=0.9, test_score=0.6)
    results.update_run("d", "2026-01-01", selected_family="sklearn:svm", status="success")
    results.start_run("other", "2026-01-01", "o1")
    series = results.winner_series(["d"])
    assert [(r["partition"], r["status"], r["selected_family"], r["val_score"], r["test_score"]) for r in series] == [
        ("2026-01-01", "success", "sklearn:svm", 0.9, 0.6), ("2026-01-02", "failed", None, None, None)]
    assert series[1]["failed_task"] == "load" and "profile" not in series[1]
    assert [(r["dag_id"], r["partition"]) for r in results.winner_series(["other", "d"])] == [
        ("d", "2026-01-01"), ("d", "2026-01-02"), ("other", "2026-01-01")]
    assert results.winner_series([]) == []


def test_active_champions_name_each_datasets_current_one(results):
    first = _crown(results, "p1", "sklearn:svm", None)
    _crown(results, "p2", "sklearn:knn", first)
    results.replace_champion("e", None, "p1", "r-p1", "sklearn:rf", "roc_auc", 0.8, "/m/e", "a" * 64, "test")
    champions = results.active_champions(["d", "e", "no-champion"])
    assert {dag_id: c["family"] for dag_id, c in champions.items()} == {"d": "sklearn:knn", "e": "sklearn:rf"}
    assert champions["d"] == results.champion("d") and champions["d"]["retired_at"] is None
    assert results.active_champions(["e"]).keys() == {"e"}


def test_a_run_is_found_by_its_id_until_a_rerun_of_its_partition_replaces_it(results):
    results.start_run("d", "p1", "r1", metric="roc_auc")
    assert (results.run_by_id("d", "r1")["partition"], results.run_by_id("d", "r1")["metric"]) == ("p1", "roc_auc")
    results.start_run("d", "p1", "r2")
    assert results.run_by_id("d", "r1") is None and results.run_by_id("d", "r2")["partition"] == "p1"
    assert results.run_by_id("other", "r2") is None


def test_trial_losses_are_one_runs_trials_by_family_then_trial(results):
    def rows(losses):
        return [{"trial": t, "status": "ok" if loss is not None else "failed", "loss": loss, "params": {"t": t}}
                for t, loss in enumerate(losses)]

    results.record_trials("d", "p", "sklearn:svm", "r1", rows([0.5, 0.4]))
    results.record_trials("d", "p", "sklearn:knn", "r2", rows([0.3, None, 0.2]))
    results.record_trials("d", "p2", "sklearn:knn", "r2", rows([0.9]))  # another partition
    assert results.trial_losses("d", "p", "r2") == [
        {"family": "sklearn:knn", "trial": t, "status": s, "loss": loss}
        for t, s, loss in ((0, "ok", 0.3), (1, "failed", None), (2, "ok", 0.2))]
    assert [(t["family"], t["loss"]) for t in results.trial_losses("d", "p", "r1")] == [
        ("sklearn:svm", 0.5), ("sklearn:svm", 0.4)]
