"""Reports invalid dataset configs as one Airflow import error naming each file and field.

It lives apart from automl.py so that a bad config never hides the valid datasets' DAGs.
"""

from pathlib import Path

from dagml.factory import raise_config_errors
from dagml.settings import configs_dir

raise_config_errors(configs_dir(Path(__file__).parent))
