"""Threads as configured: 1 native thread per search by default, ``threads: N`` on a family entry,
and threadpoolctl's report of what each native library used, on the family's leaderboard row.

The fits run in fresh interpreters (as a task process is): GNU libgomp is not fork-safe once a
process ran a parallel region of more than one thread, and this test process may have."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dagml.config import ConfigError, DatasetConfig, load_config

REPO = Path(__file__).resolve().parents[2]


def _entry(threads):
    return {"name": "t", "source": {"uri": "sklearn://breast_cancer"}, "target": "target",
            "families": [{"name": "hist_gradient_boosting", "threads": threads}]}


def test_a_family_entry_takes_threads_1_by_default_or_n():
    config = DatasetConfig.model_validate(_entry(4))
    assert {f.name: f.threads for f in config.families} == {"sklearn:hist_gradient_boosting": 4, "sklearn:dummy": 1}


@pytest.mark.parametrize("threads", [0, -2, 1.5, "many"])
def test_threads_below_one_or_not_a_whole_number_is_refused_naming_the_field(threads, tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(json.dumps(_entry(threads)))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "families.0.threads" in str(err.value), str(err.value)


def _python(code: str, **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                                 "MKL_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**environ, **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


_FORKED = r"""
import json
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from dagml import threads

X = np.random.default_rng(0).normal(size=(3000, 10)); y = (X[:, 0] > 0).astype(int)
def fit():
    return HistGradientBoostingClassifier(max_iter=10).fit(X, y).score(X, y)
with threads.limit(1):
    fit()  # this process runs OpenMP at 1 thread, as a search's task process does
    first = threads.call(fit, 2, fork=True)[1]
    second = threads.call(fit, 2, fork=True)[1]  # forking again after a 2-thread child is fine
    own = threads.report()
print(json.dumps({"first": first, "second": second, "own": own}))
"""


def test_a_forked_fit_raises_its_threads_above_the_environments_and_this_process_stays_at_one():
    out = json.loads(_python(_FORKED, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))
    for report in (out["first"], out["second"]):
        assert {e["user_api"] for e in report} >= {"openmp", "blas"}, report
        assert {e["num_threads"] for e in report} == {2}, report
    assert {e["num_threads"] for e in out["own"]} == {1}, out["own"]


_RUN = r"""
import json, sys, tempfile
from pathlib import Path
from dagml.config import DatasetConfig
from dagml.store.artifacts import ArtifactStore
from dagml.store.results import ResultsStore
from dagml.tasks import Stores
from tests.pipeline import run_tasks

tmp = Path(tempfile.mkdtemp())
stores = Stores(ArtifactStore(str(tmp / "artifacts")), ResultsStore(f"sqlite:///{tmp}/results.db"))
stores.results.migrate()
config = DatasetConfig.model_validate({
    "name": "t", "source": {"uri": "sklearn://breast_cancer"}, "target": "target", "ensemble": False,
    "families": [{"name": "hist_gradient_boosting", "threads": 2}, "random_forest"],
    "budget": {"max_evals": 2, "seconds": 60}, "split": {"validation": sys.argv[1]}})
keys = run_tasks(config, stores)[0]
print(json.dumps({r["family"]: r["threads"] for r in stores.results.leaderboard(keys.dag_id, keys.partition)}))
"""


@pytest.mark.parametrize("validation", ["holdout", "kfold"])
def test_the_leaderboard_row_records_the_threads_each_native_library_used(validation):
    """holdout keeps the best trial's model (fit in a forked trial); kfold refits in a forked child."""
    code = _RUN.replace("sys.argv[1]", repr(validation))
    rows = json.loads(_python(code))
    for family, threads in (("sklearn:hist_gradient_boosting", 2), ("sklearn:random_forest", 1),
                            ("sklearn:dummy", 1)):
        report = rows[family]
        assert {e["user_api"] for e in report} >= {"openmp", "blas"}, (family, report)
        assert {e["num_threads"] for e in report} == {threads}, (family, report)
        assert all(e["internal_api"] and e["prefix"] for e in report)


def test_the_task_process_pins_one_thread_unless_the_worker_says_otherwise():
    probe = ("import json, os\nfrom dagml import threads\nthreads.pin_environment()\n"
             "before = [os.environ.get(n) for n in threads.ENVIRONMENT]\n"
             "import numpy\nos.environ.pop('MKL_NUM_THREADS')\nthreads.pin_environment()\n"
             "print(json.dumps([before, os.environ.get('MKL_NUM_THREADS')]))")
    before, after_numpy = json.loads(_python(probe, OMP_NUM_THREADS="3"))
    assert before == ["3", "1", "1"]  # a fresh task process, the worker's own value kept
    assert after_numpy is None  # once numpy is loaded (a test, dag.test()), the environment is left alone


def test_the_report_reads_as_one_line():
    from dagml import threads

    line = threads.describe([{"user_api": "openmp", "internal_api": "openmp", "prefix": "libgomp",
                              "version": None, "num_threads": 2}])
    assert line == "openmp libgomp 2"
    assert threads.describe(None) == "no native thread pool loaded"


def test_dagml_leaderboard_json_shows_each_rows_thread_report():
    from dagml import leaderboard

    report = [{"user_api": "openmp", "internal_api": "openmp", "prefix": "libgomp", "version": None, "num_threads": 2}]
    run = {"dag_id": "d", "partition": "p", "run_id": "r", "status": "success", "error": None, "failed_task": None,
           "metric": "roc_auc", "selected_family": "sklearn:knn", "promoted": True, "promotion_reason": "",
           "trigger": None}
    rows = [{"family": "sklearn:knn", "status": "ok", "val_score": 0.9, "threads": report}]
    assert leaderboard.document(run, rows)["rows"][0]["threads"] == report


def test_ranger_fits_with_the_threads_of_its_entry(monkeypatch):
    import numpy as np
    from hyperopt.pyll.stochastic import sample

    from dagml.families import get_family, r

    seen = []
    real = r._params
    monkeypatch.setattr(r, "_params", lambda params: seen.append(params) or real(params))
    family = get_family("r:ranger")()
    family.check_available()
    family.threads = 2
    X = np.random.default_rng(0).normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(int)
    point = sample(family.space("binary", *X.shape), rng=np.random.default_rng(0))
    model = family.fit(point, X, y, "binary", 2, seed=0)
    assert seen[-1]["threads"] == 2  # ranger's num.threads
    assert model.predict(X).shape == (200, 2)
