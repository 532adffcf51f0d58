"""Ablations from one dagml run, at no extra search: after a run, the held-out rows are also
predicted by every family's own best model (each leaderboard row's stored model, as searched,
not refit) and by the compared model (the champion before its refit on all rows). Scoring them
beside the champion shows, on the same splits and the same seconds, what the ensemble row, the
refit and each family contribute.

``write`` runs in the runner's process after its clock stopped: it writes
``FOLDER/dagml.variants/<name>.parquet`` (same columns as the champion's predictions) and
``leaderboard.json`` (dagml's own validation and test scores per family). ``score_folder``
scores those files against the split's labels; ``main`` prints the ablation table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import datasets as dataset_list  # noqa: E402
from exchange import PREDICTION  # noqa: E402

FOLDER = "dagml.variants"
COMPARED = "compared"  # the champion as compared on dagml's test rows, before the refit
SINGLE = "best_single"  # what selection would have chosen without the ensemble row
OOF = "out_of_fold.npz"


def _proba_frame(out, index):
    import pandas as pd

    if PREDICTION in out.columns and not any(c.startswith("proba_") for c in out.columns):
        return pd.DataFrame({PREDICTION: out[PREDICTION].to_numpy()}, index=index)
    cols = [c for c in out.columns if c.startswith("proba_")]
    return pd.DataFrame(out[cols].to_numpy(), columns=[c.removeprefix("proba_") for c in cols], index=index)


def out_of_fold(stores, prepared: dict, rows: list[dict]) -> dict[str, tuple]:
    """{family: (its out-of-fold predictions, the labels of those rows, their validation folds)}:
    what the ensemble row is chosen from."""
    from dagml.ensemble import aligned
    from dagml.prepare import encode_target

    df = stores.artifacts.read_parquet(prepared["data_uri"])
    roles = stores.artifacts.read_parquet(prepared["split_uri"])["role"].to_numpy()
    recipe = stores.artifacts.read_json(prepared["recipe_uri"])
    out = {}
    for r in rows:
        if r["status"] != "ok" or not r.get("predictions_uri"):
            continue
        positions, predictions = aligned({r["family"]: stores.artifacts.read_parquet(r["predictions_uri"])})
        y, groups = encode_target(df[recipe["target"]].iloc[positions], recipe), roles[positions]
        out[r["family"]] = (predictions[r["family"]], np.asarray(y), groups)
    return out


def fold_scores(oof: dict[str, tuple], metric) -> dict[str, list[float]]:
    """{family: its score on each validation fold} from its out-of-fold predictions."""
    from dagml.ensemble import fold_scores as scores_per_fold

    return {family: scores_per_fold(metric, y, predictions, groups) for family, (predictions, y, groups) in oof.items()}


def write(stores, keys, metric_name: str, test, folder: Path, prepared: dict | None = None) -> None:
    from dagml.families import REGISTRY
    from dagml.metrics import get_metric
    from dagml.predictors import load_verified

    out = folder / FOLDER
    out.mkdir(exist_ok=True)
    for stale in out.iterdir():
        stale.unlink()
    rows = stores.results.leaderboard(keys.dag_id, keys.partition)
    better = get_metric(metric_name).greater_is_better
    models = {r["family"]: (r["model_uri"], r["model_sha256"]) for r in rows if r["status"] == "ok" and r["model_uri"]}
    singles = [r for r in rows if r["status"] == "ok" and r["model_uri"] and not r["family"].startswith("ensemble")
               and r["val_score"] is not None]
    if singles:
        best = sorted(singles, key=lambda r: r["val_score"], reverse=better)[0]
        models[SINGLE] = (best["model_uri"], best["model_sha256"])
    champion = stores.results.champion(keys.dag_id) or {}
    if champion.get("compared_model_uri"):
        models[COMPARED] = (champion["compared_model_uri"], champion["compared_model_sha256"])
    for name, (uri, sha) in models.items():
        predictor = load_verified(stores.artifacts, uri, sha)
        _proba_frame(predictor.predictions(test), test.index).to_parquet(out / f"{name.replace(':', '__')}.parquet")
    oof = out_of_fold(stores, prepared, rows) if prepared else {}
    folds = fold_scores(oof, get_metric(metric_name))
    if oof:  # the ensemble's inputs, for ablations of how it is chosen (ensemble_bags.py)
        np.savez_compressed(out / OOF, **{f"{family}|{part}": value for family, parts in oof.items()
                                          for part, value in zip(("predictions", "y", "groups"), parts)})
    board = [{**{k: r.get(k) for k in ("family", "status", "val_score", "test_score", "fit_seconds", "n_trials",
                                        "search_seconds", "params")},
              "cost": getattr(REGISTRY.get(r["family"]), "cost", None), "fold_scores": folds.get(r["family"])}
             for r in rows]
    (out / "leaderboard.json").write_text(json.dumps(board, indent=1, default=str))


def score_folder(split, task: str) -> dict[str, float]:
    """{variant name: held-out score} for the variant files in ``split.folder``."""
    import pandas as pd

    from harness import score

    scores = {}
    for path in sorted((split.folder / FOLDER).glob("*.parquet")):
        scores[path.stem.replace("__", ":")] = score(split, task, pd.read_parquet(path))[1]
    return scores


def collect(work: Path, datasets, seeds, champion: dict) -> dict:
    """{dataset: {variant: [score per seed that has it]}}, the splits re-made from each seed;
    ``champion`` ({(dataset, seed): score}) adds the shipped setting's score of the same seeds."""
    import tempfile

    from harness import METRIC, Split, make_split

    table = {}
    for ds in datasets:
        folders = [work / ds.name / f"seed{s}" for s in seeds]
        if not any((f / FOLDER).is_dir() for f in folders):
            continue
        df = dataset_list.load(ds)
        for seed, folder in zip(seeds, folders):
            if not (folder / FOLDER).is_dir():
                continue
            with tempfile.TemporaryDirectory() as tmp:  # the labels, from the seed's split re-made
                labels = make_split(df, ds.task, seed, Path(tmp))
            split = Split(folder, labels.y_test, labels.classes, labels.digests)
            scores = score_folder(split, ds.task)
            scores.update(simulated_choices(folder, scores, METRIC[ds.task]))
            if (ds.name, seed) in champion:
                scores["champion"] = champion[ds.name, seed]
            for name, value in scores.items():
                table.setdefault(ds.name, {}).setdefault(name, []).append(value)
    return table


ONE_SE, BY_MEAN = "rule:one_se", "rule:by_mean"


def one_standard_error(rows: list[dict], metric, fold_scores: dict[str, list[float]], complexity) -> dict | None:
    """The simplest row (``complexity``: lower is simpler) whose validation score is within one
    standard error of the best row's folds; the best row when it has fewer than two folds."""
    from math import sqrt
    from statistics import stdev

    from dagml.selection import choose, rank

    best = choose(rows, metric)
    folds = fold_scores.get(best["family"]) or [] if best else []
    if len(folds) < 2:
        return best
    se = stdev(folds) / sqrt(len(folds))
    near = [r for r in rank(rows, metric) if r["status"] == "ok" and r.get("val_score") is not None
            and not metric.better(best["val_score"], r["val_score"], se)]
    return min(near, key=lambda r: (complexity(r), r.get("fit_seconds") or 0.0, r["family"]))


def simulated_choices(folder: Path, scores: dict, metric_name: str) -> dict:
    """The held-out scores of what ``dagml.selection.choose`` picks from the run's leaderboard,
    by mean validation score, and what the one-standard-error rule (not dagml's: measured here)
    would pick (complexity: declared cost; an ensemble's is the sum of its members')."""
    from dagml.metrics import get_metric
    from dagml.selection import choose

    path = folder / FOLDER / "leaderboard.json"
    if not path.exists():
        return {}
    rows = json.loads(path.read_text())
    cost = {r["family"]: r.get("cost") or 0.0 for r in rows}

    def complexity(r):
        if r["family"].startswith("ensemble"):
            return sum(cost.get(m, 0.0) for m in (r.get("params") or {}))
        return cost.get(r["family"], 0.0)

    metric = get_metric(metric_name)
    folds = {r["family"]: r["fold_scores"] for r in rows if r.get("fold_scores")}
    out = {}
    for name, picked in ((BY_MEAN, choose(rows, metric)), (ONE_SE, one_standard_error(rows, metric, folds, complexity))):
        if picked is not None and picked["family"] in scores:
            out[name] = scores[picked["family"]]
    return out


def markdown(table: dict, metric: dict) -> str:
    """Each lever's effect on the held-out scores, and each family alone, per dataset (means over seeds)."""
    from statistics import mean

    from dagml.metrics import get_metric

    def better(d, a, b):  # +1 if a's mean beats b's on d, -1 if worse, 0 if equal or missing
        if not table[d].get(a) or not table[d].get(b):
            return None
        x, y = mean(table[d][a]), mean(table[d][b])
        sign = 1 if get_metric(metric[d]).greater_is_better else -1
        return 0 if x == y else (1 if (x - y) * sign > 0 else -1)

    lines = ["| lever (A against B) | datasets where A is better / equal / worse |", "|---|---|"]
    for label, a, b in (("refit on all rows (champion against compared)", "champion", COMPARED),
                        ("ensemble row (compared against best single family)", COMPARED, SINGLE),
                        ("one-standard-error rule (simplest within 1 SE against best mean)", ONE_SE, BY_MEAN)):
        outcome = [better(d, a, b) for d in table]
        lines.append(f"| {label} | {outcome.count(1)} / {outcome.count(0)} / {outcome.count(-1)} |")
    families = sorted({f for s in table.values() for f in s if f.startswith("sklearn:")})
    lines += ["", "Each family alone (its own best model, as searched), mean rank among the families per dataset "
              "(1 = best held-out score) and the datasets where it was the best family:", "",
              "| family | mean rank | best on |", "|---|---|---|"]
    ranks, best_on = {f: [] for f in families}, {f: [] for f in families}
    for d, scores in table.items():
        have = [f for f in families if scores.get(f)]
        sign = -1 if get_metric(metric[d]).greater_is_better else 1
        ordered = sorted(have, key=lambda f: sign * mean(scores[f]))
        for i, f in enumerate(ordered):
            ranks[f].append(i + 1)
        for f in families:
            if f not in have:
                ranks[f].append(len(families))
        if ordered:
            best_on[ordered[0]].append(d)
    for f in sorted(families, key=lambda f: mean(ranks[f])):
        lines.append(f"| {f} | {mean(ranks[f]):.2f} | {', '.join(best_on[f]) or '—'} |")
    return "\n".join(lines)


def main() -> None:
    import argparse
    import csv

    from harness import METRIC, RESULTS, WORK

    ap = argparse.ArgumentParser(description="Ablations from dagml's runs in a work folder")
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--results", type=Path, default=RESULTS, help="dagml's champion scores (the shipped setting)")
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    listed = dataset_list.read_list()
    with args.results.open(newline="") as fh:
        champion = {(r["dataset"], int(r["seed"])): float(r["score"]) for r in csv.DictReader(fh)
                    if r["system"] == "dagml" and float(r["budget"]) == args.budget and r["score"]}
    table = collect(args.work, listed, seeds, champion)
    print(markdown(table, {d.name: METRIC[d.task] for d in listed}))


if __name__ == "__main__":
    main()
