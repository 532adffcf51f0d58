"""Model quality at equal compute: dagml against AutoGluon, FLAML and two untuned scikit-learn models.

The protocol follows the AutoML Benchmark's: for each dataset of ``datasets.csv`` and each seed,
one 75/25 split (stratified for classification) that every system gets as the same Parquet
files; each system fits on the 75% in its own process (its own venv for AutoGluon and FLAML),
pinned to one core with ``taskset``, with the same budget in seconds, and is killed from outside
at ``budget * KILL_FACTOR + STARTUP_SECONDS``; it writes its predictions of the 25% to a file, and
this process scores them with ``dagml.metrics`` (ROC AUC for binary, log loss for multiclass,
RMSE for regression). A system whose own fit-and-predict time passes ``OVERRUN * budget`` is
marked as overrun. Every result is a row appended to a CSV at once, so a run that stops
resumes where it stopped (rows already there are skipped).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import datasets as dataset_list  # noqa: E402
from exchange import PREDICTION, TARGET, row_digest  # noqa: E402

REPO = HERE.parents[1]
SYSTEMS = ("dagml", "autogluon", "flaml", "hist_gradient_boosting", "random_forest")
VENVS = {"autogluon": REPO / "bench" / ".venv-autogluon", "flaml": REPO / "bench" / ".venv-flaml"}
METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
TEST_SIZE = 0.25
OVERRUN = 1.10
KILL_FACTOR = 1.5
STARTUP_SECONDS = 30.0  # interpreter and library imports happen before a system's clock starts
FIELDS = ("dataset", "seed", "system", "budget", "metric", "score", "seconds", "wall_seconds", "overrun", "error")
RESULTS = HERE / "results.csv"
WORK = HERE / ".work"
# --long: 300 s on a subset, in files of their own
LONG_RESULTS = HERE / "results-long.csv"
LONG_WORK = HERE / ".work-long"


def default_files(long: bool) -> tuple[Path, Path]:
    """(results CSV, work folder) when the command line names neither: --long's or the 60 s ones."""
    return (LONG_RESULTS, LONG_WORK) if long else (RESULTS, WORK)
# The environment the systems start in, taken before rpy2 loads R (which prepends R's and the
# system's library folders to LD_LIBRARY_PATH, where a child's Python then finds a foreign libpython).
BASE_ENV = dict(os.environ)
ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


class MissingVenv(RuntimeError):
    pass


def python_of(system: str) -> Path:
    """The interpreter a system runs in: its own venv for AutoGluon and FLAML, dagml's otherwise."""
    venv = VENVS.get(system, REPO / ".venv")
    python = venv / "bin" / "python"
    if not python.exists():
        hint = "run `make bench-venvs`" if system in VENVS else "run `make install`"
        raise MissingVenv(f"{system}: no interpreter at {python}; {hint} to build {venv.name}")
    return python


@dataclass
class Split:
    folder: Path
    y_test: object  # labels (text) or values, in the order of test.parquet's rows
    classes: list[str] | None
    digests: dict


def make_split(df, task: str, seed: int, folder: Path) -> Split:
    """The seed's 75/25 split, written once for every system to read."""
    from sklearn.model_selection import train_test_split

    stratify = df[TARGET] if task != "regression" else None
    train, test = train_test_split(df, test_size=TEST_SIZE, random_state=seed, stratify=stratify)
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    features = test.drop(columns=[TARGET])
    folder.mkdir(parents=True, exist_ok=True)
    train.to_parquet(folder / "train.parquet", index=False)
    features.to_parquet(folder / "test.parquet", index=False)
    classes = sorted(df[TARGET].unique().tolist()) if task != "regression" else None
    # the digests of the files as read back, which is what each system reads
    import pandas as pd

    digests = {"train": row_digest(pd.read_parquet(folder / "train.parquet")),
               "test": row_digest(pd.read_parquet(folder / "test.parquet"))}
    return Split(folder, test[TARGET].to_numpy(), classes, digests)


def score(split: Split, task: str, predictions) -> tuple[str, float]:
    """(metric name, score) of a system's predictions of the test rows, by dagml's metric code."""
    import numpy as np

    from dagml.metrics import get_metric

    metric = get_metric(METRIC[task])
    if len(predictions) != len(split.y_test):
        raise ValueError(f"{len(predictions)} predictions for {len(split.y_test)} test rows")
    if split.classes is None:
        return metric.name, metric(split.y_test.astype(float), predictions[PREDICTION].to_numpy(dtype=float))
    unknown = set(predictions.columns) - set(split.classes)
    if unknown:
        raise ValueError(f"probabilities for classes the data does not have: {sorted(unknown)}")
    proba = predictions.reindex(columns=split.classes, fill_value=0.0).to_numpy(dtype=float)
    proba = proba / proba.sum(axis=1, keepdims=True)  # a class a system never saw gets 0
    index = {c: i for i, c in enumerate(split.classes)}
    y = np.array([index[v] for v in split.y_test])
    return metric.name, metric(y, proba)


@dataclass(frozen=True)
class DagmlOptions:
    """Which dagml is measured: ``source``, a folder holding a ``dagml`` package (an export of a
    commit, for a fixed "before"), instead of the installed one; ``families`` instead of every
    family of the default queue."""

    source: Path | None = None
    families: tuple[str, ...] = ()


def run_system(system: str, split: Split, task: str, budget: float, seed: int, core: int,
               dagml: DagmlOptions = DagmlOptions(), startup: float = 0.0) -> dict:
    """One system on one split in its own process; the row for the results CSV (less dataset)."""
    import pandas as pd

    python = python_of(system)
    for stale in (f"{system}.predictions.parquet", f"{system}.info.json"):
        (split.folder / stale).unlink(missing_ok=True)
    cmd = ["taskset", "-c", str(core), str(python), str(HERE / "runner.py"), system, str(split.folder),
           "--task", task, "--budget", f"{budget:g}", "--seed", str(seed)]
    env = {**BASE_ENV, **ONE_THREAD, "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)  # each venv sees only its own packages
    if system == "dagml":
        if dagml.families:
            cmd += ["--dagml-families", ",".join(dagml.families)]
        if dagml.source is not None:
            env["PYTHONPATH"] = str(dagml.source)
    row = {"system": system, "seed": seed, "budget": budget, "metric": METRIC[task], "score": "", "seconds": "",
           "overrun": False, "error": ""}
    started = time.perf_counter()
    log = (split.folder / f"{system}.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        proc.wait(timeout=budget * KILL_FACTOR + (startup or STARTUP_SECONDS))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        row.update(overrun=True, error=f"killed after {time.perf_counter() - started:.0f} s")
    finally:
        log.close()
    row["wall_seconds"] = round(time.perf_counter() - started, 1)
    if row["error"]:
        return row
    if proc.returncode != 0:
        tail = (split.folder / f"{system}.log").read_text(errors="replace").strip().splitlines()[-1:]
        row["error"] = f"exit {proc.returncode}: {tail[0][:300] if tail else ''}"
        return row
    info = json.loads((split.folder / f"{system}.info.json").read_text())
    if info["digests"] != split.digests:
        row["error"] = f"read other rows than the split's: {info['digests']} != {split.digests}"
        return row
    row["seconds"] = round(info["fit_seconds"], 1)
    row["overrun"] = info["fit_seconds"] > OVERRUN * budget
    try:
        row["metric"], value = score(split, task, pd.read_parquet(split.folder / f"{system}.predictions.parquet"))
        row["score"] = value
    except Exception as exc:
        row["error"] = f"cannot score: {type(exc).__name__}: {exc}"
    return row


def done_rows(path: Path) -> set[tuple]:
    if not path.exists():
        return set()
    with path.open(newline="") as fh:
        return {(r["dataset"], int(r["seed"]), r["system"], float(r["budget"])) for r in csv.DictReader(fh)}


def append_row(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in FIELDS})


def run(datasets, seeds, systems, budget: float, results: Path, work: Path, core: int, say=print,
        dagml: DagmlOptions = DagmlOptions(), startup: float = 0.0) -> list[dict]:
    """Every (dataset, seed, system) not in ``results`` yet, one at a time; the rows it added."""
    for system in systems:
        python_of(system)  # a missing venv fails now, not an hour in
    done, added = done_rows(results), []
    for ds in datasets:
        todo = [(s, m) for s in seeds for m in systems if (ds.name, s, m, float(budget)) not in done]
        if not todo:
            continue
        df = dataset_list.load(ds)
        for seed in seeds:
            pending = [m for s, m in todo if s == seed]
            if not pending:
                continue
            split = make_split(df, ds.task, seed, work / ds.name / f"seed{seed}")
            for system in pending:
                row = {"dataset": ds.name, **run_system(system, split, ds.task, budget, seed, core, dagml, startup)}
                append_row(results, row)
                added.append(row)
                say(f"{ds.name} seed {seed} {system}: {row['metric']} {row['score']} in {row['seconds']} s"
                    f"{' OVERRUN' if row['overrun'] else ''}{' ERROR ' + row['error'] if row['error'] else ''}")
    return added


def record_command(results: Path) -> None:
    """The command line, appended beside the results: the report quotes every command that wrote them."""
    import shlex
    from datetime import datetime, timezone

    argv = [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]]
    results.parent.mkdir(parents=True, exist_ok=True)
    with results.with_suffix(".commands.txt").open("a") as fh:
        fh.write(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC  taskset -c {','.join(map(str, sorted(os.sched_getaffinity(0))))} "
                 f".venv/bin/python {shlex.join(argv)}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=60.0, help="seconds per system and split (default 60)")
    ap.add_argument("--long", action="store_true", help="300 s on the --long-datasets subset")
    ap.add_argument("--long-datasets", default="breast_cancer,vehicle,dna,satellite,boston_housing,diamonds")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--datasets", default="", help="comma-separated names (default: every listed dataset)")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--core", type=int, default=1, help="the core every system is pinned to")
    ap.add_argument("--dagml-source", type=Path, help="a folder holding the dagml package to measure "
                    "(e.g. `git archive <commit> include | tar -x -C DIR`, then DIR/include)")
    ap.add_argument("--dagml-families", default="", help="instead of every family of the default queue")
    ap.add_argument("--results", type=Path, help=f"default {RESULTS.name}, {LONG_RESULTS.name} with --long")
    ap.add_argument("--work", type=Path, help="where the splits and predictions go")
    args = ap.parse_args()
    results, work = default_files(args.long)
    args.results, args.work = args.results or results, args.work or work
    listed = dataset_list.read_list()
    names = args.long_datasets if args.long and not args.datasets else args.datasets
    if names:
        wanted = names.split(",")
        unknown = set(wanted) - {d.name for d in listed}
        if unknown:
            sys.exit(f"--datasets: {', '.join(sorted(unknown))} not in {dataset_list.LIST}")
        by_name = {d.name: d for d in listed}
        listed = [by_name[n] for n in wanted]  # in the order given, so a partial run covers what comes first
    budget = 300.0 if args.long else args.budget
    seeds = [int(s) for s in args.seeds.split(",")]
    systems = args.systems.split(",")
    bad = set(systems) - set(SYSTEMS)
    if bad:
        sys.exit(f"--systems: unknown {', '.join(sorted(bad))}; valid: {', '.join(SYSTEMS)}")
    record_command(args.results)
    try:
        options = DagmlOptions(args.dagml_source.resolve() if args.dagml_source else None,
                               tuple(filter(None, args.dagml_families.split(","))))
        run(listed, seeds, systems, budget, args.results, args.work, args.core,
            say=lambda m: print(m, flush=True), dagml=options)
    except MissingVenv as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
