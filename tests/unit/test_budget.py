"""Search budgets: a trial stopped when its family's time is up, and one run's seconds shared by
its families, whatever the number of worker slots searching at once."""

import logging
import multiprocessing
import time

import numpy as np
import pytest

from dagml import tasks
from dagml.budget import Ledger, SharedBudget
from dagml.config import DatasetConfig
from dagml.errors import FamilyFailed
from dagml.families.sklearn import SklearnFamily
from dagml.metrics import get_metric
from dagml.prepare import Fold
from dagml.search import search
from dagml.time_limit import TimeLimitExceeded, call_with_time_limit

RNG = np.random.default_rng(0)
X = RNG.normal(size=(200, 4))
Y = (X[:, 0] > 0).astype(int)
FOLDS = [Fold(X[:150], Y[:150], X[150:], Y[150:])]
AUC = get_metric("roc_auc")


class Slow(SklearnFamily):
    """A real logistic regression that takes ``seconds`` (a point of the space) to fit."""

    def space(self, task, n_rows, n_cols):
        from hyperopt import hp

        return {"seconds": hp.uniform("seconds", self.low, self.high)}

    def estimator(self, params, task, seed):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression()

    def fit(self, params, X, y, task, n_classes, seed, eval_set=None):
        time.sleep(params["seconds"])
        return super().fit(params, X, y, task, n_classes, seed, eval_set)


Slow.name = "slow"  # set after the class body: not registered


def slow(low, high):
    family = Slow()
    family.low, family.high = low, high
    return family


def test_a_function_past_its_time_is_stopped_and_one_within_returns_its_value():
    assert call_with_time_limit(lambda: np.arange(5).sum(), 5) == 10
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded, match="stopped after 0.5 s"):
        call_with_time_limit(lambda: time.sleep(30), 0.5)
    assert time.monotonic() - started < 2


def slow_first(*seconds):
    """A ``Slow`` family whose first points take these seconds, in order."""
    family = slow(min(seconds), max(seconds))
    family.init_points = lambda task: [{"seconds": s} for s in seconds]
    return family


def test_the_trial_running_when_the_time_is_up_is_stopped_and_the_search_ends_on_time(caplog):
    with caplog.at_level(logging.INFO, logger="dagml.search"):
        # trials of 0.5 and 0.6 s, then one of 5 s, started with about 1.9 s left: running when the 3 s are up
        result = search(slow_first(0.5, 0.6, 5.0), FOLDS, "binary", 2, AUC, max_evals=100, seconds=3, seed=0)
    assert result.seconds < 3 * 1.05 + 0.1  # hyperopt's own timeout would let the last trial finish
    assert result.n_trials - result.n_failed == 2
    assert result.trials[-1]["status"] == "failed" and "stopped after" in result.trials[-1]["error"]
    assert "stopped after" in caplog.text


def test_no_trial_starts_with_less_time_left_than_the_familys_fastest_trial_took():
    """Trials of 1.2-1.3 s in 3 s: the third would start with about 0.5 s left and be killed with
    nothing to show; the search ends instead, its clock keeping those seconds for the others."""
    from dagml.budget import FamilyBudget

    clock = FamilyBudget(3.0)
    result = search(slow(1.2, 1.3), FOLDS, "binary", 2, AUC, max_evals=100, seconds=0, seed=0, clock=clock)
    assert (result.n_trials, result.n_failed) == (2, 0)
    assert 0.2 < clock.remaining() < 0.8


def test_a_family_whose_first_trial_outlasts_the_budget_fails_saying_so():
    with pytest.raises(FamilyFailed, match="stopped after 1.0 s, the time left in the budget"):
        search(slow(5, 6), FOLDS, "binary", 2, AUC, max_evals=100, seconds=1, seed=0)


def test_a_k_fold_search_stops_while_its_clock_still_holds_the_refit_of_its_best_point():
    from dagml.budget import FamilyBudget
    from dagml.search import refit_seconds

    folds = [Fold(X[:100], Y[:100], X[100:], Y[100:]), Fold(X[100:], Y[100:], X[:100], Y[:100])]
    clock = FamilyBudget(4.0)
    # each trial fits both folds, 0.6-0.7 s a fit, each on half the rows: a fit on all rows is
    # estimated at the trial's time (time grows with the rows)
    result = search(slow(0.6, 0.7), folds, "binary", 2, AUC, max_evals=100, seconds=0, seed=0, clock=clock)
    best = next(t for t in result.trials if t["status"] == "ok" and -t["loss"] == result.best_score)
    reserve = refit_seconds(best["seconds"], len(folds))
    assert 1.2 <= reserve <= 1.7
    left = clock.remaining()  # a clock passed in keeps running: its owner finishes it after the refit
    assert reserve - 0.2 <= left <= reserve + 1.5, (left, reserve)
    assert refit_seconds(best["seconds"], 1) == 0  # a holdout search keeps its best trial's model


def test_shared_allowances_sum_to_the_total_and_a_finished_family_gives_back_what_it_left(stores):
    ledger = Ledger(stores.results, "automl__b", "2026-01-01", "load-1")
    costs = {"a": 1.0, "b": 1.0, "c": 2.0}
    a, b, c = (SharedBudget(ledger, f, 40, costs) for f in costs)
    assert (a.allowance(), b.allowance(), c.allowance()) == (10, 10, 20)
    ledger.spend("a", 4.0, done=True)  # a left 6 s: b and c share them by cost
    assert b.allowance() == pytest.approx(12) and c.allowance() == pytest.approx(24)
    ledger.spend("b", 12.0, done=True)  # b spent its share and its part of a's seconds
    assert c.allowance() == pytest.approx(24)
    assert 4.0 + 12.0 + c.allowance() == pytest.approx(40)
    capped = SharedBudget(ledger, "c", 40, costs, cap=15)
    assert capped.allowance() == 15


def _config(families, total, max_evals=10_000):
    return DatasetConfig.model_validate({
        "name": "budgeted", "source": {"uri": "sklearn://breast_cancer"}, "target": "target",
        "families": families, "budget": {"max_evals": max_evals, "total_seconds": total}})


FAMILIES = ["elastic_net", "random_forest", "knn", "hist_gradient_boosting"]


def _search_in_process(config_json, family, prepared, keys, root, url):
    from dagml.store.artifacts import ArtifactStore
    from dagml.store.results import ResultsStore

    config = DatasetConfig.model_validate_json(config_json)
    stores = tasks.Stores(ArtifactStore(root), ResultsStore(url))
    started = time.time()
    tasks.search_family(config, family, prepared, tasks.RunKeys(*keys), stores)
    return started, time.time()


def _spent(stores, config, keys):
    rows = stores.results.leaderboard(config.dag_id, keys.partition)
    assert {r["family"] for r in rows} == {f.name for f in config.families} and {r["status"] for r in rows} == {"ok"}
    longest = max(t["seconds"] or 0 for f in config.families
                  for t in stores.results.trials(config.dag_id, keys.partition, f.name))
    # breast_cancer's 455 non-test rows are searched k-fold: each family's best point is then fit
    # on all of them, and that fit is paid from the same seconds
    return sum(r["search_seconds"] + r["fit_seconds"] for r in rows), longest


@pytest.mark.parametrize("slots", [1, 2])
def test_a_runs_total_seconds_bound_its_searches_on_one_or_two_slots(slots, tmp_path):
    from dagml.store.artifacts import ArtifactStore
    from dagml.store.results import ResultsStore
    from tests.services import scratch_database

    total = 20
    config = _config(FAMILIES, total)
    with scratch_database("postgres") as url:
        stores = tasks.Stores(ArtifactStore(str(tmp_path / "artifacts")), ResultsStore(url))
        stores.results.migrate()
        keys = tasks.RunKeys(config.dag_id, "2026-01-01", f"slots-{slots}")
        loaded = tasks.load(config, config.source.uri, keys, stores)
        prepared = tasks.prepare(config, loaded, tasks.profile(config, loaded, keys, stores), keys, stores)
        families = [f.name for f in config.families]
        if slots == 1:
            for family in families:
                tasks.search_family(config, family, prepared, keys, stores)
        else:  # two worker slots: two processes searching at once, as two Celery slots would
            ctx = multiprocessing.get_context("spawn")
            args = (config.model_dump_json(), prepared, (keys.dag_id, keys.partition, keys.run_id), str(tmp_path / "artifacts"), url)
            with ctx.Pool(2) as pool:
                spans = [done.get(timeout=300) for done in
                         [pool.apply_async(_search_in_process, (args[0], f, *args[1:])) for f in families]]
        spent, longest = _spent(stores, config, keys)
        stores.results.engine.dispose()
    assert spent <= total + longest + 0.5, (spent, longest)
    assert spent >= 0.75 * total, spent  # the seconds a family left went to the others
    if slots == 2:  # the searches did run at once
        assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:]), spans
