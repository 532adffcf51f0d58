"""Partitions read by SQL through an Airflow connection, on the real Postgres and MariaDB (and SQLite)."""

import socket

import pytest
import sqlalchemy as sa

from dagml import tasks
from dagml.config import DatasetConfig
from dagml.errors import PERMANENT_ERRORS, ConnectionNotFound, DataError, SourceUnavailable
from tests.services import scratch_database

DAYS = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05"]
QUERY = "SELECT day, x1, x2, y FROM sales WHERE day >= :start AND day < :end"


def _airflow_uri(url: str) -> str:
    return url.replace("postgresql+psycopg2://", "postgres://").replace("mysql+pymysql://", "mysql://")


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def warehouse(request, tmp_path, monkeypatch):
    """A sales table of 5 days x 40 rows, and the Airflow connection `warehouse` to it."""
    def fill(url):
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE sales (day VARCHAR(10), x1 FLOAT, x2 FLOAT, y VARCHAR(5))"))
            conn.execute(sa.text("INSERT INTO sales VALUES (:day, :x1, :x2, :y)"), [
                {"day": day, "x1": i * 0.5, "x2": (i % 7) * 1.0, "y": "a" if i % 2 else "b"}
                for day in DAYS for i in range(40)])
        monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", url if url.startswith("sqlite") else _airflow_uri(url))
        return engine

    if request.param == "sqlite":
        yield fill(f"sqlite:///{tmp_path}/warehouse.db")
        return
    with scratch_database(request.param) as url:
        engine = fill(url)
        yield engine
        engine.dispose()


def _config(**source):
    return DatasetConfig.model_validate({"name": "sales", "target": "y", "source": {
        "sql": QUERY, "conn_id": "warehouse", "parameters": {"start": "{{ ds }}", "end": "{{ next_ds }}"}, **source}})


def _load(stores, parameters, config=None, partition="2026-01-02"):
    config = config or _config()
    return tasks.load(config, None, tasks.RunKeys(config.dag_id, partition, f"r-{partition}"), stores, parameters)


def test_a_partition_is_the_rows_of_its_interval(warehouse, stores):
    loaded = _load(stores, {"start": "2026-01-02", "end": "2026-01-04"})
    df = stores.artifacts.read_parquet(loaded["data_uri"])
    assert loaded["rows"] == 80 and sorted(df["day"].unique()) == ["2026-01-02", "2026-01-03"]
    assert list(df.columns) == ["day", "x1", "x2", "y"]


def test_a_large_partition_is_streamed_in_chunks(warehouse, stores, monkeypatch):
    import pyarrow.parquet as pq

    from dagml import sources

    monkeypatch.setattr(sources, "SQL_CHUNK_ROWS", 30)
    monkeypatch.setattr(sources.SqlSource.to_parquet, "__defaults__", (30,))
    loaded = _load(stores, {"start": "2026-01-01", "end": "2026-01-06"})
    path = stores.artifacts.local_path(loaded["data_uri"])
    assert loaded["rows"] == 200 and pq.ParquetFile(path).metadata.num_row_groups == 7  # ceil(200 / 30)


@pytest.mark.parametrize("hostile", ["2026-01-01'; DROP TABLE sales; --", "2026-01-01' OR '1'='1"])
def test_hostile_parameter_values_are_bound_not_executed(warehouse, stores, hostile):
    one_day = "SELECT day, x1, x2, y FROM sales WHERE day = :day"
    with pytest.raises(DataError) as err:
        _load(stores, {"day": hostile}, _config(sql=one_day, parameters={"day": "{{ ds }}"}))
    assert "the query returned no rows" in str(err.value) and "connection 'warehouse'" in str(err.value)
    assert one_day in str(err.value) and hostile in str(err.value)  # names the query and the bound values
    with warehouse.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM sales")).scalar() == 200


def test_a_bad_query_fails_at_once_naming_the_connection(warehouse, stores):
    config = _config(sql="SELECT * FROM no_such_table WHERE day >= :start AND day < :end")
    with pytest.raises(DataError, match="connection 'warehouse', query 'SELECT \\* FROM no_such_table"):
        _load(stores, {"start": "2026-01-01", "end": "2026-01-02"}, config)


def test_a_missing_connection_is_named(stores, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE", raising=False)
    with pytest.raises(ConnectionNotFound, match="the Airflow connection 'warehouse' .*source.conn_id"):
        _load(stores, {"start": "2026-01-01", "end": "2026-01-02"})


def test_a_refused_database_connection_is_left_to_the_retries(stores, monkeypatch):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here
        monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", f"postgres://postgres@127.0.0.1:{port}/sales")
        with pytest.raises(SourceUnavailable, match="connection 'warehouse'.*cannot reach the database") as err:
            _load(stores, {"start": "2026-01-01", "end": "2026-01-02"})
    assert not isinstance(err.value, PERMANENT_ERRORS)


def test_the_sensor_sees_rows_appear(warehouse, stores):
    config = _config()
    assert not tasks.source_ready(config, None, {"start": "2026-02-01", "end": "2026-02-02"})
    with warehouse.begin() as conn:
        conn.execute(sa.text("INSERT INTO sales VALUES ('2026-02-01', 1, 2, 'a')"))
    assert tasks.source_ready(config, None, {"start": "2026-02-01", "end": "2026-02-02"})
