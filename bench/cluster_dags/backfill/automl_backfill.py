"""dagml's DAG for bench/backfill_throughput.py: configs/ beside this file holds its one dataset,
a daily partition of a Postgres table (``automl__bench_sales``). It is kept out of
../configs, so the other cluster benchmarks see the same DAGs as before (this one stays paused)."""

from pathlib import Path

from airflow.sdk import get_parsing_context

from dagml.factory import dags_from_folder

globals().update(dags_from_folder(Path(__file__).parent / "configs", get_parsing_context().dag_id))
