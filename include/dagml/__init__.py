"""dagml: scheduled AutoML as Airflow DAGs, one YAML file per dataset."""

__version__ = "0.1.0"
