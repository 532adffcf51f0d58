"""Cluster tests (an Airflow DAG file): one family always raises; select still picks from the others."""

from raising import AlwaysRaises, config  # noqa: F401  (registers the family)

from dagml.factory import build_dag

dag = build_dag(config("one_family_raises", ["elastic_net", "always_raises"]))
