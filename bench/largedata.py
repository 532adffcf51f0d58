"""A large partition on one worker: seconds and peak memory of load, profile, prepare and each
default-queue family's search, on the embedded default's stores (a local artifact folder, SQLite).

The data (``bench/largedata_data.py``): seeded synthetic rows of 50 feature columns (30 float, 5
integer, 10 low-cardinality and 5 high-cardinality text columns, 5% of each missing) and a binary
target, written once per size as Parquet under /tmp/dagml-largedata (never into the checkout).

Each stage runs as the task body it is (``dagml.tasks``), in a fresh process (as a worker runs a
task), one at a time: load; profile; prepare; then each family's ``search_family`` with its
per-family budget (``--seconds``, 60 by default; max_evals 20). Peak memory is the largest sum,
sampled every 0.5 s, of the proportional set size (PSS: shared pages split between the processes
that share them) of the stage's process and its children (a search forks its own process, and that
forks each trial), so copy-on-write pages are not counted twice. A stage "fits 4 GiB" when it
succeeds with that peak under 4 GiB; the largest size that fits is reported per family over
``--sizes``. Run with ``taskset -c 1`` (one core: a worker slot). Each stage's figures are also
written, one JSON line each, to ``bench/largedata_results.jsonl``; ``--render`` writes the section
from such a file again.

    taskset -c 1 .venv/bin/python bench/largedata.py            # 1M rows, then 2M
    taskset -c 1 .venv/bin/python bench/largedata.py --sizes 250000 --seconds 20   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import provenance, write_section  # noqa: E402

DATA = Path("/tmp/dagml-largedata")
RESULTS = Path(__file__).with_name("largedata_results.jsonl")
FAMILIES = ["sklearn:dummy", "sklearn:elastic_net", "sklearn:hist_gradient_boosting", "sklearn:random_forest",
            "sklearn:extra_trees", "sklearn:knn", "sklearn:svm"]
LIMIT = 4 * 2**30


def config(rows: int, seconds: float):
    from dagml.config import DatasetConfig

    return DatasetConfig.model_validate({
        "name": "largedata", "source": {"uri": str(DATA / f"rows{rows}.parquet")}, "target": "y",
        "families": FAMILIES, "budget": {"max_evals": 20, "seconds": seconds}, "warm_start": False})


def stage(rows: int, seconds: float, name: str) -> dict:
    """One stage in this process (the subprocess side): what it returned, and a short summary."""
    from dagml import tasks
    from dagml.store.artifacts import ArtifactStore
    from dagml.store.results import ResultsStore

    work = DATA / f"run{rows}"
    stores = tasks.Stores(ArtifactStore(str(work / "artifacts")), ResultsStore(f"sqlite:///{work / 'results.db'}"))
    cfg, keys = config(rows, seconds), tasks.RunKeys("automl__largedata", "2026-01-01", f"bench-{rows}")
    state = work / "state.json"
    saved = json.loads(state.read_text()) if state.exists() else {}
    if name == "load":
        saved["loaded"] = tasks.load(cfg, cfg.source.uri, keys, stores)
    elif name == "profile":
        saved["summary"] = tasks.profile(cfg, saved["loaded"], keys, stores)
    elif name == "prepare":
        saved["prepared"] = tasks.prepare(cfg, saved["loaded"], saved["summary"], keys, stores)
    else:
        try:
            tasks.search_family(cfg, name, saved["prepared"], keys, stores)
        except Exception as exc:  # the family's failed row says why
            print(f"{name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        row = next(r for r in stores.results.leaderboard(keys.dag_id, keys.partition, keys.run_id)
                   if r["family"] == name)
        return {k: row.get(k) for k in ("status", "error", "val_score", "test_score", "n_trials", "n_failed_trials",
                                         "search_seconds", "fit_seconds", "search_rows", "fit_rows")}
    state.write_text(json.dumps(saved))
    return {}


def measured(rows: int, seconds: float, name: str) -> dict:
    """The stage in a fresh process: wall seconds, peak PSS of its process tree, its summary."""
    import resource

    import psutil

    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen([sys.executable, __file__, "--stage", name, "--rows", str(rows), "--seconds", str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, top = 0, psutil.Process(proc.pid)
    while proc.poll() is None:
        total = 0
        for p in [top, *top.children(recursive=True)]:
            try:
                total += p.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        peak = max(peak, total)
        time.sleep(0.5)
    out, err = proc.communicate()
    elapsed, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    # every process of the stage is waited for (a search waits for its forks), so this is all their CPU
    cpu_seconds = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    result = json.loads(out.strip().splitlines()[-1]) if proc.returncode == 0 and out.strip() else {}
    if proc.returncode != 0:
        result = {"status": "crashed", "error": (err.strip().splitlines() or ["?"])[-1]}
    return {"stage": name, "seconds": elapsed, "cpu_seconds": cpu_seconds, "peak": peak, **result}


def fmt_gib(value: int) -> str:
    return f"{value / 2**30:.2f}"


def table(rows: int, seconds: float, results: list[dict]) -> str:
    lines = [f"**{rows:,} rows x 50 columns**, {seconds:g} s per family:", "",
             "| stage | seconds | CPU seconds | peak PSS GiB | fits 4 GiB | status | trials (failed) | searched on rows | model fit on rows | validation roc_auc | test roc_auc | reason |",
             "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        fits = "yes" if r["peak"] < LIMIT else "no"
        trials = f"{r['n_trials']} ({r['n_failed_trials']})" if r.get("n_trials") is not None else ""
        score = lambda k: "" if r.get(k) is None else f"{r[k]:.4f}"  # noqa: E731
        rows_ = lambda k: "" if r.get(k) is None else f"{r[k]:,}"  # noqa: E731
        reason = (r.get("error") or "").replace("|", "/")[:160]
        lines.append(f"| {r['stage']} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {fmt_gib(r['peak'])} | {fits} | {r.get('status', 'ok')} "
                     f"| {trials} | {rows_('search_rows')} | {rows_('fit_rows')} | {score('val_score')} "
                     f"| {score('test_score')} | {reason} |")
    return "\n".join(lines)


def largest_fitting(runs: dict[int, list[dict]]) -> str:
    lines = ["| stage | " + " | ".join(f"{n:,} rows" for n in runs) + " | largest size tried under 4 GiB |",
             "|---|" + "---|" * len(runs) + "---|"]
    for name in [r["stage"] for r in next(iter(runs.values()))]:
        cells, best = [], None
        for n, results in runs.items():
            r = next((x for x in results if x["stage"] == name), None)
            if r is None:
                cells.append("")
                continue
            fits = r["peak"] < LIMIT
            failed = "" if r.get("status", "ok") == "ok" else ", failed"
            cells.append(f"{fmt_gib(r['peak'])} GiB, {r['seconds']:.0f} s{failed}")
            best = n if fits else best
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'none tried' if best is None else f'{best:,}'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,2000000", help="partition rows, comma-separated")
    parser.add_argument("--seconds", type=float, default=60.0, help="search budget per family")
    parser.add_argument("--stage"), parser.add_argument("--rows", type=int)
    parser.add_argument("--render", metavar="LOG", help="write the section from a run's printed JSON lines instead")
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args.rows, args.seconds, args.stage), default=str))
        return
    if args.render:
        render(args.render, [int(n) for n in args.sizes.split(",")], args.seconds)
        return
    from largedata_data import write as write_data

    runs: dict[int, list[dict]] = {}
    RESULTS.write_text("")
    for rows in (int(n) for n in args.sizes.split(",")):
        DATA.mkdir(parents=True, exist_ok=True)
        path = DATA / f"rows{rows}.parquet"
        if not path.exists():
            write_data(path, rows)
        work = DATA / f"run{rows}"
        if work.exists():
            import shutil

            shutil.rmtree(work)
        work.mkdir()
        results = []
        for name in ["load", "profile", "prepare", *FAMILIES]:
            results.append(measured(rows, args.seconds, name))
            line = json.dumps(results[-1], default=str)
            print(line, flush=True)
            with RESULTS.open("a") as out:
                out.write(line + "\n")
        runs[rows] = results
        write(runs, args.seconds, provenance())


def render(log: str, sizes: list[int], seconds: float) -> None:
    """The section from a run's output (one JSON line per stage; a size starts at its load)."""
    runs, rows = {}, iter(sizes)
    lines = [json.loads(line) for line in Path(log).read_text().splitlines() if line.startswith("{")]
    for line in lines:
        if line["stage"] == "load":
            current = next(rows, None)
            if current is None:  # a size the caller left out
                break
            runs[current] = []
        runs[current].append(line)
    write(runs, seconds, provenance() + f" Measured by `taskset -c 1 .venv/bin/python bench/largedata.py` "
                                        f"(sizes {', '.join(f'{n:,}' for n in sizes)}), whose output this renders.")


def write(runs: dict[int, list[dict]], seconds: float, where: str) -> None:
    write_section("largedata", "\n\n".join([
        "## A large partition on one worker",
        where,
        "Each stage is its task body (`dagml.tasks`) in a fresh process, one at a time, on one core; the embedded "
        "default's stores (local folder, SQLite). Peak: the largest sum of PSS over the stage's process and its "
        "children (its forked trials and fits), sampled every 0.5 s. Seeded synthetic data "
        "(`bench/largedata_data.py`): 30 float, 5 integer, 10 low- and 5 high-cardinality text columns, 5% missing, "
        "a binary target; holdout validation: test 0.2 of the rows, validation 0.2 of the rest up to "
        "`split.valid_max_rows` (50,000), the rest trains.",
        *[table(n, seconds, r) for n, r in runs.items()],
        "Per stage and size (peak PSS, seconds), and the largest size whose peak stayed under 4 GiB:",
        largest_fitting(runs),
    ]))


if __name__ == "__main__":
    main()
