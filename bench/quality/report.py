"""The model-quality report: from ``results.csv`` to a section of docs/benchmarks.md and a plot.

Per dataset and system, the mean and standard deviation of the held-out score over the seeds
that returned one; wins, ties and losses of dagml against each other system (a tie: the
difference of the means is within the larger of the two standard errors); the mean rank per
system (1 = best of the systems, ties share their mean rank); the mean min-max normalised score
(per dataset, 1 = the best system's mean, 0 = the worst's). A dataset enters these figures once
every system has a row for every seed; a system with no score on a dataset ranks last there and
is normalised to 0.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, stdev

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _report import provenance, write_section  # noqa: E402
from harness import LONG_RESULTS, METRIC, RESULTS, SYSTEMS, WORK, default_files  # noqa: E402

SECTION = "quality_issue17"
TITLE = "## Model quality against AutoGluon and FLAML (issue 17)"
PLOT = HERE.parents[1] / "docs" / "quality_normalised.png"
AFTER_RESULTS = HERE / "results-after.csv"  # dagml just after issue 17's levers, and the other systems
NOW_RESULTS, NOW_WORK = HERE / "results-now.csv", HERE / ".work-now"  # dagml alone on the current code


@dataclass
class Cell:
    scores: list[float]
    failed: int
    overrun: int
    seconds: list[float]

    @property
    def mean(self) -> float | None:
        return mean(self.scores) if self.scores else None

    @property
    def sd(self) -> float:
        return stdev(self.scores) if len(self.scores) > 1 else 0.0

    @property
    def se(self) -> float:
        return self.sd / math.sqrt(len(self.scores)) if self.scores else math.inf


def read(path: Path, budget: float) -> list[dict]:
    with path.open(newline="") as fh:
        return [r for r in csv.DictReader(fh) if float(r["budget"]) == budget]


def cells(rows: list[dict], systems, seeds) -> tuple[dict, dict, list[str]]:
    """({dataset: {system: Cell}} for complete datasets, {dataset: metric}, incomplete datasets)."""
    seen, metric, table = {}, {}, {}
    for r in rows:
        seen.setdefault(r["dataset"], set()).add((r["system"], int(r["seed"])))
        metric[r["dataset"]] = r["metric"]
        cell = table.setdefault(r["dataset"], {}).setdefault(r["system"], Cell([], 0, 0, []))
        if r["error"] or r["score"] == "":
            cell.failed += 1
        else:
            cell.scores.append(float(r["score"]))
            cell.seconds.append(float(r["seconds"]))
        cell.overrun += r["overrun"] == "True"
    wanted = {(s, k) for s in systems for k in seeds}
    complete = [d for d in table if wanted <= seen[d]]
    return {d: table[d] for d in complete}, metric, [d for d in table if d not in complete]


def higher_is_better(metric: str) -> bool:
    from dagml.metrics import get_metric

    return get_metric(metric).greater_is_better


def ranks(table: dict, metric: dict, systems) -> dict:
    """{dataset: {system: rank}}; a system without a score is last."""
    out = {}
    for d, row in table.items():
        sign = 1 if higher_is_better(metric[d]) else -1
        value = {s: sign * row[s].mean if row[s].mean is not None else -math.inf for s in systems}
        out[d] = {}
        for s in systems:
            better = sum(value[o] > value[s] for o in systems)
            same = sum(value[o] == value[s] for o in systems)
            out[d][s] = better + (same + 1) / 2
    return out


def normalised(table: dict, metric: dict, systems) -> dict:
    """{dataset: {system: 0..1}}, 1 = the best mean on that dataset, 0 = the worst."""
    out = {}
    for d, row in table.items():
        sign = 1 if higher_is_better(metric[d]) else -1
        means = {s: sign * row[s].mean for s in systems if row[s].mean is not None}
        lo, hi = min(means.values()), max(means.values())
        out[d] = {s: ((means[s] - lo) / (hi - lo) if hi > lo else 1.0) if s in means else 0.0 for s in systems}
    return out


def wins_ties_losses(table: dict, metric: dict, a: str, b: str) -> tuple[int, int, int]:
    w = t = l = 0
    for d, row in table.items():
        if row[a].mean is None or row[b].mean is None:
            w, l = w + (row[a].mean is not None), l + (row[b].mean is not None)
            t += row[a].mean is None and row[b].mean is None
            continue
        diff = (row[a].mean - row[b].mean) * (1 if higher_is_better(metric[d]) else -1)
        if abs(diff) <= max(row[a].se, row[b].se):
            t += 1
        elif diff > 0:
            w += 1
        else:
            l += 1
    return w, t, l


def plot(norm: dict, systems, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(norm)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(datasets) + 2), 3.4), dpi=90)
    markers = "os^Dv"
    for i, s in enumerate(systems):
        offset = (i - (len(systems) - 1) / 2) * 0.1
        ax.scatter([x + offset for x in range(len(datasets))], [norm[d][s] for d in datasets],
                   label=s, marker=markers[i % len(markers)], s=28)
    ax.set_xticks(range(len(datasets)), datasets, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("normalised score\n(1 = best mean)", fontsize=8)
    ax.set_ylim(-0.05, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=len(systems), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def champions(work: Path, datasets) -> dict:
    """{dataset: [dagml's champion family per seed]}, from the runs' info files still on disk."""
    import json

    out = {}
    for d in datasets:
        for info in sorted((work / d).glob("seed*/dagml.info.json")):
            family = json.loads(info.read_text()).get("details", {}).get("champion")
            if family:
                out.setdefault(d, []).append(family.split(":", 1)[-1])
    return out


def _fmt(cell: Cell) -> str:
    if cell.mean is None:
        return f"failed ×{cell.failed}"
    text = f"{cell.mean:.4f} ± {cell.sd:.4f}"
    if cell.failed:
        text += f" ({cell.failed} failed)"
    if cell.overrun:
        text += f" †{cell.overrun}"
    return text


def markdown(rows, table, metric, incomplete, systems, seeds, budget, commands, plot_path, note="",
             title=TITLE, results_name="results.csv", work=WORK, extra="", others_name: str | None = None) -> str:
    rank = ranks(table, metric, systems)
    norm = normalised(table, metric, systems)
    n = len(table)
    lines = [title, "", provenance(), "",
             f"Covers **{n} datasets × {len(seeds)} seeds** at **{budget:g} s** per system and split "
             f"({len(rows)} result rows in `bench/quality/{results_name}`"
             + (f" for dagml, the other systems' from `bench/quality/{others_name}`" if others_name else "")
             + (f"; still incomplete, left out of the figures: {', '.join(incomplete)}" if incomplete else "")
             + "). Protocol: one 75/25 split per seed (stratified for classification) read by every system from "
             "the same Parquet files (row digests checked); each system in its own process, `taskset` to one core, "
             "killed at 1.5 × budget + 30 s; its own fit-and-predict time above 1.1 × budget is marked † "
             "(count of seeds). Scores on the held-out 25% by `dagml.metrics`: ROC AUC (binary, higher is "
             "better), log loss (multiclass) and RMSE (regression), lower is better. dagml: the task functions "
             "load → profile → prepare → search (every family of the default queue, one after another, "
             "70% of the budget shared among them) → select → promote on a local artifact folder and SQLite, "
             "its champion predicting the held-out rows; its own test split comes out of the 75%. AutoGluon "
             "1.6.3 (default presets, no neural networks, `time_limit` = budget), FLAML 2.7.0 (`time_budget` = "
             "budget, `n_jobs=1`), untuned scikit-learn HistGradientBoosting and RandomForest (default "
             "hyperparameters, categoricals ordinal-coded).", "",
             *([note, ""] if note else []), "Commands that wrote these results:", "", "```"]
    lines += commands or ["(none recorded)"]
    lines += ["```", "", "| system | mean rank (1 = best) | mean normalised score | dagml wins / ties / losses |",
              "|---|---|---|---|"]
    for s in sorted(systems, key=lambda s: mean(rank[d][s] for d in table) if table else 0):
        wtl = "—" if s == "dagml" else "{} / {} / {}".format(*wins_ties_losses(table, metric, "dagml", s))
        lines.append(f"| {s} | {mean(rank[d][s] for d in table):.2f} | {mean(norm[d][s] for d in table):.3f} | {wtl} |"
                     if table else f"| {s} | — | — | — |")
    lines += ["", f"![normalised score per dataset and system]({plot_path.name})", "",
              "Per dataset: mean ± standard deviation over the seeds (best mean in bold).", "",
              "| dataset | metric | " + " | ".join(systems) + " |", "|---|---|" + "---|" * len(systems)]
    for d, row in table.items():
        top = min(rank[d].values())
        cells_text = [f"**{_fmt(row[s])}**" if rank[d][s] == top else _fmt(row[s]) for s in systems]
        lines.append(f"| {d} | {metric[d]} | " + " | ".join(cells_text) + " |")
    chosen = champions(work, table)
    if chosen:
        lines += ["", f"dagml's champions (one per seed, from the runs' files in `{work.relative_to(HERE.parents[1]) if work.is_relative_to(HERE.parents[1]) else work}`): " + "; ".join(
            f"{d}: {', '.join(f)}" for d, f in chosen.items()) + "."]
    seconds = {s: [x for row in table.values() for x in row[s].seconds] for s in systems}
    lines += ["", "Mean fit-and-predict seconds per split: " + ", ".join(
        f"{s} {mean(seconds[s]):.1f}" for s in systems if seconds[s]) + "."]
    if extra:
        lines += ["", extra]
    return "\n".join(lines)


def before_after(before_rows: list[dict], after_rows: list[dict], metric: dict, seeds,
                 before_file: Path = RESULTS, labels: tuple[str, str] = ("before", "after")) -> str:
    """dagml before against after, on the datasets both measured with every seed."""
    b, a = labels
    before, _, _ = cells(before_rows, ["dagml"], seeds)
    after, _, _ = cells(after_rows, ["dagml"], seeds)
    both = {d: {a: after[d]["dagml"], b: before[d]["dagml"]} for d in after if d in before}
    if not both:
        return ""
    w, t, l = wins_ties_losses(both, metric, a, b)
    lines = [f"dagml {a} against {b} (`{before_file.name}`, the same splits): better on {w}, tied on {t}, "
             f"worse on {l} of {len(both)} datasets.", "", f"| dataset | metric | {b} | {a} |", "|---|---|---|---|"]
    lines += [f"| {d} | {metric[d]} | {_fmt(c[b])} | {_fmt(c[a])} |" for d, c in both.items()]
    return "\n".join(lines)


def ablations(work: Path, rows: list[dict], seeds: list[int]) -> str:
    """The held-out rows predicted by the variants of each dagml run (``bench/quality/variants.py``)."""
    import variants

    listed = {d.name: d for d in variants.dataset_list.read_list()}
    champion = {(r["dataset"], int(r["seed"])): float(r["score"]) for r in rows if r["system"] == "dagml"
                and r["score"]}
    found = variants.collect(work, listed.values(), seeds, champion)
    if not found:
        return ""
    return ("Ablations on the same runs (`bench/quality/variants.py`): the held-out rows also predicted by "
            "the compared model (before the refit on all rows), by the best single family (selection without "
            "the ensemble row), by what the one-standard-error rule would choose, and by each family's own "
            "best model.\n\n" + variants.markdown(found, {d: METRIC[listed[d].task] for d in found}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, help=f"default {RESULTS.name}, {LONG_RESULTS.name} with --long")
    ap.add_argument("--budget", type=float, help="default 60, 300 with --long")
    ap.add_argument("--long", action="store_true", help="the 300 s subset: a section and a plot of its own, "
                    "with the ablations of bench/quality/variants.py")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--plot", type=Path, default=PLOT)
    ap.add_argument("--no-write", action="store_true", help="print, do not rewrite docs/benchmarks.md or the plot")
    ap.add_argument("--work", type=Path, help="the runs' folder (champions, ablations)")
    ap.add_argument("--after", action="store_true", help=(
        "the results are dagml after issue 17's levers: a section of their own, compared with "
        "results.csv's dagml (before), with the ablations of bench/quality/variants.py"))
    ap.add_argument("--others", type=Path, help=(
        "the other systems' rows from this file (the same splits), for results of dagml alone"))
    ap.add_argument("--now", action="store_true", help=(
        f"dagml alone on the current code ({NOW_RESULTS.name}), the other systems from {AFTER_RESULTS.name}: "
        f"a section of its own, compared with {AFTER_RESULTS.name}'s dagml"))
    args = ap.parse_args()
    results, work = default_files(args.long)
    if args.now:
        results, work, args.others = NOW_RESULTS, NOW_WORK, args.others or AFTER_RESULTS
    args.results, args.work = args.results or results, args.work or work
    args.budget = args.budget or (300.0 if args.long else 60.0)
    if not args.results.exists():
        sys.exit(f"{args.results}: no results yet; run bench/quality/harness.py first")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = read(args.results, args.budget)
    if args.others:
        rows += [r for r in read(args.others, args.budget) if r["system"] != "dagml"]
    table, metric, incomplete = cells(rows, SYSTEMS, seeds)
    commands_file = args.results.with_suffix(".commands.txt")
    commands = commands_file.read_text().splitlines() if commands_file.exists() else []
    note_file = args.results.with_suffix(".note.md")  # what the results are: which dagml, what load
    note = note_file.read_text().strip() if note_file.exists() else ""
    name, title, plot_path, extra = SECTION, TITLE, args.plot, ""
    if args.after:
        name, title = f"{SECTION}_after", "## Model quality after issue 17's levers"
        plot_path = args.plot.with_name(args.plot.stem + "_after.png")
        extra = "\n\n".join(filter(None, [before_after(read(RESULTS, args.budget), rows, metric, seeds),
                                           ablations(args.work, rows, seeds)]))
    elif args.now:
        name, title = f"{SECTION}_now", "## Model quality on the current code (issue 17)"
        plot_path = args.plot.with_name(args.plot.stem + "_now.png")
        extra = before_after(read(AFTER_RESULTS, args.budget), rows, metric, seeds, AFTER_RESULTS, ("then", "now"))
    elif args.long:
        name, title = f"{SECTION}_long", f"## Model quality at {args.budget:g} s on a subset (issue 17)"
        plot_path = args.plot.with_name(args.plot.stem + "_long.png")
        extra = ablations(args.work, rows, seeds)
    if table and not args.no_write:
        plot(normalised(table, metric, SYSTEMS), SYSTEMS, plot_path)
    section = markdown(rows, table, metric, incomplete, SYSTEMS, seeds, args.budget, commands, plot_path, note,
                       title, args.results.name, args.work, extra, args.others.name if args.others else None)
    if args.no_write:
        print(section)
    else:
        write_section(name, section)


if __name__ == "__main__":
    main()
