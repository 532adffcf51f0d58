"""One trial of each family (its portfolio's first point, no time limit) on a split's training rows,
with its own classes and with them folded into two (odd and even codes): how a family's trial
cost grows with the number of classes (docs/benchmarks.md, "Letter").

    taskset -c 1 .venv/bin/python bench/quality/trial_costs.py bench/quality/.work-now/letter/seed1

Prints a Markdown table: per family, the trial's seconds as the results store recorded them, for
each kind of task, and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from exchange import TARGET  # noqa: E402
from runner import dagml_families, prepared_run  # noqa: E402


def trial_seconds(train, families: list[str]) -> dict[str, float]:
    from dagml import tasks
    from dagml.config import DatasetConfig

    folder = Path(tempfile.mkdtemp(prefix="trial-costs-"))
    train.to_parquet(folder / "train.parquet")
    config = DatasetConfig(name="trial_costs", source={"uri": str(folder / "train.parquet")}, target=TARGET,
                           families=[{"name": f, "max_evals": 2} for f in families],
                           budget={"max_evals": 2, "seconds": 600}, ensemble=False)
    stores, keys, prepared = prepared_run(config, folder, "costs")
    out = {}
    for family in families:
        tasks.search_family(config, family, prepared, keys, stores)
        # the first trial is the portfolio's first point (a search of one trial would leave no room
        # for the portfolio: its one trial is TPE's)
        out[family] = stores.results.trials(config.dag_id, keys.partition, family)[0]["seconds"]
    return out


def main() -> None:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("split", type=Path, help="a harness split folder (its train.parquet)")
    args = ap.parse_args()
    train = pd.read_parquet(args.split / "train.parquet")
    two = train.assign(**{TARGET: train[TARGET].astype("category").cat.codes % 2})
    families = dagml_families()
    many, binary = trial_seconds(train, families), trial_seconds(two, families)
    print(f"| family | {train[TARGET].nunique()} classes (s) | 2 classes (s) | ratio |\n|---|---|---|---|")
    for f in families:
        print(f"| {f} | {many[f]:.2f} | {binary[f]:.2f} | {many[f] / binary[f]:.1f} |")


if __name__ == "__main__":
    main()
