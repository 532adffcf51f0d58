"""A DAG as a user gets one: a config file in ``DAGML_CONFIGS``, parsed from ``dags/automl.py``."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def dag_of(tmp_path, monkeypatch, name: str, config: str):
    """``automl__<name>`` from ``config`` (YAML text) written to ``tmp_path/configs/<name>.yaml``."""
    from airflow.dag_processing.dagbag import DagBag

    configs = tmp_path / "configs"
    configs.mkdir(exist_ok=True)
    (configs / f"{name}.yaml").write_text(config)
    monkeypatch.setenv("DAGML_CONFIGS", str(configs))  # the one configs setting: DAG file and CLI
    bag = DagBag(dag_folder=str(REPO / "dags" / "automl.py"))
    assert bag.import_errors == {}
    return bag.dags[f"automl__{name}"]
