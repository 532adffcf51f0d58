"""dagml's DAG for the cluster benchmarks: configs/ holds links to dags/configs/breast_cancer.yaml
and _defaults.yaml, so the benchmark runs exactly the shipped automl__breast_cancer."""

from pathlib import Path

from airflow.sdk import get_parsing_context

from dagml.factory import dags_from_folder

globals().update(dags_from_folder(Path(__file__).parent / "configs", get_parsing_context().dag_id))
