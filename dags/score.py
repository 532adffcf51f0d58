"""Scoring DAGs for dagml: one DAG score__<name> per dataset config that has a ``scoring``
section, in the same configs folder as automl.py (DAGML_CONFIGS, else configs/ beside this
file); the dataset's champion predicts each partition of its scoring source.

Declarative and thin: dagml.scoring builds the DAGs. A task process builds only its own DAG
(Airflow's parsing context). Invalid configs are reported by automl_config_errors.py.
"""

from pathlib import Path

from airflow.sdk import get_parsing_context

from dagml.scoring import scoring_dags_from_folder
from dagml.settings import configs_dir

globals().update(scoring_dags_from_folder(configs_dir(Path(__file__).parent), get_parsing_context().dag_id))
