"""The task bodies end to end without a scheduler: bad data, categoricals, champion/challenger."""

import numpy as np
import pandas as pd
import pytest

from dagml import tasks
from dagml.config import DatasetConfig
from dagml.errors import DataError
from dagml.predictors import load_verified
from dagml.store.artifacts import ChecksumMismatch
from tests.pipeline import run_tasks


def _config(uri, **extra):
    return DatasetConfig.model_validate({
        "name": "t", "source": {"uri": str(uri)}, "target": "y",
        "families": ["elastic_net", "random_forest"], "budget": {"max_evals": 3, "seconds": 30}, **extra})


def _frame(n=240, seed=0):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], n)
    city = np.array([f"city{i}" for i in rng.integers(0, 60, n)])  # above the one-hot cap: ordinal
    y = np.where(x1 + (colour == "red") * 1.5 + rng.normal(scale=0.3, size=n) > 0.5, "yes", "no")
    df = pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "city": city, "y": y})
    df.loc[::7, "x2"] = np.nan
    df.loc[::11, "colour"] = None
    return df


BAD_FILES = {
    "missing_target.csv": ("a,b\n1,2\n3,4\n", "target column 'y' is not in the data; columns: 'a', 'b'"),
    "empty.csv": ("", "the file is empty"),
    "header_only.csv": ("a,y\n", "the data is empty (0 rows, 2 columns)"),
    "single_class.csv": ("a,y\n1,k\n2,k\n3,k\n4,k\n", "target column 'y' has a single class ('k')"),
    "all_nan_column.csv": ("a,b,y\n1,,x\n2,,z\n3,,x\n4,,z\n5,,x\n6,,z\n", "column(s) 'b' have no values at all"),
    "wrong_delimiter.csv": ("a;b;y\n1;2;x\n3;4;z\n", "is it ';'-separated? Set source.options.sep"),
    "all_nan_target.csv": ("a,y\n1,\n2,\n", "target column 'y' has no values"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_data_fails_clearly_and_promotes_nothing(name, tmp_path, stores):
    content, expected = BAD_FILES[name]
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError) as err:
        run_tasks(_config(path), stores)
    assert expected in str(err.value)
    assert stores.results.champion("automl__t") is None
    # the run row ends failed through the DAG's failure callback (tests/dag/test_dag_run.py)


def test_regression_target_must_be_numeric(tmp_path, stores):
    path = tmp_path / "d.csv"
    path.write_text("a,y\n1,low\n2,high\n3,mid\n")
    with pytest.raises(DataError, match="target column 'y' is not numeric .* a regression target must be numbers"):
        run_tasks(_config(path, task="regression"), stores)


def test_missing_source_file_names_the_uri(tmp_path, stores):
    with pytest.raises(DataError, match=f"source {tmp_path}/nope.csv: no such file"):
        run_tasks(_config(tmp_path / "nope.csv"), stores)


def test_categoricals_and_missing_values_train_and_the_champion_scores_raw_rows(tmp_path, stores):
    df = _frame()
    df.to_csv(tmp_path / "d.csv", index=False)
    config = _config(tmp_path / "d.csv", families=["elastic_net", "hist_gradient_boosting", "knn"])
    keys, prepared, selection, promotion = run_tasks(config, stores)
    recipe = stores.artifacts.read_json(prepared["recipe_uri"])
    assert (recipe["onehot"], recipe["ordinal"], recipe["classes"]) == (["colour"], ["city"], ["no", "yes"])
    rows = {r["family"]: r for r in stores.results.leaderboard(keys.dag_id, keys.partition)}
    families = {"sklearn:elastic_net", "sklearn:hist_gradient_boosting", "sklearn:knn", "sklearn:dummy"}
    assert families <= set(rows) <= families | {"ensemble:greedy"}  # the ensemble, when two or more blend
    assert rows[selection["family"]]["test_score"] > rows["sklearn:dummy"]["test_score"] + 0.2
    champion = stores.results.champion(keys.dag_id)
    predictor = load_verified(stores.artifacts, champion["model_uri"], champion["model_sha256"])
    fresh = _frame(seed=1).drop(columns="y")
    fresh.loc[0, "city"] = "a city never seen"
    assert set(predictor.predict(fresh)) <= {"no", "yes"}
    assert list(predictor.predict_proba(fresh).columns) == ["no", "yes"]


def test_tampered_model_is_refused(tmp_path, stores):
    _frame().to_csv(tmp_path / "d.csv", index=False)
    run_tasks(_config(tmp_path / "d.csv"), stores)
    champion = stores.results.champion("automl__t")
    stores.artifacts.write_bytes(champion["model_uri"], stores.artifacts.read_bytes(champion["model_uri"]) + b"x")
    with pytest.raises(ChecksumMismatch, match="does not match the recorded"):
        load_verified(stores.artifacts, champion["model_uri"], champion["model_sha256"])


def test_champion_is_kept_unless_the_challenger_beats_it_by_the_margin(tmp_path, stores):
    _frame().to_csv(tmp_path / "d.csv", index=False)
    run_tasks(_config(tmp_path / "d.csv"), stores, partition="2026-01-01", run_id="r1")
    first = stores.results.champion("automl__t")
    _, _, _, promotion = run_tasks(_config(tmp_path / "d.csv", promotion={"margin": 0.5}), stores,
                              partition="2026-01-02", run_id="r2")
    assert not promotion["promoted"] and "does not beat" in promotion["reason"]
    assert stores.results.champion("automl__t")["id"] == first["id"]
    _, _, _, promotion = run_tasks(_config(tmp_path / "d.csv", promotion={"margin": 0.0}, seed=5), stores,
                              partition="2026-01-03", run_id="r3")
    history = stores.results.champion_history("automl__t")
    assert len(history) == (2 if promotion["promoted"] else 1)


def test_kfold_regression_runs_and_reports(stores):
    config = DatasetConfig.model_validate({
        "name": "diab", "source": {"uri": "sklearn://diabetes"}, "target": "target", "metric": "mae",
        "families": ["elastic_net"], "budget": {"max_evals": 2}, "split": {"validation": "kfold", "folds": 3}})
    keys, _, selection, _ = run_tasks(config, stores)
    rows = {r["family"]: r for r in stores.results.leaderboard(keys.dag_id, keys.partition)}
    assert rows["sklearn:elastic_net"]["val_score"] < rows["sklearn:dummy"]["val_score"]  # mae: lower is better
    html = stores.artifacts.read_bytes(stores.results.run(keys.dag_id, keys.partition)["report_uri"]).decode()
    assert "sklearn:elastic_net" in html and "<svg" in html


def test_every_family_failing_fails_the_run_and_promotes_nothing(tmp_path, stores, monkeypatch):
    _frame().to_csv(tmp_path / "d.csv", index=False)
    config = _config(tmp_path / "d.csv")
    keys = tasks.RunKeys(config.dag_id, "p", "r")
    loaded = tasks.load(config, config.source.uri, keys, stores)
    prepared = tasks.prepare(config, loaded, tasks.profile(config, loaded, keys, stores), keys, stores)
    # no search task reported (as if every worker died): select records why and fails the run
    with pytest.raises(Exception, match="every family failed"):
        tasks.select(config, keys, stores)
    rows = stores.results.leaderboard(keys.dag_id, keys.partition)
    assert {r["status"] for r in rows} == {"failed"} and len(rows) == len(config.families)
    assert stores.results.champion(config.dag_id) is None
    assert prepared["task"] == "binary"


def test_a_family_whose_every_trial_fails_is_a_failed_row_with_its_reason(tmp_path, stores, monkeypatch):
    from dagml.errors import FamilyFailed
    from dagml.families.sklearn import KNearestNeighbours

    _frame().to_csv(tmp_path / "d.csv", index=False)
    config = _config(tmp_path / "d.csv", families=["knn", "elastic_net"])
    keys = tasks.RunKeys(config.dag_id, "p", "r")
    loaded = tasks.load(config, config.source.uri, keys, stores)
    prepared = tasks.prepare(config, loaded, tasks.profile(config, loaded, keys, stores), keys, stores)

    def broken(self, params, task, seed):
        raise RuntimeError("this knn is broken")

    monkeypatch.setattr(KNearestNeighbours, "estimator", broken)
    with pytest.raises(FamilyFailed):
        tasks.search_family(config, "sklearn:knn", prepared, keys, stores)
    for family in ("sklearn:elastic_net", "sklearn:dummy"):
        tasks.search_family(config, family, prepared, keys, stores)
    selection = tasks.select(config, keys, stores)
    rows = {r["family"]: r for r in stores.results.leaderboard(keys.dag_id, keys.partition)}
    assert rows["sklearn:knn"]["status"] == "failed"
    assert "all 3 trial(s) failed; first error: RuntimeError: this knn is broken" in rows["sklearn:knn"]["error"]
    assert selection["family"] == "sklearn:elastic_net"  # the run still selects from the others


def test_the_next_partition_starts_from_the_best_points_of_the_previous_one(tmp_path, stores):
    _frame().to_csv(tmp_path / "d.csv", index=False)
    config = _config(tmp_path / "d.csv", families=["knn"], budget={"max_evals": 6, "seconds": 60})

    def search(partition):
        keys = tasks.RunKeys(config.dag_id, partition, f"r-{partition}")
        loaded = tasks.load(config, config.source.uri, keys, stores)
        prepared = tasks.prepare(config, loaded, tasks.profile(config, loaded, keys, stores), keys, stores)
        tasks.search_family(config, "sklearn:knn", prepared, keys, stores)
        return stores.results.trials(config.dag_id, partition, "sklearn:knn")

    first = search("2026-01-01")
    assert not any(t["warm_start"] for t in first)
    best = sorted((t for t in first if t["status"] == "ok"), key=lambda t: t["loss"])[:2]
    second = search("2026-01-02")
    warm = [t for t in second if t["warm_start"]]
    assert [t["params"] for t in warm] == [t["params"] for t in best]
    assert [t["trial"] for t in warm] == [0, 1]  # evaluated first
    off = config.model_copy(update={"warm_start": False})
    keys = tasks.RunKeys(config.dag_id, "2026-01-03", "r3")
    assert tasks._warm_points(off, "sklearn:knn", keys, stores) == []


def test_a_cleared_run_searches_its_new_load_again_and_keeps_the_first_models(tmp_path, stores, caplog):
    """Airflow re-runs a cleared or reprocessed run under the same run id: the new load must not
    resume the old search, nor overwrite the old models (one of them may be the champion)."""
    import logging

    _frame().to_csv(tmp_path / "d.csv", index=False)
    config = _config(tmp_path / "d.csv", families=["knn"])
    keys, _, first, _ = run_tasks(config, stores)
    champion = stores.results.champion(config.dag_id)
    with caplog.at_level(logging.INFO, logger="dagml.search"):
        _, _, again, _ = run_tasks(config, stores)  # same partition, same run id
    assert "resuming" not in caplog.text
    assert again["model_uri"] != first["model_uri"]
    load_verified(stores.artifacts, champion["model_uri"], champion["model_sha256"])  # still intact
    trials = stores.results.trials(keys.dag_id, keys.partition, "sklearn:knn")
    assert len(trials) == 3 and all(t["run_id"] == "r1" for t in trials)


def test_the_report_shows_the_winner_over_partitions(tmp_path, stores):
    _frame().to_csv(tmp_path / "d.csv", index=False)
    config = _config(tmp_path / "d.csv", families=["elastic_net"])
    run_tasks(config, stores, partition="2026-01-02", run_id="r2")
    keys, *_ = run_tasks(config, stores, partition="2026-01-01", run_id="r1")  # a backfilled older day
    from html import unescape

    html = unescape(stores.artifacts.read_bytes(stores.results.run(keys.dag_id, keys.partition)["report_uri"]).decode())
    section = html[html.index("Over partitions"):]
    assert section.index("2026-01-01") < section.index("2026-01-02")
    assert "sklearn:elastic_net (2026-01-02)" in section  # the champion stayed on the newer day
    assert "older than the champion's (2026-01-02)" in html


@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_two_runs_promoting_at_once_leave_one_champion_and_both_decisions(tmp_path, server):
    import threading

    import sqlalchemy as sa

    from dagml.store.artifacts import ArtifactStore
    from dagml.store.results import ResultsStore
    from tests.services import scratch_database

    _frame().to_csv(tmp_path / "d.csv", index=False)
    config = _config(tmp_path / "d.csv", families=["elastic_net"])
    with scratch_database(server) as url:
        stores = tasks.Stores(ArtifactStore(str(tmp_path / "artifacts")), ResultsStore(url))
        stores.results.migrate()
        ready = []
        for day in ("2026-01-01", "2026-01-02"):
            keys = tasks.RunKeys(config.dag_id, day, f"r-{day}")
            loaded = tasks.load(config, config.source.uri, keys, stores)
            prepared = tasks.prepare(config, loaded, tasks.profile(config, loaded, keys, stores), keys, stores)
            for family in config.families:
                tasks.search_family(config, family.name, prepared, keys, stores)
            ready.append((tasks.select(config, keys, stores), prepared, keys))
        barrier, errors = threading.Barrier(2), []

        def promote(selection, prepared, keys):
            own = tasks.Stores(stores.artifacts, ResultsStore(url))  # a process of its own would have its own
            barrier.wait()
            try:
                tasks.promote(config, selection, prepared, keys, own)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            own.results.engine.dispose()

        threads = [threading.Thread(target=promote, args=args) for args in ready]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with stores.results.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM dagml_active_champions")).scalar() == 1
        history = stores.results.champion_history(config.dag_id)
        assert [h["retired_at"] is None for h in history].count(True) == 1
        runs = {r["partition"]: r for r in stores.results.runs(config.dag_id)}
        assert all(r["promoted"] is not None and r["promotion_reason"] for r in runs.values())
        champion = stores.results.champion(config.dag_id)
        assert all(r["champion_partition"] in ("2026-01-01", "2026-01-02") for r in runs.values())
        assert runs[champion["partition"]]["promoted"]
        stores.results.engine.dispose()


def test_a_search_runs_one_openmp_thread_even_when_openmp_loads_inside_it():
    """In a fresh interpreter (as a task process is), OpenMP is not loaded before the search starts."""
    import subprocess
    import sys

    probe = ("from dagml import threads\n"
             "with threads.limit(1):\n"
             "    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads\n"
             "    print(_openmp_effective_n_threads())\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env={k: v for k, v in __import__("os").environ.items() if k != "OMP_NUM_THREADS"})
    assert done.stdout.strip() == "1"


def _cli_sees(stores, monkeypatch, tmp_path, config_text: str):
    """A configs folder with one config, and `dagml`'s settings pointed at ``stores``."""
    monkeypatch.setenv("DAGML_ARTIFACTS_ROOT", stores.artifacts.root)
    monkeypatch.setenv("DAGML_RESULTS_URL", stores.results.url)
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "t.yaml").write_text(config_text)
    from dagml.config import load_config

    return configs, load_config(configs / "t.yaml")


def test_a_promoted_model_is_refit_on_all_rows_and_dagml_score_uses_it(tmp_path, stores, monkeypatch):
    from typer.testing import CliRunner

    from dagml.cli import app
    from dagml.families import get_family
    from dagml.predictors import check_input
    from dagml.prepare import build_preprocessor, encode_target

    _frame().to_csv(tmp_path / "d.csv", index=False)
    configs, config = _cli_sees(stores, monkeypatch, tmp_path, (
        f"source: {{uri: {tmp_path / 'd.csv'}}}\ntarget: y\nfamilies: [random_forest]\nensemble: false\n"
        "refit_full: true\nbudget: {max_evals: 2}\nsplit: {validation: holdout}\n"))
    keys, prepared, selection, promotion = run_tasks(config, stores)
    champion = stores.results.champion(config.dag_id)
    df = stores.artifacts.read_parquet(prepared["data_uri"])
    roles = stores.artifacts.read_parquet(prepared["split_uri"])["role"].to_numpy()
    labelled = int((roles != "dropped").sum())
    assert labelled == 240 and (roles == "train").sum() < labelled
    assert promotion["promoted"] and champion["refit_rows"] == labelled and promotion["refit_rows"] == labelled
    assert champion["model_uri"] != selection["model_uri"]
    assert (champion["compared_model_uri"], champion["compared_model_sha256"]) == (selection["model_uri"],
                                                                                 selection["model_sha256"])
    assert champion["test_score"] == pytest.approx(selection["test_score"])  # the compared model's
    refit = load_verified(stores.artifacts, champion["model_uri"], champion["model_sha256"])
    assert refit.manifest["fit_rows"] == labelled
    run = stores.results.run(keys.dag_id, keys.partition)
    assert (run["refit_rows"], run["refit_error"]) == (labelled, None)

    # the same family and hyperparameters fit by hand on every row with a target
    recipe = stores.artifacts.read_json(prepared["recipe_uri"])
    family = get_family(selection["family"])()
    params = {r["family"]: r for r in stores.results.leaderboard(keys.dag_id, keys.partition)}[selection["family"]]["params"]
    pre = build_preprocessor(recipe, family.needs_scaling)
    model = family.fit(params, pre.fit_transform(df[recipe["features"]]), encode_target(df["y"], recipe),
                       "binary", 2, config.seed)
    fresh = _frame(n=40, seed=3).drop(columns="y")
    by_hand = model.predict(pre.transform(check_input(fresh, recipe["features"], recipe["numeric"],
                                                      recipe["onehot"] + recipe["ordinal"])))
    fresh.to_csv(tmp_path / "new.csv", index=False)
    scored = CliRunner().invoke(app, ["score", "t", str(tmp_path / "new.csv"), "--configs", str(configs),
                                      "--output", str(tmp_path / "out.csv")])
    assert scored.exit_code == 0, scored.output
    served = pd.read_csv(tmp_path / "out.csv")[["proba_no", "proba_yes"]].to_numpy()
    np.testing.assert_allclose(served, by_hand, atol=1e-12)
    compared = load_verified(stores.artifacts, selection["model_uri"], selection["model_sha256"])
    assert not np.allclose(served, compared.predict_proba(fresh).to_numpy())

    board = CliRunner().invoke(app, ["leaderboard", "t", "--configs", str(configs)], terminal_width=200)
    assert "stored model: refit on 240 rows" in board.output and "of the model compared" in board.output
    history = CliRunner().invoke(app, ["history", "t", "--configs", str(configs)], terminal_width=250)
    assert "refit on 240 rows" in history.output
    html = stores.artifacts.read_bytes(run["report_uri"]).decode()
    assert "refit on 240 rows" in html


def test_refit_full_false_keeps_the_compared_model_as_the_champion(tmp_path, stores):
    _frame().to_csv(tmp_path / "d.csv", index=False)
    config = _config(tmp_path / "d.csv", families=["knn"], ensemble=False, refit_full=False)
    keys, _, selection, promotion = run_tasks(config, stores)
    champion = stores.results.champion(config.dag_id)
    assert promotion["promoted"] and promotion["refit_rows"] is None
    assert (champion["model_uri"], champion["model_sha256"]) == (selection["model_uri"], selection["model_sha256"])
    assert champion["refit_rows"] is None and champion["refit_error"] is None
    assert stores.results.run(keys.dag_id, keys.partition)["refit_rows"] is None


def test_refit_full_auto_refits_below_the_row_threshold_and_holdout_partitions_under_a_whole_run_budget():
    from dagml.config import REFIT_FULL_MAX_ROWS

    config = _config("x.csv")
    small = np.array(["train"] * (REFIT_FULL_MAX_ROWS - 2) + ["dropped"] * 5)
    large = np.array(["train"] * REFIT_FULL_MAX_ROWS + ["test"])
    large_holdout = np.array(["train"] * REFIT_FULL_MAX_ROWS + ["valid", "test"])
    assert config.refit_full == "auto"
    assert tasks._refit_wanted(config, small) and not tasks._refit_wanted(config, large)
    assert not tasks._refit_wanted(config, large_holdout)  # per-family budgets: nothing pays for it
    whole_run = config.model_copy(update={"budget": config.budget.model_copy(update={"total_seconds": 60})})
    assert tasks._refit_wanted(whole_run, large_holdout) and not tasks._refit_wanted(whole_run, large)
    assert tasks._refit_wanted(config.model_copy(update={"refit_full": True}), large)
    assert not tasks._refit_wanted(config.model_copy(update={"refit_full": False}), small)


def test_a_whole_run_budget_on_a_holdout_partition_holds_seconds_back_for_the_refit(tmp_path, stores):
    """The searches share 70% of ``total_seconds`` (all of it on a k-fold partition); the refit
    refits the ensemble's members whose fit on all rows fits in the rest, the heaviest first, and a
    member that would outlast it keeps its compared model (here elastic net, whose search's fit is
    recorded as 1,000 s)."""
    from dagml import report
    from dagml.config import REFIT_SHARE
    from dagml.predictors import ensemble_manifest, write_ensemble

    _frame().to_csv(tmp_path / "d.csv", index=False)
    total = 4.0
    config = _config(tmp_path / "d.csv", families=["knn", "elastic_net"], split={"validation": "holdout"},
                     budget={"max_evals": 10_000, "total_seconds": total})
    keys = tasks.RunKeys(config.dag_id, "2026-01-01", "r1")
    loaded = tasks.load(config, config.source.uri, keys, stores)
    prepared = tasks.prepare(config, loaded, tasks.profile(config, loaded, keys, stores), keys, stores)
    for family in config.families:
        tasks.search_family(config, family.name, prepared, keys, stores)
    rows = {r["family"]: r for r in stores.results.leaderboard(keys.dag_id, keys.partition)}
    clocks = [tasks._clock(config, entry, prepared, keys, stores, tasks.shards.Shard(entry.name))
              for entry in config.families]
    assert [c.total for c in clocks] == [pytest.approx((1 - REFIT_SHARE) * total)] * len(clocks)
    kfold = {**prepared, "validation": "kfold"}  # a k-fold family's model already saw every non-test row
    knn = tasks.shards.Shard("sklearn:knn")
    assert tasks._clock(config, config.families[0], kfold, keys, stores, knn).total == total

    # an ensemble of the two, as select offers it
    members = ["sklearn:knn", "sklearn:elastic_net"]
    recipe = stores.artifacts.read_json(prepared["recipe_uri"])
    uri = stores.load_uri(keys, prepared["load_id"], "ensemble:greedy", "model.tar")
    sha = write_ensemble(stores.artifacts, uri, ensemble_manifest(
        "ensemble:greedy", "binary", "roc_auc", recipe, {"sklearn:knn": 0.6, "sklearn:elastic_net": 0.4}, {}),
        [stores.artifacts.read_verified(rows[f]["model_uri"], rows[f]["model_sha256"]) for f in members])
    dear = {k: v for k, v in rows["sklearn:elastic_net"].items()
            if k not in ("dag_id", "partition", "family", "run_id", "updated_at")} | {"fit_seconds": 1000.0}
    stores.results.record_family(keys.dag_id, keys.partition, "sklearn:elastic_net", keys.run_id, **dear)
    df = stores.artifacts.read_parquet(prepared["data_uri"])
    roles = stores.artifacts.read_parquet(prepared["split_uri"])["role"].to_numpy()
    selection = {"family": "ensemble:greedy", "model_uri": uri, "model_sha256": sha}
    refit = tasks._refit(config, selection, prepared, keys, stores, df, roles, recipe)
    assert (refit.rows, refit.error) == (240, None)
    stored = load_verified(stores.artifacts, refit.uri, refit.sha256)
    assert stored.manifest["fit_rows"] == 240 and stored.manifest["compared_members"] == ["sklearn:elastic_net"]
    knn, elastic_net = stored.members
    assert knn.manifest["fit_rows"] == 240 and "fit_rows" not in elastic_net.manifest
    X = _frame(n=30, seed=5).drop(columns="y")
    searched = load_verified(stores.artifacts, rows["sklearn:elastic_net"]["model_uri"],
                             rows["sklearn:elastic_net"]["model_sha256"])
    np.testing.assert_allclose(elastic_net.predict_proba(X).to_numpy(), searched.predict_proba(X).to_numpy())

    # a single model whose fit would outlast the seconds is not refit, and the history says why
    alone = {k: rows["sklearn:elastic_net"][k] for k in ("family", "model_uri", "model_sha256")}
    refit = tasks._refit(config, alone, prepared, keys, stores, df, roles, recipe)
    assert refit.uri is None and refit.error.startswith("not refit: its fit on 240 rows would outlast the 1.2 s")
    assert report.stored_model(refit.rows, refit.error) == f"the compared model ({refit.error})"


def test_a_refit_that_fails_keeps_the_promotion_and_says_why(tmp_path, stores):
    _frame().to_csv(tmp_path / "d.csv", index=False)
    config = _config(tmp_path / "d.csv", families=["knn"], ensemble=False, refit_full=True)
    keys = tasks.RunKeys(config.dag_id, "2026-01-01", "r1")
    loaded = tasks.load(config, config.source.uri, keys, stores)
    prepared = tasks.prepare(config, loaded, tasks.profile(config, loaded, keys, stores), keys, stores)
    for family in config.families:
        tasks.search_family(config, family.name, prepared, keys, stores)
    selection = tasks.select(config, keys, stores, prepared)
    # a file where the refit's folder goes: storing the refit fails as a full or read-only disk would
    stores.artifacts.write_bytes(stores.load_uri(keys, prepared["load_id"], "refit"), b"in the way")
    promotion = tasks.promote(config, selection, prepared, keys, stores)
    champion = stores.results.champion(config.dag_id)
    assert promotion["promoted"] and champion["family"] == selection["family"]
    assert (champion["model_uri"], champion["model_sha256"]) == (selection["model_uri"], selection["model_sha256"])
    assert champion["refit_rows"] is None and champion["refit_error"].startswith(("FileExistsError", "NotADirectoryError"))
    assert "/refit/" in champion["refit_error"]  # names the path it could not write
    assert stores.results.run(keys.dag_id, keys.partition)["refit_error"] == champion["refit_error"]
    load_verified(stores.artifacts, champion["model_uri"], champion["model_sha256"])


def test_a_holdout_leaderboards_validation_score_is_its_stored_models_on_the_validation_rows(tmp_path, stores):
    """With holdout the best trial's model is the family's, and the search's score for it is the
    leaderboard's (not predicted again outside the family's seconds): the stored archive, shrinkage
    and all, scores the same on the validation rows."""
    from dagml.metrics import get_metric
    from dagml.prepare import encode_target

    path = tmp_path / "d.csv"
    _frame(n=400).to_csv(path, index=False)
    config = _config(path, families=["elastic_net", "random_forest", "knn"], metric="log_loss",
                     split={"validation": "holdout"}, ensemble=False)
    keys, prepared, _, _ = run_tasks(config, stores)
    df = stores.artifacts.read_parquet(prepared["data_uri"])
    roles = stores.artifacts.read_parquet(prepared["split_uri"])["role"].to_numpy()
    recipe = stores.artifacts.read_json(prepared["recipe_uri"])
    valid, metric = df[roles == "valid"], get_metric("log_loss")
    rows = [r for r in stores.results.leaderboard(keys.dag_id, keys.partition) if r["status"] == "ok"]
    assert {r["family"] for r in rows} >= {"sklearn:elastic_net", "sklearn:random_forest", "sklearn:knn"}
    for row in rows:
        stored = load_verified(stores.artifacts, row["model_uri"], row["model_sha256"])
        again = metric(encode_target(valid["y"], recipe), tasks._raw(stored, valid, recipe))
        assert again == pytest.approx(row["val_score"], rel=1e-5), row["family"]
