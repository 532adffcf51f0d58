"""Reports invalid dataset configs as one Airflow import error naming each file and field.

It lives apart from automl.py so that a bad config never hides the valid datasets' DAGs.
"""

from pathlib import Path

from dagml.factory import raise_config_errors

raise_config_errors(Path(__file__).parent / "configs")
