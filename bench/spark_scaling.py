"""Spark ML vs scikit-learn training time as the rows grow: where does Spark start to pay here?

Synthetic binary classification (``sklearn.datasets.make_classification``, 20 features of
which 10 informative, seeded), standardised as dagml's recipe would, at 100k, 1M and 10M
training rows, plus 20k validation rows scored by both sides (roc_auc) to show the two
models of a pair are the same model. Two pairs, each fitted through dagml's own families
(``family.fit``), on the same rows already in memory:

- sklearn:elastic_net (saga) vs spark:linear at the same elastic-net point: Spark's
  ``regParam`` is glmnet's lambda, and scikit-learn's C = 1 / (n * lambda);
- sklearn:hist_gradient_boosting vs spark:gbt at comparable small points (20 boosting
  iterations, learning rate 0.1, at most 16 leaves vs depth 4).

Only ``fit`` is timed. The Spark side's training frame is built, cached and counted before
(``SparkFamily._cached_frame``, what a search pays once per task; reported as "to the
JVM"), and the JVM is warmed up by one short untimed fit of each estimator on 10k rows.
The two sides run interleaved (sklearn first in even rounds, Spark first in odd ones).
scikit-learn runs capped to one native thread, as a dagml search task means to; the
boosting pair is also fitted once per size with every core, since Spark's ``local[*]``
uses both. A fit is capped at CAP seconds: a Spark fit still running then has its jobs
cancelled; a model whose fit exceeded the cap, or whose projected time at the next size
does, is skipped there. The whole script aims at BUDGET seconds.
"""

from __future__ import annotations

import gc
import json
import math
import os
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from statistics import median

TMP = Path(tempfile.mkdtemp(prefix="dagml-bench-spark-"))
os.environ.update(AIRFLOW_HOME=str(TMP / "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
os.environ.setdefault("PYSPARK_SUBMIT_ARGS", "--conf spark.ui.showConsoleProgress=false pyspark-shell")

sys.path.insert(0, str(Path(__file__).parent))
from _report import provenance, write_section  # noqa: E402

SIZES = [100_000, 1_000_000, 10_000_000]
ROUNDS = {100_000: 2, 1_000_000: 1, 10_000_000: 1}
VALID = 20_000
CAP = 600.0
BUDGET = 40 * 60.0
SEED = 0
LAMBDA, ALPHA = 1e-3, 0.5
PAIRS = {
    "linear": ("sklearn:elastic_net", lambda n: {"C": 1 / (n * LAMBDA), "l1_ratio": ALPHA},
               "spark:linear", lambda n: {"reg": LAMBDA, "elastic_net": ALPHA}),
    "boosting": ("sklearn:hist_gradient_boosting",
                 lambda n: {"learning_rate": 0.1, "max_iter": 20, "max_leaf_nodes": 16, "min_samples_leaf": 20,
                            "l2_regularization": 1e-6},
                 "spark:gbt", lambda n: {"max_iter": 20, "max_depth": 4, "step_size": 0.1, "subsampling": 1.0}),
}
STARTED = time.perf_counter()
# After each size the state goes here; `--resume` continues from it (a run killed from outside keeps its sizes).
STATE = Path(tempfile.gettempdir()) / "dagml-bench-spark-scaling.state.json"
PRIOR = {"seconds": 0.0}  # run time of the invocations this one resumes


def elapsed() -> float:
    return PRIOR["seconds"] + time.perf_counter() - STARTED


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.0f} s] {message}", file=sys.stderr, flush=True)


def data(n: int):
    import numpy as np
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n + VALID, n_features=20, n_informative=10, n_redundant=5,
                               random_state=SEED)
    X -= X[:n].mean(axis=0)
    X /= X[:n].std(axis=0)
    return np.ascontiguousarray(X[:n]), y[:n], X[n:], y[n:]


def iterations(model) -> str:
    inner = getattr(model, "estimator", None) or getattr(model, "model", None)
    if hasattr(inner, "n_iter_"):
        return str(int(max(inner.n_iter_)) if hasattr(inner.n_iter_, "__len__") else int(inner.n_iter_))
    if hasattr(inner, "getNumTrees"):
        return str(inner.getNumTrees)
    try:
        return str(inner.summary.totalIterations)
    except Exception:
        return "?"


def timed_fit(family, params, X, y, cap: float):
    """(seconds, model, error). A Spark fit past ``cap`` has its jobs cancelled."""
    timer = None
    if family.kind == "spark":
        from dagml.families.spark import session

        timer = threading.Timer(cap, session().sparkContext.cancelAllJobs)
        timer.start()
    started = time.perf_counter()
    try:
        model = family.fit(params, X, y, "binary", 2, 42)
        return time.perf_counter() - started, model, None
    except Exception as exc:
        seconds = time.perf_counter() - started
        cut = seconds >= cap - 1
        return seconds, None, (f"cancelled after {seconds:.0f} s (cap {cap:.0f} s)" if cut
                               else f"{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        if timer:
            timer.cancel()


def warm_up() -> None:
    """One short untimed fit of each Spark estimator, so the first timed fit carries no JIT warm-up."""
    from pyspark.ml.classification import GBTClassifier, LogisticRegression

    from dagml.families.spark import _frame, session

    session().sparkContext.setLogLevel("ERROR")
    X, y, _, _ = data(10_000)
    frame = _frame(X, y).cache()
    LogisticRegression(regParam=LAMBDA, elasticNetParam=ALPHA, maxIter=10, standardization=False).fit(frame)
    GBTClassifier(maxIter=3, maxDepth=4).fit(frame)
    frame.unpersist()


def cached_storage(spark) -> str:
    """Where the cached training frame sits: memory and disk sizes, as Spark's storage status reports them."""
    try:
        infos = spark.sparkContext._jsc.sc().getRDDStorageInfo()
        mem = sum(i.memSize() for i in infos)
        disk = sum(i.diskSize() for i in infos)
        cached = sum(i.numCachedPartitions() for i in infos)
        total = sum(i.numPartitions() for i in infos)
        return f"{mem / 2**20:.0f} MiB in memory, {disk / 2**20:.0f} MiB on disk ({cached}/{total} partitions cached)"
    except Exception as exc:  # a diagnostic only
        return f"? ({type(exc).__name__})"


def project(times: dict, key: str, n: int) -> float | None:
    """Seconds at ``n`` rows, from the last two sizes' growth (exponent clamped to [0, 1]), or linear from one."""
    known = sorted((m, t) for m, t in times.get(key, {}).items() if t is not None)
    if not known:
        return None
    (m1, t1) = known[-1]
    b = 1.0
    if len(known) >= 2:
        m0, t0 = known[-2]
        b = min(1.0, max(0.0, math.log(t1 / t0) / math.log(m1 / m0)))
    return t1 * (n / m1) ** b


def main() -> None:
    warnings.filterwarnings("ignore")
    import numpy  # noqa: F401  (every native library loaded before the thread cap, which reaches only those)
    import scipy.linalg  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    from threadpoolctl import threadpool_limits

    from dagml.families import get_family
    from dagml.families.spark import session
    from dagml.metrics import get_metric

    auc = get_metric("roc_auc")
    load_before = os.getloadavg()
    results = []  # one dict per (size, pair)
    measured: dict[str, dict[int, float | None]] = {}  # family key -> rows -> median seconds (None: over cap)
    notes = []
    resumed = []  # [UTC start, sizes] of the earlier invocations
    if "--resume" in sys.argv[1:] and STATE.exists():
        state = json.loads(STATE.read_text())
        results, notes, resumed = state["results"], state["notes"], state["done"]
        measured = {k: {int(n): t for n, t in v.items()} for k, v in state["measured"].items()}
        PRIOR["seconds"], load_before = state["seconds"], tuple(state["load_before"])
        log(f"resuming {STATE}: {sorted({r['n'] for r in results})} rows done")
    else:
        STATE.unlink(missing_ok=True)
    this_start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    log("warming up the JVM")
    warm_up()
    spark_fams = {pair[2]: get_family(pair[2])() for pair in PAIRS.values()}
    for n in SIZES:
        if any(r["n"] == n for r in results):
            continue
        left = BUDGET - elapsed()
        plan = {}
        for name, (sk_key, _, sp_key, _) in PAIRS.items():
            for key in (sk_key, sp_key):
                over = any(t is None for t in measured.get(key, {}).values())
                guess = project(measured, key, n)
                # a Spark fit is cancelled at the cap, so one small size (overhead-bound) is not enough to skip it
                sure = key.startswith("sklearn:") or len(measured.get(key, {})) >= 2
                if over:
                    plan[key] = f"skipped: a fit at a smaller size exceeded the {CAP:.0f} s cap"
                elif guess is not None and guess > CAP and sure:
                    plan[key] = f"skipped: projected {guess:.0f} s > the {CAP:.0f} s cap"
                else:
                    plan[key] = None
        projected_total = sum(ROUNDS[n] * min(CAP, project(measured, k, n) or 0) for k, v in plan.items() if v is None)
        heap = session().sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory()
        payload = n * 22 * 8  # 20 features, label and row number as 8-byte values: the least the JVM must hold
        if payload > heap:
            # pandas -> Arrow -> PythonSQLUtils.toDataFrame collects every Arrow batch in the driver's heap
            too_big = (f"the training frame ({payload / 2**30:.1f} GiB of values) is larger than the Spark "
                       f"driver's heap ({heap / 2**30:.1f} GiB; dagml's `session()` leaves `spark.driver.memory` "
                       f"at Spark's default), and pandas → Arrow → `createDataFrame` collects every Arrow batch "
                       f"in that heap")
            notes.append(f"At {n:,} rows, Spark could not have run anyway: {too_big}.")
            for pair in PAIRS.values():
                if plan[pair[2]] is None:
                    plan[pair[2]] = f"skipped: {too_big}"
        if n != SIZES[0] and projected_total > left:
            notes.append(f"{n:,} rows not run: the fits were projected at {projected_total:.0f} s with "
                         f"{left:.0f} s of the {BUDGET:.0f} s budget left.")
            log(notes[-1])
            break
        log(f"{n:,} rows: generating")
        started = time.perf_counter()
        X, y, Xv, yv = data(n)
        gen_s = time.perf_counter() - started
        jvm_s, jvm_error, storage = None, None, None
        if any(plan[pair[2]] is None for pair in PAIRS.values()):
            log(f"{n:,} rows: to the JVM")
            started = time.perf_counter()
            try:
                frame = spark_fams["spark:linear"]._cached_frame(X, y)
                frame.count()
                for fam in spark_fams.values():
                    fam._cache = spark_fams["spark:linear"]._cache
                jvm_s = time.perf_counter() - started
                storage = cached_storage(session())
            except Exception as exc:
                jvm_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                for pair in PAIRS.values():
                    plan[pair[2]] = f"skipped: the frame did not reach the JVM ({jvm_error})"
        for name, (sk_key, sk_params, sp_key, sp_params) in PAIRS.items():
            row = {"n": n, "pair": name, "sk": sk_key, "sp": sp_key, "gen": gen_s, "jvm": jvm_s, "storage": storage,
                   "times": {sk_key: [], sp_key: []}, "iters": {}, "auc": {}, "error": {}, "plan": dict(plan)}
            results.append(row)
        for rnd in range(ROUNDS[n]):
            for row in (r for r in results if r["n"] == n):
                sides = [(row["sk"], PAIRS[row["pair"]][1]), (row["sp"], PAIRS[row["pair"]][3])]
                for key, params in (sides if rnd % 2 == 0 else sides[::-1]):
                    if plan[key] is not None or row["error"].get(key):
                        continue
                    family = spark_fams.get(key) or get_family(key)()
                    remaining = BUDGET - elapsed()
                    log(f"{n:,} rows, round {rnd + 1}: {key}")
                    with threadpool_limits(limits=1):
                        seconds, model, error = timed_fit(family, params(n), X, y, min(CAP, max(60.0, remaining)))
                    log(f"  {seconds:.1f} s {error or ''}")
                    if error:
                        row["error"][key] = error
                        if error.startswith("cancelled"):
                            row.setdefault("cut", {})[key] = seconds
                        measured.setdefault(key, {})[n] = None
                        continue
                    row["times"][key].append(seconds)
                    if rnd == 0:
                        row["iters"][key] = iterations(model)
                        row["auc"][key] = auc(yv, model.predict(Xv))
                    if rnd == 0 and key == "sklearn:hist_gradient_boosting":
                        log(f"{n:,} rows: {key} with every core")
                        seconds, model, error = timed_fit(family, params(n), X, y, CAP)
                        row["all_cores"] = seconds if not error else error
                    del model
        for row in (r for r in results if r["n"] == n):
            for key, times in row["times"].items():
                if times and not row["error"].get(key):
                    measured.setdefault(key, {})[n] = median(times)
        for fam in spark_fams.values():
            if getattr(fam, "_cache", None):
                fam._cache[2].unpersist()
                fam._cache = None
        del X, y, Xv, yv
        gc.collect()
        mine = sorted({r["n"] for r in results} - {m for _, ns in resumed for m in ns})
        STATE.write_text(json.dumps({"results": results, "notes": notes, "done": resumed + [[this_start, mine]],
                                     "measured": measured, "seconds": elapsed(), "load_before": load_before},
                                    default=str))
        if n != SIZES[-1]:  # a run cut short still leaves the sizes it finished in the doc
            write(results, notes + [f"(Partial: written after {n:,} rows; the run went on to larger sizes.)"],
                  session(), load_before, os.getloadavg(), resumed)
    log(f"state: {STATE}")
    write(results, notes, session(), load_before, os.getloadavg(), resumed)


def cell(row, key) -> str:
    if row["plan"].get(key):
        return row["plan"][key]
    if row["error"].get(key):
        return f"**{row['error'][key]}**"
    times = row["times"][key]
    if not times:
        return "–"
    return f"{median(times):.1f}" + (f" ({min(times):.1f}–{max(times):.1f})" if len(times) > 1 else "")


def resumed_note(resumed) -> str:
    earlier = [(when, ns) for when, ns in resumed if ns]
    if not earlier:
        return ""
    parts = "; ".join(f"{', '.join(f'{n:,}' for n in ns)} rows by the invocation started {when}" for when, ns in earlier)
    return (f", over {len(resumed) + 1} invocations (an earlier one was ended from outside, and this one resumed "
            f"its checkpoint with `--resume`: {parts}; both sides of every size ran in one invocation)")


def seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def write(results, notes, spark, load_before, load_after, resumed=()) -> None:
    from dagml.families import get_family

    LINEAR = get_family("spark:linear")().spark_params(PAIRS["linear"][3](1), "binary", 42)  # noqa: N806
    lines = ["| rows | pair | rounds | scikit-learn s | Spark s | Spark / scikit-learn | iterations (sk / Spark) "
             "| validation roc_auc (sk / Spark) |", "|---|---|---|---|---|---|---|---|"]
    verdicts = []  # (rows, pair, Spark / scikit-learn, is a lower bound)
    for row in results:
        sk, sp = row["sk"], row["sp"]
        ts, tp = row["times"][sk], row["times"][sp]
        cut = row.get("cut", {}).get(sp)
        ratio = "–"
        if ts and tp:
            verdicts.append((row["n"], row["pair"], median(b / a for a, b in zip(ts, tp)), False))
            ratio = f"**{verdicts[-1][2]:.1f}**"
        elif ts and cut:
            verdicts.append((row["n"], row["pair"], cut / median(ts), True))
            ratio = f"**> {verdicts[-1][2]:.0f}**"
        aucs = " / ".join(f"{row['auc'][k]:.4f}" if k in row["auc"] else "–" for k in (sk, sp))
        iters = " / ".join(row["iters"].get(k, "–") for k in (sk, sp))
        rounds = max(len(ts), len(tp), 1 if cut else 0)
        lines.append(f"| {row['n']:,} | `{sk}` vs `{sp}` | {rounds} | {cell(row, sk)} | {cell(row, sp)} | {ratio} | "
                     f"{iters} | {aucs} |")
        if "all_cores" in row:
            ac = row["all_cores"]
            if not isinstance(ac, float):
                lines.append(f"| {row['n']:,} | `{sk}`, every core | 1 | {ac} | | | | |")
                continue
            ratio_ac = (f"**{median(tp) / ac:.1f}**" if tp else f"**> {cut / ac:.0f}**" if cut else "–")
            lines.append(f"| {row['n']:,} | `{sk}` with every core ({os.cpu_count()} OpenMP threads), 1 fit, "
                         f"vs the same `{sp}` fits | 1 | {ac:.1f} | {cell(row, sp)} | {ratio_ac} | | |")
    sizes = sorted({row["n"] for row in results})
    first = {n: next(r for r in results if r["n"] == n) for n in sizes}
    setup = "\n".join(f"| {n:,} | {r['gen']:.1f} | {seconds(r['jvm'])} | {r['storage'] or '–'} |"
                      for n, r in first.items())
    pays = [f"{p} at {n:,} rows ({r:.1f})" for n, p, r, bound in verdicts if r < 1 and not bound]
    trend = "; ".join(
        f"{p}: Spark / scikit-learn " + " → ".join(f"{'> ' if b else ''}{r:.1f} at {n:,} rows"
                                                   for n, pp, r, b in verdicts if pp == p)
        for p in PAIRS if any(pp == p for _, pp, _, _ in verdicts))
    verdict = (f"Spark is faster in: {', '.join(pays)}." if pays else
               "Spark never pays here: at every size measured it is slower than scikit-learn on the same rows.")
    write_section("spark_scaling", f"""## Spark ML vs scikit-learn as rows grow (local[*], 2 cores)

{provenance()} Total run time {elapsed():.0f} s{resumed_note(resumed)}; load average (1 min)
{load_before[0]:.1f} at the start and {load_after[0]:.1f} at the end, on {os.cpu_count()} cores; Spark {spark.version},
master `{spark.sparkContext.master}` ({spark.sparkContext.defaultParallelism} cores), dagml's `session()` unchanged
(driver memory left at Spark's default).

`make_classification` (20 features, 10 informative, 5 redundant, seed {SEED}), standardised;
fits through dagml's families (`family.fit`) on the same rows already in memory, the two sides
interleaved (scikit-learn first in even rounds, Spark first in odd ones), the ratio per round
then its median. Points: elastic net at lambda = {LAMBDA:g}, l1 share {ALPHA} (spark:linear
`reg` = lambda; sklearn:elastic_net `C` = 1 / (n × lambda), saga); boosting with 20 iterations,
learning rate 0.1, at most 16 leaves (`max_leaf_nodes` 16, `min_samples_leaf` 20, 255 bins)
vs `max_depth` 4 (Spark's defaults: 32 bins, `minInstancesPerNode` 1), no subsampling.
spark:linear is dagml's family as is: `maxIter` {LINEAR['maxIter']} and `tol` {LINEAR['tol']:g} (the iterations column
shows how many it ran), each iteration a Spark job; saga stops at its own tolerance (1e-4). scikit-learn is capped to one native
thread as in a dagml search task (saga is single-threaded anyway); the boosting pair is also
fitted once per size with every core, since Spark uses both. roc_auc is on {VALID:,} further rows:
equal values show the pair fits the same model. Cap: {CAP:.0f} s per fit (a Spark fit past it is
cancelled); a model that exceeded it, or whose projected time (from its growth between the last
two sizes, exponent clamped to [0, 1]) does, is skipped at the next size; budget {BUDGET / 60:.0f} min.

| rows | pair | rounds | scikit-learn s | Spark s | Spark / scikit-learn | iterations (sk / Spark) | validation roc_auc (sk / Spark) |
{chr(10).join(lines[1:])}

Not timed, for scale: generating the data, and the training frame crossing to the JVM
(`_cached_frame` + `count()`: pandas → Arrow → a cached Spark frame with a vector column),
which a Spark search pays once per task, seconds:

| rows | generate | to the JVM | the cached frame, after `count()` |
|---|---|---|---|
{setup}

{" ".join(notes)}

{trend}. {verdict}
""")


if __name__ == "__main__":
    main()
