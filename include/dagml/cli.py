"""dagml's command line: validate configs, list datasets, show leaderboards, score with a champion."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from dagml.config import ConfigError, config_files, load_config, load_configs

app = typer.Typer(help="dagml: scheduled AutoML as Airflow DAGs.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="The results database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
# Piped output (make demo, CI logs) gets a wide table instead of Rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

ConfigsOption = Annotated[Optional[Path], typer.Option("--configs", help="configs folder (default: DAGML_CONFIGS)")]


def _configs_dir(configs: Path | None) -> Path:
    from dagml import settings

    return configs or settings.configs_dir()


def _results():
    from dagml import settings
    from dagml.errors import ConnectionNotFound
    from dagml.store.results import ResultsStore

    try:
        url = settings.results_url()
    except ConnectionNotFound as exc:
        err.print(f"[red]{exc}[/] (or `. airflow_config/embedded.env` for the embedded setup)", soft_wrap=True)
        raise typer.Exit(1) from None
    store = ResultsStore(url)
    store.migrate()
    return store


def _found_configs(configs: Path | None):
    folder = _configs_dir(configs)
    found, errors = load_configs(folder)
    if not found and not errors:
        err.print(f"[red]no dataset configs in {folder}[/]: point DAGML_CONFIGS (or --configs) at the folder of "
                  "your *.yaml configs; by default it is configs/ in Airflow's DAG folder", soft_wrap=True)
        raise typer.Exit(1)
    return found, errors


def _dataset(name: str, configs: Path | None):
    found, _ = _found_configs(configs)
    for config in found:
        if name in (config.name, config.dag_id):
            return config
    err.print(f"[red]no dataset {name!r} in {_configs_dir(configs)}; known: {', '.join(c.name for c in found)}")
    raise typer.Exit(1)


@app.command()
def validate(paths: Annotated[list[Path], typer.Argument(help="config files or folders")]):
    """Check dataset configs; exit 1 if any is invalid, naming the file and field."""
    files = [f for p in paths for f in (config_files(p) if p.is_dir() else [p])]
    bad = 0
    for path in files:
        try:
            config = load_config(path)
            out.print(f"[green]ok[/] {path}: {config.dag_id}")
        except ConfigError as exc:
            bad += 1
            err.print(f"[red]invalid[/] {exc}", soft_wrap=True)
    if not files:
        err.print("no config files found")
    raise typer.Exit(1 if bad or not files else 0)


@app.command("list")
def list_datasets(configs: ConfigsOption = None):
    """The configured datasets with their newest partition's run and their champion."""
    found, errors = _found_configs(configs)
    results = _results()
    table = Table("dataset", "dag_id", "schedule", "families", "latest partition", "status", "champion", "test score",
                  "error")
    for c in found:
        run, champ = results.latest_run(c.dag_id), results.champion(c.dag_id)
        schedule = c.schedule if isinstance(c.schedule, (str, type(None))) else c.schedule_assets
        schedule = ", ".join(schedule) if isinstance(schedule, list) else schedule or "manual"
        table.add_row(c.name, c.dag_id, schedule, str(len(c.families)),
                      run["partition"] if run else "-", run["status"] if run else "-",
                      f"{champ['family']} ({champ['partition']})" if champ else "-",
                      f"{champ['metric']} {champ['test_score']:.5f}" if champ else "-",
                      (run.get("error") or "") if run else "", style="red" if run and run["status"] == "failed" else None)
    out.print(table)
    for e in errors:
        err.print(f"[red]invalid[/] {e}", soft_wrap=True)


@app.command()
def leaderboard(
    dataset: Annotated[str, typer.Argument(help="dataset name or dag_id")],
    partition: Annotated[Optional[str], typer.Option(help="a partition (default: the latest run)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    configs: ConfigsOption = None,
):
    """The leaderboard of a dataset's latest run (or of one partition)."""
    from rich.markup import escape

    from dagml import leaderboard as board
    from dagml.report import stored_model

    config = _dataset(dataset, configs)
    results = _results()
    run = results.run(config.dag_id, partition) if partition else results.latest_run(config.dag_id)
    if run is None:
        err.print(f"no runs recorded for {config.dag_id}" + (f" at {partition}" if partition else ""))
        raise typer.Exit(1)
    champ = results.champion(config.dag_id)
    doc = board.document(run, results.leaderboard(config.dag_id, run["partition"], run["run_id"]), champ)
    if as_json:
        print(json.dumps(doc, indent=2, default=str))
        return
    table = Table(title=f"{config.dag_id} · {run['partition']} · {run['status']} · metric {run['metric']}")
    for header, _ in board.CELLS:
        table.add_column(header, overflow="fold", justify="right" if header in board.NUMERIC else "left")
    for entry in doc["rows"]:
        table.add_row(*map(escape, board.cells(entry)), style=None if entry["status"] == "ok" else "red")
    out.print(table)
    if run.get("trigger"):
        out.print(f"trigger: {escape(board.trigger_text(run['trigger']))}", soft_wrap=True)
    if run["status"] == "failed":
        err.print(f"[red]failed[/]: {run['error']}", soft_wrap=True)
    elif run.get("promotion_reason"):
        out.print(f"{'promoted' if run['promoted'] else 'not promoted'}: {run['promotion_reason']}", soft_wrap=True)
    if champ:
        stored = stored_model(champ["refit_rows"], champ["refit_error"])
        scored = " of the model compared" if champ["refit_rows"] else ""
        out.print(f"champion: [bold]{champ['family']}[/] (partition {champ['partition']}, test "
                  f"{champ['metric']} {champ['test_score']:.5f}{scored})"
                  + (f"\nstored model: {escape(stored)}" if stored else "")
                  + f"\nmodel: {champ['model_uri']}\nsha256: {champ['model_sha256']}", soft_wrap=True)


@app.command()
def history(
    dataset: Annotated[str, typer.Argument(help="dataset name or dag_id")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    configs: ConfigsOption = None,
):
    """One line per partition: its run, winner, scores, whether it was promoted and why, and the
    champion once it had decided."""
    from dagml.report import registered, stored_model
    from dagml.store.history import partition_history

    config = _dataset(dataset, configs)
    lines = partition_history(_results(), config.dag_id)
    if as_json:
        print(json.dumps({"dag_id": config.dag_id, "partitions": lines}, indent=2, default=str))
        return
    if not lines:
        err.print(f"no runs recorded for {config.dag_id}")
        raise typer.Exit(1)
    table = Table(title=f"{config.dag_id} · {len(lines)} partition(s)")
    registry = config.registry is not None or any(h["registry_version"] or h["registry_error"] for h in lines)
    for col in ("partition", "run id", "state", "winner", "validation", "test", "promoted", "why / error",
                "stored model", "champion", *(["registry"] if registry else [])):
        table.add_column(col, overflow="fold")
    for h in lines:
        fmt = (lambda v: f"{v:.5f}" if v is not None else "")
        table.add_row(h["partition"], h["run_id"], h["state"], h["winner"] or "", fmt(h["val_score"]),
                      fmt(h["test_score"]), {True: "yes", False: "no"}.get(h["promoted"], ""),
                      h["error"] or h["promotion_reason"] or "", stored_model(h["refit_rows"], h["refit_error"]),
                      f"{h['champion_family']} ({h['champion_partition']})" if h["champion_family"] else "",
                      *([registered(h["registry_version"], h["registry_error"])] if registry else []),
                      style="red" if h["state"] == "failed" else None)
    out.print(table)
    metric = next((h["metric"] for h in lines if h["metric"]), None)
    if metric and any(h["test_score"] is not None for h in lines):
        scored = [h for h in lines if h["test_score"] is not None]
        out.print(f"winner's test {metric} over partitions: "
                  + "  ".join(f"{h['partition']} {h['test_score']:.4f}" for h in scored), soft_wrap=True)


@app.command()
def score(
    dataset: Annotated[str, typer.Argument(help="dataset name or dag_id")],
    input_path: Annotated[Path, typer.Argument(help="CSV or Parquet file with the model's feature columns")],
    output: Annotated[Optional[Path], typer.Option(help="write predictions here (CSV); default stdout")] = None,
    configs: ConfigsOption = None,
):
    """Predict with the dataset's champion (its checksum verified first)."""
    import pandas as pd

    from dagml.errors import DataError
    from dagml.predictors import load_verified
    from dagml.sources import read_source
    from dagml.store.artifacts import ArtifactStore

    config = _dataset(dataset, configs)
    champ = _results().champion(config.dag_id)
    if champ is None:
        err.print(f"{config.dag_id} has no champion yet")
        raise typer.Exit(1)
    predictor = load_verified(ArtifactStore.from_settings(), champ["model_uri"], champ["model_sha256"])
    df = read_source(str(input_path))
    try:
        scored = pd.concat([df, predictor.predictions(df)], axis=1)
    except DataError as exc:
        err.print(f"[red]{input_path}[/]: {exc}", soft_wrap=True)
        raise typer.Exit(1)
    scored.to_csv(output if output else typer.get_text_stream("stdout"), index=False)
    if output:
        out.print(f"{len(scored)} predictions by {champ['family']} written to {output}")


@db_app.command("upgrade")
def db_upgrade():
    """Create or migrate the results database to the current schema."""
    from dagml import settings

    _results()
    out.print(f"results DB at head: {settings.results_url()}")


if __name__ == "__main__":
    app()
