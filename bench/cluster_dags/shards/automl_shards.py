"""dagml's DAGs for bench/shards.py: configs/ beside this file holds one dataset twice, its one
family searched in 1 shard (``automl__bench_shards1``) and in 2 (``automl__bench_shards2``). They
are kept out of ../configs, so the other cluster benchmarks see the same DAGs as before (these stay
paused there)."""

from pathlib import Path

from airflow.sdk import get_parsing_context

from dagml.factory import dags_from_folder

globals().update(dags_from_folder(Path(__file__).parent / "configs", get_parsing_context().dag_id))
