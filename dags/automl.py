"""Airflow DAGs for dagml: one DAG per dataset config in the configs folder (DAGML_CONFIGS,
else configs/ beside this file; the dagml CLI reads the same folder).

Declarative and thin: the configs say what to train, dagml.factory builds the DAGs.
A task process builds only its own DAG (Airflow's parsing context).
"""

from pathlib import Path

from airflow.sdk import get_parsing_context

from dagml.factory import dags_from_folder
from dagml.settings import configs_dir

globals().update(dags_from_folder(configs_dir(Path(__file__).parent), get_parsing_context().dag_id))
