"""What dagml's metrics cost: the same DAG run with Airflow's metrics on (StatsD to a UDP listener
on loopback, in this process) and off, interleaved (off, on, on, off, off, on...: each pair in the other order from the last).

Each run is ``airflow dags test`` of a small dataset with many cheap trials (so the per-trial
metrics count for as much as they can), in a fresh AIRFLOW_HOME of the embedded settings
(``demo_overhead.embedded_env``) with a copy of one migrated metadata DB and a new results DB, so
every run does the same work: search by evaluation budget (no seconds bound), first champion.
Two ratios per pair, on / off: the command's wall time, and the sum of its task durations (the
tasks' own time, without the interpreter's start and the DAG parse). Then, in this process, the
cost of one ``dagml.telemetry.trial`` call (3 metrics) on and off, for scale.

Run it pinned to one core: ``taskset -c 1 .venv/bin/python bench/metrics_overhead.py [pairs]``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from _report import REPO, provenance, write_section  # noqa: E402
from demo_overhead import AIRFLOW, embedded_env  # noqa: E402

from tests.statsd_listener import StatsdListener  # noqa: E402

DATASET = "metrics_bench"
DAG_ID = f"automl__{DATASET}"
CONFIG = """source: {uri: "sklearn://iris"}
target: target
families: [knn, elastic_net]
budget: {max_evals: 25, seconds: 3600}
ensemble: false
warm_start: false
retries: 0
"""
PAIRS = int(sys.argv[1]) if len(sys.argv) > 1 else 12


def _home(template: Path) -> tuple[Path, dict]:
    home = Path(tempfile.mkdtemp(prefix="dagml-bench-metrics-"))
    env = embedded_env(home)
    shutil.copy(template / "airflow.db", home / "airflow.db")
    shutil.copytree(template / "dags", home / "dags")
    return home, env | {"AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"), "DAGML_CONFIGS": str(home / "dags" / "configs")}


def run_once(template: Path, metrics_on: bool) -> dict:
    home, env = _home(template)
    listener = StatsdListener() if metrics_on else None
    env |= {"AIRFLOW__METRICS__STATSD_ON": str(metrics_on), "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(listener.port if listener else 9)}
    try:
        started = time.perf_counter()
        test = subprocess.run([str(AIRFLOW), "dags", "test", DAG_ID], env=env, cwd=REPO, capture_output=True,
                              text=True)
        wall = time.perf_counter() - started
        if test.returncode:
            sys.exit(f"airflow dags test failed ({test.returncode}):\n{test.stdout[-3000:]}\n{test.stderr[-3000:]}")
        with sqlite3.connect(home / "airflow.db") as db:
            (tasks,) = db.execute("SELECT sum(duration) FROM task_instance WHERE dag_id = ?", (DAG_ID,)).fetchone()
        with sqlite3.connect(home / "dagml" / "results.db") as db:
            (trials,) = db.execute("SELECT sum(n_trials) FROM dagml_leaderboard").fetchone()
    finally:
        if listener:
            listener.close()
        shutil.rmtree(home, ignore_errors=True)
    lines = listener.lines if listener else []
    return {"wall": wall, "tasks": tasks, "trials": trials, "lines": len(lines),
            "dagml_lines": sum(line.startswith("airflow.dagml.") for line in lines)}


def call_cost(on: bool, calls: int = 20_000) -> float:
    """Microseconds of one telemetry.trial() (a counter and a timer; with metrics on, UDP sends) in this process."""
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics.stats_utils import get_stats_factory

    from dagml import telemetry

    listener = StatsdListener() if on else None
    os.environ.update({"AIRFLOW__METRICS__STATSD_ON": str(on), "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                       "AIRFLOW__METRICS__STATSD_PORT": str(listener.port if listener else 9)})
    telemetry.enabled.cache_clear()
    stats.initialize(factory=get_stats_factory(), export_legacy_names=True)
    telemetry.trial("warm", "sklearn:knn", 0.1, True)  # Airflow's registry loads on first use
    started = time.perf_counter()
    for _ in range(calls):
        telemetry.trial("bench", "sklearn:knn", 0.1, True)
    cost = (time.perf_counter() - started) / calls * 1e6
    if listener:
        listener.close()
    return cost


def ratio_interval(ratios: list[float]) -> tuple[float, float, float]:
    """(low, geometric mean, high): the 95% confidence interval of the mean on/off ratio, from
    Student's t over the pairs' log ratios (a ratio and its inverse weigh alike)."""
    import math

    from scipy import stats

    logs = [math.log(r) for r in ratios]
    mean = statistics.mean(logs)
    half = stats.t.ppf(0.975, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean - half), math.exp(mean), math.exp(mean + half)


def main() -> None:
    template = Path(tempfile.mkdtemp(prefix="dagml-bench-metrics-template-"))
    (template / "dags" / "configs").mkdir(parents=True)
    shutil.copy(REPO / "dags" / "automl.py", template / "dags")
    (template / "dags" / "configs" / f"{DATASET}.yaml").write_text(CONFIG)
    subprocess.run([str(AIRFLOW), "db", "migrate"], env=embedded_env(template), cwd=REPO, check=True,
                   capture_output=True)
    pairs = []
    try:
        for i in range(PAIRS):
            # off, on, then on, off: a machine growing busier or quieter over the runs favours neither
            if i % 2 == 0:
                off = run_once(template, metrics_on=False)
                on = run_once(template, metrics_on=True)
            else:
                on = run_once(template, metrics_on=True)
                off = run_once(template, metrics_on=False)
            pairs.append((off, on))
            print(f"pair {i + 1}: off {off['wall']:.1f} s ({off['tasks']:.1f} in tasks), "
                  f"on {on['wall']:.1f} s ({on['tasks']:.1f} in tasks), {on['dagml_lines']} dagml metrics", flush=True)
    finally:
        shutil.rmtree(template, ignore_errors=True)
    us_off, us_on = call_cost(False), call_cost(True)

    wall = [on["wall"] / off["wall"] for off, on in pairs]
    tasks = [on["tasks"] / off["tasks"] for off, on in pairs]
    rows = "\n".join(
        f"| {i} | {off['wall']:.1f} | {on['wall']:.1f} | {on['wall'] / off['wall']:.3f} | {off['tasks']:.1f} "
        f"| {on['tasks']:.1f} | {on['tasks'] / off['tasks']:.3f} | {on['trials']} | {on['dagml_lines']} | {on['lines']} |"
        for i, (off, on) in enumerate(pairs, 1))
    trials = pairs[0][1]["trials"]
    all_lines = pairs[0][1]["lines"]
    mean_wall = statistics.mean(on["wall"] for _, on in pairs)

    low, mean, high = ratio_interval(wall)
    if high < 1.02:
        verdict = f"The cost is under 2% of wall time at 95% confidence (the interval's top is {high:.3f})."
    elif low > 1.02:
        verdict = f"The cost is over 2% of wall time at 95% confidence (the interval's bottom is {low:.3f})."
    else:
        verdict = (f"The pairs' wall ratios span {max(wall) - min(wall):.1%}: on this shared machine the 95% interval "
                   f"({low:.3f} to {high:.3f}) is too wide to say whether the cost is under 2%; the per-call cost "
                   "below bounds it directly.")

    def spread(ratios):
        low, mean, high = ratio_interval(ratios)
        return (f"geometric mean **{mean:.3f}** (95% interval {low:.3f} to {high:.3f}), median "
                f"{statistics.median(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}")

    write_section("metrics_overhead", f"""## The cost of metrics: a DAG run with metrics on vs off

{provenance()} CPU affinity of the benchmark and its runs: cores
{sorted(os.sched_getaffinity(0))} (`taskset -c 1` in `make bench-long`).

`airflow dags test {DAG_ID}` (iris, `knn` and `elastic_net` at 25 evaluations each, plus the
2-point baseline: {trials} trials a run) on the embedded settings, each run in a fresh AIRFLOW_HOME
(a copy of one migrated metadata DB, a new results DB). Off is Airflow's default (`[metrics]
statsd_on = False`); on sends StatsD to a UDP listener on loopback in the benchmark's process.
{PAIRS} pairs, interleaved off, on, on, off, off, on...; ratio = on / off within a pair. "Wall" is the
command's elapsed time, "tasks" the sum of its task instances' durations. Seconds.

| pair | wall off | wall on | wall on/off | tasks off | tasks on | tasks on/off | trials | dagml metrics received | all metrics received |
|---|---|---|---|---|---|---|---|---|---|
{rows}

Wall on/off: {spread(wall)}. Tasks on/off: {spread(tasks)}. The goal is under 1.02.
{verdict}

One `dagml.telemetry.trial()` call (trials_done and trial_seconds: 2 UDP sends through Airflow's
client), in this process, {us_on:.1f} µs with metrics on and {us_off:.2f} µs off (one cached check);
a run's {trials} trials spend about {trials * us_on / 1000:.1f} ms on them, against trials of tenths of a second.
Every metric a run sends ({all_lines}, dagml's and Airflow's) at that cost a send ({us_on / 2:.1f} µs) comes to about
{all_lines * us_on / 2 / 1000:.1f} ms of its {mean_wall:.1f} s: {all_lines * us_on / 2 / 1e6 / mean_wall:.3%} of wall time.
""")


if __name__ == "__main__":
    main()
