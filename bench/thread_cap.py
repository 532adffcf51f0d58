"""Native threads on a CeleryExecutor cluster: searches capped to their slot vs oversubscribed.

Two worker slots (2 Celery workers of one slot each, on this 2-core machine) run the searches of
one dataset at once: random_forest and hist_gradient_boosting, each stopped by ``--seconds`` of
search (max_evals 10000, so time rules), on a seeded synthetic binary table of ``--rows`` rows and
20 numeric features (10 informative), holdout validation, warm start off. Two DAGs differ only in
their families' ``threads``:

- ``capped``: ``threads: 1``, what dagml ships: each search runs 1 native thread, 2 threads on
  2 cores;
- ``uncapped``: ``threads: 2`` on both families in a search pool of 4 slots (``--search-slots 4``),
  so both searches run at once with 2 threads each: 4 threads on 2 cores, what every search did
  before the cap took effect (OpenMP and the libraries' own pools sized to the machine's cores).

The runs alternate (capped, uncapped, capped, ...) for ``--rounds`` rounds on one cluster, each on
a partition of its own. Per family and variant: trials completed, trials per search-second, the
best validation ROC AUC and the test ROC AUC, read from dagml's leaderboard (the same rows
``dagml leaderboard`` shows), and the threads each library reported using.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).parent))
from _cluster import DAGS, Cluster, load  # noqa: E402
from _report import provenance, write_section  # noqa: E402

FAMILIES = ("sklearn:random_forest", "sklearn:hist_gradient_boosting")
VARIANTS = {"capped": 1, "uncapped": 2}


def write_dags(folder: Path, rows: int, seconds: float) -> None:
    """The data file, the DAG file and one config per variant, in ``folder``."""
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=20, n_informative=10, random_state=0)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])]).assign(y=y)
    frame.to_parquet(folder / "threads.parquet")
    (folder / "configs").mkdir()
    (folder / "automl.py").write_text((DAGS / "automl.py").read_text())
    for variant, threads in VARIANTS.items():
        families = [{"name": f.split(":")[1], "threads": threads} for f in FAMILIES]
        config = {
            "name": f"threads_{variant}", "description": f"bench/thread_cap.py: {variant} searches",
            "source": {"uri": str(folder / "threads.parquet")}, "target": "y", "task": "binary",
            "metric": "roc_auc", "families": [*families, {"name": "dummy", "max_evals": 2}],
            "budget": {"max_evals": 10000, "seconds": seconds}, "split": {"validation": "holdout"},
            "warm_start": False, "schedule": None, "start_date": "2026-01-01", "seed": 42, "tags": ["bench"],
        }
        (folder / "configs" / f"threads_{variant}.yaml").write_text(json.dumps(config, indent=1))


def leaderboard(cluster: Cluster, dag_id: str, run_id: str) -> dict[str, dict]:
    rows = cluster.results(
        "SELECT family, status, n_trials, search_seconds, val_score, test_score, threads FROM dagml_leaderboard "
        "WHERE dag_id = :dag_id AND run_id = :run_id", dag_id=dag_id, run_id=run_id)
    return {r.family: {"status": r.status, "trials": r.n_trials, "seconds": r.search_seconds, "val": r.val_score,
                       "test": r.test_score, "threads": r.threads} for r in rows if r.family in FAMILIES}


def measure(args) -> dict:
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="dagml-bench-threads-") as tmp:
        write_dags(Path(tmp), args.rows, args.seconds)
        with Cluster(workers=2, dags=Path(tmp), search_slots=4) as cluster:
            for round_ in range(args.rounds):
                for variant in VARIANTS:
                    dag_id = f"automl__threads_{variant}"
                    started = time.time()
                    result = cluster.run(dag_id, {"partition": f"2026-01-{round_ + 1:02d}"})
                    rows = leaderboard(cluster, dag_id, result["run"]["dag_run_id"])
                    runs.append({"variant": variant, "round": round_, "wall": time.time() - started,
                                 "load": load(), "families": rows})
                    print(json.dumps(runs[-1]), flush=True)
    return {"provenance": provenance(), "rows": args.rows, "seconds": args.seconds, "runs": runs}


def _threads_used(entries) -> str:
    entries = json.loads(entries) if isinstance(entries, str) else entries or []
    return ", ".join(sorted({f"{e['internal_api']} {e['num_threads']}" for e in entries})) or "n/a"


def render(raw: dict) -> str:
    lines = ["| family | variant | trials (per run) | trials / search-s | best validation ROC AUC | test ROC AUC "
             "| threads reported |", "|---|---|---|---|---|---|---|"]
    ratios = []
    for family in FAMILIES:
        per = {}
        for variant in VARIANTS:
            rows = [r["families"][family] for r in raw["runs"] if r["variant"] == variant and family in r["families"]]
            ok = [r for r in rows if r["status"] == "ok"]
            rate = mean(r["trials"] / r["seconds"] for r in ok) if ok else float("nan")
            per[variant] = rate
            trials = ", ".join(str(r["trials"]) for r in rows)
            val = ", ".join(f"{r['val']:.4f}" for r in ok)
            test = ", ".join(f"{r['test']:.4f}" for r in ok)
            used = _threads_used(rows[-1]["threads"]) if rows else "n/a"
            lines.append(f"| {family} | {variant} | {trials} | {rate:.2f} | {val} | {test} | {used} |")
        ratios.append(f"{family}: {per['capped'] / per['uncapped']:.2f}x")
    walls = {v: mean(r["wall"] for r in raw["runs"] if r["variant"] == v) for v in VARIANTS}
    loads = ", ".join(r["load"] for r in raw["runs"])
    return f"""## Native threads: searches capped to their slot vs oversubscribed (issue 19)

{raw['provenance']} Synthetic binary table, {raw['rows']} rows x 20 numeric features; each
family searched for {raw['seconds']:g} s per run, both families at once on 2 Celery worker slots
(2 cores), {len(raw['runs']) // len(VARIANTS)} runs per variant, alternating. `capped` is what dagml ships
(`threads: 1`: 1 native thread per search); `uncapped` gives each search 2 threads (`threads: 2` in a
4-slot search pool), so 4 threads share the 2 cores, as every search did before the cap took
effect.

{chr(10).join(lines)}

Trials per search-second, capped over uncapped: {'; '.join(ratios)}. Mean run wall time: capped
{walls['capped']:.0f} s, uncapped {walls['uncapped']:.0f} s (equal search budgets, so they differ by
the refits, scoring and queueing). Load average at each run's end (1/5/15 min): {loads}.

Reading: a search given more native threads than its share of the cores gains nothing when the
other slot is busy too. HistGradientBoosting's OpenMP threads wait for cores the other search holds
(OpenMP spins while it waits), so the oversubscribed searches complete fewer trials in the same
seconds; random forest parallelises over trees with joblib's threads (`n_jobs`) and moves less.
The shipped setting (1 thread per slot; `threads: N` takes N slots of the search pool) keeps every
search at its share.
"""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=45)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--raw", help="also save what was measured to this JSON file")
    parser.add_argument("--render", help="rewrite the section from this JSON file without measuring")
    args = parser.parse_args(argv)
    raw = json.loads(Path(args.render).read_text()) if args.render else measure(args)
    if args.raw:
        Path(args.raw).write_text(json.dumps(raw, indent=1))
    write_section("thread_cap", render(raw))


if __name__ == "__main__":
    main()
