"""``ensemble:greedy``: greedy selection over out-of-fold predictions, its leaderboard row, and a
champion ensemble stored as one archive, loaded with its checksum verified and scored by `dagml score`."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dagml import ensemble, scoring, tasks
from dagml.cli import app
from dagml.config import Scoring, load_config
from dagml.errors import ChecksumMismatch
from dagml.metrics import get_metric
from dagml.predictors import EnsemblePredictor, load_verified
from dagml.selection import rank
from tests.pipeline import run_tasks
from tests.unit.test_tasks import _frame

runner = CliRunner()


def test_greedy_selection_blends_members_whose_errors_differ():
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    a, b = y + rng.normal(scale=0.5, size=400), y + rng.normal(scale=0.5, size=400)
    biased = y + 3.0
    rmse = get_metric("rmse")
    weights, score = ensemble.greedy_weights([a, b, biased], y, np.array(["valid"] * 400), rmse)
    assert weights[0] > 0 and weights[1] > 0 and weights[2] == 0 and weights.sum() == pytest.approx(1.0)
    assert score == pytest.approx(rmse(y, ensemble.blend([a, b, biased], weights)))
    assert score < min(rmse(y, a), rmse(y, b))  # independent errors partly cancel


def test_greedy_selection_never_scores_worse_than_its_best_member():
    """It keeps the best prefix of its rounds: a member that only hurts is never added."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    perfect = np.column_stack([1.0 - y, y.astype(float)])
    noise = rng.uniform(size=300)
    weights, score = ensemble.greedy_weights([perfect, np.column_stack([1 - noise, noise])], y,
                                             np.array(["valid"] * 300), get_metric("log_loss"))
    assert weights.tolist() == [1.0, 0.0]
    assert score == pytest.approx(get_metric("log_loss")(y, perfect))


def test_the_score_is_the_mean_over_folds_as_for_every_family():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    pred = np.array([0.0, 1.0, 2.0, 5.0])
    groups = np.array(["fold0", "fold0", "fold1", "fold1"])
    assert ensemble.fold_score(get_metric("mae"), y, pred, groups) == pytest.approx((0.0 + 1.0) / 2)


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    """A run whose three families blend better than any alone (its champion is the ensemble),
    through the embedded default's stores, so `dagml score` sees it."""
    folder = tmp_path_factory.mktemp("ensemble")
    _frame().to_csv(folder / "d.csv", index=False)
    configs = folder / "configs"
    configs.mkdir()
    (configs / "blend.yaml").write_text(
        f"source: {{uri: {folder / 'd.csv'}}}\ntarget: y\nfamilies: [elastic_net, random_forest, knn]\n"
        "budget: {max_evals: 3}\n")
    config = load_config(configs / "blend.yaml")
    stores = tasks.Stores.from_settings()
    keys, prepared, selection, promotion = run_tasks(config, stores)
    return config, configs, stores, keys, prepared, selection, promotion


def _rows(stores, keys):
    return {r["family"]: r for r in stores.results.leaderboard(keys.dag_id, keys.partition, keys.run_id)}


def test_the_ensemble_row_is_the_weighted_mean_of_its_members_out_of_fold_predictions(ensemble_run):
    config, _, stores, keys, prepared, selection, _ = ensemble_run
    rows = _rows(stores, keys)
    row = rows[ensemble.FAMILY]
    weights = row["params"]
    assert row["status"] == "ok" and len(weights) >= 2 and sum(weights.values()) == pytest.approx(1.0)
    assert set(weights) <= {"sklearn:elastic_net", "sklearn:random_forest", "sklearn:knn"}
    own = stores.artifacts.read_parquet(row["predictions_uri"])
    members = {f: stores.artifacts.read_parquet(rows[f]["predictions_uri"]).sort_values("row") for f in weights}
    expected = sum(w * members[f][["p0", "p1"]].to_numpy() for f, w in weights.items())
    np.testing.assert_allclose(own.sort_values("row")[["p0", "p1"]].to_numpy(), expected)
    # scored as every family is: the metric per validation fold, averaged
    roles = stores.artifacts.read_parquet(prepared["split_uri"])["role"].to_numpy()
    df = stores.artifacts.read_parquet(prepared["data_uri"])
    y = (df["y"].iloc[own["row"]] == "yes").astype(int).to_numpy()
    metric = get_metric(prepared["metric"])
    assert row["val_score"] == pytest.approx(ensemble.fold_score(metric, y, own[["p0", "p1"]].to_numpy(),
                                                                 roles[own["row"]]))
    # its test score: the weighted mean of the members' stored models on the test rows
    test = df[roles == "test"]
    proba = sum(w * load_verified(stores.artifacts, rows[f]["model_uri"], rows[f]["model_sha256"])
                .predict_proba(test).to_numpy() for f, w in weights.items())
    assert row["test_score"] == pytest.approx(metric((test["y"] == "yes").astype(int).to_numpy(), proba))
    best_single = max(r["val_score"] for f, r in rows.items() if f != ensemble.FAMILY)
    assert row["val_score"] > best_single and selection["family"] == ensemble.FAMILY


def test_a_champion_ensemble_round_trips_through_dagml_score(ensemble_run, tmp_path):
    config, configs, stores, keys, _, selection, promotion = ensemble_run
    champion = stores.results.champion(config.dag_id)
    assert champion["family"] == ensemble.FAMILY and promotion["promoted"]
    predictor = load_verified(stores.artifacts, champion["model_uri"], champion["model_sha256"])
    assert isinstance(predictor, EnsemblePredictor)
    weights = _rows(stores, keys)[ensemble.FAMILY]["params"]
    assert {m["family"]: m["weight"] for m in predictor.manifest["members"]} == weights
    # the stored champion is the refit of each member on all 240 rows (refit_full: auto, small data)
    assert champion["refit_rows"] == 240 and champion["compared_model_uri"] == selection["model_uri"]
    assert [m.manifest["fit_rows"] for m in predictor.members] == [240] * len(weights)
    fresh = _frame(n=30, seed=7).drop(columns="y")
    fresh.to_csv(tmp_path / "new.csv", index=False)
    scored = runner.invoke(app, ["score", "blend", str(tmp_path / "new.csv"), "--configs", str(configs),
                                 "--output", str(tmp_path / "out.csv")])
    assert scored.exit_code == 0, scored.output
    out = pd.read_csv(tmp_path / "out.csv")
    expected = sum(w * m.predict_proba(fresh).to_numpy() for w, m in zip(predictor.weights, predictor.members))
    np.testing.assert_allclose(out[["proba_no", "proba_yes"]].to_numpy(), expected, rtol=1e-9)
    assert out["prediction"].tolist() == np.where(expected[:, 1] > expected[:, 0], "yes", "no").tolist()

    # the scoring DAG's task body: the same champion, the same predictions
    with_scoring = config.model_copy(update={"scoring": Scoring(source={"uri": str(tmp_path / "new.csv")},
                                                                output=str(tmp_path / "dag.parquet"))})
    done = scoring.score(with_scoring, str(tmp_path / "new.csv"), str(tmp_path / "dag.parquet"), "p", stores)
    assert done["champion_family"] == ensemble.FAMILY and done["champion_sha256"] == champion["model_sha256"]
    np.testing.assert_allclose(pd.read_parquet(tmp_path / "dag.parquet")[["proba_no", "proba_yes"]].to_numpy(),
                               expected, rtol=1e-9)

    stores.artifacts.write_bytes(champion["model_uri"], stores.artifacts.read_bytes(champion["model_uri"]) + b"x")
    tampered = runner.invoke(app, ["score", "blend", str(tmp_path / "new.csv"), "--configs", str(configs)])
    assert tampered.exit_code != 0 and isinstance(tampered.exception, ChecksumMismatch)
    with pytest.raises(ChecksumMismatch):
        scoring.score(with_scoring, str(tmp_path / "new.csv"), str(tmp_path / "again.parquet"), "p", stores)
    assert not (tmp_path / "again.parquet").exists()


def test_the_ensemble_is_chosen_only_when_it_wins_on_validation(ensemble_run):
    """(Last in this module: it rewrites a leaderboard row of the shared run.)"""
    config, _, stores, keys, prepared, _, _ = ensemble_run
    rows = _rows(stores, keys)
    forest = rows["sklearn:random_forest"]
    better = rows[ensemble.FAMILY]["val_score"] + 0.001  # as if the forest had validated better
    stores.results.record_family(keys.dag_id, keys.partition, forest["family"], keys.run_id,
                                 **{**{k: v for k, v in forest.items() if k not in ("dag_id", "partition", "family",
                                                                                  "run_id", "updated_at")},
                                    "val_score": better})
    assert tasks.select(config, keys, stores, prepared)["family"] == "sklearn:random_forest"
    ranked = [r["family"] for r in rank(list(_rows(stores, keys).values()), get_metric(prepared["metric"]))]
    assert ranked[:2] == ["sklearn:random_forest", ensemble.FAMILY]


def test_an_ensemble_of_one_member_is_not_offered(stores, tmp_path):
    """With one family besides the baseline (which is never a member), no ensemble row."""
    _frame().to_csv(tmp_path / "d.csv", index=False)
    from tests.unit.test_tasks import _config

    keys, _, selection, _ = run_tasks(_config(tmp_path / "d.csv", families=["elastic_net"]), stores)
    assert set(_rows(stores, keys)) == {"sklearn:elastic_net", "sklearn:dummy"}
    assert selection["family"] == "sklearn:elastic_net"


def test_ensemble_false_offers_none(stores, tmp_path):
    _frame().to_csv(tmp_path / "d.csv", index=False)
    from tests.unit.test_tasks import _config

    keys, *_ = run_tasks(_config(tmp_path / "d.csv", families=["elastic_net", "knn"], ensemble=False,
                                 budget={"max_evals": 2}), stores)
    assert set(_rows(stores, keys)) == {"sklearn:elastic_net", "sklearn:knn", "sklearn:dummy"}


def test_a_per_fold_constant_earns_no_weight():
    """A prior learned per fold is a different constant on each fold: pooled, a ranking metric would
    reward blending it in; scored per fold, as families are, it changes nothing."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    groups = np.array(["fold0"] * 100 + ["fold1"] * 100)
    p = np.clip(0.5 * y + rng.uniform(size=200) * 0.7, 0, 1)
    p[100:] *= 0.3  # the second fold's model is less confident
    member = np.column_stack([1 - p, p])
    prior = np.where(groups == "fold0", 0.3, 0.7)
    offset = np.column_stack([1 - prior, prior])
    weights, _ = ensemble.greedy_weights([member, offset], y, groups, get_metric("roc_auc"))
    assert weights.tolist() == [1.0, 0.0]
    pooled = get_metric("roc_auc")
    assert pooled(y, (member + offset) / 2) > pooled(y, member)  # what pooling would have rewarded


def test_every_family_with_out_of_fold_predictions_is_a_candidate_best_first(monkeypatch):
    """Not only the five best: on satellite kNN ranked below them on validation and still earned
    weight in the blend. The baseline and rows without out-of-fold predictions are not."""
    metric = get_metric("log_loss")
    rows = [{"family": f"sklearn:f{i}", "status": "ok", "val_score": 0.2 + i / 100, "fit_seconds": 1.0,
             "predictions_uri": f"f{i}.parquet"} for i in (7, 0, 3, 1, 6, 2, 5, 4)]
    rows += [{"family": "sklearn:dummy", "status": "ok", "val_score": 1.0, "predictions_uri": "d.parquet"},
             {"family": "sklearn:no_oof", "status": "ok", "val_score": 0.1, "predictions_uri": None},
             {"family": "sklearn:failed", "status": "failed", "val_score": None, "predictions_uri": None}]
    offered = []
    monkeypatch.setattr(tasks, "_ensemble_row", lambda config, finalists, *args: offered.extend(finalists))
    tasks._offer_ensemble(None, rows, metric, {}, None, None)
    assert [r["family"] for r in offered] == [f"sklearn:f{i}" for i in range(8)]


def test_finalists_are_capped_and_never_hold_an_earlier_blend():
    metric = get_metric("rmse")
    rows = [{"family": f"sklearn:f{i:02d}", "status": "ok", "val_score": float(i), "predictions_uri": "p"}
            for i in range(ensemble.MAX_FINALISTS + 5)]
    rows.append({"family": ensemble.FAMILY, "status": "ok", "val_score": -1.0, "predictions_uri": "p"})
    chosen = ensemble.finalists(rows, metric)
    assert [r["family"] for r in chosen] == [f"sklearn:f{i:02d}" for i in range(ensemble.MAX_FINALISTS)]
