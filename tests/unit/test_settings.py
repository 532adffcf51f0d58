import pytest

from dagml import settings


@pytest.mark.parametrize("uri, master", [
    ("spark://spark-master:7077", "spark://spark-master:7077"),
    ("spark://yarn", "yarn"),
    ('{"conn_type": "spark", "host": "local[4]"}', "local[4]"),
])
def test_spark_master_comes_from_the_airflow_connection(monkeypatch, uri, master):
    monkeypatch.setenv("AIRFLOW_CONN_DAGML_SPARK", uri)
    assert settings.spark_master() == master


def test_spark_master_defaults_to_local(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_DAGML_SPARK", raising=False)
    monkeypatch.delenv("DAGML_SPARK_MASTER", raising=False)
    assert settings.spark_master() == "local[*]"


@pytest.mark.parametrize("uri, url", [
    ("postgres://u:p@db:5432/results", "postgresql+psycopg2://u:p@db:5432/results"),
    ("mysql://root@127.0.0.1:3306/dagml", "mysql+pymysql://root@127.0.0.1:3306/dagml"),
    ("sqlite:////tmp/r.db", "sqlite:////tmp/r.db"),
])
def test_results_db_comes_from_the_airflow_connection(monkeypatch, uri, url):
    monkeypatch.setenv("AIRFLOW_CONN_DAGML_RESULTS", uri)
    assert settings.results_url() == url


def test_worker_hostname_names_the_worker(monkeypatch):
    monkeypatch.setenv("DAGML_WORKER_NAME", "worker-2")
    assert settings.worker_hostname().endswith("-worker-2")


def test_the_newest_partition_of_several_triggering_events_is_trained_on(caplog):
    from types import SimpleNamespace

    from dagml.partitions import resolve

    events = {"warehouse://sales": [SimpleNamespace(partition_key=None, extra={"partition": "2026-01-02"}),
                                    SimpleNamespace(partition_key="2026-01-04", extra={}),
                                    SimpleNamespace(partition_key=None, extra={"partition": "2026-01-03"})]}
    partition = resolve({"triggering_asset_events": events}, ["warehouse://sales"])
    assert partition.key == "2026-01-04" and partition.start.day == 4
    assert "name 3 partitions (2026-01-02, 2026-01-03, 2026-01-04): training on the newest" in caplog.text
