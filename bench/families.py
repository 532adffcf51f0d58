"""Every registered family, one comparable fit per bundled dataset; and the fixed cost of R and Spark.

Per dataset (``sklearn://breast_cancer`` binary, ``sklearn://wine`` multiclass,
``sklearn://diabetes`` regression) the shared split and recipe come from ``dagml.prepare``
exactly as the prepare/search tasks build them (holdout: test 0.2, validation 0.2 of the
rest, seed 42; scaled matrices for the families that declare ``needs_scaling``). Every
family that supports the task fits once at one fixed point: its own first ``init_points``
entry, or, for the families without one, a fixed point named in the output (r:svm gets
sklearn:svm's point; spark:gbt's init point with ``max_iter`` 20, since Spark's GBT runs a
job per iteration). We report:

- first fit: the first fit of the process at that point, which includes what a search pays
  once (R: the matrix crossing to R; Spark: the frame crossing to the JVM and cached, plus
  JIT warm-up);
- fit: the median of 3 further fits, interleaved across families (order reversed every
  other round), and its ratio to sklearn:elastic_net's median on the same data;
- the validation score with the task's default metric (``dagml.metrics``), plus a check that
  the prediction has the contract's shape (n, k) of finite probabilities summing to 1, or n
  finite values.

As in a search task, in the production path: the process pins the native pools to one thread
before numpy loads (``dagml.threads.pin_environment``, what a task process does first), and the
fits run inside ``dagml.threads.limit(1)`` as a search's do; Spark runs with dagml's ``session()``, i.e. ``local[*]``, both cores.

Fixed costs are measured in fresh subprocesses, interleaved, 5 times each: (a) ``import
dagml.families.r`` + the first ``_r()`` + ``importr`` of glmnet, ranger, gbm and e1071;
(b) ``dagml.families.spark.session()``; (c) ``python -c "import numpy"``, the floor
subtracted from the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from statistics import median

TMP = Path(tempfile.mkdtemp(prefix="dagml-bench-families-"))
# spark_master() asks Airflow for a connection first: keep Airflow's files out of the checkout and ~
os.environ.update(AIRFLOW_HOME=str(TMP / "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
# UI-only: no console progress bars in the output
os.environ.setdefault("PYSPARK_SUBMIT_ARGS", "--conf spark.ui.showConsoleProgress=false pyspark-shell")

sys.path.insert(0, str(Path(__file__).parent))
from _report import REPO, provenance, write_section  # noqa: E402

from dagml import threads  # noqa: E402

threads.pin_environment()  # as a task process does, before anything loads numpy

DATASETS = {"breast_cancer": "binary", "wine": "multiclass", "diabetes": "regression"}
R_PACKAGES = ("glmnet", "ranger", "gbm", "e1071")
REPEATS = 3
COLD_REPEATS = 5
SEED = 42
BASELINE = "sklearn:elastic_net"


def point(family, task: str) -> tuple[dict, str]:
    """The family's first init point, or a fixed one; and where it came from."""
    key = family.key()
    if key == "spark:gbt":
        return family.init_points(task)[0] | {"max_iter": 20}, "init point, max_iter 50 → 20"
    if points := family.init_points(task):  # hyperopt's raw values (a choice is an index): decode them
        from hyperopt import space_eval

        return space_eval(family.space(task, 1000, 10), points[0]), "init point"
    if key == "sklearn:dummy":
        return {"strategy": "mean" if task == "regression" else "prior"}, "fixed"
    if key == "sklearn:knn":
        return {"n_neighbors": 25, "weights": "uniform", "p": 2}, "fixed (mid-space k)"
    if key == "r:svm":
        p = {"cost": 1.0, "gamma": 0.01} | ({"epsilon": 0.1} if task == "regression" else {})
        return p, "sklearn:svm's init point"
    raise KeyError(f"no point for {key}: add one to bench/families.py")


def check_prediction(pred, n: int, task: str, k: int) -> str:
    """'' when the prediction keeps the Model contract, else what is wrong."""
    import numpy as np

    pred = np.asarray(pred, dtype=float)
    if task == "regression":
        if pred.shape != (n,):
            return f"shape {pred.shape}, expected ({n},)"
        return "" if np.isfinite(pred).all() else f"{int((~np.isfinite(pred)).sum())} non-finite values"
    if pred.shape != (n, k):
        return f"shape {pred.shape}, expected ({n}, {k})"
    if not np.isfinite(pred).all():
        return f"{int((~np.isfinite(pred)).sum())} non-finite probabilities"
    worst = float(np.abs(pred.sum(axis=1) - 1).max())
    if worst > 1e-6 or pred.min() < -1e-9:
        return f"rows sum to 1 ± {worst:.2g}, min {pred.min():.3g}"
    return ""


def load_everything():
    """Every native library a fit touches, loaded before the first fits, so they do not include it."""
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401
    import sklearn.calibration  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.neighbors  # noqa: F401
    import sklearn.svm  # noqa: F401
    from rpy2.robjects.packages import importr

    from dagml.families import r, spark

    r._r()
    for package in R_PACKAGES:
        importr(package)
    spark.session().sparkContext.setLogLevel("ERROR")


def dataset_runs(name: str, task: str) -> dict:
    from dagml.families import REGISTRY, get_family
    from dagml.metrics import DEFAULT_METRIC, get_metric
    from dagml.prepare import folds, make_recipe, make_split
    from dagml.sources import read_source

    df = read_source(f"sklearn://{name}")
    roles = make_split(df["target"], task, 0.2, "holdout", 0.2, 5, SEED)
    recipe = make_recipe(df, "target", task)
    k = len(recipe.get("classes", []))
    metric = get_metric(DEFAULT_METRIC[task])
    fold = {scale: folds(df, roles, recipe, scale)[0] for scale in (False, True)}
    rows = {}
    for key in sorted(REGISTRY):
        family = get_family(key)()
        if task not in family.tasks:
            rows[key] = {"skipped": f"{key} does not support {task} (its tasks: {', '.join(sorted(family.tasks))})"}
            continue
        params, source = point(family, task)
        rows[key] = {"family": family, "params": params, "source": source, "fold": fold[family.needs_scaling],
                     "times": [], "error": None}

    def fit_once(row) -> float:
        f = row["fold"]
        started = time.perf_counter()
        model = row["family"].fit(row["params"], f.X_train, f.y_train, task, k, SEED)
        seconds = time.perf_counter() - started
        pred = model.predict(f.X_valid)
        row["score"] = metric(f.y_valid, pred)
        row["contract"] = check_prediction(pred, len(f.y_valid), task, k)
        return seconds

    live = [key for key, row in rows.items() if "skipped" not in row]
    for key in live:  # first fit: data crossing to R / the JVM, JIT warm-up
        try:
            rows[key]["first"] = fit_once(rows[key])
        except Exception as exc:
            rows[key]["error"] = f"{type(exc).__name__}: {exc}"
            print(f"  {name} {key}: {rows[key]['error']}", file=sys.stderr, flush=True)
    live = [key for key in live if not rows[key]["error"]]
    for rep in range(REPEATS):
        for key in (live if rep % 2 == 0 else live[::-1]):
            rows[key]["times"].append(fit_once(rows[key]))
    base = median(rows[BASELINE]["times"])
    for key in live:
        rows[key]["fit"] = median(rows[key]["times"])
        rows[key]["ratio"] = rows[key]["fit"] / base
        print(f"  {name} {key}: fit {rows[key]['fit']:.4f} s, x{rows[key]['ratio']:.1f}, "
              f"{metric.name} {rows[key]['score']:.4f} {rows[key]['contract']}", file=sys.stderr, flush=True)
    return {"task": task, "metric": metric, "n_train": len(fold[False].y_train),
            "n_valid": len(fold[False].y_valid), "n_cols": fold[False].X_train.shape[1], "rows": rows,
            "dummy": rows["sklearn:dummy"].get("score")}


def fmt_s(seconds: float) -> str:
    return f"{seconds:.4f}" if seconds < 0.1 else f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def dataset_table(name: str, run: dict) -> str:
    metric = run["metric"]
    arrow = "higher is better" if metric.greater_is_better else "lower is better"
    lines = [f"**sklearn://{name}** ({run['task']}; {run['n_train']} training rows × {run['n_cols']} columns, "
             f"{run['n_valid']} validation rows; {metric.name}, {arrow})", "",
             f"| family | first fit s | fit s, median of {REPEATS} (range) | fit ratio to {BASELINE} | "
             f"validation {metric.name} | prediction |",
             "|---|---|---|---|---|---|"]
    for key, row in run["rows"].items():
        if "skipped" in row:
            lines.append(f"| {key} | – | – | – | – | n/a: {row['skipped']} |")
        elif row["error"]:
            lines.append(f"| {key} | – | – | – | – | **failed**: `{row['error'][:300]}` |")
        else:
            times = row["times"]
            lines.append(f"| {key} | {fmt_s(row['first'])} | {fmt_s(row['fit'])} ({fmt_s(min(times))}–"
                         f"{fmt_s(max(times))}) | {row['ratio']:.1f} | {row['score']:.4f} | "
                         f"{'ok' if not row['contract'] else '**' + row['contract'] + '**'} |")
    return "\n".join(lines)


# The cold starts: each child prints its own split of the time as JSON on its last line.
CHILD_R = f"""
import json, time
t0 = time.perf_counter()
import dagml.families.r as r
t1 = time.perf_counter()
r._r()
t2 = time.perf_counter()
from rpy2.robjects.packages import importr
for p in {R_PACKAGES!r}:
    importr(p)
t3 = time.perf_counter()
print(json.dumps({{"import dagml.families.r": t1 - t0, "first _r()": t2 - t1, "importr x4": t3 - t2}}))
"""
CHILD_SPARK = """
import json, time
t0 = time.perf_counter()
import dagml.families.spark as spark
from dagml.settings import spark_master
t1 = time.perf_counter()
master = spark_master()
t2 = time.perf_counter()
spark.session()
t3 = time.perf_counter()
print(json.dumps({"import dagml.families.spark": t1 - t0, "spark_master() (imports airflow.sdk)": t2 - t1,
                  "session() after that": t3 - t2, "master": master}))
"""
# The threads a search's fits get in a fresh task process started without *_NUM_THREADS (a worker
# that does not set them): the task pins them, imports dagml.tasks, and a search enters threads.limit(1).
CHILD_CAP = """
import json, os
for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.pop(name, None)
from dagml import threads
threads.pin_environment()
import dagml.factory, dagml.tasks
from threadpoolctl import threadpool_info
loaded = [d["internal_api"] for d in threadpool_info()]
with threads.limit(1):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
    inside = {d["internal_api"] + " " + d["filepath"].rsplit("/", 1)[-1]: d["num_threads"] for d in threadpool_info()}
    print(json.dumps({"loaded_before": loaded, "inside": inside, "openmp": _openmp_effective_n_threads()}))
"""


def hgb_threads(reps: int = 5) -> dict:
    """sklearn:hist_gradient_boosting on breast_cancer, 1 OpenMP thread vs all cores, interleaved."""
    from threadpoolctl import threadpool_limits

    from dagml.families import get_family
    from dagml.prepare import folds, make_recipe, make_split
    from dagml.sources import read_source

    df = read_source("sklearn://breast_cancer")
    recipe = make_recipe(df, "target", "binary")
    fold = folds(df, make_split(df["target"], "binary", 0.2, "holdout", 0.2, 5, SEED), recipe, False)[0]
    family = get_family("sklearn:hist_gradient_boosting")()
    params = family.init_points("binary")[0]
    out = {1: [], os.cpu_count(): []}
    for rep in range(reps):
        for limit in (list(out) if rep % 2 == 0 else list(out)[::-1]):
            with threadpool_limits(limits=limit):
                started = time.perf_counter()
                family.fit(params, fold.X_train, fold.y_train, "binary", 2, SEED)
                out[limit].append(time.perf_counter() - started)
    return out


def thread_cap() -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD_CAP], capture_output=True, text=True, env=os.environ.copy(),
                          cwd=TMP, check=True)
    return last_json(done.stdout)


CHILDREN = {"floor": 'import numpy; print("{}")', "R": CHILD_R, "Spark": CHILD_SPARK}


def last_json(stdout: str) -> dict:
    """The child's JSON line (Airflow's logging may print to stdout around it)."""
    return json.loads(next(line for line in reversed(stdout.splitlines()) if line.startswith("{")))


def cold_starts() -> dict:
    out = {name: {"wall": [], "parts": []} for name in CHILDREN}
    for rep in range(COLD_REPEATS):
        for name in (list(CHILDREN) if rep % 2 == 0 else list(CHILDREN)[::-1]):
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", CHILDREN[name]], capture_output=True, text=True,
                                  env=os.environ.copy(), cwd=TMP)
            wall = time.perf_counter() - started
            if done.returncode:
                raise RuntimeError(f"{name} child failed: {done.stderr[-2000:]}")
            out[name]["wall"].append(wall)
            out[name]["parts"].append(last_json(done.stdout))
    return out


def cold_table(cold: dict) -> str:
    floor = cold["floor"]["wall"]
    lines = ["| subprocess | wall s, median of 5 (range) | minus the floor, median of per-round differences | "
             "inside the child, medians |", "|---|---|---|---|"]
    for name, label in (("floor", '(c) `python -c "import numpy"` (the floor)'),
                        ("R", "(a) `import dagml.families.r`; `_r()`; `importr` × 4"),
                        ("Spark", "(b) `dagml.families.spark.session()`")):
        wall = cold[name]["wall"]
        extra = "–" if name == "floor" else f"**{median(w - f for w, f in zip(wall, floor)):.2f}**"
        parts = [p for p in cold[name]["parts"] if p]
        inside = "; ".join(f"{k} {median(p[k] for p in parts):.2f}" for k in (parts[0] if parts else {})
                           if k != "master")
        lines.append(f"| {label} | {median(wall):.2f} ({min(wall):.2f}–{max(wall):.2f}) | {extra} | {inside or '–'} |")
    return "\n".join(lines)


def main() -> None:
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    load_before = os.getloadavg()
    print("cold starts...", file=sys.stderr, flush=True)
    cold = cold_starts()  # first, while this process has neither R nor a JVM running beside the children
    load_everything()
    runs = {}
    with threads.limit(1):
        for name, task in DATASETS.items():
            print(f"{name}...", file=sys.stderr, flush=True)
            runs[name] = dataset_runs(name, task)
    from dagml.families import REGISTRY, get_family

    points = []
    for key in sorted(REGISTRY):
        family = get_family(key)()
        seen = []
        for task in DATASETS.values():
            if task in family.tasks:
                p, source = point(family, task)
                if (p, source) not in seen:
                    seen.append((p, source))
        points.append(f"- `{key}`: " + "; ".join(f"`{json.dumps(p)}` ({s})" for p, s in seen))
    failures = [f"- {name}, `{key}`: `{row['error']}`" for name, run in runs.items()
                for key, row in run["rows"].items() if row.get("error")]
    broken = [f"- {name}, `{key}`: {row['contract']}" for name, run in runs.items()
              for key, row in run["rows"].items() if row.get("contract")]
    worse = [f"`{key}` on {name} ({row['score']:.4f} vs the dummy's {run['dummy']:.4f})"
             for name, run in runs.items() for key, row in run["rows"].items()
             if "score" in row and key != "sklearn:dummy" and run["dummy"] is not None
             and not run["metric"].better(row["score"], run["dummy"])]
    cap = thread_cap()
    hgb = hgb_threads()
    one, many = hgb[1], hgb[os.cpu_count()]
    fits = {kind: [row["fit"] for run in runs.values() for key, row in run["rows"].items()
                   if key.startswith(kind + ":") and "fit" in row] for kind in ("sklearn", "r", "spark")}
    spread = ", ".join(f"{kind} {fmt_s(min(v))}–{fmt_s(max(v))} s" for kind, v in fits.items() if v)
    gbt_gap = [f"{name} {row['score']:.4f} (best other: {best:.4f})" for name, run in runs.items()
               for key, row in run["rows"].items() if key == "spark:gbt" and "score" in row
               for best in [(max if run["metric"].greater_is_better else min)(
                   r["score"] for k, r in run["rows"].items() if "score" in r and k != key)]]
    svm_note = ""
    if any("svm" in w and "diabetes" in w for w in worse):
        svm_note = ("The two SVMs on diabetes sit at the dummy's level because the regression target is not "
                    "scaled (diabetes: standard deviation about 77) while the point has C = 1 and epsilon = 0.1: "
                    "with C = 1 an RBF SVR's dual coefficients are bounded by 1, so its predictions barely "
                    "leave the intercept. A search moves C up (its space reaches about 1000); the init point "
                    "is wasted on any target whose scale is far from 1.")
    load_after = os.getloadavg()
    spark_session = median(p["session() after that"] for p in cold["Spark"]["parts"])
    tables = "\n\n".join(dataset_table(name, run) for name, run in runs.items())
    write_section("families", f"""## Families: one fit per family and dataset; R and Spark start-up

{provenance()} Total run time {time.perf_counter() - started:.0f} s; load average (1 min) {load_before[0]:.1f} at the
start and {load_after[0]:.1f} at the end, on {os.cpu_count()} cores: other work shared the machine throughout.

Every registered family on each bundled dataset, at one fixed point per family, on the shared
split and recipe of `dagml.prepare` (holdout: test 0.2, validation 0.2 of the rest, seed {SEED};
scaled matrices for the families with `needs_scaling`). "First fit" is the process's first fit
at that point: it includes what a search pays once per task (the matrix crossing to R, the frame
crossing to the JVM and cached, JIT warm-up). "Fit" is the median of {REPEATS} further fits, interleaved
across the families (order reversed every other round); the ratio is that median over
`{BASELINE}`'s on the same data, whose fits take milliseconds, so ratios of the sub-10 ms
fits are rough. The score is on the validation rows with the task's default metric; "prediction"
checks the Model contract (n × k finite probabilities summing to 1, or n finite values).
Native thread pools are capped to one thread, as a search task means to (see the note below);
Spark uses dagml's `session()`, i.e. `local[*]`: both cores, so Spark's figures had twice the cores.

{tables}

Points (values as `fit` receives them):

{chr(10).join(points)}

Median fit times across the three datasets: {spread}. Every Spark fit is a series of jobs
on the JVM (spark:linear: one per optimiser iteration; spark:gbt: at least one per boosting
iteration), and on a few hundred rows that overhead is the whole cost: spark:gbt's point is its
init point with `max_iter` cut from 50 to 20 to keep this run short, which also costs it score
({"; ".join(gbt_gap)}). spark:gbt's classifier is binary-only in Spark (the family declares
it), hence n/a on wine.

Failed fits: {"none." if not failures else chr(10) + chr(10).join(failures)}

Predictions breaking the contract: {"none." if not broken else chr(10) + chr(10).join(broken)}

Not better than the dummy at this point: {", ".join(worse) if worse else "none"}. {svm_note}

Thread cap, in the production path: a fresh process started without `*_NUM_THREADS` (a worker
that does not set them) does what a task process does: `dagml.threads.pin_environment()` before
numpy loads, imports `dagml.factory` and `dagml.tasks` (native pools loaded then:
{", ".join(cap["loaded_before"]) or "none"}), and enters `dagml.threads.limit(1)` as a search does.
After importing scikit-learn's `HistGradientBoostingClassifier` inside it, the thread pools are
`{json.dumps(cap["inside"])}` and scikit-learn's effective OpenMP threads
{cap["openmp"]}{" (the cap did not reach it)" if cap["openmp"] > 1 else " (the cap reached every pool)"}. The figures
above come from this process, pinned the same way. What the cap is for, on this machine in this
run: sklearn:hist_gradient_boosting on breast_cancer at its init point, interleaved, 5 fits each:
1 OpenMP thread {fmt_s(median(one))} s ({fmt_s(min(one))}–{fmt_s(max(one))}), {os.cpu_count()} threads
{fmt_s(median(many))} s ({fmt_s(min(many))}–{fmt_s(max(many))}): median ratio
{median(m / o for m, o in zip(many, one)):.1f}× (OpenMP's spin-waiting on cores that other processes are using).

### Fixed cost of R and Spark inside a task

Fresh subprocesses (`{Path(sys.executable).relative_to(REPO) if sys.executable.startswith(str(REPO)) else sys.executable} -c ...`),
run interleaved {COLD_REPEATS} times each (order reversed every other round); "minus the floor" is each run's wall
time minus the floor's in the same round, then the median: what a task pays the first time it
touches R or Spark, over a Python that imports numpy. Wall includes the child's exit (for Spark,
stopping the JVM). Inside the Spark child, `spark_master()` imports `airflow.sdk` to look up the
`dagml_spark` connection: a real task has paid that import already, so a Spark task's own extra
cost is nearer the `session()` part ({spark_session:.2f} s).

{cold_table(cold)}
""")


if __name__ == "__main__":
    main()
