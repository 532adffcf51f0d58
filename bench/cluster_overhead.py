"""Scheduling overhead on a real CeleryExecutor cluster: Airflow's defaults vs dagml's shipped settings.

For each config, airflow_config/cluster.py starts a cluster with 2 Celery workers (one slot
each): ``--airflow-defaults`` (no dagml tuning) and without it (dagml's shipped ``TUNING``),
plus one cluster per ``--try KEY=VALUE[,KEY=VALUE]`` (shipped settings and these env
settings: candidates for ``TUNING``). On each, after an unmeasured warm-up run of
``bare__chain_5``, it runs ``--runs`` times: (a) ``bare__chain_N``, N no-op tasks in a chain
(bench/cluster_dags/bare.py) and (b) dagml's ``automl__breast_cancer`` with
``{"max_evals": 1}``. Per config and DAG, over all task instances of all runs: queued ->
running (start_date - queued_when, or - the end of the task instance before it on the same
worker if later) and end -> next start (a task instance's start minus the
moment it could have started: the latest end among its upstream tasks, or the end of the
one before it on the same worker if later), median and p95; the run's wall (its start_date
to end_date) against its critical path (the longest path of task durations) plus 0.5 s per
serial stage. Goals (the issue): the shipped config cuts the default end -> next-start gap
at least 5x; a run's wall is at most its critical path + 0.5 s per serial stage.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).parent))
from _cluster import (REDIS_DBS, Cluster, critical_path, handoff_gaps, load, p95, past, queue_waits,  # noqa: E402
                      run_wall)
from _report import provenance, write_section  # noqa: E402

DEFAULTS, SHIPPED = "Airflow defaults", "dagml shipped"
WORKERS = 2
PER_STAGE = 0.5


def measure(cluster: Cluster, dag_id: str, conf: dict) -> dict:
    result = cluster.run(dag_id, conf)
    cp, stages = critical_path(result)
    cp_slots, stages_slots = critical_path(result, WORKERS)
    return {"waits": queue_waits(result), "gaps": handoff_gaps(result), "wall": run_wall(result),
            "cp": cp, "stages": stages, "cp_slots": cp_slots, "stages_slots": stages_slots}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chain", type=int, default=20, choices=(5, 20), help="no-op tasks in the bare chain")
    parser.add_argument("--runs", type=int, default=2, help="runs of each DAG per cluster")
    parser.add_argument("--cycles", type=int, default=1, help="times to bring up every config's cluster in turn")
    parser.add_argument("--try", dest="tries", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="one more config: dagml's shipped settings plus these env settings")
    parser.add_argument("--stop-at", metavar="HH:MM", help="UTC: start no further cluster after this")
    args = parser.parse_args()
    configs = {DEFAULTS: {"airflow_defaults": True}, SHIPPED: {}}
    for extra in args.tries:
        configs[f"shipped + {extra}"] = {"extra_env": dict(kv.split("=", 1) for kv in extra.split(","))}
    dags = {f"bare__chain_{args.chain}": {}, "automl__breast_cancer": {"max_evals": 1}}
    t0, load_before = time.time(), load()
    runs: dict[tuple[str, str], list[dict]] = {}
    for cycle in range(args.cycles):
        for i, name in enumerate(list(configs) if cycle % 2 == 0 else list(configs)[::-1]):
            if past(args.stop_at):
                args.stopped = f"Stopped at {args.stop_at} UTC (`--stop-at`) before cycle {cycle + 1} ended. "
                break
            with Cluster(workers=WORKERS, redis_db=REDIS_DBS[i], **configs[name]) as cluster:
                cluster.run("bare__chain_5")  # warm-up: the first task processes, the DAGs parsed
                for run in range(args.runs):
                    for dag_id in (list(dags) if run % 2 == 0 else list(dags)[::-1]):
                        runs.setdefault((name, dag_id), []).append(measure(cluster, dag_id, dags[dag_id]))
                        r = runs[name, dag_id][-1]
                        print(name, dag_id, f"wall {r['wall']:.1f} cp {r['cp']:.1f} gaps {median(r['gaps']):.2f}",
                              flush=True)
    report(runs, configs, dags, args, time.time() - t0, load_before, load())


def report(runs: dict, configs: dict, dags: dict, args, elapsed: float, load_before: str, load_after: str) -> None:
    gap_rows, cp_rows, verdicts = [], [], []
    configs = {name: c for name, c in configs.items() if all((name, d) in runs for d in dags)}
    gap = {key: median(g for r in rs for g in r["gaps"]) for key, rs in runs.items()}
    for dag_id in dags:
        for name in configs:
            rs = runs[name, dag_id]
            waits, gaps = [w for r in rs for w in r["waits"]], [g for r in rs for g in r["gaps"]]
            cut = gap[DEFAULTS, dag_id] / gap[name, dag_id]
            gap_rows.append(f"| {dag_id} | {name} | {len(rs)} | {median(waits):.2f} | {p95(waits):.2f} "
                            f"| {median(gaps):.2f} | {p95(gaps):.2f} | {sum(g > 4 for g in gaps)} | **{cut:.1f}×** "
                            f"| {median(r['wall'] for r in rs):.1f} |")
            per_stage = [(r["wall"] - r["cp"]) / r["stages"] for r in rs]
            per_stage_slots = [(r["wall"] - r["cp_slots"]) / r["stages_slots"] for r in rs]
            met = sum(r["wall"] <= r["cp"] + PER_STAGE * r["stages"] for r in rs)
            cp_rows.append(f"| {dag_id} | {name} | {median(r['wall'] for r in rs):.1f} "
                           f"| {median(r['cp'] for r in rs):.1f} "
                           f"| {rs[0]['stages']} | **{median(per_stage):.2f}** | {met} of {len(rs)} "
                           f"| {median(r['cp_slots'] for r in rs):.1f} | {rs[0]['stages_slots']} "
                           f"| {median(per_stage_slots):.2f} |")
            if name != DEFAULTS:
                verdicts.append(f"- {name}, {dag_id}: end → next start cut **{cut:.1f}×** "
                                f"({'meets' if cut >= 5 else 'misses'} 5×); wall ≤ critical path + "
                                f"{PER_STAGE} s per stage in {met} of {len(rs)} runs "
                                f"({'meets' if met == len(rs) else 'misses'} it)")
    settings = "".join(f"\n- {name}: " + (", ".join(f"`{k}={v}`" for k, v in c.get("extra_env", {}).items())
                                          or ("`--airflow-defaults`" if c else "cluster.py as shipped (`TUNING`)"))
                       for name, c in configs.items())
    write_section("cluster_overhead", f"""## Scheduling overhead on a CeleryExecutor cluster: Airflow's defaults vs dagml's settings

{provenance()} {getattr(args, "stopped", "")}Total run time {elapsed:.0f} s; load average (1/5/15 min) before {load_before}, after {load_after}.

airflow_config/cluster.py with {WORKERS} Celery workers (one slot each), Postgres and Redis,
one cluster per config, {args.cycles} cycle(s) of the configs (order reversed every other
cycle). Configs:{settings}

On each cluster, after an unmeasured warm-up run of `bare__chain_5`, {args.runs} runs of each
DAG alternating: `bare__chain_{args.chain}` ({args.chain} no-op TaskFlow tasks in a chain,
bench/cluster_dags/bare.py) and dagml's `automl__breast_cancer` with `{{"max_evals": 1}}` (7
task instances in series around 7 mapped one-trial searches). Over every task instance of
those runs: queued → running is start_date − queued_when (or, for a mapped search that
waited for a slot, minus the end of the task instance before it on its worker); end → next start is a task
instance's start minus the moment it could have started, the latest end among its upstream
tasks' instances or, if later, the end of the task instance before it on the same worker (a
mapped search waits for a free slot). "> 4 s" counts the hand-offs longer than 4 s. The cut
is the Airflow-defaults median end → next start over this config's, same DAG. Seconds.

| DAG | config | runs | queued → running, median | p95 | end → next start, median | p95 | > 4 s | cut vs defaults | run wall, median |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(gap_rows)}

Run wall (the DAG run's start_date to end_date) against the critical path: the longest path
of task durations, a mapped task counting its longest instance, and the serial stages
along it (the issue's goal: wall ≤ critical path + {PER_STAGE} s per stage). The last three
columns count the {WORKERS} worker slots: the mapped searches list-scheduled longest first on
{WORKERS} slots, each round of them a serial stage. Medians over runs.

| DAG | config | run wall | critical path | stages | (wall − path) / stage | wall ≤ path + {PER_STAGE} s/stage | path on {WORKERS} slots | stages | (wall − path) / stage |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(cp_rows)}

Goals:
{chr(10).join(verdicts)}

The hand-offs of about 5 s ("> 4 s") are not the scheduler's: the task's end_date is set, but
its worker's log says "Workload finished" about 5 s later, and only then does the worker
(one slot) take the next task. That fits the task supervisor's loop in
`airflow/sdk/execution_time/supervisor.py` (`_monitor_subprocess`): when the task process has
closed its sockets but not yet exited, the supervisor sleeps in `select()` for up to
`[workers] min_heartbeat_interval` (5 s by default) before it looks again: dagml's `TUNING`
sets it to 1 s.
""")


if __name__ == "__main__":
    main()
