"""Triggering a dataset's DAG through Airflow's REST API with a conf: the api-server checks it
against the trigger form's Params (400 naming the field) before any run exists. That the run
then uses and records the values, and that a family the config does not allow fails the first
task naming it, is tested through dag.test() with the same conf (tests/dag/test_trigger_form.py)."""

import json
import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import DONE

pytestmark = pytest.mark.dag


def _trigger(server, conf: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"{server.base}/api/v2/dags/{DONE}/dagRuns", method="POST",
        data=json.dumps({"logical_date": None, "conf": conf}).encode(),
        headers={"Authorization": f"Bearer {server.token()}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode() or "{}")


@pytest.mark.parametrize("conf, field", [
    ({"test_size": 5}, "test_size"),  # above the form's bound
    ({"max_evals": 0}, "max_evals"),
    ({"metric": "rmse"}, "metric"),  # not a metric of this binary dataset
    ({"families": "knn"}, "families"),  # a list, not a text
])
def test_a_conf_outside_the_form_is_refused_naming_the_field(ui_server, conf, field):
    status, body = _trigger(ui_server, conf)
    assert status == 400, body
    assert body["detail"].startswith(f"Invalid input for param {field}:"), body


def test_a_conf_within_the_form_is_accepted_as_given(ui_server):
    conf = {"test_size": 0.3, "seed": 7, "metric": "log_loss", "families": ["knn"], "note": "from the REST API"}
    status, body = _trigger(ui_server, conf)
    assert status == 200, body
    assert {k: body["conf"][k] for k in conf} == conf
