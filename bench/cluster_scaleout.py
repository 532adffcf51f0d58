"""Scale-out on a real CeleryExecutor cluster: the same DAG on 1 worker slot and on 2.

Each cycle starts airflow_config/cluster.py with ``--workers 1`` (a worker has one slot),
runs bare Airflow's ``bare__scaleout`` and dagml's ``automl__breast_cancer`` (the order
alternates per cycle) with every one of the 7 mapped searches time-bounded to S seconds,
takes the cluster down, then does the same with ``--workers 2``. Both DAGs: 3 serial tasks,
one task mapped over 7 items, 3 serial tasks (bench/cluster_dags/). The search stage is the
first mapped start to the last mapped end. With 7 equal searches, 1 slot takes 7 rounds and
2 slots 4, so the ideal stage speed-up is 7/4 = 1.75; the ideal run speed-up keeps the 1-slot
run's serial part (run wall - stage) and shrinks its stage by 4/7. Goal (the issue): a
measured speed-up of at least 0.95 of the ideal for searches of 20 s or more.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from statistics import mean, median

sys.path.insert(0, str(Path(__file__).parent))
from _cluster import REDIS_DBS, Cluster, handoff_gaps, load, past, run_wall  # noqa: E402
from _report import provenance, write_section  # noqa: E402

MAPPED = 7
SLOTS = (1, 2)
DAGS = {  # name -> dag_id, mapped task, trigger conf for S seconds
    "bare Airflow": ("bare__scaleout", "search", lambda s: {"seconds": s}),
    "dagml": ("automl__breast_cancer", "search_sklearn", lambda s: {"max_evals": 10_000, "seconds": s}),
}


def rounds(slots: int) -> int:
    return math.ceil(MAPPED / min(slots, MAPPED))


def measure(cluster: Cluster, name: str, seconds: float) -> dict:
    dag_id, mapped_task, conf = DAGS[name]
    result = cluster.run(dag_id, conf(seconds))
    run_id = result["run"]["dag_run_id"]
    mapped = [t for t in result["tis"] if t["task_id"] == mapped_task]
    assert len(mapped) == MAPPED, mapped
    if name == "dagml":  # work done: hyperopt trials of the 7 searches, from dagml's results database
        work = cluster.results("SELECT sum(n_trials) FROM dagml_leaderboard WHERE run_id = :r", r=run_id)[0][0]
    else:  # busy-loop iterations of the 7 searches (the select task's return value)
        work = sum(cluster.xcom(dag_id, run_id, "select"))
    return {"wall": run_wall(result), "stage": max(t["end"] for t in mapped) - min(t["start"] for t in mapped),
            "search": mean(t["end"] - t["start"] for t in mapped), "work": work,
            "retried": sum(t["try"] > 1 for t in result["tis"]), "slow": sum(g > 4 for g in handoff_gaps(result))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="seconds per mapped search (S)")
    parser.add_argument("--cycles", type=int, default=1, help="times to run the 1-slot then 2-slot clusters")
    parser.add_argument("--stop-at", metavar="HH:MM", help="UTC: start no further cycle after this")
    args = parser.parse_args()
    t0, load_before = time.time(), load()
    runs: dict[tuple[str, int], list[dict]] = {}
    for cycle in range(args.cycles):
        if past(args.stop_at):
            args.cycles = cycle
            break
        for slots in SLOTS:
            order = list(DAGS) if cycle % 2 == 0 else list(DAGS)[::-1]
            with Cluster(workers=slots, redis_db=REDIS_DBS[slots - 1]) as cluster:
                for name in order:
                    runs.setdefault((name, slots), []).append(measure(cluster, name, args.seconds))
                    print(name, slots, runs[name, slots][-1], flush=True)
    report(runs, args, time.time() - t0, load_before, load())


def report(runs: dict, args, elapsed: float, load_before: str, load_after: str) -> None:
    rows, ratios, verdicts = [], [], []
    ideal_stage = rounds(1) / rounds(2)
    for name in DAGS:
        for slots in SLOTS:
            r = runs[name, slots]
            rows.append(f"| {name} | {slots} | {len(r)} | {median(x['wall'] for x in r):.1f} "
                        f"| {median(x['stage'] for x in r):.1f} | {median(x['search'] for x in r):.1f} "
                        f"| {rounds(slots) * median(x['search'] for x in r) / median(x['stage'] for x in r):.2f} "
                        f"| {median(x['work'] for x in r):,.0f} | {sum(x['slow'] for x in r)} "
                        f"| {sum(x['retried'] for x in r)} |")
        one, two = runs[name, 1], runs[name, 2]  # paired by cycle
        stage = [a["stage"] / b["stage"] for a, b in zip(one, two)]
        run = [a["wall"] / b["wall"] for a, b in zip(one, two)]
        ideal_run = [a["wall"] / (a["wall"] - a["stage"] + a["stage"] / ideal_stage) for a in one]
        work = [b["work"] / a["work"] for a, b in zip(one, two)]
        stage_eff = median(s / ideal_stage for s in stage)
        run_eff = median(r / i for r, i in zip(run, ideal_run))
        spread = "" if len(stage) < 2 else f" ({min(stage) / ideal_stage:.2f}–{max(stage) / ideal_stage:.2f})"
        ratios.append(f"| {name} | {median(stage):.2f} | {ideal_stage:.2f} | **{stage_eff:.2f}**{spread} "
                      f"| {median(run):.2f} | {median(ideal_run):.2f} | {run_eff:.2f} | {median(work):.2f} |")
        verdicts.append(f"{name} {'meets' if stage_eff >= 0.95 else 'misses'} it ({stage_eff:.2f}; its 7 searches "
                        f"did {median(work):.2f}× the 1-slot work on 2 slots, in {args.seconds:g} s each either way)")
    goal = ("" if args.seconds >= 20 else
            f" (the goal is stated for searches of 20 s or more; this run used {args.seconds:g} s)")
    write_section("cluster_scaleout", f"""## Scale-out on a CeleryExecutor cluster: 1 worker slot vs 2

{provenance()} Total run time {elapsed:.0f} s; load average (1/5/15 min) before {load_before}, after {load_after}.

airflow_config/cluster.py (Postgres, Redis, api-server, scheduler, dag-processor,
triggerer; dagml's shipped scheduler settings) with 1 Celery worker, then with 2 (one slot
each), {args.cycles} cycle(s); on each cluster both DAGs run one after the other (order
alternating per cycle). Both have the same shape: 3 serial tasks, a task mapped over
{MAPPED} items, 3 serial tasks. dagml: `automl__breast_cancer` triggered with
`{{"max_evals": 10000, "seconds": {args.seconds:g}}}` (10000 is the most a config allows; 6
scikit-learn families + dummy, each search stopped by time). Bare Airflow: `bare__scaleout`
(bench/cluster_dags/bare.py), each mapped task a pure-Python busy loop for {args.seconds:g} s of
wall time. Both are bounded by time, so a slot that gets less CPU does less work, not slower
work; "work done" (hyperopt trials of the 7 searches; busy-loop iterations) shows that: it
falls when the two slots share the 2 cores with each other and with Airflow's services.

Stage = first mapped start to last mapped end; search = mean duration of one mapped task
instance; seconds, medians over cycles. Rounds × search / stage is the share of the stage
the slots spent running searches ({rounds(1)} rounds on 1 slot, {rounds(2)} on 2): 1.00 would
be hand-offs that cost nothing. Hand-offs > 4 s counts (summed over cycles) the task
instances that started more than 4 s after they could have (upstream done and a worker slot
free; see the cluster_overhead section for what causes them).

| DAG | worker slots | runs | run wall | search stage | search (mean) | rounds × search / stage | work done | hand-offs > 4 s | retried tasks |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Speed-up from 1 slot to 2 (ratios per cycle, then their median). Ideal stage speed-up =
{rounds(1)} rounds / {rounds(2)} rounds = {ideal_stage:.2f} (the critical path of {MAPPED} equal tasks
on 2 slots); measured/ideal is the figure the goal is about{' (range over cycles)' if args.cycles > 1 else ''}.
The ideal run speed-up keeps the 1-slot run's serial part and divides its stage by {ideal_stage:.2f}.

| DAG | stage speed-up | ideal | stage: measured / ideal | run speed-up | ideal | run: measured / ideal | work done, 2 slots / 1 |
|---|---|---|---|---|---|---|---|
{chr(10).join(ratios)}

The ideal counts rounds, not hand-offs: on 1 slot the 7 searches pass 6 hand-offs in series,
on 2 slots 3 per slot side by side, so every second a hand-off costs weighs more in the
1-slot stage. With the ~5 s hand-offs (column "> 4 s" above) hitting the 1-slot runs more
often, measured/ideal can pass 1.00: the 1-slot baseline is slow, 2 slots do not scale past
ideal. "Rounds × search / stage" says how close each stage came to hand-offs that cost nothing.

Goal: at least 0.95 of the ideal stage speed-up for searches of 20 s or more{goal}:
{"; ".join(verdicts)}.
""")


if __name__ == "__main__":
    main()
