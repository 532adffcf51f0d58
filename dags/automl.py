"""Airflow DAGs for dagml: one DAG per dataset config in dags/configs/.

Declarative and thin: the configs say what to train, dagml.factory builds the DAGs.
A task process builds only its own DAG (Airflow's parsing context).
"""

from pathlib import Path

from airflow.sdk import get_parsing_context

from dagml.factory import dags_from_folder

globals().update(dags_from_folder(Path(__file__).parent / "configs", get_parsing_context().dag_id))
