"""DAG parse time: what dagml adds over the same DAG hand-written with Airflow's TaskFlow API.

A dag-processor pays, per DAG, the build (for dagml: read + validate its YAML, then
``build_dag``) and ``DagSerialization.to_dict`` (what ``airflow.dag_processing.processor``
calls before sending a DAG to the database). We generate N copies of
``dags/configs/breast_cancer.yaml`` under distinct names (6 scikit-learn families, plus the
baseline dagml adds: 7 mapped searches) and compare, per DAG:

- dagml: ``dags_from_folder(folder)``, split into ``load_configs`` (YAML + pydantic) and the
  rest (building), then serialisation;
- the floor: the same 8-task shape written directly with TaskFlow (same default_args, tags,
  the same trigger-form Params, a doc_md of about the same length, ``search_sklearn``
  expanded over 7 strings), no YAML, then serialisation;
- both again without the Params, and a task process's parse (``only_dag_id``) among
  1000 configs.

The machine is shared and noisy, so the variants run interleaved in one process (the order
reversed every other repetition) and the figures that matter are dagml/bare ratios, taken
per repetition and then their median. Goal: dagml adds under 15% over bare build+serialise.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

TMP = Path(tempfile.mkdtemp(prefix="dagml-bench-parse-"))
os.environ.update(AIRFLOW_HOME=str(TMP / "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False")

import contextlib  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from statistics import median  # noqa: E402

import airflow.sdk  # noqa: E402
from airflow.sdk import DAG, Asset, Param, task  # noqa: E402
from airflow.serialization.serialized_objects import DagSerialization  # noqa: E402

from dagml.config import load_config, load_configs  # noqa: E402
from dagml.factory import _doc, build_dag, dags_from_folder  # noqa: E402
from dagml.trigger import form  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _report import REPO, provenance, write_section  # noqa: E402

# N configs -> interleaved repetitions. No N=1000 here since the trigger form's Params: Airflow's
# serialiser then takes ~0.1-0.2 s per DAG (see PARAMS_COST), so one repetition of its six variants at
# N=1000 took ~10 min on this shared machine; the cost per DAG does not depend on N (earlier runs).
REPS = {10: 15, 100: 4}
PARAMS_UP_TO = 100  # the with/without-Params variants run at N <= this (cost per DAG does not depend on N)
TASK_PROCESS_REPS = 7
CONFIGS = REPO / "dags" / "configs"
FAMILIES = ["elastic_net", "random_forest", "extra_trees", "hist_gradient_boosting", "svm", "knn", "dummy"]


def write_configs(n: int) -> Path:
    folder = TMP / f"configs_{n}"
    folder.mkdir()
    shutil.copy(CONFIGS / "_defaults.yaml", folder)
    template = (CONFIGS / "breast_cancer.yaml").read_text()
    for i in range(n):
        (folder / f"ds_{i:04d}.yaml").write_text(template.replace("name: breast_cancer", f"name: ds_{i:04d}"))
    return folder


# The floor: the same DAG written by hand. Bodies do not matter at parse time.
def load(source_uri: str) -> dict: ...
def profile(loaded: dict) -> dict: ...
def prepare(loaded: dict, summary: dict) -> dict: ...
def search(prepared: dict, family: str) -> dict: ...
def select() -> dict: ...
def promote(selection: dict, prepared: dict) -> dict: ...
def publish_champion(promotion: dict) -> None: ...
def report(promotion: dict) -> str: ...


BARE_DOC = "# breast_cancer\n\nMalignant or benign.\n\n" + "".join(
    f"- step {i}: a hand-written TaskFlow task of the same shape as dagml's DAG, no YAML.\n" for i in range(15))


# The trigger form's fields as dagml builds them for breast_cancer, taken once as plain data: the bare
# DAG constructs the same Params from them, so both sides serialise the same form and dagml's side
# also pays for working the fields out at every parse.
FORM = form(load_config(CONFIGS / "breast_cancer.yaml"))


def params() -> dict:
    return {name: Param(**field) for name, field in FORM.items()}


def bare_dag(i: int, with_params: bool = True):
    with DAG(
        dag_id=f"bare__ds_{i:04d}", description="Malignant or benign.", doc_md=BARE_DOC, schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False, max_active_runs=1,
        tags=["dagml", "example"], params=params() if with_params else None,
        default_args={"owner": "dagml", "retries": 1, "retry_delay": timedelta(seconds=30)},
    ) as dag:
        loaded = task(task_id="load")(load)("sklearn://breast_cancer")
        prepared = task(task_id="prepare")(prepare)(loaded, task(task_id="profile")(profile)(loaded))
        searches = (task(task_id="search_sklearn", queue="default", map_index_template="{{ family }}")(search)
                    .partial(prepared=prepared).expand(family=FAMILIES))
        selection = task(task_id="select", trigger_rule="all_done")(select)()
        searches >> selection
        promotion = task(task_id="promote")(promote)(selection, prepared)
        published = task(task_id="publish_champion", outlets=[Asset(f"dagml://ds_{i:04d}/champion")])(
            publish_champion)(promotion)
        published >> task(task_id="report", trigger_rule="none_failed_min_one_success")(report)(promotion)
    return dag


@contextlib.contextmanager
def params_dropped(drop: bool):
    """dagml's build_dag without its Params: it imports airflow.sdk.DAG when called."""
    if drop:
        airflow.sdk.DAG = lambda *args, params=None, **kwargs: DAG(*args, **kwargs)
    try:
        yield
    finally:
        airflow.sdk.DAG = DAG


PARAMS_COST = """Where the Params' cost goes (cProfile of `DagSerialization.to_dict` on one dagml DAG): Airflow
serialises the DAG's Params with every task (8 here), and for each task it calls `Param.resolve` on every
Param twice (to compare the task's params with the default, then to dump them), and each `resolve` runs
`jsonschema.validate`, which checks the Param's schema against the JSON Schema metaschema again: 9 Params x
8 tasks x 2 = 144 validations of about 1 ms per DAG. Bare Airflow pays the same for the same form; what
dagml adds is working the fields out from the config (`dagml.trigger.form`), in "build"."""


def timed(fn):
    gc.collect()
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def serialise(dags) -> None:
    for dag in dags:
        DagSerialization.to_dict(dag)


def run_dagml(folder: Path, with_params: bool = True) -> dict:
    with params_dropped(not with_params):
        build, dags = timed(lambda: dags_from_folder(folder))
    ser, _ = timed(lambda: serialise(dags.values()))
    return {"build": build, "ser": ser, "total": build + ser}


def run_bare(n: int, with_params: bool = True) -> dict:
    build, dags = timed(lambda: [bare_dag(i, with_params) for i in range(n)])
    ser, _ = timed(lambda: serialise(dags))
    return {"build": build, "ser": ser, "total": build + ser}


def run_load(folder: Path) -> dict:
    return {"load": timed(lambda: load_configs(folder))[0]}


def run_doc(configs) -> dict:
    """The part of build_dag that dumps the config as YAML into doc_md (the top dagml-only cost in cProfile)."""
    return {"doc": timed(lambda: [_doc(c) for c in configs])[0]}


def interleaved(variants: dict, reps: int) -> dict[str, list[dict]]:
    """Every variant once per repetition, the order reversed every other repetition."""
    results = {name: [] for name in variants}
    for rep in range(reps):
        for name in (list(variants) if rep % 2 == 0 else list(variants)[::-1]):
            results[name].append(variants[name]())
    return results


def ms(seconds: float, n: int = 1) -> str:
    return f"{1000 * seconds / n:.2f}"


def per_dag(runs: list[dict], key: str, n: int) -> str:
    return ms(median(run[key] for run in runs), n)


def paired(runs: list[dict], baseline: list[dict], key: str) -> float:
    """The median of the per-repetition ratios: each pair ran side by side."""
    return median(x[key] / y[key] for x, y in zip(runs, baseline))


def parse_table() -> tuple[list[str], list[str], list[float]]:
    rows, params_rows, all_ratios = [], [], []
    for n, reps in REPS.items():
        folder = write_configs(n)
        configs = load_configs(folder)[0]
        variants = {"dagml": lambda: run_dagml(folder), "load": lambda: run_load(folder),
                    "doc": lambda: run_doc(configs), "bare": lambda: run_bare(n)}
        if n <= PARAMS_UP_TO:
            variants |= {"dagml-": lambda: run_dagml(folder, False), "bare-": lambda: run_bare(n, False)}
        r = interleaved(variants, reps)
        d, b = r["dagml"], r["bare"]
        built = [{"build": x["build"] - y["load"]} for x, y in zip(d, r["load"])]  # paired by repetition
        totals = [x["total"] / y["total"] for x, y in zip(d, b)]
        all_ratios += totals
        rows.append(" | ".join([
            f"| {n} | {reps}", per_dag(r["load"], "load", n), per_dag(built, "build", n), per_dag(r["doc"], "doc", n),
            per_dag(d, "build", n), per_dag(b, "build", n), f"{paired(built, b, 'build'):.2f}",
            f"{paired(d, b, 'build'):.2f}", per_dag(d, "ser", n), per_dag(b, "ser", n),
            per_dag(d, "total", n), per_dag(b, "total", n),
            f"**{median(totals):.2f}** ({min(totals):.2f}–{max(totals):.2f}) |"]))
        for label, with_p, without in (("dagml", d, r.get("dagml-")), ("bare", b, r.get("bare-"))):
            if without:
                params_rows.append(" | ".join(
                    [f"| {n} | {label}"] + [per_dag(runs, key, n) for key in ("build", "ser", "total")
                                            for runs in (with_p, without)]
                    + [f"{paired(with_p, without, 'total'):.2f} |"]))
    return rows, params_rows, all_ratios


def task_process() -> str:
    """A task process parses dags/automl.py with only its own dag_id: one DAG built, 1000 configs present."""
    folder, one = TMP / "configs_1000", "automl__ds_0500"
    if not folder.exists():
        write_configs(1000)
    config = next(c for c in load_configs(folder)[0] if c.dag_id == one)
    r = interleaved({"only": lambda: timed(lambda: dags_from_folder(folder, only_dag_id=one))[0],
                     "build": lambda: timed(lambda: build_dag(config))[0],
                     "bare": lambda: timed(lambda: bare_dag(0))[0]}, TASK_PROCESS_REPS)
    ratio = median(x / y for x, y in zip(r["only"], r["bare"]))
    return (f"| `dags_from_folder(folder, only_dag_id={one!r})`, 1000 configs | {ms(median(r['only']))} | "
            f"{ratio:.1f} |\n| `build_dag(config)` alone (config already validated) | {ms(median(r['build']))} | "
            f"{median(x / y for x, y in zip(r['build'], r['bare'])):.2f} |\n"
            f"| bare TaskFlow DAG, one | {ms(median(r['bare']))} | 1.00 |")


def main() -> None:
    started = time.perf_counter()
    rows, params_rows, ratios = parse_table()
    total_ratio = median(ratios)
    task_rows = task_process()
    size = lambda dag: len(json.dumps(DagSerialization.to_dict(dag)))  # noqa: E731
    dagml_dag = next(iter(dags_from_folder(TMP / "configs_10").values()))
    verdict = "meets" if total_ratio < 1.15 else "does **not** meet"
    write_section("parse_time", f"""## DAG parse time: dagml vs bare TaskFlow

{provenance()} Total run time {time.perf_counter() - started:.0f} s.

Per DAG, in ms (medians over the repetitions); ratios are dagml/bare per repetition, then
the median. "YAML" is `load_configs` (read + validate); "build" is `dags_from_folder` minus
`load_configs` in the same repetition, of which "doc" is `dagml.factory._doc` (the config
dumped as YAML into doc_md, measured on its own); "parse" is `dags_from_folder` (both); "ser" is
`DagSerialization.to_dict`, what the dag-processor calls for every DAG. The bare DAG has the
same 8 tasks (publish_champion with its asset outlet included: Airflow serialises the Params with every
task, so a task less would be a 1/8 smaller bill), default_args, tags and the same {len(FORM)} trigger-form Params ({", ".join(FORM)}: titles,
sections, bounds, the families' multi-select and the metric's enum), with `search_sklearn` expanded over 7 strings.

| N | reps | dagml YAML | dagml build | of which doc | dagml parse | bare build | build ratio | parse ratio | dagml ser | bare ser | dagml parse+ser | bare build+ser | parse+ser ratio (range) |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Goal: dagml adds under 15% over bare Airflow's build+serialise. Over all {len(ratios)} repetitions
at every N (the cost per DAG does not depend on N) the median parse+ser ratio is
**{total_ratio:.2f}**: dagml {verdict} it. Serialised size of one DAG: dagml {size(dagml_dag):,} bytes
of JSON, bare {size(bare_dag(0)):,} bytes (tasks read the validated config in their own process, it is
not a task argument; doc_md: dagml {len(dagml_dag.doc_md)} chars, bare {len(BARE_DOC)}).

The trigger form's {len(FORM)} Params, ms per DAG, measured in the same runs (dagml works the fields out from
the config at every parse; bare Airflow is given them):

| N | DAG | build with | build without | ser with | ser without | build+ser with | build+ser without | build+ser with/without |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(params_rows)}

{PARAMS_COST}

A task process re-parses `dags/automl.py` with its own dag_id (Airflow's parsing context),
so only one DAG is built; with 1000 configs in the folder ({TASK_PROCESS_REPS} repetitions, interleaved).
Every task instance pays this parse; the gap between the first two rows is the configs that
are read and validated but not built:

| what | ms | ratio to bare |
|---|---|---|
{task_rows}
""")
    shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
