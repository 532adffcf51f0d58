"""How the ensemble row's weights are chosen, measured at no extra search: from the runs of a work
folder (the out-of-fold predictions and each family's held-out predictions that ``variants.py``
keeps), the weights are chosen again in several ways and each blend scored on the held-out rows.

``greedy`` is dagml's (``dagml.ensemble.greedy_weights`` on every out-of-fold row). Caruana et al.
(2006) reduce its overfitting of small validation sets by bagging: ``rows`` averages the weights
chosen on bootstrap samples of the rows (within each fold), ``models`` those chosen from random
halves of the candidates. Each variant's blend is chosen over the best single family as dagml
chooses (by validation score), so a variant that blends more but validates worse is judged on
what selection would then pick.

    .venv/bin/python bench/quality/ensemble_bags.py --work bench/quality/.work-x --datasets wine,glass
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from statistics import mean

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import datasets as dataset_list  # noqa: E402
from harness import METRIC, Split, make_split, score  # noqa: E402
from variants import FOLDER, OOF  # noqa: E402

BAGS = 10


def _inputs(folder: Path):
    """(leaderboard rows, {family: (oof predictions, y, groups)}) of one run."""
    board = json.loads((folder / FOLDER / "leaderboard.json").read_text())
    data = np.load(folder / FOLDER / OOF, allow_pickle=True)  # the folds are labelled by text
    oof = {}
    for key in data.files:
        family, part = key.split("|")
        oof.setdefault(family, {})[part] = data[key]
    return board, {f: (v["predictions"], v["y"], v["groups"]) for f, v in oof.items()}


def weights(kind: str, predictions: list, y, groups, metric, seed: int) -> np.ndarray:
    from dagml.ensemble import greedy_weights

    if kind == "greedy":
        return greedy_weights(predictions, y, groups, metric)[0]
    rng, total = np.random.default_rng(seed), np.zeros(len(predictions))
    for _ in range(BAGS):
        if kind == "rows":  # a bootstrap sample of each fold's rows
            idx = np.concatenate([rng.choice(np.flatnonzero(groups == g), (groups == g).sum())
                                  for g in np.unique(groups)])
            total += greedy_weights([p[idx] for p in predictions], y[idx], groups[idx], metric)[0]
        else:  # a random half of the candidates (at least two), best first as greedy expects
            picked = np.sort(rng.choice(len(predictions), max(2, len(predictions) // 2), replace=False))
            w = greedy_weights([predictions[i] for i in picked], y, groups, metric)[0]
            total[picked] += w
    return total / total.sum()


def run_scores(folder: Path, split: Split, task: str, metric_name: str, kinds: list[str]) -> dict[str, float]:
    """{variant: held-out score} of one run: the best single family, and per kind of weights the
    blend as chosen over it by validation score (``kind:blend``: the blend whatever validation says)."""
    import pandas as pd

    from dagml.ensemble import blend, finalists, fold_score
    from dagml.metrics import get_metric

    metric = get_metric(metric_name)
    board, oof = _inputs(folder)
    ranked = finalists(board, metric, has_predictions=lambda row: row["family"] in oof)  # as dagml.tasks picks them
    names = [r["family"] for r in ranked]
    held = [pd.read_parquet(folder / FOLDER / f"{n.replace(':', '__')}.parquet") for n in names]
    held = [h.reindex(columns=held[0].columns, fill_value=0.0) for h in held]
    y, groups = oof[names[0]][1], oof[names[0]][2]
    predictions = [oof[n][0] for n in names]
    out = {"single": score(split, task, held[0])[1]}
    for kind in kinds:
        w = weights(kind, predictions, y, groups, metric, seed=0)
        val = fold_score(metric, y, blend(predictions, w), groups)
        blended = sum(wi * f for wi, f in zip(w, held))
        out[f"{kind}:blend"] = score(split, task, blended)[1]
        out[kind] = out[f"{kind}:blend"] if metric.better(val, ranked[0]["val_score"]) else out["single"]
        out[f"{kind}:members"] = int((w > 0).sum())
    return out


def main() -> None:
    import warnings

    from dagml.metrics import get_metric

    warnings.filterwarnings("ignore", message="The y_prob values do not sum to one")  # float32 rounding

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--datasets", default="")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--kinds", default="greedy,rows,models")
    args = ap.parse_args()
    kinds, seeds = args.kinds.split(","), [int(s) for s in args.seeds.split(",")]
    listed = [d for d in dataset_list.read_list() if not args.datasets or d.name in args.datasets.split(",")]
    table = {}
    for ds in listed:
        df = None
        for seed in seeds:
            folder = args.work / ds.name / f"seed{seed}"
            if not (folder / FOLDER / OOF).exists():
                continue
            df = dataset_list.load(ds) if df is None else df
            with tempfile.TemporaryDirectory() as tmp:
                labels = make_split(df, ds.task, seed, Path(tmp))
            split = Split(folder, labels.y_test, labels.classes, labels.digests)
            for name, value in run_scores(folder, split, ds.task, METRIC[ds.task], kinds).items():
                table.setdefault(ds.name, {}).setdefault(name, []).append(value)
    columns = ["single", *[c for k in kinds for c in (k, f"{k}:blend", f"{k}:members")]]
    print("| dataset | metric | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    wins = {k: [0, 0, 0] for k in kinds if k != "greedy"}
    for ds in listed:
        if ds.name not in table:
            continue
        row = table[ds.name]
        print(f"| {ds.name} | {METRIC[ds.task]} | " + " | ".join(f"{mean(row[c]):.4f}" for c in columns) + " |")
        better = get_metric(METRIC[ds.task]).better
        for k in wins:
            a, b = mean(row[k]), mean(row["greedy"])
            wins[k][0 if better(a, b) else 2 if better(b, a) else 1] += 1
    for k, (w, t, l) in wins.items():
        print(f"\n{k} against greedy (means over seeds, chosen as dagml chooses): better on {w}, equal on {t}, "
              f"worse on {l} datasets")


if __name__ == "__main__":
    main()
