"""The demo DAG's wall time against the sum of its task durations: what Airflow costs around the work.

``airflow dags test automl__breast_cancer`` (what ``make demo`` runs) is timed end to end in a
subprocess with the embedded settings of ``airflow_config/embedded.env``, except that
AIRFLOW_HOME, both SQLite DBs and the artifact root sit in a fresh temporary folder, so the
checkout's ``.airflow`` is never touched. Afterwards the run's task instances are read from
that metadata DB. Both figures come from the same run, so their ratio (wall / sum of task
durations) is the overhead, and it holds on a shared, noisy machine where absolute seconds do not.
The wall time splits into: before the first task starts (interpreter, imports, DAG parse, run
creation), the gaps between tasks, and after the last one ends.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import REPO, provenance, write_section  # noqa: E402

DAG_ID = "automl__breast_cancer"
REPEATS = 2
AIRFLOW = REPO / ".venv" / "bin" / "airflow"


def embedded_env(home: Path) -> dict:
    """airflow_config/embedded.env, with everything that it would write under ``home``."""
    (home / "dagml").mkdir(parents=True)
    return os.environ | {
        "PATH": f"{AIRFLOW.parent}:{os.environ['PATH']}",
        "DAGML_HOME": str(REPO),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACKS": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_DAGML_RESULTS": f"sqlite:///{home}/dagml/results.db",
        "DAGML_ARTIFACTS_ROOT": str(home / "dagml" / "artifacts"),
        "DAGML_CONFIGS": str(REPO / "dags" / "configs"),
    }


def when(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def run_once(home: Path) -> dict:
    env = embedded_env(home)
    subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, cwd=REPO, check=True, capture_output=True)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    test = subprocess.run([str(AIRFLOW), "dags", "test", DAG_ID], env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if test.returncode:
        sys.exit(f"airflow dags test failed ({test.returncode}):\n{test.stdout[-3000:]}\n{test.stderr[-3000:]}")
    with sqlite3.connect(home / "airflow.db") as db:
        (state,) = db.execute("SELECT state FROM dag_run WHERE dag_id = ?", (DAG_ID,)).fetchone()
        tis = db.execute("SELECT task_id, map_index, rendered_map_index, start_date, end_date, duration "
                         "FROM task_instance "
                         "WHERE dag_id = ? ORDER BY start_date", (DAG_ID,)).fetchall()
    first, last = when(tis[0][3]), max(when(ti[4]) for ti in tis)
    total = sum(ti[5] for ti in tis)
    span = (last - first).total_seconds()
    # The first task's duration also holds the in-process execution API's start: until it logs "Task started".
    reported = re.search(r"^(\S+) \[info\s*\] Task started", test.stdout + test.stderr, re.M)
    return {"wall": wall, "sum": total, "state": state, "tis": tis, "before": (first - started).total_seconds(),
            "gaps": span - total, "after": wall - (last - started).total_seconds(),
            "first_wait": (when(reported[1]) - first).total_seconds() if reported else float("nan")}


def main() -> None:
    runs = []
    for _ in range(REPEATS):
        home = Path(tempfile.mkdtemp(prefix="dagml-bench-demo-"))
        try:
            runs.append(run_once(home))
        finally:
            shutil.rmtree(home, ignore_errors=True)
    summary = "\n".join(
        f"| {i} | {r['state']} | {len(r['tis'])} | {r['wall']:.1f} | {r['sum']:.1f} | **{r['wall'] / r['sum']:.2f}** | {r['wall'] - r['sum']:.1f} "
        f"| {r['before']:.1f} | {r['gaps']:.1f} | {r['after']:.1f} | {r['first_wait']:.1f} |"
        for i, r in enumerate(runs, 1))
    durations = [{ti[:2]: ti[5] for ti in r["tis"]} for r in runs]  # (task_id, map_index) -> seconds
    per_task = "\n".join(f"| {ti[0]} | {ti[1]} | {ti[2] or ''} | " + " | ".join(f"{d[ti[:2]]:.2f}" for d in durations)
                         + " |" for ti in runs[0]["tis"])
    write_section("demo_overhead", f"""## Demo run: wall time vs the sum of task durations

{provenance()}

`airflow dags test {DAG_ID}` on the embedded default (SQLite, in a fresh temporary
AIRFLOW_HOME), {REPEATS} runs one after the other. Wall is the command's elapsed time; task
durations are `task_instance.duration` of that run; overhead = wall / sum. "Before" is from
starting the command to the first task's start (interpreter, imports, parsing, run
creation); "gaps" is the time between tasks (first start to last end, minus the sum);
"after" is from the last task's end to the command's exit. Seconds. The ratio moves with
the task durations (a busy machine stretches the searches); wall − sum, the fixed cost, moves less.
The last column is part of the sum, not of wall − sum: from the first task's start_date to the
log line "Task started", the one-time start of the execution API that `dags test` runs in-process;
count it as Airflow's overhead too.

| run | state | task instances | wall | sum of tasks | overhead (wall/sum) | wall − sum | before | gaps | after | first task, before "Task started" |
|---|---|---|---|---|---|---|---|---|---|---|
{summary}

Per task instance, seconds (rows in the order the first run ran them):

| task_id | map_index | family | {" | ".join(f"run {i}" for i in range(1, REPEATS + 1))} |
|---|---|---|{"---|" * REPEATS}
{per_task}
""")


if __name__ == "__main__":
    main()
