"""Elastic net's first points (pure L2) fit by saga and by lbfgs, on the first fold a search of a
benchmark split builds: seconds and validation log loss (docs/benchmarks.md, "Elastic net's first
points").

    taskset -c 1 .venv/bin/python bench/quality/l2_solver.py <work>/satellite/seed0 <work>/dna/seed0

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from runner import search_fold  # noqa: E402


def main() -> None:
    from dagml.metrics import get_metric

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("splits", nargs="+", type=Path, help="multiclass benchmark split folders")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")  # saga's convergence warnings
    log_loss = get_metric("log_loss")
    print("| split | rows x columns | point | solver | seconds | log loss |")
    print("|---|---|---|---|---|---|")
    for split in args.splits:
        family, prepared, first = search_fold(split, "sklearn:elastic_net")
        for point in family.init_points(prepared["task"]):
            for solver in ("saga", "lbfgs"):
                est = family.estimator(point, prepared["task"], 0).set_params(solver=solver)
                started = time.perf_counter()
                est.fit(first.X_train, first.y_train)
                seconds = time.perf_counter() - started
                rows, cols = first.X_train.shape
                print(f"| {split.parent.name}/{split.name} | {rows:,} x {cols} | C = {point['C']} | {solver} | "
                      f"{seconds:.2f} | {log_loss(first.y_valid, est.predict_proba(first.X_valid)):.4f} |", flush=True)


if __name__ == "__main__":
    main()
