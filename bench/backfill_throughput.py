"""Backfill throughput on a real CeleryExecutor cluster: partitions per hour with 1 and 2 worker slots.

A daily SQL-sourced dataset, ``automl__bench_sales`` (bench/cluster_dags/backfill/): the
benchmark fills a scratch Postgres database with a ``sales`` table of K days (``--rows`` rows
a day, 8 numeric features, a binary target whose boundary turns every day) and gives every
service of the cluster the Airflow connection ``warehouse`` to it. A partition searches two
families (random_forest, hist_gradient_boosting), each stopped by ``--seconds`` of search
(max_evals 10000, so the seconds bound rules; set per backfill through ``dag_run_conf``), plus
sklearn:dummy, which dagml always adds (capped at its 2 points in the config: with the budget's
max_evals it would re-evaluate them for the whole seconds): 3 mapped searches between load,
profile, prepare and select, promote, publish_champion, report.

For each variant SLOTS:RUNS (default ``1:1,2:2``, in that order), airflow_config/cluster.py
starts a fresh cluster with SLOTS Celery workers of one slot each (dagml's shipped settings;
scheduled runs off, so only the backfill's runs exist), and the benchmark creates one backfill
of the K days through ``POST /api/v2/backfills`` with ``max_active_runs`` RUNS, waits until
Airflow marks it complete, reads every run and task instance through the REST API and tears
the cluster down (always, also on failure).

Span = the backfill's ``created_at`` to the last run's ``end_date`` (both Airflow's clock);
throughput = K / span. One partition's critical path on one slot is the sum of its task
durations W (one slot runs every task in series, its 3 searches too), measured on the 1-slot
cluster (mean over its K partitions). Ideal throughput with S slots = S / W: every slot busy
all the time; with S slots no schedule does better, since a partition is W slot-seconds of
work however its tasks interleave. Goal (the issue): at least 0.9 of the ideal for partitions
of at least 30 s of search.

``--raw FILE`` also saves what was measured; ``--render FILE`` rewrites the section from it
without measuring (keeping the measuring run's command, date and machine).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from statistics import mean, median

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from _cluster import POSTGRES, REDIS_DBS, Cluster, cpu_seconds, critical_path, load, p95, when  # noqa: E402
from _report import provenance, write_section  # noqa: E402

DAG_ID = "automl__bench_sales"
FIRST_DAY = date(2026, 1, 1)
FEATURES = 8
WAREHOUSE = f"dagml_b{os.getpid()}_warehouse"
SLOW_GAP = 4.0
# What a task process imports (the first cluster's first tasks would otherwise read them from disk).
WARM_IMPORTS = ("import dagml.tasks, dagml.sources, pandas, pyarrow, sklearn.ensemble, hyperopt, psycopg2; "
                "import airflow.sdk, airflow.providers.celery")
TASK_ORDER = ["load", "profile", "prepare", "search_sklearn", "select", "promote", "publish_champion", "report"]


def library() -> str:
    """Which dagml the cluster's services import: this checkout (its commit, and whether include/
    has uncommitted changes) or another copy put first on PYTHONPATH."""
    import dagml

    from _report import REPO

    where = Path(dagml.__file__).resolve().parent
    if not where.is_relative_to(REPO):
        return f"dagml imported from `{where}` (PYTHONPATH), not from this checkout"
    git = lambda *a: subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True).stdout.strip()
    dirty = git("status", "--porcelain", "include/")
    return f"dagml of commit {git('rev-parse', '--short', 'HEAD')}" + (
        " with uncommitted changes in include/" if dirty else "")


def cluster_tuning() -> dict[str, str]:
    """The Airflow settings airflow_config/cluster.py changes from Airflow's defaults (its TUNING)."""
    import importlib.util

    from _cluster import CLUSTER

    spec = importlib.util.spec_from_file_location("dagml_cluster_script", CLUSTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.TUNING)


def days(n: int) -> list[str]:
    return [(FIRST_DAY + timedelta(days=i)).isoformat() for i in range(n)]


def fill_warehouse(n_days: int, rows: int) -> None:
    """K days of rows; the decision boundary (linear in x1, x2 plus an interaction) turns 20° a day."""
    import numpy as np

    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{WAREHOUSE}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{WAREHOUSE}"'))
    admin.dispose()
    rng = np.random.default_rng(7)
    engine = sa.create_engine(POSTGRES.rsplit("/", 1)[0] + f"/{WAREHOUSE}")
    columns = [f"x{i + 1}" for i in range(FEATURES)]
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE sales (day DATE NOT NULL, {', '.join(c + ' DOUBLE PRECISION' for c in columns)}, "
                             "y TEXT NOT NULL)"))
        for i, day in enumerate(days(n_days)):
            angle = math.radians(20 * i)
            x = rng.normal(size=(rows, FEATURES))
            logit = 2 * (x[:, 0] * math.cos(angle) + x[:, 1] * math.sin(angle)) + x[:, 2] * x[:, 3] + np.sin(2 * x[:, 4])
            label = logit + rng.normal(scale=0.8, size=rows) > 0
            conn.execute(sa.text(f"INSERT INTO sales VALUES (:day, {', '.join(':' + c for c in columns)}, :y)"),
                         [{"day": day, **dict(zip(columns, map(float, row))), "y": "yes" if t else "no"}
                          for row, t in zip(x, label)])
    engine.dispose()


def drop_warehouse() -> None:
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{WAREHOUSE}" WITH (FORCE)'))
    admin.dispose()


def _pages(cluster: Cluster, path: str, key: str) -> list[dict]:
    """Every item of a paged list endpoint (the api-server caps a page at 100)."""
    items, offset = [], 0
    while True:
        page = cluster.request("GET", f"{path}{'&' if '?' in path else '?'}limit=100&offset={offset}")[key]
        items += page
        if len(page) < 100:
            return items
        offset += 100


def backfill(cluster: Cluster, n_days: int, max_active_runs: int, seconds: float, timeout: float) -> dict:
    """Create the backfill of the K days, wait until Airflow marks it complete; what it ran."""
    cluster.unpause(DAG_ID)
    planned = days(n_days)
    body = {"dag_id": DAG_ID, "from_date": f"{planned[0]}T00:00:00Z", "to_date": f"{planned[-1]}T00:00:00Z",
            "reprocess_behavior": "none", "max_active_runs": max_active_runs, "dag_run_conf": {"seconds": seconds}}
    dry = cluster.request("POST", "/api/v2/backfills/dry_run", body)
    assert [b["logical_date"][:10] for b in dry["backfills"]] == planned, dry
    load_before, cpu_before, t_before = load(), cpu_seconds(cluster.home), time.time()
    created = cluster.request("POST", "/api/v2/backfills", body)
    deadline = time.time() + timeout
    while (state := cluster.request("GET", f"/api/v2/backfills/{created['id']}"))["completed_at"] is None:
        if time.time() > deadline:
            raise TimeoutError(f"backfill {created['id']} not complete after {timeout:.0f} s; logs in {cluster.home}")
        time.sleep(1)
    load_after, cpu_after, t_after = load(), cpu_seconds(cluster.home), time.time()
    runs = _pages(cluster, f"/api/v2/dags/{DAG_ID}/dagRuns", "dag_runs")
    assert sorted(r["logical_date"][:10] for r in runs) == planned, [r["logical_date"] for r in runs]
    failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
    if failed:
        raise RuntimeError(f"runs not successful: {failed}; logs in {cluster.home}")
    tis = _pages(cluster, f"/api/v2/dags/{DAG_ID}/dagRuns/~/taskInstances", "task_instances")
    upstream: dict[str, list[str]] = {}
    for task in cluster.request("GET", f"/api/v2/dags/{DAG_ID}/tasks")["tasks"]:
        upstream.setdefault(task["task_id"], [])
        for down in task["downstream_task_ids"]:
            upstream.setdefault(down, []).append(task["task_id"])
    trials = cluster.results("SELECT family, n_trials FROM dagml_leaderboard WHERE dag_id = :d", d=DAG_ID)
    return {"backfill": state, "runs": runs, "upstream": upstream, "load_before": load_before,
            "load_after": load_after, "trials": [list(r) for r in trials],
            "cpu": {k: cpu_after[k] - cpu_before[k] for k in cpu_after}, "cpu_wall": t_after - t_before, "tis": [
                {"run": t["dag_run_id"], "task_id": t["task_id"], "map_index": t["map_index"],
                 "family": t["rendered_map_index"], "host": t["hostname"], "try": t["try_number"],
                 "state": t["state"], "queued": when(t["queued_when"]), "start": when(t["start_date"]),
                 "end": when(t["end_date"])}
                for t in tis if t["start_date"] and t["end_date"]]}


def label(ti: dict) -> str:
    return f"search {ti['family'].removeprefix('sklearn:')}" if ti["task_id"] == "search_sklearn" else ti["task_id"]


def analyse(b: dict, slots: int) -> dict:
    """Span, throughput and where the slots' time went: S x span = busy + start-up + gaps + tail."""
    created = when(b["backfill"]["created_at"])
    completed = when(b["backfill"]["completed_at"])
    last_end = max(when(r["end_date"]) for r in b["runs"])
    tis = b["tis"]
    work = {}
    for t in tis:
        work[t["run"]] = work.get(t["run"], 0.0) + t["end"] - t["start"]
    busy = sum(work.values())
    span = last_end - created
    startup = sched = pickup = tail = 0.0
    gaps = []
    hosts = sorted({t["host"] for t in tis})
    for host in hosts:
        mine = sorted((t for t in tis if t["host"] == host), key=lambda t: t["start"])
        startup += mine[0]["start"] - created
        tail += last_end - mine[-1]["end"]
        for a, nxt in zip(mine, mine[1:]):
            gap = max(0.0, nxt["start"] - a["end"])
            waited = min(max(nxt["queued"] - a["end"], 0.0), gap)  # nothing queued for this slot yet
            sched += waited
            pickup += gap - waited
            gaps.append(gap)
    idle_workers = slots - len(hosts)  # a worker that never ran a task idled the whole span
    by_task: dict[str, list[float]] = {}
    for t in tis:
        by_task.setdefault(label(t), []).append(t["end"] - t["start"])
    run_starts = sorted(when(r["start_date"]) for r in b["runs"])
    run_walls = [when(r["end_date"]) - when(r["start_date"]) for r in b["runs"]]
    return {"k": len(b["runs"]), "span": span, "span_completed": completed - created, "busy": busy,
            "work": mean(work.values()), "startup": startup, "sched": sched, "pickup": pickup,
            "tail": tail + idle_workers * span, "gaps": gaps, "by_task": by_task,
            "queue_wait": max(t["start"] - t["queued"] for t in tis),
            "first_start": min(t["start"] for t in tis) - created, "first_run_start": run_starts[0] - created,
            "completed_lag": completed - last_end, "retried": sum(t["try"] > 1 for t in tis),
            "hosts": len(hosts), "trials": b["trials"], "run_wall": median(run_walls)}


def lone_partition_paths(b: dict) -> tuple[float, float]:
    """Means over the partitions of one partition's critical path alone on 1 slot and on 2 slots
    (its task durations as measured; on 2 slots its searches list-scheduled side by side)."""
    one, two = [], []
    for run in {t["run"] for t in b["tis"]}:
        result = {"tis": [t for t in b["tis"] if t["run"] == run], "upstream": b["upstream"]}
        one.append(sum(t["end"] - t["start"] for t in result["tis"]))
        two.append(critical_path(result, slots=2)[0])
    return mean(one), mean(two)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", type=int, default=6, help="days backfilled (K)")
    parser.add_argument("--seconds", type=float, default=30, help="seconds of search per family (budget.seconds)")
    parser.add_argument("--rows", type=int, default=2000, help="rows per day in the sales table")
    parser.add_argument("--variants", default="1:1,2:2", help=(
        "SLOTS:RUNS[:KEY=VALUE[+KEY=VALUE]],...: one fresh cluster each, in this order, SLOTS workers of one "
        "slot, a backfill with max_active_runs RUNS, these env settings for every service; the first must be 1:1"))
    parser.add_argument("--raw", metavar="FILE.json", help="also save what was measured (to re-render with --render)")
    parser.add_argument("--render", metavar="FILE.json", help="measure nothing: rewrite the section from --raw's file "
                        "(its command, date and machine are the measuring run's)")
    args = parser.parse_args()
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        report(saved["results"], saved["meta"])
        return
    variants = []
    for spec in args.variants.split(","):
        slots, runs, *env = spec.split(":", 2)
        variants.append({"name": spec, "slots": int(slots), "runs": int(runs),
                         "env": dict(kv.split("=", 1) for kv in env[0].split("+")) if env else {}})
    if variants[0]["name"] != "1:1" or len(variants) > len(REDIS_DBS):
        sys.exit(f"--variants: the first must be 1:1 (it measures W), at most {len(REDIS_DBS)} variants")
    t0, load_start = time.time(), load()
    meta = {"provenance": provenance(), "library": library(), "load_start": load_start,
            "partitions": args.partitions, "seconds": args.seconds, "rows": args.rows, "tuning": cluster_tuning()}
    subprocess.run([sys.executable, "-c", WARM_IMPORTS], check=True)  # the page cache, not a measurement
    fill_warehouse(args.partitions, args.rows)
    results = {}
    try:
        for i, v in enumerate(variants):
            # 3 searches of `seconds` each plus ~40 s of other tasks per partition, 3x for a busy machine
            timeout = 600 + 3 * args.partitions * (3 * args.seconds + 40) / min(v["slots"], v["runs"])
            cluster = Cluster(workers=v["slots"], redis_db=REDIS_DBS[i], extra_env={
                "AIRFLOW_CONN_WAREHOUSE": f"postgres://{POSTGRES.split('://', 1)[1].rsplit('/', 1)[0]}/{WAREHOUSE}",
                # no scheduled run of the latest interval beside the backfill's (as tests/cluster/conftest.py)
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False", **v["env"]})
            with cluster:
                b = backfill(cluster, args.partitions, v["runs"], args.seconds, timeout)
            results[v["name"]] = {**b, "variant": v}
            a = analyse(b, v["slots"])
            print(f"{v['name']}: span {a['span']:.1f} s, busy {a['busy']:.1f} s, W {a['work']:.1f} s, "
                  f"load {b['load_before']} -> {b['load_after']}", flush=True)
    finally:
        drop_warehouse()
        meta.update(elapsed=time.time() - t0, load_end=load())
        if args.raw and results:
            Path(args.raw).write_text(json.dumps({"meta": meta, "results": results}))
    report(results, meta)


def _env(v: dict) -> str:
    return " ".join(f"`{k}={x}`" for k, x in v["env"].items())


def _name(v: dict) -> str:
    return (f"{v['slots']} slot{'s' if v['slots'] > 1 else ''}, max_active_runs {v['runs']}"
            + (f" with {_env(v)}" if v["env"] else ""))


def report(results: dict, meta: dict) -> None:
    analysed = {key: analyse(b, b["variant"]["slots"]) for key, b in results.items()}
    keys = list(analysed)
    base = analysed[keys[0]]
    w1, k_parts, seconds = base["work"], meta["partitions"], meta["seconds"]
    cp1, cp2 = lone_partition_paths(results[keys[0]])
    rows, account, verdicts, ratio = [], [], [], {}
    for key, a in analysed.items():
        v, b = results[key]["variant"], results[key]
        slots, runs, env = v["slots"], v["runs"], _env(v)
        k, span = a["k"], a["span"]
        ideal = slots / w1 * 3600
        got = k / span * 3600
        ratio[key] = got / ideal
        slot_time = slots * span
        a["busy_share"] = a["busy"] / slot_time
        rows.append(f"| {slots} | {runs} | {env or '–'} | {k} | {span:.0f} | {got:.1f} | {ideal:.1f} "
                    f"| **{ratio[key]:.2f}** | {a['span_completed']:.0f} | {k / a['span_completed'] * 3600 / ideal:.2f} "
                    f"| {a['work']:.1f} | {a['busy_share']:.2f} | {a['run_wall']:.0f} | {a['retried']} "
                    f"| {b['load_before']} → {b['load_after']} |")
        gaps = a["gaps"]
        account.append(f"| {slots} | {runs} | {env or '–'} | {a['busy_share']:.1%} | {a['startup'] / slot_time:.1%} "
                       f"| {a['sched'] / slot_time:.1%} | {a['pickup'] / slot_time:.1%} | {a['tail'] / slot_time:.1%} "
                       f"| {len(gaps)} | {median(gaps):.2f} | {p95(gaps):.2f} | {sum(g > SLOW_GAP for g in gaps)} "
                       f"| {a['first_run_start']:.1f} / {a['first_start']:.1f} | {a['completed_lag']:.1f} "
                       f"| {a['queue_wait']:.0f} |")
        verdicts.append(f"{_name(v)}: **{ratio[key]:.3f}** of ideal ({'meets' if ratio[key] >= 0.9 else 'misses'} 0.9)")
    order = {t: i for i, t in enumerate(TASK_ORDER)}
    labels = sorted(base["by_task"], key=lambda x: (order["search_sklearn" if x.startswith("search ") else x], x))
    task_rows = []
    for lbl in labels:
        cells = " | ".join(f"{median(a['by_task'].get(lbl, [math.nan])):.1f}" for a in analysed.values())
        task_rows.append(f"| {lbl} | {cells} |")
    task_rows.append("| **sum per partition (W)** | " + " | ".join(f"**{a['work']:.1f}**" for a in analysed.values())
                     + " |")
    trials = {key: {} for key in keys}
    for key, b in results.items():
        for fam in {f for f, _ in b["trials"]}:
            trials[key][fam] = median(n for f, n in b["trials"] if f == fam)
    families = sorted({f for t in trials.values() for f in t})
    trial_rows = [f"| {fam} | " + " | ".join(f"{trials[key].get(fam, math.nan):.0f}" for key in keys) + " |"
                  for fam in families]
    head = " | ".join(_name(results[key]["variant"]).replace("max_active_runs ", "runs ") for key in keys)
    sep = "|---" * (len(keys) + 1) + "|"
    write_section("backfill_throughput", f"""## Backfill throughput on a CeleryExecutor cluster: 1 worker slot vs 2

{meta['provenance']} {meta['library']}. Total run time {meta['elapsed']:.0f} s; load average (1/5/15 min)
at the start {meta['load_start']}, at the end {meta['load_end']} (and per backfill in the table).

A backfill of {k_parts} days of `automl__bench_sales` (bench/cluster_dags/backfill/): each run reads
one day of a Postgres `sales` table ({meta['rows']} rows × {FEATURES} features, binary target; the Airflow
connection `warehouse`) and searches random_forest and hist_gradient_boosting for {seconds:g} s
each (max_evals 10000, so time rules) plus sklearn:dummy (capped at its 2 points, see below):
3 mapped searches, {2 * seconds:g} s of search per partition. One fresh airflow_config/cluster.py
cluster per row (dagml's shipped settings, one slot per Celery worker, scheduled runs off), the
backfill created with `POST /api/v2/backfills` and its `max_active_runs`, waited for until
Airflow marks it complete.

**The ideal.** One partition's critical path on one slot is the sum of its task durations,
W = {w1:.1f} s (mean over the 1-slot backfill's partitions: on one slot its 3 searches, like every
other task, run in series). With S slots the ideal throughput is S / W: every slot busy all the
time. No schedule beats it, since each partition is W slot-seconds of work however its tasks
interleave. The other reading, S / (a partition's critical path given S slots), is no bound for
a backfill: alone on 2 slots a partition's searches run side by side and its critical path
drops from {cp1:.1f} s to {cp2:.1f} s (means, 1-slot durations), but with 2 partitions in flight on 2
slots they share the slots, so 2 / {cp2:.1f} s = {2 / cp2 * 3600:.1f} partitions/hour would count each slot
twice ({w1 / cp2:.2f}× the work bound): it is a lone run's latency, not a backfill's throughput.

Span = the backfill's `created_at` to its last run's `end_date` (Airflow's clock);
partitions/hour = K / span; ratio = that over the ideal S / W. "By completed_at" uses the
moment Airflow flagged the backfill complete instead. W in this run is the mean sum of task
durations per partition on that cluster; slot-busy = busy slot-seconds / (S × span), the
ratio against that run's own W. Run wall = a run's start_date to end_date, median.

| worker slots | max_active_runs | extra env | partitions | span s | partitions/hour | ideal (S / W) | ratio | span by completed_at s | ratio by completed_at | W in this run s | slot-busy | run wall s | retried tasks | load avg during (1/5/15) |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Where the slot-seconds (S × span) went. Start-up: backfill creation to each slot's first task.
Between two tasks on a slot: "scheduler's turn" while nothing was queued for it yet (the next
task's queued_when came after the slot freed: the scheduler had not yet seen the upstream end,
or not yet started the next run), "worker's turn" once it was queued (Celery delivery, the
worker's supervisor noticing that the task before ended, the new task process starting).
Tail: from a slot's last task to the last run's end (no partition left for it). Gaps in
seconds; "first run / first task": seconds from creation to the first run's start_date and
to the first task's start; "completed_at lag": the last run's end to the complete flag;
"longest queue wait": the longest queued_when → start_date of any task instance, seconds.

| worker slots | max_active_runs | extra env | busy | start-up | scheduler's turn | worker's turn | tail | gaps | median | p95 | > {SLOW_GAP:g} s | first run / first task | completed_at lag | longest queue wait |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(account)}

{cpu_table(results)}
Task durations, median over the backfill's partitions, seconds:

| task | {head} |
{sep}
{chr(10).join(task_rows)}

Hyperopt trials per search, median over partitions (the searches are bounded by time, so a
search that gets less CPU does fewer trials in the same seconds rather than take longer):

| family | {head} |
{sep}
{chr(10).join(trial_rows)}

Goal: at least 0.9 of the ideal for partitions of at least 30 s of search{'' if seconds >= 15 else
f' (this run searched {2 * seconds:g} s per partition)'}: {'; '.join(verdicts)}.

{reading(results, analysed, ratio, trials, meta)}
""")


SERVICES = ("scheduler", "api-server", "dag-processor", "triggerer", "postgres", "redis")


def cpu_table(results: dict) -> str:
    """Where the machine's CPU went during each backfill, per partition (runs saved before the
    benchmark read /proc have none)."""
    rows = []
    for b in results.values():
        if "cpu" not in b:
            continue
        cpu, k = b["cpu"], len(b["runs"])
        workers = sum(x for name, x in cpu.items() if name.startswith("worker-"))
        named = [workers] + [cpu.get(name, 0.0) for name in SERVICES]
        other = cpu["machine"] - sum(named)
        capacity = os.cpu_count() * b["cpu_wall"]
        cells = " | ".join(f"{x / k:.1f}" for x in (*named, other))
        rows.append(f"| {_name(b['variant'])} | {b['cpu_wall']:.0f} | {cpu['machine'] / capacity:.0%} | "
                    f"{workers / cpu['machine']:.0%} | {cells} |")
    if not rows:
        return ""
    return f"""Where the machine's CPU went, from /proc, between the backfill's creation and Airflow's complete
flag ("interval"): "used" = busy core-seconds over {os.cpu_count()} cores × interval; "workers" = the share
of the busy seconds spent in the Celery workers' sessions (every task process, searches
and the rest, and Celery itself); then core-seconds per partition for each: the other
services' sessions, the machine's PostgreSQL and Redis (also serving anything else on the
machine), and "other" = everything else busy on the machine meanwhile.

| backfill | interval s | used | workers | workers s | {' s | '.join(SERVICES)} s | other s |
|---|---|---|---|---|{'---|' * len(SERVICES)}---|
{chr(10).join(rows)}
"""


# What the same benchmark measured before dagml's search task held OpenMP to one thread.
PRE_FIX = ("Before that commit, the same benchmark (`bench/backfill_throughput.py --variants "
           "1:1,2:2,2:2:OMP_NUM_THREADS=1,2:4:OMP_NUM_THREADS=1` on dagml 9e305d1, 2026-11-28 06:58 UTC, the "
           "1-minute load at 2.5–7.2 during the 2-slot backfills, with other work on the machine) measured on 2 slots "
           "hist_gradient_boosting at 6 trials per 30 s search without the variable and 50 with it (48 on 1 slot), "
           "its search task at 48.6 s vs 35.8 s, W 101.7 s vs 92.6 s and the ratio 0.76 vs 0.83: "
           "`threadpool_limits(limits=1)` was entered before scikit-learn had loaded its OpenMP runtime, so "
           "HistGradientBoosting ran 2 threads per search and spin-waited on the core the other slot used.")


def _peak(b: dict) -> float:
    """The higher 1-minute load average of a backfill's start and end."""
    return max(float(b["load_before"].split(" / ")[0]), float(b["load_after"].split(" / ")[0]))


def _at_load(results: dict, k: str, other: str) -> str:
    return f" (at a higher load: {_peak(results[k]):.1f} vs {_peak(results[other]):.1f})" if (
        _peak(results[k]) > _peak(results[other]) + 1) else ""


IDLE_SLEEP = "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"


def _service_seconds(b: dict) -> float | None:
    """The scheduler's and PostgreSQL's CPU seconds per partition (None for a run without /proc figures)."""
    return (b["cpu"]["scheduler"] + b["cpu"]["postgres"]) / len(b["runs"]) if "cpu" in b else None


def _idle_sleep_reading(results: dict, analysed: dict, ratio: dict, trials: dict, plain2: str,
                        meta: dict) -> list[str]:
    """What the scheduler's idle sleep trades: CPU the searches share against the wait between tasks."""
    shipped = meta.get("tuning", {}).get(IDLE_SLEEP, "0.1")  # cluster.py's, when the run was measured
    out = []
    for k in results:
        sleep = results[k]["variant"]["env"].get(IDLE_SLEEP)
        if sleep is None or results[k]["variant"]["slots"] != 2:
            continue
        a, two = analysed[k], analysed[plain2]
        cpu, cpu0 = _service_seconds(results[k]), _service_seconds(results[plain2])
        spent = (f"the scheduler and PostgreSQL used {cpu:.1f} core-seconds per partition against {cpu0:.1f}; "
                 if cpu is not None and cpu0 is not None else "")
        out.append(
            f"The scheduler's idle sleep at {sleep} s instead of {shipped} s (cluster.py's setting in this run; "
            f"Airflow's default is 1 s), on 2 slots: {spent}the "
            f"scheduler's turn between tasks took {a['sched'] / (2 * a['span']):.1%} of the slot-seconds against "
            f"{two['sched'] / (2 * two['span']):.1%}, slot-busy {a['busy_share']:.0%} vs {two['busy_share']:.0%}; "
            f"W {a['work']:.1f} s vs {two['work']:.1f} s, hist_gradient_boosting "
            f"{trials[k].get('sklearn:hist_gradient_boosting', math.nan):.0f} vs "
            f"{trials[plain2].get('sklearn:hist_gradient_boosting', math.nan):.0f} trials per search; ratio "
            f"**{ratio[k]:.2f}** vs **{ratio[plain2]:.2f}**{_at_load(results, k, plain2)}. A shorter sleep queues "
            f"the next task sooner, but every idle loop of the scheduler is a few queries, and on 2 cores that CPU "
            f"is taken from the searches.")
    return out


def _idle_sleep_advice(results: dict, ratio: dict, meta: dict) -> str:
    """Which idle sleep backfilled fastest on 2 slots, and what cluster.py ships now."""
    measured = meta.get("tuning", {}).get(IDLE_SLEEP, "0.1")
    two = {results[k]["variant"]["env"].get(IDLE_SLEEP, measured): ratio[k] for k in results
           if results[k]["variant"]["slots"] == 2 and set(results[k]["variant"]["env"]) <= {IDLE_SLEEP}}
    if len(two) < 2:
        return ""
    best = max(two, key=two.get)
    return (f"`[scheduler] scheduler_idle_sleep_time`: {best} s backfilled fastest on 2 slots here ("
            + ", ".join(f"{s} s: {r:.2f}" for s, r in two.items()) + f"); airflow_config/cluster.py ships "
            f"{cluster_tuning()[IDLE_SLEEP]} s (the cluster_overhead section above was measured at 0.1 s). ")


def reading(results: dict, analysed: dict, ratio: dict, trials: dict, meta: dict) -> str:
    """The honest reading, from the figures above."""
    keys = list(analysed)
    one = analysed[keys[0]]
    hgb, rf = "sklearn:hist_gradient_boosting", "sklearn:random_forest"
    label_hgb = "search hist_gradient_boosting"
    per_part = one["span"] / one["k"] - one["work"]
    busy = [a["busy_share"] for a in analysed.values()]
    hot = [f"{_peak(results[k]):.1f} ({_name(results[k]['variant'])})" for k in keys
           if _peak(results[k]) > results[k]["variant"]["slots"] + 2]
    missed = [k for k in keys if ratio[k] < 0.9]
    out = [("**Reading.** The goal is met in every row. " if not missed else
            f"**Reading.** The goal is met on {'; '.join(_name(results[k]['variant']) for k in keys if k not in missed) or 'no row'}; "
            f"it is missed on {'; '.join(_name(results[k]['variant']) for k in missed)}. ")
           + f"The scheduling itself kept the slots busy {min(busy):.0%}–{max(busy):.0%} of the span in every row; "
           + ("what misses is W: the same partition needs more task time when 2 slots share this machine's 2 cores "
              f"with Airflow's services{' and, in this run, with other work' if hot else ''} (below)."
              if missed and min(busy) >= 0.9 else "hand-offs and W both count (below).")]
    if hot:
        out.append(f"The machine is shared ({os.cpu_count()} cores), and other work ran beside some backfills: the "
                   f"1-minute load average at their start or end reached {', '.join(hot)}, where a cluster alone "
                   f"accounts for about its slots + 1 (its tasks and Airflow's services). Those rows' W and trials "
                   f"carry that contention too, so their ratio is lower than the cluster alone would reach; slot-busy, "
                   f"which the hand-offs set, is less exposed. Compare such rows with each other only as far as "
                   f"their loads match.")
    out.append(f"On 1 slot the ratio is the slot-busy share itself: the slot ran tasks "
           f"{one['busy_share']:.0%} of the span; per partition that is {per_part:.1f} s of hand-offs around "
           f"{one['work']:.1f} s of tasks: {len(one['gaps'])} hand-offs (median {median(one['gaps']):.2f} s, p95 "
           f"{p95(one['gaps']):.2f} s), the worker's turn {one['pickup'] / one['span']:.1%} of the span and the "
           f"scheduler's turn {one['sched'] / one['span']:.1%}; start-up and tail are {one['startup'] / one['span']:.1%} "
           f"and {one['tail'] / one['span']:.1%}. With {len(one['by_task'])} task instances per partition "
           f"({len(one['by_task']) - 3} of them short), a hand-off of a fraction of a second costs a few per cent. "
           f"Worker start is outside the span (cluster.py waits until every worker is ready); the first task "
           f"started {one['first_start']:.1f} s after the backfill was created, and each task's own process start "
           f"(imports, parsing its DAG) is inside the task durations.")
    more = same = gain = None
    plain2 = next((k for k in keys if results[k]["variant"]["slots"] == 2 and results[k]["variant"]["runs"] == 2
                   and not results[k]["variant"]["env"]), None)
    if plain2:
        two = analysed[plain2]
        deltas = sorted(((median(two["by_task"][t]) - median(one["by_task"][t]), t) for t in one["by_task"]
                         if t in two["by_task"]), reverse=True)[:3]
        out.append(
            f"On 2 slots (max_active_runs 2) the slots were busy {two['busy_share']:.0%} of the span, and the ratio is "
            f"{ratio[plain2]:.2f} = slot-busy × W(1 slot) / W(2 slots) = {two['busy_share']:.2f} × "
            f"{one['work']:.1f} / {two['work']:.1f}: the same partition took {two['work'] / one['work'] - 1:+.0%} task "
            f"time. The 2 slots share the machine's 2 cores with each other and with Airflow's services (and "
            f"whatever else runs: see the load averages), so the tasks stretch; most (median, seconds): "
            + ", ".join(f"{t} {d:+.1f}" for d, t in deltas) + ". A time-bounded search overruns its budget by its "
            f"last trial and the refit of its best point, which get slower when the cores are shared; and it does "
            f"less work in its seconds: hist_gradient_boosting {trials[keys[0]].get(hgb, math.nan):.0f} → "
            f"{trials[plain2].get(hgb, math.nan):.0f} trials per search, random_forest "
            f"{trials[keys[0]].get(rf, math.nan):.0f} → {trials[plain2].get(rf, math.nan):.0f}. The ratio counts "
            f"partitions, not trials: on this machine 2 slots bring {one['span'] / two['span']:.2f}× the 1-slot "
            f"partitions per hour. With a core per slot and Airflow's services on cores of their own, W should not "
            f"grow and the ratio should come near the slot-busy share (not measured: this machine has no spare "
            f"cores).")
        omp = next((k for k in keys if results[k]["variant"]["env"].get("OMP_NUM_THREADS") == "1"
                    and results[k]["variant"]["slots"] == 2), None)
        if omp:
            o = analysed[omp]
            gain = trials[omp].get(hgb, math.nan) / trials[plain2].get(hgb, math.nan)
            measured = (
                f"2 slots: hist_gradient_boosting {trials[omp].get(hgb, math.nan):.0f} trials per search vs "
                f"{trials[plain2].get(hgb, math.nan):.0f} without ({gain:.1f}×; 1 slot without: "
                f"{trials[keys[0]].get(hgb, math.nan):.0f}), random_forest {trials[omp].get(rf, math.nan):.0f} vs "
                f"{trials[plain2].get(rf, math.nan):.0f}; the hist_gradient_boosting search task "
                f"{median(o['by_task'][label_hgb]):.1f} s vs {median(two['by_task'][label_hgb]):.1f} s for a "
                f"{meta['seconds']:g} s budget; W {o['work']:.1f} s vs {two['work']:.1f} s, ratio "
                f"{ratio[omp]:.2f} vs {ratio[plain2]:.2f}{_at_load(results, omp, plain2)}.")
            if gain > 1.2:
                out.append(
                    f"`OMP_NUM_THREADS=1` on every service (a shipped setting that hurts, by its absence): {measured} "
                    f"The search task's `threadpool_limits(limits=1)` did not reach scikit-learn's OpenMP runtime, so "
                    f"HistGradientBoosting ran 2 threads per search and spin-waited on a core the other slot or "
                    f"Airflow used. Mostly that costs search work (the searches are bounded by time); in "
                    f"partitions per hour, the overrun of the slow trials.")
            else:
                out.append(
                    f"`OMP_NUM_THREADS=1` on every service, as a control: {measured} dagml's search task holds "
                    f"OpenMP and BLAS to one thread itself (`dagml.threads.limit`, since commit 3d5a2b5), so the "
                    f"variable should change nothing, and the trial counts agree within {abs(gain - 1):.0%}; the gap "
                    f"in W and ratio is one backfill each, which this run cannot tell from the load moving between "
                    f"the rows. {PRE_FIX}")
        more = next((k for k in keys if results[k]["variant"]["slots"] == 2 and results[k]["variant"]["runs"] > 2),
                    None)
        same = next((k for k in keys if more and results[k]["variant"]["slots"] == 2
                     and results[k]["variant"]["runs"] == 2
                     and results[k]["variant"]["env"] == results[more]["variant"]["env"]), None)
        if more and same:
            m, t = analysed[more], analysed[same]
            out.append(
                f"More runs than slots ({_name(results[more]['variant'])}, against {_name(results[same]['variant'])}): "
                f"ratio {ratio[more]:.2f} vs {ratio[same]:.2f}, slot-busy {m['busy_share']:.0%} vs "
                f"{t['busy_share']:.0%}, the scheduler's turn {m['sched'] / (2 * m['span']):.1%} vs "
                f"{t['sched'] / (2 * t['span']):.1%} of the slot-seconds; but a partition's run wall "
                f"{m['run_wall']:.0f} s vs {t['run_wall']:.0f} s and the longest queue wait {m['queue_wait']:.0f} s vs "
                f"{t['queue_wait']:.0f} s{_at_load(results, more, same)}. "
                + ("Extra runs keep a task queued for every slot that frees, which hides the scheduler's turn, "
                   "not the worker's." if ratio[more] > ratio[same] + 0.02 else
                   "Extra runs did not buy measurable throughput here; each partition just took longer."))
    if plain2:
        out.extend(_idle_sleep_reading(results, analysed, ratio, trials, plain2, meta))
    lag = max(a["completed_lag"] for a in analysed.values())
    families = 3
    rule = {k: families * results[k]["variant"]["runs"] / results[k]["variant"]["slots"] * meta["seconds"]
            for k in keys}
    out.append(
        f"Airflow flags a backfill complete on a 30 s timer (the scheduler's `_mark_backfills_complete`), here up "
        f"to {lag:.0f} s after its last run ended: only a script that waits on `completed_at` sees it, which is why "
        f"the ratio by completed_at is lower, most of all for short backfills.")
    out.append(
        "What to set. `max_active_runs` of the backfill = worker slots: `POST /api/v2/backfills` defaults to 10, "
        "which on a few slots queues every run's searches at once. " + (
            "More runs than slots bought little here and made each partition take longer. " if plain2 and more
            and same and ratio[more] <= ratio[same] + 0.02 else "One extra run can fill the scheduler's turn. " if
            plain2 and more and same else "") +
        "One worker slot per core, with Airflow's services on cores of their own if the ratio matters: here 2 "
        "slots shared 2 cores with them. " + _idle_sleep_advice(results, ratio, meta)
        + ("`OMP_NUM_THREADS=1` in the workers' environment, so a search holds one core as its slot promises. "
           if gain is not None and gain > 1.2 else "No `OMP_NUM_THREADS` is needed for dagml's searches. "
           if gain is not None else "")
        + "`--queued-timeout` above the longest queue wait: measured "
        + ", ".join(f"{analysed[k]['queue_wait']:.0f} s ({_name(results[k]['variant'])})" for k in keys)
        + "; the README's rule, families × runs ÷ slots × budget.seconds, gives "
        + ", ".join(f"{rule[k]:.0f} s" for k in keys) + " (3 searches, dummy included), "
        + ("which covers them" if all(analysed[k]["queue_wait"] <= rule[k] for k in keys) else
           "which does not cover every one of them: a queued task also waits behind other runs' serial tasks and "
           "the searches' overrun, so keep a margin") + "; the shipped 3600 s leaves plenty.")
    out.append(
        "Why the dummy is capped: with `max_evals` high enough that `budget.seconds` rules, sklearn:dummy (added "
        "to every config) inherits that budget and re-evaluates its 2 points until the seconds run out, a whole "
        "search's slot time per partition for a baseline. bench/cluster_dags/backfill/configs/bench_sales.yaml "
        "lists it as `{name: dummy, max_evals: 2}`; a config whose budget is bounded by time should do the same.")
    return "\n\n".join(out)


if __name__ == "__main__":
    main()
