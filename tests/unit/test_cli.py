import json
from pathlib import Path

from typer.testing import CliRunner

from dagml.cli import app
from dagml.config import load_config
from tests.pipeline import run_tasks

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_validate_passes_good_configs():
    result = runner.invoke(app, ["validate", str(REPO / "dags" / "configs")])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output and "automl__breast_cancer" in result.output


def test_validate_exits_1_naming_file_and_field():
    bad = REPO / "tests" / "data" / "invalid_configs" / "bad_metric.yaml"
    result = runner.invoke(app, ["validate", str(REPO / "dags" / "configs" / "wine.yaml"), str(bad)])
    assert result.exit_code == 1
    assert "bad_metric.yaml: metric: unknown metric 'auc'" in result.output


def test_list_leaderboard_and_score_after_a_run(tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "irises.yaml").write_text(
        "source: {uri: sklearn://iris}\ntarget: target\nmetric: accuracy\nfamilies: [knn]\nbudget: {max_evals: 2}\n")
    run_tasks(load_config(configs / "irises.yaml"), partition="2026-02-01", run_id="cli-run")

    listed = runner.invoke(app, ["list", "--configs", str(configs)])
    assert listed.exit_code == 0 and "irises" in listed.output and "sklearn:" in listed.output

    board = runner.invoke(app, ["leaderboard", "irises", "--configs", str(configs), "--json"])
    assert board.exit_code == 0, board.output
    doc = json.loads(board.output)
    assert doc["partition"] == "2026-02-01" and doc["metric"] == "accuracy"
    assert [r["family"] for r in doc["rows"]][-1] == "sklearn:dummy"  # ranked: the baseline is last
    assert {r["family"] for r in doc["rows"]} == {"sklearn:knn", "sklearn:dummy"}
    assert doc["champion"]["family"] == "sklearn:knn"

    table = runner.invoke(app, ["leaderboard", "automl__irises", "--configs", str(configs)])
    assert "sklearn:knn" in table.output and "n_neighbors=" in table.output and "champion:" in table.output

    from sklearn.datasets import load_iris

    load_iris(as_frame=True).frame.drop(columns="target").head(5).to_csv(tmp_path / "new.csv", index=False)
    scored = runner.invoke(app, ["score", "irises", str(tmp_path / "new.csv"), "--configs", str(configs),
                                 "--output", str(tmp_path / "out.csv")])
    assert scored.exit_code == 0, scored.output
    out = (tmp_path / "out.csv").read_text().splitlines()
    assert out[0].endswith("prediction,proba_setosa,proba_versicolor,proba_virginica") and len(out) == 6
    assert out[1].split(",")[4] == "setosa"


def test_unknown_dataset_lists_the_known_ones():
    result = runner.invoke(app, ["leaderboard", "nope"])
    assert result.exit_code == 1 and "known: breast_cancer" in result.output


def test_a_cli_that_finds_no_configs_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGML_CONFIGS", str(tmp_path / "nothing-here"))
    result = runner.invoke(app, ["list"], terminal_width=300)
    assert result.exit_code == 1
    assert f"no dataset configs in {tmp_path / 'nothing-here'}" in " ".join(result.output.split())
    assert "DAGML_CONFIGS" in result.output


def test_the_results_db_is_never_a_silent_local_file(monkeypatch):
    from dagml import settings
    from dagml.errors import ConnectionNotFound

    monkeypatch.delenv("AIRFLOW_CONN_DAGML_RESULTS", raising=False)
    monkeypatch.delenv("DAGML_RESULTS_URL", raising=False)
    import pytest

    with pytest.raises(ConnectionNotFound, match="the Airflow connection 'dagml_results'"):
        settings.results_url()
    result = runner.invoke(app, ["db", "upgrade"], terminal_width=300)
    assert result.exit_code == 1 and "the Airflow connection 'dagml_results'" in result.output
