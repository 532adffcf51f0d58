"""Large data on one worker: row caps and sampled searches recorded and logged, and running out
of memory seen by the process that forked the fit, as a failed row saying so."""

import logging
import os
import re
import signal
import threading

import numpy as np
import pandas as pd
import pytest

from dagml import tasks
from dagml.config import DatasetConfig
from dagml.errors import FamilyFailed, OutOfMemory
from dagml.families.sklearn import HistGradientBoosting
from dagml.time_limit import TRIAL_OOM_SCORE_ADJ, TimeLimitExceeded, call_with_time_limit


def _frame(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    colour = rng.choice(["red", "green", "blue"], n)
    y = np.where(x[:, 0] + x[:, 1] * (colour == "red") + rng.normal(scale=0.5, size=n) > 0, "yes", "no")
    df = pd.DataFrame(x, columns=[f"x{i}" for i in range(4)]).assign(colour=colour, y=y)
    df.loc[::9, "x1"] = np.nan
    return df


def _config(uri, families, seconds=30):
    return DatasetConfig.model_validate({
        "name": "big", "source": {"uri": str(uri)}, "target": "y", "families": families,
        "budget": {"max_evals": 2, "seconds": seconds}, "ensemble": False, "warm_start": False})


def _prepared(config, stores):
    keys = tasks.RunKeys(config.dag_id, "2026-01-01", "r1")
    loaded = tasks.load(config, config.source.uri, keys, stores)
    summary = tasks.profile(config, loaded, keys, stores)
    return keys, tasks.prepare(config, loaded, summary, keys, stores)


def _own_oom_score_adj():
    with open("/proc/self/oom_score_adj") as f:
        return int(f.read())


class _ResultTooLargeToSend:
    def __reduce__(self):  # pickling it (to send it to the parent) allocates more than memory_mb allows
        return (bytes, (np.ones(2**30).tobytes(),))


def test_a_fit_out_of_memory_in_its_forked_child_is_seen_by_the_parent_as_out_of_memory():
    def exhaust():
        raise MemoryError("Unable to allocate 8 GiB")

    with pytest.raises(OutOfMemory, match="MemoryError: Unable to allocate 8 GiB"):
        call_with_time_limit(exhaust, 30)
    # memory_mb: an address-space limit above what the child shares with its parent
    with pytest.raises(OutOfMemory, match=r"MemoryError: Unable to allocate 763\. MiB"):
        call_with_time_limit(lambda: float(np.ones(100_000_000).sum()), 30, memory_mb=50)
    assert call_with_time_limit(lambda: float(np.ones(1_000_000).sum()), 30, memory_mb=50) == 1_000_000
    # a result whose pickled copy does not fit: out of memory too, not "exited with code 1"
    with pytest.raises(OutOfMemory, match="MemoryError while sending its result"):
        call_with_time_limit(_ResultTooLargeToSend, 30, memory_mb=50)
    # the kernel's out-of-memory killer sends SIGKILL; the child offers itself as its first victim
    assert call_with_time_limit(_own_oom_score_adj, 30) == TRIAL_OOM_SCORE_ADJ
    with pytest.raises(OutOfMemory, match="killed by SIGKILL, the signal of the kernel's out-of-memory killer"):
        call_with_time_limit(lambda: os.kill(os.getpid(), signal.SIGKILL), 30)
    # the parent's own kill at the deadline is a time limit, not memory
    with pytest.raises(TimeLimitExceeded):
        call_with_time_limit(lambda: __import__("time").sleep(10), 0.5)


def test_trials_killed_by_the_oom_killer_make_a_failed_row_saying_so_and_the_run_selects_the_others(
        tmp_path, stores):
    """The kernel kills the process of highest badness: a trial's forked process (which holds its
    fit's memory) offers itself first (oom_score_adj 1000), so the task process survives to record
    why. Here a thread plays the kernel: it SIGKILLs every process that set that value."""
    import psutil

    _frame(1200).to_csv(tmp_path / "d.csv", index=False)
    config = _config(tmp_path / "d.csv", ["elastic_net", "random_forest"])
    keys, prepared = _prepared(config, stores)
    killed = []

    def oom_killer(stop):
        while not stop.is_set():
            for child in psutil.Process().children(recursive=True):
                try:
                    with open(f"/proc/{child.pid}/oom_score_adj") as f:
                        if int(f.read()) == TRIAL_OOM_SCORE_ADJ:
                            os.kill(child.pid, signal.SIGKILL)
                            killed.append(child.pid)
                except (OSError, ValueError):
                    pass
            stop.wait(0.01)

    tasks.search_family(config, "sklearn:elastic_net", prepared, keys, stores)
    stop = threading.Event()
    killer = threading.Thread(target=oom_killer, args=(stop,))
    killer.start()
    try:
        with pytest.raises(OutOfMemory) as err:  # a FamilyFailed: not retried, the same rows would run out again
            tasks.search_family(config, "sklearn:random_forest", prepared, keys, stores)
    finally:
        stop.set()
        killer.join()
    assert killed and isinstance(err.value, FamilyFailed)
    tasks.search_family(config, "sklearn:dummy", prepared, keys, stores)

    rows = {r["family"]: r for r in stores.results.leaderboard(keys.dag_id, keys.partition)}
    assert rows["sklearn:random_forest"]["status"] == "failed"
    assert re.match(r"out of memory: sklearn:random_forest on \d[\d,]* training rows x \d+ columns: all \d+ trial\(s\) "
                    r"failed, \d+ of them out of memory; first: out of memory: killed by SIGKILL",
                    rows["sklearn:random_forest"]["error"]), rows["sklearn:random_forest"]["error"]
    assert tasks.select(config, keys, stores)["family"] == "sklearn:elastic_net"


def test_a_row_cap_and_a_sampled_search_are_logged_and_recorded(tmp_path, stores, monkeypatch):
    """SVM declares a cap of 5,000 rows: it searches and fits on a seeded sample of so many.
    HistGradientBoosting, given here a search of 2,000 rows per 60 s (the floor is 5,000), searches
    on a sample and its best point is fit on all training rows."""
    monkeypatch.setattr(HistGradientBoosting, "search_rows", 2_000)
    _frame(12_000).to_csv(tmp_path / "d.csv", index=False)
    config = _config(tmp_path / "d.csv", ["svm", "hist_gradient_boosting"])
    keys, prepared = _prepared(config, stores)
    # the search logs from its own forked process: a file handler is what both write to
    handler = logging.FileHandler(tmp_path / "search.log")
    logger = logging.getLogger("dagml.tasks")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)  # through setLevel: it clears the loggers' cached levels
    try:
        for family in ("sklearn:svm", "sklearn:hist_gradient_boosting", "sklearn:dummy"):
            tasks.search_family(config, family, prepared, keys, stores)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
    rows = {r["family"]: r for r in stores.results.leaderboard(keys.dag_id, keys.partition)}
    train = 7_680  # 12,000 rows: 0.8 not test, of which 0.8 train (holdout)
    assert {f: (r["status"], r["search_rows"], r["fit_rows"]) for f, r in rows.items()} == {
        "sklearn:svm": ("ok", 5_000, 5_000),
        "sklearn:hist_gradient_boosting": ("ok", 5_000, train),
        "sklearn:dummy": ("ok", train, train)}
    assert rows["sklearn:hist_gradient_boosting"]["val_score"] > rows["sklearn:dummy"]["val_score"] + 0.2
    logged = (tmp_path / "search.log").read_text()
    assert "sklearn:svm: its row cap is 5,000: searching and fitting on a seeded sample of 5,000 of the 7,680 " \
           "training rows" in logged
    assert re.search(r"sklearn:hist_gradient_boosting: 7,680 training rows would not fit a 30 s search: searching "
                     r"on a seeded sample of 5,000, then fitting the best point on all 7,680", logged)
    # the leaderboard JSON carries them (dagml leaderboard --json, the plugin's routes)
    from dagml import leaderboard

    entries = {e["family"]: e for e in leaderboard.entries(list(rows.values()), "roc_auc")}
    assert (entries["sklearn:svm"]["search_rows"], entries["sklearn:svm"]["fit_rows"]) == (5_000, 5_000)


def test_a_sample_is_seeded_and_keeps_every_validation_and_test_row(tmp_path):
    from dagml.prepare import FrameData, make_recipe, make_split

    df = _frame(2_000)
    roles = make_split(df["y"], "binary", 0.2, "holdout", 0.2, 5, 42)
    data = FrameData(df, roles, make_recipe(df, "y", "binary"), scale=False)
    a, b = data.sample(500, seed=7), data.sample(500, seed=7)
    assert a.training_rows() == 500 and data.training_rows() == 1_280
    assert (a.roles == b.roles).all() and not (a.roles == data.sample(500, seed=8).roles).all()
    for role in ("valid", "test"):
        assert ((a.roles == role) == (roles == role)).all()
    assert a.folds()[0].X_train.dtype == np.float32  # compact matrices


def test_a_forked_trial_dies_with_the_process_that_forked_it():
    """A worker killed mid-search must not leave its trial running on beside the retry's."""
    import time

    import psutil

    pid = os.fork()
    if pid == 0:  # a task process: forks a trial, then is killed
        call_with_time_limit(lambda: time.sleep(60), None)
        os._exit(0)
    deadline = time.monotonic() + 20
    while not psutil.Process(pid).children() and time.monotonic() < deadline:
        time.sleep(0.05)
    search = psutil.Process(pid).children()[0]
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    search.wait(timeout=10)  # psutil.TimeoutExpired if it lived on
    assert not search.is_running()


def test_memory_mb_is_refused_where_fits_run_in_the_task_process():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="memory_mb: r:glmnet's fits run in the task process"):
        _config("x.csv", [{"name": "r:glmnet", "memory_mb": 100}])
    assert _config("x.csv", [{"name": "extra_trees", "memory_mb": 100}]).families[0].memory_mb == 100


def test_a_holdout_keeps_at_most_valid_max_rows_for_validation_and_trains_on_the_rest(tmp_path, stores):
    """Every trial of every family predicts the validation rows: on a large partition they are capped
    (split.valid_max_rows), and the rows over the cap train."""
    from dagml.config import Split
    from dagml.prepare import make_split

    y = pd.Series(np.random.default_rng(0).integers(0, 2, 100_000))
    counts = pd.Series(make_split(y, "binary", 0.2, "holdout", 0.2, 5, 42, Split().valid_max_rows)).value_counts()
    assert (counts["test"], counts["valid"], counts["train"]) == (20_000, 16_000, 64_000)  # 16,000 < the cap
    capped = make_split(y, "binary", 0.2, "holdout", 0.2, 5, 42, 5_000)
    counts = pd.Series(capped).value_counts()
    assert (counts["test"], counts["valid"], counts["train"]) == (20_000, 5_000, 75_000)
    assert abs(y[capped == "valid"].mean() - y.mean()) < 0.01  # still stratified

    # the prepare task applies the config's cap
    _frame(5_000).to_parquet(tmp_path / "rows.parquet")
    config = DatasetConfig.model_validate({
        "name": "capped", "source": {"uri": str(tmp_path / "rows.parquet")}, "target": "y", "task": "binary",
        "split": {"validation": "holdout", "valid_max_rows": 300}})
    keys = tasks.RunKeys(config.dag_id, "2026-01-01", "r1")
    loaded = tasks.load(config, config.source.uri, keys, stores)
    prepared = tasks.prepare(config, loaded, tasks.profile(config, loaded, keys, stores), keys, stores)
    roles = stores.artifacts.read_parquet(prepared["split_uri"])["role"].value_counts()
    assert (roles["test"], roles["valid"], roles["train"]) == (1_000, 300, 3_700)
