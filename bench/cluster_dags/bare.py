"""Bare-Airflow DAGs (TaskFlow, no dagml) that the cluster benchmarks run beside dagml's.

- ``bare__scaleout``: automl__breast_cancer's shape: 3 serial tasks, ``search`` mapped over
  7 items, each a pure-Python busy loop for ``params.seconds`` of wall time (dagml's searches
  are time-bounded too) returning its iteration count, then 3 serial tasks (``select``
  returns the 7 counts).
- ``bare__chain_N``: N no-op tasks in a chain (N = 5 to try the script, 20 to measure).
"""

import time
from datetime import datetime

from airflow.sdk import DAG, chain, task

START = datetime(2026, 1, 1)
ITEMS = ["a", "b", "c", "d", "e", "f", "g"]  # as many as dagml's 6 families + dummy


@task
def step(upstream=None):
    return upstream


@task
def collect(counts) -> list[int]:
    return list(counts)


@task
def burn(item: str, prepared=None, params=None) -> int:
    deadline, n = time.monotonic() + float(params["seconds"]), 0
    while time.monotonic() < deadline:
        n += 1
    return n


with DAG("bare__scaleout", schedule=None, start_date=START, catchup=False, params={"seconds": 20}):
    prepared = step.override(task_id="prepare")(step.override(task_id="profile")(step.override(task_id="load")()))
    iterations = burn.override(task_id="search").partial(prepared=prepared).expand(item=ITEMS)
    selected = collect.override(task_id="select")(iterations)
    step.override(task_id="report")(step.override(task_id="promote")(selected))

for n in (5, 20):
    with DAG(f"bare__chain_{n}", schedule=None, start_date=START, catchup=False):
        chain(*[step.override(task_id=f"t{i:02d}")() for i in range(n)])
