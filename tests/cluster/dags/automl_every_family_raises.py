"""Cluster tests (an Airflow DAG file): every family of the DAG raises, the baseline too.

The baseline is replaced only in the processes that parse this file (each DAG file is
parsed, and each task runs, in a process of its own), so other DAGs keep the real one.
"""

from raising import AlwaysRaises, config, raise_always  # noqa: F401  (registers always_raises)

from dagml.factory import build_dag
from dagml.families.sklearn import Dummy


class RaisingDummy(Dummy):
    name = "dummy"  # registers under sklearn:dummy, in place of the real baseline
    space = raise_always


dag = build_dag(config("every_family_raises", ["always_raises"]))
