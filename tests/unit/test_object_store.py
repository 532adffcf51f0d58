"""Sources and artifacts in an S3-compatible object store: a real S3 server on loopback (moto's server mode)."""

import socket

import pytest

from dagml import tasks
from dagml.predictors import load_verified
from dagml.errors import ConnectionNotFound
from dagml.store.artifacts import ArtifactStore, ChecksumMismatch


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _client(endpoint):
    import boto3

    return boto3.client("s3", aws_access_key_id="testing", aws_secret_access_key="testing", endpoint_url=endpoint,
                        region_name="us-east-1")


@pytest.fixture
def s3_stores(s3_endpoint, tmp_path, monkeypatch):
    from dagml.store.results import ResultsStore

    monkeypatch.setenv("AIRFLOW_CONN_DAGML_ARTIFACTS", (
        '{"conn_type": "aws", "login": "testing", "password": "testing", '
        f'"extra": {{"endpoint_url": "{s3_endpoint}", "region_name": "us-east-1"}}}}'))
    bucket = f"dagml-{tmp_path.name.lower().replace('_', '-')[:40]}"
    _client(s3_endpoint).create_bucket(Bucket=bucket)  # buckets are the operator's (compose: s3-init)
    monkeypatch.setenv("DAGML_ARTIFACTS_ROOT", f"s3://{bucket}/runs")
    stores = tasks.Stores(ArtifactStore.from_settings(), ResultsStore(f"sqlite:///{tmp_path}/results.db"))
    stores.results.migrate()
    return stores


def test_a_run_stores_every_artifact_in_the_object_store_and_the_champion_loads_back(s3_stores, s3_endpoint):
    from dagml.config import DatasetConfig
    from tests.pipeline import run_tasks

    config = DatasetConfig.model_validate({
        "name": "s3", "source": {"uri": "sklearn://breast_cancer"}, "target": "target",
        "families": ["elastic_net"], "budget": {"max_evals": 2}})
    keys, prepared, _, promotion = run_tasks(config, s3_stores)
    champion = s3_stores.results.champion(config.dag_id)
    assert promotion["promoted"] and champion["model_uri"].startswith(s3_stores.artifacts.root + "/")

    s3 = _client(s3_endpoint)
    bucket, prefix = s3_stores.artifacts.root.removeprefix("s3://").split("/", 1)
    names = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
    assert {u.removeprefix(f"s3://{bucket}/") for u in (prepared["data_uri"], champion["model_uri"])} <= names
    assert not any(n.endswith(".tmp") for n in names)  # written whole, then moved

    predictor = load_verified(s3_stores.artifacts, champion["model_uri"], champion["model_sha256"])
    assert predictor.classes is not None and len(predictor.predict_proba(s3_stores.artifacts.read_parquet(
        prepared["data_uri"]).head())) == 5
    s3.put_object(Bucket=bucket, Key=champion["model_uri"].removeprefix(f"s3://{bucket}/"), Body=b"tampered")
    with pytest.raises(ChecksumMismatch, match=champion["model_uri"]):
        load_verified(s3_stores.artifacts, champion["model_uri"], champion["model_sha256"])


def test_a_missing_bucket_is_an_error_naming_the_uri_and_is_not_created(s3_endpoint):
    store = ArtifactStore("s3://no-such-bucket-dagml/x", {"key": "testing", "secret": "testing",
                                                         "client_kwargs": {"endpoint_url": s3_endpoint}})
    with pytest.raises(FileNotFoundError, match="no-such-bucket-dagml/x/missing.json"):
        store.read_json(store.uri("missing.json"))
    with pytest.raises(FileNotFoundError, match="no-such-bucket-dagml"):
        store.write_json(store.uri("a.json"), {"a": 1})
    assert "no-such-bucket-dagml" not in {b["Name"] for b in _client(s3_endpoint).list_buckets()["Buckets"]}


def _searched_three_trials(name: str, stores):
    """(config, run keys, prepared) after elastic_net's search of 3 trials on breast_cancer."""
    from dagml.config import DatasetConfig

    config = DatasetConfig.model_validate({
        "name": name, "source": {"uri": "sklearn://breast_cancer"}, "target": "target",
        "families": [{"name": "elastic_net", "max_evals": 3}], "budget": {"max_evals": 2}})
    keys = tasks.RunKeys(config.dag_id, "p", "r")
    loaded = tasks.load(config, config.source.uri, keys, stores)
    prepared = tasks.prepare(config, loaded, tasks.profile(config, loaded, keys, stores), keys, stores)
    tasks.search_family(config, "sklearn:elastic_net", prepared, keys, stores)
    return config, keys, prepared


def test_a_retried_search_resumes_the_trials_kept_in_the_object_store(s3_stores, tmp_path):
    import logging

    config, keys, prepared = _searched_three_trials("s3r", s3_stores)
    assert s3_stores.results.leaderboard(keys.dag_id, keys.partition)[0]["n_trials"] == 3
    assert s3_stores.artifacts.exists(s3_stores.load_uri(keys, prepared["load_id"], "sklearn:elastic_net", "trials.json"))

    bigger = config.model_copy(update={"families": [config.families[0].model_copy(update={"max_evals": 5})]})
    # the search logs from its own forked process: a file handler is what both write to
    handler, logger = logging.FileHandler(tmp_path / "search.log"), logging.getLogger("dagml.search")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        tasks.search_family(bigger, "sklearn:elastic_net", prepared, keys, s3_stores)  # the retry
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
    assert "resuming 3 saved trials" in (tmp_path / "search.log").read_text()
    assert len(s3_stores.results.trials(keys.dag_id, keys.partition, "sklearn:elastic_net")) == 5
    assert s3_stores.results.leaderboard(keys.dag_id, keys.partition)[0]["n_trials"] == 5


def test_a_partition_is_read_from_the_object_store_with_the_source_connection(s3_endpoint, stores, monkeypatch):
    from dagml.config import DatasetConfig
    from dagml.errors import DataError

    monkeypatch.setenv("AIRFLOW_CONN_LAKE", (
        '{"conn_type": "aws", "login": "testing", "password": "testing", '
        f'"extra": {{"endpoint_url": "{s3_endpoint}"}}}}'))
    s3 = _client(s3_endpoint)
    s3.create_bucket(Bucket="lake")
    s3.put_object(Bucket="lake", Key="sales/2026-03-01.csv", Body=b"x,y\n1,a\n2,b\n3,a\n4,b\n")
    config = DatasetConfig.model_validate({
        "name": "lake", "source": {"uri": "s3://lake/sales/{{ ds }}.csv", "conn_id": "lake"}, "target": "y"})
    keys = tasks.RunKeys(config.dag_id, "2026-03-01", "r1")
    loaded = tasks.load(config, "s3://lake/sales/2026-03-01.csv", keys, stores)
    assert loaded["rows"] == 4 and list(stores.artifacts.read_parquet(loaded["data_uri"]).columns) == ["x", "y"]

    with pytest.raises(DataError, match="source s3://lake/sales/2026-03-02.csv: no such file"):
        tasks.load(config, "s3://lake/sales/2026-03-02.csv", tasks.RunKeys(config.dag_id, "2026-03-02", "r2"), stores)
    unknown = config.model_copy(update={"source": config.source.model_copy(update={"conn_id": "no_such_conn"})})
    with pytest.raises(ConnectionNotFound, match="the Airflow connection 'no_such_conn' .* is not defined"):
        tasks.load(unknown, "s3://lake/sales/2026-03-01.csv", keys, stores)


def test_an_unreachable_object_store_is_retried_and_the_retry_reads_it(s3_endpoint, stores, monkeypatch):
    """A source read that fails with a connection error is left to Airflow's retries (not a permanent
    DataError); once the server answers again, the same load succeeds."""
    from dagml.config import DatasetConfig
    from dagml.errors import PERMANENT_ERRORS, SourceUnavailable

    s3 = _client(s3_endpoint)
    s3.create_bucket(Bucket="flaky")
    s3.put_object(Bucket="flaky", Key="d.csv", Body=b"x,y\n1,a\n2,b\n")
    host, port = s3_endpoint.rsplit(":", 1)
    down = socket.socket()
    down.bind(("127.0.0.1", 0))  # a port where nothing answers: the server is down
    monkeypatch.setenv("AIRFLOW_CONN_FLAKY", (
        '{"conn_type": "aws", "login": "testing", "password": "testing", '
        f'"extra": {{"endpoint_url": "http://127.0.0.1:{down.getsockname()[1]}"}}}}'))
    config = DatasetConfig.model_validate({"name": "flaky", "source": {"uri": "s3://flaky/d.csv", "conn_id": "flaky"},
                                           "target": "y"})
    keys = tasks.RunKeys(config.dag_id, "2026-03-01", "r1")
    with pytest.raises(SourceUnavailable, match="source s3://flaky/d.csv: cannot reach it") as first_try:
        tasks.load(config, "s3://flaky/d.csv", keys, stores)
    assert not isinstance(first_try.value, PERMANENT_ERRORS)
    down.close()
    monkeypatch.setenv("AIRFLOW_CONN_FLAKY", (
        '{"conn_type": "aws", "login": "testing", "password": "testing", '
        f'"extra": {{"endpoint_url": "{host}:{port}"}}}}'))  # the server is back
    assert tasks.load(config, "s3://flaky/d.csv", keys, stores)["rows"] == 2


def test_scoring_writes_its_predictions_to_the_object_store(s3_stores, s3_endpoint, tmp_path):
    import io

    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    from dagml import scoring
    from dagml.config import DatasetConfig
    from tests.pipeline import run_tasks

    bucket = s3_stores.artifacts.root.removeprefix("s3://").split("/", 1)[0]
    config = DatasetConfig.model_validate({
        "name": "s3score", "source": {"uri": "sklearn://breast_cancer"}, "target": "target",
        "families": ["elastic_net"], "budget": {"max_evals": 2},
        "scoring": {"source": {"uri": str(tmp_path / "new.csv")}, "conn_id": "dagml_artifacts",
                    "output": f"s3://{bucket}/scored/{{{{ partition }}}}.parquet"}})
    run_tasks(config, s3_stores)
    new = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(40)
    new.to_csv(tmp_path / "new.csv", index=False)

    uri = f"s3://{bucket}/scored/2026-03-01.parquet"
    scoring.score(config, str(tmp_path / "new.csv"), uri, "2026-03-01", s3_stores)
    scoring.score(config, str(tmp_path / "new.csv"), str(tmp_path / "local.parquet"), "2026-03-01", s3_stores)
    body = _client(s3_endpoint).get_object(Bucket=bucket, Key="scored/2026-03-01.parquet")["Body"].read()
    remote = pd.read_parquet(io.BytesIO(body))
    assert len(remote) == 40
    pd.testing.assert_frame_equal(remote, pd.read_parquet(tmp_path / "local.parquet"))
    keys = [o["Key"] for o in _client(s3_endpoint).list_objects_v2(Bucket=bucket, Prefix="scored/")["Contents"]]
    assert keys == ["scored/2026-03-01.parquet"]  # no temporary object left behind


def test_the_dagml_page_reads_a_searching_run_s_progress_from_the_object_store(s3_stores, monkeypatch):
    """plugins/dagml_ui: a run's live progress (trials done, best so far) comes from the trial files
    a search keeps beside its artifacts, here in S3, before the family's leaderboard row exists."""
    from pathlib import Path

    from dagml.store.results import leaderboard

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "plugins"))
    monkeypatch.setenv("AIRFLOW_CONN_DAGML_RESULTS", s3_stores.results.url)
    from dagml_ui import data

    _, keys, _ = _searched_three_trials("s3p", s3_stores)
    # as while the search runs: its trials are in the object store, its row is not written yet
    row = s3_stores.results.leaderboard(keys.dag_id, keys.partition)[0]
    with s3_stores.results.engine.begin() as conn:
        conn.execute(leaderboard.delete())

    progress = data.progress(keys.dag_id, keys.run_id)
    assert progress["state"] == "running" and progress["trials_done"] == 3
    (search,) = progress["searches"]
    assert (search["family"], search["done"], search["finished"]) == ("sklearn:elastic_net", 3, False)
    assert search["best"] == pytest.approx(row["val_score"])
