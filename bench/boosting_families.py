"""The boosting libraries against sklearn:hist_gradient_boosting, at the same search time each.

Run pinned to one core, as a worker slot runs a search: ``taskset -c 1 .venv/bin/python
bench/boosting_families.py [--seconds 30] [--seeds 3]``.

Per bundled dataset (``sklearn://breast_cancer`` binary, ``sklearn://digits`` multiclass,
``sklearn://diabetes`` regression) and seed, the split and recipe come from ``dagml.prepare`` as
the prepare task builds them (holdout: test 0.2, validation 0.2 of the rest). Each family then
runs ``dagml.search.search`` for the same number of seconds (its first points, then TPE), its
best point is refit on the training rows with ``eval_set=None`` as ``dagml.tasks`` does, and that
model is scored on the test rows with the task's default metric. The families run one after
the other in an order reversed every other seed. Native thread pools are capped to one thread.

Reported per dataset: mean test score over the seeds (and its range), the mean over seeds of
the ratio of each family's test *error* to HistGradientBoosting's in the same seed (error:
1 - ROC AUC, log loss, RMSE; below 1 is better), trials run, and the median seconds per trial
with its ratio to HistGradientBoosting's (what ``Family.cost`` approximates).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path
from statistics import mean, median

sys.path.insert(0, str(Path(__file__).parent))
from _report import provenance, write_section  # noqa: E402

DATASETS = {"breast_cancer": "binary", "digits": "multiclass", "diabetes": "regression"}
FAMILIES = ["sklearn:hist_gradient_boosting", "sklearn:lightgbm", "sklearn:xgboost", "sklearn:catboost"]
BASELINE = FAMILIES[0]


def error(metric, score: float) -> float:
    """The metric as an error (lower is better, 0 is perfect), so that ratios compare like with like."""
    return 1 - score if metric.name == "roc_auc" else score


def one_search(key: str, data, prepared_task: str, n_classes: int, metric, seconds: float, seed: int) -> dict:
    from dagml.errors import FamilyFailed
    from dagml.families import get_family
    from dagml.search import search

    family = get_family(key)()
    try:
        result = search(family, data.folds(), prepared_task, n_classes, metric, max_evals=100_000, seconds=seconds,
                        seed=seed)
    except FamilyFailed as exc:  # e.g. no trial finished within the seconds
        return {"failed_family": str(exc)}
    pre, X_train, y_train = data.final()
    started = time.perf_counter()
    model = family.fit(result.best_params, X_train, y_train, prepared_task, n_classes, seed)
    refit = time.perf_counter() - started
    X_test, y_test = data.rows("test", pre)
    trial_seconds = [t["seconds"] for t in result.trials if t["status"] == "ok" and t["seconds"] is not None]
    return {"test": metric(y_test, model.predict(X_test)), "valid": result.best_score, "trials": result.n_trials,
            "failed": result.n_failed, "search_s": result.seconds, "trial_s": median(trial_seconds),
            "refit_s": refit, "rounds": getattr(model, "rounds", None)}


def dataset_runs(name: str, task: str, seconds: float, seeds: int) -> list[dict]:
    from dagml.metrics import DEFAULT_METRIC, get_metric
    from dagml.prepare import FrameData, make_recipe, make_split
    from dagml.sources import read_source

    df = read_source(f"sklearn://{name}")
    recipe = make_recipe(df, "target", task)
    n_classes = len(recipe.get("classes", []))
    metric = get_metric(DEFAULT_METRIC[task])
    runs = []
    for seed in range(seeds):
        roles = make_split(df["target"], task, 0.2, "holdout", 0.2, 5, seed)
        data = FrameData(df, roles, recipe, scale=False)
        run = {}
        for key in (FAMILIES if seed % 2 == 0 else FAMILIES[::-1]):
            run[key] = one_search(key, data, task, n_classes, metric, seconds, seed)
            r = run[key]
            if "failed_family" in r:
                print(f"  {name} seed {seed} {key}: FAILED {r['failed_family']}", file=sys.stderr, flush=True)
                continue
            print(f"  {name} seed {seed} {key}: test {metric.name} {r['test']:.4f} (valid {r['valid']:.4f}), "
                  f"{r['trials']} trials, {r['trial_s']:.3f} s/trial, refit {r['refit_s']:.2f} s, rounds {r['rounds']}",
                  file=sys.stderr, flush=True)
        runs.append(run)
    return {"task": task, "metric": metric, "rows": len(df), "cols": df.shape[1] - 1, "runs": runs}


def table(name: str, result: dict) -> str:
    metric, runs = result["metric"], result["runs"]
    arrow = "higher is better" if metric.greater_is_better else "lower is better"
    lines = [f"**sklearn://{name}** ({result['task']}, {result['rows']} rows × {result['cols']} columns; "
             f"test {metric.name}, {arrow})", "",
             f"| family | test {metric.name}, mean (range) | error ratio to HGB, mean (range) | trials, mean | "
             "s per trial, median | trial-time ratio to HGB | refit s, mean | rounds of the refit |",
             "|---|---|---|---|---|---|---|---|"]
    for key in FAMILIES:
        failed = [run[key]["failed_family"] for run in runs if "failed_family" in run[key]]
        if failed or any("failed_family" in run[BASELINE] for run in runs):
            why = (failed or ["the baseline failed"])[0][:200]
            lines.append(f"| {key} | **failed** in {len(failed)} of {len(runs)} seeds: `{why}` | – | – | – | – | – | – |")
            continue
        tests = [run[key]["test"] for run in runs]
        ratios = [error(metric, run[key]["test"]) / error(metric, run[BASELINE]["test"]) for run in runs]
        per_trial = median(run[key]["trial_s"] for run in runs)
        cost = median(run[key]["trial_s"] / run[BASELINE]["trial_s"] for run in runs)
        rounds = [run[key]["rounds"] for run in runs if run[key]["rounds"] is not None]
        lines.append(f"| {key} | {mean(tests):.4f} ({min(tests):.4f}–{max(tests):.4f}) | "
                     f"**{mean(ratios):.2f}** ({min(ratios):.2f}–{max(ratios):.2f}) | "
                     f"{mean(run[key]['trials'] for run in runs):.0f} | {per_trial:.3f} | {cost:.1f} | "
                     f"{mean(run[key]['refit_s'] for run in runs):.2f} | "
                     f"{', '.join(map(str, rounds)) if rounds else '– (max_iter searched)'} |")
    return "\n".join(lines)


def summary_line(key: str, results: dict) -> str:
    wins, losses, ties, ratios = [], [], [], []
    for name, result in results.items():
        runs, metric = result["runs"], result["metric"]
        if any("failed_family" in run[key] or "failed_family" in run[BASELINE] for run in runs):
            losses.append(f"{name} (failed)")
            continue
        seed_ratios = [error(metric, run[key]["test"]) / error(metric, run[BASELINE]["test"]) for run in runs]
        ratios.append(mean(seed_ratios))
        (wins if max(seed_ratios) < 1 else losses if min(seed_ratios) > 1 else ties).append(name)
    geo = math.exp(mean(math.log(r) for r in ratios)) if ratios else float("nan")
    return (f"- `{key}`: better than HGB on {', '.join(wins) or 'none'}; worse on {', '.join(losses) or 'none'}; "
            f"tied on {', '.join(ties) or 'none'}; geometric mean of the error ratios {geo:.2f}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="search seconds per family, dataset and seed")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import catboost  # noqa: F401  (every native library loaded before the cap, so that it reaches them)
    import lightgbm  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    import sklearn.utils._openmp_helpers  # noqa: F401
    import xgboost  # noqa: F401
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    load_before = os.getloadavg()
    results = {}
    with threadpool_limits(limits=1):
        for name, task in DATASETS.items():
            print(f"{name}...", file=sys.stderr, flush=True)
            results[name] = dataset_runs(name, task, args.seconds, args.seeds)
    load_after = os.getloadavg()
    cores = len(os.sched_getaffinity(0))
    tables = "\n\n".join(table(name, result) for name, result in results.items())
    summary = "\n".join(summary_line(key, results) for key in FAMILIES[1:])
    write_section("boosting_families", f"""## Boosting libraries vs HistGradientBoosting, same search time

{provenance()} Pinned to {cores} core(s) (`taskset`); total run time {time.perf_counter() - started:.0f} s; load
average (1 min) {load_before[0]:.1f} at the start and {load_after[0]:.1f} at the end, on {os.cpu_count()} cores.

Each family searched {args.seconds:.0f} s per dataset and seed ({args.seeds} seeds: the split's seed), starting from its
first points, on the shared split and recipe of `dagml.prepare` (holdout: test 0.2, validation 0.2 of the rest);
the best point was refit on the training rows with `eval_set=None` (the boosting families find their rounds on
rows of their own: the median over 3 folds below 1,000 training rows, else a 10% holdout) and scored on the test
rows. The error ratio is the family's test error over
`{BASELINE}`'s in the same seed (error: 1 − ROC AUC, log loss, RMSE), averaged over seeds: below 1 is better.
The boosting families stop early on the validation fold (patience 50; at most 2,000 rounds, CatBoost 1,000);
HistGradientBoosting searches `max_iter` (50–400) without early stopping.

{tables}

Per family, over the datasets (a dataset counts as a win or a loss only when every seed's error ratio
is on the same side of 1; otherwise a tie):

{summary}
""")


if __name__ == "__main__":
    main()
