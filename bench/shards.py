"""One family over two worker slots: ``shards: 1`` vs ``shards: 2`` at equal total budget, on a real
CeleryExecutor cluster.

airflow_config/cluster.py starts with 2 Celery workers of one slot each (dagml's shipped settings;
its search pool has a slot per core). Two DAGs of bench/cluster_dags/shards/ search the same data
(scikit-learn's digits, 1,797 rows, 10 classes, log loss, 5-fold validation) with one family,
random_forest, stopped by S seconds of search (``--seconds``, set through the trigger form, so the
family's total budget; max_evals is the most a config allows): ``automl__bench_shards1`` as one
search of S seconds, ``automl__bench_shards2`` as two shards of S/2 seconds each, which can run at
once on the two slots. Both also search the baseline (2 points), which dagml always adds. Each
cycle runs both DAGs one after the other (order alternating per cycle) with the cycle's seed (the
trigger form's ``seed``; the shards' seeds derive from it), so each pair is compared on one seed.

Per run: the run's wall time (Airflow's start to end), the family's search span (its first search
instance's start to its last one's end), the best validation log loss the family reached (its
leaderboard row: the best shard's), its test log loss, and its trials. Ratios are per cycle (the
pair), then their median. ``--raw FILE`` keeps what was measured; ``--render FILE`` rewrites the
section from such a file without measuring.

Needs two free cores: the two shards are meant to run side by side (on one core they would split
it, and the comparison would say nothing about two worker slots).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).parent))
from _cluster import DAGS, REDIS_DBS, Cluster, load, past, run_wall  # noqa: E402
from _report import provenance, write_section  # noqa: E402

FAMILY = "sklearn:random_forest"
VARIANTS = {1: "automl__bench_shards1", 2: "automl__bench_shards2"}
SEARCH_TASK = "search_sklearn"


def measure(cluster: Cluster, shards: int, seconds: float, seed: int, cycle: int) -> dict:
    dag_id = VARIANTS[shards]
    conf = {"partition": f"cycle-{cycle}", "seconds": seconds, "seed": seed}
    result = cluster.run(dag_id, conf)
    run_id = result["run"]["dag_run_id"]
    ((val, test, trials, search_seconds),) = cluster.results(
        "SELECT val_score, test_score, n_trials, search_seconds FROM dagml_leaderboard "
        "WHERE dag_id = :d AND run_id = :r AND family = :f", d=dag_id, r=run_id, f=FAMILY)
    searches = [t for t in result["tis"] if t["task_id"] == SEARCH_TASK]
    family = [t for t in searches if (t["label"] or "").split("#")[0] == FAMILY]  # its map labels: the shards'
    assert len(family) == shards, searches
    return {"shards": shards, "cycle": cycle, "seed": seed, "wall": run_wall(result),
            "span": max(t["end"] for t in family) - min(t["start"] for t in family),
            "overlap": _overlap(family), "val": val, "test": test, "trials": trials,
            "search_seconds": search_seconds, "retried": sum(t["try"] > 1 for t in result["tis"])}


def _overlap(tis: list[dict]) -> float:
    """Seconds during which two of these task instances ran at once (0 for one instance)."""
    if len(tis) < 2:
        return 0.0
    a, b = tis[:2]
    return max(0.0, min(a["end"], b["end"]) - max(a["start"], b["start"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="the family's search seconds in total (S)")
    parser.add_argument("--cycles", type=int, default=3, help="pairs of runs (one seed each)")
    parser.add_argument("--stop-at", metavar="HH:MM", help="UTC: start no further cycle after this")
    parser.add_argument("--raw", metavar="FILE", help="also save what was measured as JSON")
    parser.add_argument("--render", metavar="FILE", help="write the section from a --raw file; measure nothing")
    args = parser.parse_args()
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        report(saved["runs"], saved["args"], saved["about"])
        return
    t0, load_before = time.time(), load()
    runs: list[dict] = []
    with Cluster(workers=2, redis_db=REDIS_DBS[2], dags=DAGS / "shards") as cluster:  # only its two DAGs
        for cycle in range(args.cycles):
            if past(args.stop_at):
                break
            for shards in (1, 2) if cycle % 2 == 0 else (2, 1):
                runs.append(measure(cluster, shards, args.seconds, seed=cycle, cycle=cycle))
                print(runs[-1], flush=True)
    about = {"provenance": provenance(), "elapsed": time.time() - t0, "load_before": load_before,
             "load_after": load()}
    settings = {"seconds": args.seconds, "cycles": len({r["cycle"] for r in runs})}
    if args.raw:
        Path(args.raw).write_text(json.dumps({"runs": runs, "args": settings, "about": about}, indent=1))
    report(runs, settings, about)


def report(runs: list[dict], args: dict, about: dict) -> None:
    seconds = args["seconds"]
    rows = []
    for shards in VARIANTS:
        mine = [r for r in runs if r["shards"] == shards]
        rows.append(f"| {shards} | {len(mine)} | {median(r['wall'] for r in mine):.1f} "
                    f"| {median(r['span'] for r in mine):.1f} | {median(r['overlap'] for r in mine):.1f} "
                    f"| {median(r['trials'] for r in mine):.0f} | {median(r['val'] for r in mine):.4f} "
                    f"| {median(r['test'] for r in mine):.4f} | {sum(r['retried'] for r in mine)} |")
    pairs = [(one, two) for one in runs if one["shards"] == 1
             for two in runs if two["shards"] == 2 and two["cycle"] == one["cycle"]]
    per_cycle = [f"| {one['cycle']} | {one['seed']} | {one['wall'] / two['wall']:.2f} | {one['span'] / two['span']:.2f} "
                 f"| {two['trials'] / one['trials']:.2f} | {one['val']:.4f} | {two['val']:.4f} "
                 f"| {two['val'] - one['val']:+.4f} |" for one, two in pairs]
    wall = median(o["wall"] / t["wall"] for o, t in pairs)
    span = median(o["span"] / t["span"] for o, t in pairs)
    gain = median(t["val"] - o["val"] for o, t in pairs)
    write_section("shards", f"""## One family over two worker slots: `shards: 1` vs `shards: 2`

{about['provenance']} Total run time {about['elapsed']:.0f} s; load average (1/5/15 min) before
{about['load_before']}, after {about['load_after']}.

airflow_config/cluster.py with 2 Celery workers (one slot each), {args['cycles']} cycle(s). One
family, `random_forest`, on scikit-learn's digits (1,797 rows, 10 classes; log loss, lower is
better; 5-fold validation), its search stopped by {seconds:g} s in total (the trigger form's `seconds`;
max_evals 10000): `shards: 1` searches {seconds:g} s on one slot, `shards: 2` two shards of
{seconds / 2:g} s each on the two slots. Both DAGs (bench/cluster_dags/shards/) also search the
baseline; warm start and the ensemble are off. Each cycle runs both with the same seed (the cycle's
number), order alternating. Seconds; medians over cycles. Span: the family's first search instance's
start to its last one's end; overlap: seconds its two shards ran at once.

| shards | runs | run wall | family's search span | shards overlap | trials | best validation log loss | its test log loss | retried tasks |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Per cycle (1 shard / 2 shards, same seed); validation log loss difference: 2 shards - 1 (negative: 2
shards found a better point):

| cycle | seed | run wall, 1 / 2 | search span, 1 / 2 | trials, 2 / 1 | validation, 1 shard | validation, 2 shards | difference |
|---|---|---|---|---|---|---|---|
{chr(10).join(per_cycle)}

Medians: `shards: 2` ran the run {wall:.2f}× and the family's search {span:.2f}× as fast as `shards: 1`
(ideal search span: 2.00×, with both shards on a slot at once), and reached a best validation log
loss {gain:+.4f} from one search's, at the same {seconds:g} search-seconds.
""")


if __name__ == "__main__":
    main()
