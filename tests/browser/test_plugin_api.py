"""The dagml plugin in a real api-server: it loads, its JSON routes answer with the recorded runs,
and nothing is shown to a caller without Airflow's login or without read access to the DAG."""

import json
import subprocess
import sys
from urllib.parse import quote

import pytest

from tests.browser.conftest import DONE, FAILED, HIDDEN, REPO, SEARCHING

pytestmark = pytest.mark.dag


def _run_path(server, dag_id: str, suffix: str = "") -> str:
    return f"/dagml/api/datasets/{dag_id}/runs/{quote(server.runs[dag_id], safe='')}{suffix}"


def test_airflow_lists_the_plugin_and_the_api_server_loaded_it_without_error(ui_server):
    proc = subprocess.run([sys.executable, "-m", "airflow", "plugins", "--output", "json"], env=ui_server.env,
                          capture_output=True, text=True, check=True)
    plugin = next(p for p in json.loads(proc.stdout) if p["name"] == "dagml_ui")
    assert "/dagml" in json.dumps(plugin["fastapi_apps"])
    assert {v["destination"] for v in plugin["external_views"]} == {"nav", "dag", "dag_run"}
    status, _ = ui_server.get("/dagml/", token=ui_server.token())
    assert status == 200
    log = ui_server.log.read_text()
    assert "Failed to import plugin" not in log and "dagml_ui" not in log, log[-3000:]


def test_a_completed_runs_leaderboard_as_json(ui_server):
    run = ui_server.json(_run_path(ui_server, DONE))
    assert run["state"] == "success" and run["metric"] == "roc_auc"
    rows = {r["family"]: r for r in run["leaderboard"]}
    assert {"sklearn:knn", "sklearn:elastic_net", "sklearn:dummy"} <= set(rows)
    assert all(r["status"] == "ok" and 0.5 <= r["test_score"] <= 1 for f, r in rows.items() if f != "sklearn:dummy")
    assert [r["rank"] for r in run["leaderboard"]] == list(range(1, len(rows) + 1))
    assert sum(r["selected"] for r in run["leaderboard"]) == 1
    # best so far never gets worse, and its last value is the family's best trial
    trace = run["best_so_far"]["sklearn:knn"]
    assert len(trace) == rows["sklearn:knn"]["n_trials"] and trace == sorted(trace)
    assert run["diagnostics"]["roc"]["auc"] > 0.5 and run["diagnostics"]["importance"]

    dataset = ui_server.json(f"/dagml/api/datasets/{DONE}")
    assert dataset["champion"]["family"] == run["selected_family"]
    assert [r["run_id"] for r in dataset["runs"]] == [ui_server.runs[DONE]]


def test_the_datasets_list_shows_champions_and_last_runs(ui_server):
    items = {d["dag_id"]: d for d in ui_server.json("/dagml/api/datasets")["datasets"]}
    assert {DONE, FAILED, HIDDEN, SEARCHING} <= set(items)
    assert items[DONE]["champion"]["partition"] == items[DONE]["last_run"]["partition"]
    assert items[FAILED]["champion"] is None and items[FAILED]["last_run"]["state"] == "failed"
    assert items[SEARCHING]["last_run"]["state"] == "running"


def test_a_failed_run_names_the_task_and_the_reason(ui_server):
    run = ui_server.json(_run_path(ui_server, FAILED))
    assert run["state"] == "failed" and run["failed_task"] == "load"
    assert run["failure"].startswith("load: ") and "\n" not in run["failure"]
    assert f"/nonexistent/dagml-ui/{run['partition']}.csv" in run["error"]


def test_a_searching_run_reports_trials_done_of_planned(ui_server):
    progress = ui_server.json(_run_path(ui_server, SEARCHING, "/progress"))
    knn = next(s for s in progress["searches"] if s["family"] == "sklearn:knn")
    assert knn["planned"] == 5000 and not knn["finished"]
    baseline = next(s for s in progress["searches"] if s["family"] == "sklearn:dummy")
    assert baseline["planned"] == 2  # its space has two points, each searched once
    assert progress["state"] == "running"


@pytest.mark.parametrize("path", ["/dagml/", "/dagml/api/datasets", f"/dagml/api/datasets/{DONE}",
                                  f"/dagml/datasets/{DONE}", "/dagml/static/plotly.min.js"])
def test_without_a_token_nothing_is_shown(ui_server, path):
    status, body = ui_server.get(path)
    assert status == 401
    assert "sklearn:" not in body and "automl__" not in body


def test_a_forged_token_is_refused(ui_server):
    status, body = ui_server.get(f"/dagml/api/datasets/{DONE}", token="not-a-jwt")
    assert status in (401, 403) and "sklearn:" not in body


def test_a_user_who_may_not_read_a_dag_cannot_see_its_leaderboard(ui_server):
    token = ui_server.token("outsider")
    for path in (f"/dagml/api/datasets/{HIDDEN}", _run_path(ui_server, HIDDEN),
                 _run_path(ui_server, HIDDEN, "/progress"), f"/dagml/datasets/{HIDDEN}"):
        status, body = ui_server.get(path, token=token)
        assert status == 403, path
        assert "sklearn:" not in body
    listed = {d["dag_id"] for d in ui_server.json("/dagml/api/datasets", user="outsider")["datasets"]}
    assert HIDDEN not in listed and DONE in listed
    status, page = ui_server.get("/dagml/", cookie=token)  # the UI's cookie, as the iframe sends it
    assert status == 200 and DONE in page and HIDDEN not in page
    assert ui_server.json(f"/dagml/api/datasets/{DONE}", user="outsider")["dag_id"] == DONE


def test_unknown_datasets_and_runs_are_404_with_a_message(ui_server):
    token = ui_server.token()
    status, body = ui_server.get("/dagml/api/datasets/automl__no_such_dataset", token=token)
    assert status == 404 and "automl__no_such_dataset" in json.loads(body)["detail"]
    status, body = ui_server.get(f"/dagml/datasets/{DONE}/runs/no_such_run", token=token)
    assert status == 404 and "no_such_run" in body and "<html>" in body



def test_loading_the_plugin_imports_none_of_its_pages():
    """Every Airflow process that loads plugins (scheduler, workers, the CLI) imports the entry file."""
    code = ("import sys, runpy; sys.path.insert(0, 'plugins'); "
            "runpy.run_path('plugins/dagml_ui/dagml_ui_plugin.py'); "
            "print(sorted(m for m in ('dagml_ui.app', 'dagml_ui.pages', 'dagml.store.results', 'plotly', 'fastapi')"
            " if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert proc.stdout.strip() == "[]", proc.stdout


def test_a_runs_html_report_is_served_behind_the_same_login(ui_server):
    path = f"/dagml/datasets/{DONE}/runs/{quote(ui_server.runs[DONE], safe='')}/report"
    status, body = ui_server.get(path, cookie=ui_server.token())
    assert status == 200 and "sklearn:knn" in body and "<script src=" not in body  # one self-contained file
    assert ui_server.get(path)[0] == 401
    hidden = f"/dagml/datasets/{HIDDEN}/runs/{quote(ui_server.runs[HIDDEN], safe='')}/report"
    assert ui_server.get(hidden, token=ui_server.token("outsider"))[0] == 403
    failed = f"/dagml/datasets/{FAILED}/runs/{quote(ui_server.runs[FAILED], safe='')}/report"
    status, body = ui_server.get(failed, token=ui_server.token())
    assert status == 404 and "has no report" in body


def test_a_row_the_pages_cannot_read_is_a_500_that_says_why(ui_server):
    """A run recorded with a metric this dagml does not know (a newer dagml wrote it, say)."""
    from dagml import settings
    from dagml.store.results import ResultsStore

    ResultsStore(settings.results_url()).start_run("automl__ui_odd", "2026-01-01", "odd_run", metric="no_such_metric")
    token = ui_server.token()
    status, body = ui_server.get("/dagml/api/datasets/automl__ui_odd/runs/odd_run", token=token)
    assert status == 500 and "no_such_metric" in json.loads(body)["detail"]
    status, body = ui_server.get("/dagml/datasets/automl__ui_odd/runs/odd_run", token=token)
    assert status == 500 and "no_such_metric" in body and "<html>" in body


def test_a_datasets_history_shows_as_a_sparkline_and_a_series(ui_server):
    """Three daily partitions recorded straight into the results DB, as three runs would leave them."""
    from dagml import settings
    from dagml.store.results import ResultsStore

    results, dag_id = ResultsStore(settings.results_url()), "automl__ui_history"
    for day, score in (("2026-01-01", 0.91), ("2026-01-02", 0.87), ("2026-01-03", 0.83)):
        results.start_run(dag_id, day, f"scheduled__{day}", metric="roc_auc")
        results.record_family(dag_id, day, "sklearn:knn", f"scheduled__{day}", status="ok", metric="roc_auc",
                              val_score=score + 0.01, test_score=score, n_trials=3)
        results.update_run(dag_id, day, status="success", selected_family="sklearn:knn")
    item = next(d for d in ui_server.json("/dagml/api/datasets")["datasets"] if d["dag_id"] == dag_id)
    assert item["scores"] == [{"partition": "2026-01-01", "test_score": 0.91},
                              {"partition": "2026-01-02", "test_score": 0.87},
                              {"partition": "2026-01-03", "test_score": 0.83}]
    assert item["last_run"]["partition"] == "2026-01-03" and item["champion"] is None
    status, page = ui_server.get("/dagml/", token=ui_server.token())
    assert status == 200 and "aria-label='test score over partitions: 0.8300 to 0.9100'" in page
    assert [r["test_score"] for r in ui_server.json(f"/dagml/api/datasets/{dag_id}")["runs"]] == [0.91, 0.87, 0.83]


def test_a_runs_page_says_what_the_model_registry_holds_of_it(ui_server):
    """Two finished runs as the register task leaves them: one registered, one whose register failed."""
    from dagml import settings
    from dagml.store.results import ResultsStore

    results, dag_id, token = ResultsStore(settings.results_url()), "automl__ui_registry", ui_server.token()
    for day, version, error in (("2026-01-01", "3", None), ("2026-01-02", None, "register: MLflow refused: 503")):
        run_id = f"scheduled__{day}"
        results.start_run(dag_id, day, run_id, metric="roc_auc")
        results.update_run(dag_id, day, status="success")
        results.record_registration(dag_id, run_id, version, error)
        run = ui_server.json(f"/dagml/api/datasets/{dag_id}/runs/{run_id}")
        assert (run["state"], run["registry_version"], run["registry_error"]) == ("success", version, error)
        status, page = ui_server.get(f"/dagml/datasets/{dag_id}/runs/{run_id}", token=token)
        assert status == 200
        expected = "version 3" if version else "not registered (register: MLflow refused: 503)"
        assert f"Model registry: {expected}</p>" in page
