"""What a forest's trial still has to do after its last tree, in the path a trial runs: predict the
validation rows in the forked child, send the predictions and the model (a holdout search keeps the
best trial's model) through the pipe, unpickle them here; against the seconds growing took, as the
trees grow (docs/benchmarks.md, "A forest's reserve"). The rows are a benchmark split's, prepared as
a run prepares them; the family's first point, one thread.

    taskset -c 1 .venv/bin/python bench/quality/forest_reserve.py bench/quality/.work-now/diamonds/seed1

Prints a Markdown table. ``1 / (1 + reserve)`` is the largest share of a trial's limit that growing
may take so that the rest still ends inside the limit (``Family.deadline_share`` must stay below it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from runner import search_fold  # noqa: E402

FAMILIES = ("sklearn:extra_trees", "sklearn:random_forest")
TREES = (25, 50, 100, 200)


def measure(family, prepared, fold, trees: int) -> tuple[float, float]:
    """(seconds growing, seconds from the last tree to the result held in this process)."""
    from dagml.time_limit import call_with_time_limit

    point = {**family.init_points(prepared["task"])[0], "n_estimators": trees}

    def trial():
        started = time.monotonic()
        model = family.fit(point, fold.X_train, fold.y_train, prepared["task"], prepared["n_classes"], 0)
        grown = time.monotonic()
        return model.predict(fold.X_valid), model, started, grown

    _, _, started, grown = call_with_time_limit(trial, None)
    return grown - started, time.monotonic() - grown


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("splits", nargs="+", type=Path, help="benchmark split folders (train.parquet, test.parquet)")
    args = ap.parse_args()
    print("| split | family | trees | growing (s) | after the last tree (s) | reserve | 1 / (1 + reserve) |")
    print("|---|---|---|---|---|---|---|")
    for split in args.splits:
        for key in FAMILIES:
            family, prepared, first = search_fold(split, key)
            for trees in TREES:
                grow, after = measure(family, prepared, first, trees)
                name = f"{split.parent.name}/{split.name}"
                print(f"| {name} | {key} | {trees} | {grow:.2f} | {after:.2f} | {after / grow:.2f} | "
                      f"{1 / (1 + after / grow):.2f} |", flush=True)


if __name__ == "__main__":
    main()
