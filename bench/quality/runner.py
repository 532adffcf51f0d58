"""One system, one split, one process: ``python runner.py SYSTEM FOLDER --task T --budget S --seed K``.

The harness starts this under ``taskset`` with the interpreter of the system's venv (AutoGluon
and FLAML each have their own) and kills it if it runs past its budget and grace. It reads
``FOLDER/train.parquet`` and ``FOLDER/test.parquet``, fits within ``--budget`` seconds, and writes
``FOLDER/<system>.predictions.parquet`` and ``FOLDER/<system>.info.json`` (the digests of the rows
it read, its fit seconds, what it chose). Scoring is the harness's job, with dagml's metric code.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from exchange import PREDICTION, TARGET, read_split, write_info  # noqa: E402
import continue_leaders  # noqa: E402
import variants  # noqa: E402

# The metric each system optimises is the one it is scored by.
AUTOGLUON_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "root_mean_squared_error"}
FLAML_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
DAGML_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
# Share of the budget dagml's searches get: loading, profiling, the refits and the promotion
# run in the same wall-clock budget.
DAGML_SEARCH_SHARE = 0.7


def _categorical(X):
    return [c for c in X.columns if not (X[c].dtype.kind in "biuf")]


def _frame(proba, classes, index):
    import pandas as pd

    return pd.DataFrame(proba, columns=[str(c) for c in classes], index=index)


def run_autogluon(train, test, task, budget, seed, workdir):
    from autogluon.tabular import TabularPredictor

    predictor = TabularPredictor(label=TARGET, problem_type=task, eval_metric=AUTOGLUON_METRIC[task],
                                 path=str(workdir / "autogluon"), verbosity=0)
    # No neural networks (the setting); one core, as taskset gives.
    predictor.fit(train, time_limit=budget, excluded_model_types=["NN_TORCH", "FASTAI"],
                  ag_args_fit={"num_cpus": 1, "num_gpus": 0})
    details = {"best_model": predictor.model_best}
    if task == "regression":
        return _frame({PREDICTION: predictor.predict(test).to_numpy()}, [PREDICTION], test.index), details
    proba = predictor.predict_proba(test, as_multiclass=True)
    return _frame(proba.to_numpy(), proba.columns, test.index), details


def run_flaml(train, test, task, budget, seed, workdir):
    from flaml import AutoML

    X, y = train.drop(columns=[TARGET]), train[TARGET]
    automl = AutoML()
    automl.fit(X, y, task="regression" if task == "regression" else "classification", metric=FLAML_METRIC[task],
               time_budget=budget, n_jobs=1, seed=seed, verbose=0, log_file_name=str(workdir / "flaml.log"))
    details = {"best_estimator": automl.best_estimator}
    if task == "regression":
        return _frame({PREDICTION: automl.predict(test)}, [PREDICTION], test.index), details
    return _frame(automl.predict_proba(test), automl.classes_, test.index), details


def _untuned(estimator_class, train, test, task, seed):
    """Default hyperparameters; categoricals ordinal-coded (missing stays missing, which both
    estimators take), numeric columns as they are."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    X, y = train.drop(columns=[TARGET]), train[TARGET]
    cats = _categorical(X)
    as_text = {c: X[c].astype(object).where(X[c].notna(), np.nan) for c in cats}
    X = X.assign(**as_text)
    test = test.assign(**{c: test[c].astype(object).where(test[c].notna(), np.nan) for c in cats})
    encode = ColumnTransformer([("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                                       encoded_missing_value=np.nan), cats)],
                               remainder="passthrough", verbose_feature_names_out=False)
    kwargs = {"random_state": seed}
    if estimator_class.__name__.startswith("HistGradient"):
        kwargs["categorical_features"] = [i < len(cats) for i in range(X.shape[1])]
    else:
        kwargs["n_jobs"] = 1
    model = estimator_class(**kwargs)
    Xt = encode.fit_transform(X)
    model.fit(Xt, y)
    Xtest = encode.transform(test)
    if task == "regression":
        return _frame({PREDICTION: model.predict(Xtest)}, [PREDICTION], test.index), {}
    return _frame(model.predict_proba(Xtest), model.classes_, test.index), {}


def run_random_forest(train, test, task, budget, seed, workdir):
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    return _untuned(RandomForestRegressor if task == "regression" else RandomForestClassifier, train, test, task, seed)


def run_hist_gradient_boosting(train, test, task, budget, seed, workdir):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    return _untuned(cls, train, test, task, seed)


def dagml_families() -> list[str]:
    """The default queue's families (every registered scikit-learn-kind family), so families
    added to dagml are benchmarked without editing this file; the baseline is fit once."""
    from dagml.config import BASELINE_FAMILY
    from dagml.families import REGISTRY

    return sorted(k for k in REGISTRY if k.startswith("sklearn:") and k != BASELINE_FAMILY)


def dagml_config(train_path: Path, task: str, budget: float, seed: int, families: list[str] | None = None):
    """The config a user would write: the default families, a search budget that leaves room
    for the run's other tasks, dagml's own split of the rows it is given. With a whole-run
    budget (``budget.total_seconds``) dagml shares it out; without one, each family gets its
    part of the search seconds."""
    from dagml.config import BASELINE_FAMILY, Budget, DatasetConfig

    families = families or dagml_families()
    search_seconds = budget * DAGML_SEARCH_SHARE
    if "total_seconds" in Budget.model_fields:
        limits = {"total_seconds": search_seconds, "max_evals": 10_000}
    else:
        limits = {"seconds": search_seconds / len(families), "max_evals": 10_000}
    return DatasetConfig(name="bench_quality", source={"uri": str(train_path)}, target=TARGET, task=task,
                         metric=DAGML_METRIC[task], families=[*families, {"name": BASELINE_FAMILY, "max_evals": 1}],
                         budget=limits, seed=seed, warm_start=False)


def prepared_run(config, workdir: Path, run_id: str):
    """(stores, keys, prepared data): the DAG's first tasks (load, profile, prepare) of ``config``,
    on the embedded default's kind of stores (a local artifact folder, a SQLite results DB)."""
    from dagml import tasks
    from dagml.store.artifacts import ArtifactStore
    from dagml.store.results import ResultsStore

    stores = tasks.Stores(ArtifactStore(str(workdir / "dagml-artifacts")),
                          ResultsStore(f"sqlite:///{workdir}/dagml-results.db"))
    keys = tasks.RunKeys(config.dag_id, "2026-01-01", run_id)
    loaded = tasks.load(config, config.source.uri, keys, stores)
    summary = tasks.profile(config, loaded, keys, stores)
    return stores, keys, tasks.prepare(config, loaded, summary, keys, stores)


def search_fold(split: Path, family_key: str):
    """(the family, the prepared run, the first validation fold a search of ``family_key`` builds) on
    a harness split folder's training rows (``<work>/<dataset>/seed<k>``), prepared as a run does."""
    from dagml import tasks
    from dagml.config import DatasetConfig

    from datasets import read_list

    task = next(d.task for d in read_list() if d.name == split.parent.name)
    folder = Path(tempfile.mkdtemp(prefix="search-fold-"))
    (folder / "train.parquet").write_bytes((split / "train.parquet").read_bytes())
    config = DatasetConfig(name="search_fold", source={"uri": str(folder / "train.parquet")}, target=TARGET,
                           task=task, families=[family_key], seed=int(split.name.removeprefix("seed")),
                           warm_start=False)
    stores, keys, prepared = prepared_run(config, folder, "search-fold")
    family = tasks._family(family_key, prepared["task"])
    recipe = family.adopt(stores.artifacts.read_json(prepared["recipe_uri"]))
    data = tasks._training_data(config, family, prepared, recipe, stores)
    return family, prepared, data.folds()[0]


def run_dagml(train, test, task, budget, seed, workdir, families=None):
    """The DAG's task functions in the DAG's order (``prepared_run``, then the searches, select and
    promote); the promoted champion predicts the test rows."""
    from dagml import tasks
    from dagml.predictors import load_verified

    config = dagml_config(workdir / "train.parquet", task, budget, seed, families)
    full, config = config, continue_leaders.first_round(config, len(train))  # the same unless that experiment is on
    stores, keys, prepared = prepared_run(config, workdir, f"bench-seed{seed}")
    for entry in config.families:  # one worker slot: the searches one after another
        try:
            tasks.search_family(config, entry.name, prepared, keys, stores)
        except Exception as exc:  # a failed family is a leaderboard row, as in a DAG run
            print(f"dagml: {entry.name} failed: {exc}", file=sys.stderr)
    if config is not full:
        continue_leaders.second_round(full, prepared, keys, stores)
    import inspect

    # select needs the prepared data to offer its ensemble row (a dagml from before it does not take it)
    ensemble = {"prepared": prepared} if "prepared" in inspect.signature(tasks.select).parameters else {}
    selection = tasks.select(config, keys, stores, **ensemble)
    promotion = tasks.promote(config, selection, prepared, keys, stores)
    champion = promotion["champion"]
    predictor = load_verified(stores.artifacts, champion["model_uri"], champion["model_sha256"])
    out = predictor.predictions(test)
    import dagml

    details = {"champion": champion["family"], "families": [e.name for e in config.families],
               "dagml": str(Path(dagml.__file__).parent),
               "budget": config.budget.model_dump(),
               "after": lambda folder: variants.write(stores, keys, DAGML_METRIC[task], test, folder, prepared)}
    if task == "regression":
        return _frame({PREDICTION: out[PREDICTION].to_numpy()}, [PREDICTION], test.index), details
    cols = [c for c in out.columns if c.startswith("proba_")]
    return _frame(out[cols].to_numpy(), [c.removeprefix("proba_") for c in cols], test.index), details


# Imported before a system's clock starts: the budget is for fitting, not for loading libraries.
IMPORTS = {
    "dagml": ("dagml.tasks", "dagml.predictors", "dagml.search", "dagml.families.sklearn", "sklearn.ensemble",
              "sklearn.linear_model", "sklearn.svm", "sklearn.neighbors", "hyperopt"),
    "autogluon": ("autogluon.tabular",),
    "flaml": ("flaml",),
    "random_forest": ("sklearn.ensemble",),
    "hist_gradient_boosting": ("sklearn.ensemble",),
}

SYSTEMS = {
    "dagml": run_dagml,
    "autogluon": run_autogluon,
    "flaml": run_flaml,
    "random_forest": run_random_forest,
    "hist_gradient_boosting": run_hist_gradient_boosting,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("system", choices=sorted(SYSTEMS))
    ap.add_argument("folder", type=Path)
    ap.add_argument("--task", required=True, choices=("binary", "multiclass", "regression"))
    ap.add_argument("--budget", type=float, required=True, help="seconds of fitting")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--dagml-families", default="", help="dagml only: these families, not the default queue's")
    args = ap.parse_args()
    import importlib
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("dagml.search").setLevel(logging.WARNING)  # a line per trial otherwise
    for module in IMPORTS[args.system]:
        importlib.import_module(module)
    train, test, digests = read_split(args.folder)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"bench-{args.system}-") as tmp:
        workdir = Path(tmp)
        (workdir / "train.parquet").write_bytes((args.folder / "train.parquet").read_bytes())
        extra = {"families": args.dagml_families.split(",")} if args.system == "dagml" and args.dagml_families else {}
        predictions, details = SYSTEMS[args.system](train, test, args.task, args.budget, args.seed, workdir, **extra)
        seconds = time.perf_counter() - started
        after = details.pop("after", None)
        if after is not None:  # off the clock: the ablation predictions of bench/quality/variants.py
            try:
                after(args.folder)
            except Exception as exc:  # noqa: BLE001 - an ablation never costs the system its result
                print(f"variants: {type(exc).__name__}: {exc}", file=sys.stderr)
    predictions.to_parquet(args.folder / f"{args.system}.predictions.parquet")
    write_info(args.folder / f"{args.system}.info.json",
               {"system": args.system, "digests": digests, "fit_seconds": seconds, "details": details,
                "python": sys.executable, "affinity": sorted(os.sched_getaffinity(0))})


if __name__ == "__main__":
    main()
