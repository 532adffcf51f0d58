"""An experiment on dagml's whole-run budget, measured and not kept (docs/benchmarks.md, "The
leaders continue"): the searches first share part of ``budget.total_seconds``, then the families
with the best validation scores search on with the rest, their trials resumed as a retried
search resumes them. Off unless ``DAGML_BENCH_CONTINUE_RESERVE`` is set (the share kept back, e.g.
0.6); ``DAGML_BENCH_CONTINUE_TOP`` says how many families continue (1);
``DAGML_BENCH_CONTINUE_HOLDOUT=1`` holds back only on holdout-validated partitions, and
``DAGML_BENCH_CONTINUE_ON_TOP=1`` gives each leader its part of the rest on top of what it spent
(else the leaders' ledger shares are of the rest plus what they spent, by cost).

The runner calls ``first_round`` before the searches and ``second_round`` after them, through
dagml's own task functions and ledger; nothing in dagml changes.
"""

from __future__ import annotations

import os
import sys
from unittest import mock

RESERVE, TOP = "DAGML_BENCH_CONTINUE_RESERVE", "DAGML_BENCH_CONTINUE_TOP"
HOLDOUT_ONLY, ON_TOP = "DAGML_BENCH_CONTINUE_HOLDOUT", "DAGML_BENCH_CONTINUE_ON_TOP"


def first_round(config, rows: int):
    """``config`` with its total seconds cut by the reserve (``config`` itself when it is off). With
    ``DAGML_BENCH_CONTINUE_HOLDOUT=1`` only a partition of ``rows`` that dagml validates on a holdout
    (the larger ones, where a trial is dear) holds seconds back."""
    reserve = float(os.environ.get(RESERVE, "0"))
    if not reserve or not config.budget.total_seconds:
        return config
    if os.environ.get(HOLDOUT_ONLY) == "1" and config.split.resolved(rows) != "holdout":
        return config
    budget = config.budget.model_copy(update={"total_seconds": config.budget.total_seconds * (1 - reserve)})
    return config.model_copy(update={"budget": budget})


def second_round(config, prepared, keys, stores) -> None:
    """The ``TOP`` best families (by validation score) search on with what the first round left of
    ``config``'s total: their ledger rows are reopened, and the ledger of a run whose families are
    those alone, with that much more than they spent, gives each its part of the rest."""
    from dagml import tasks
    from dagml.budget import Ledger
    from dagml.config import BASELINE_FAMILY
    from dagml.metrics import get_metric
    from dagml.selection import rank

    rows = rank(stores.results.leaderboard(keys.dag_id, keys.partition, keys.run_id), get_metric(prepared["metric"]))
    leaders = [r["family"] for r in rows if r["status"] == "ok" and r["family"] != BASELINE_FAMILY]
    leaders = leaders[:int(os.environ.get(TOP, "1"))]
    if not leaders:
        return
    ledger = Ledger(stores.results, keys.dag_id, keys.partition, prepared["load_id"])
    spent = {r["family"]: r["spent"] for r in ledger.rows()}
    rest = config.budget.total_seconds - sum(spent.values())
    for family in leaders:
        ledger.start(family)
        _again_if_cut(stores, keys, prepared, family)
    config = config.model_copy(update={
        "families": [e for e in config.families if e.name in leaders],
        "budget": config.budget.model_copy(update={"total_seconds": rest + sum(spent[f] for f in leaders)})})
    weights = tasks._costs(config)
    if os.environ.get(ON_TOP) == "1":  # each leader's part of the rest on top of what it spent (the
        # ledger's shares are total x weight / sum of weights: weights of spent + part make them so)
        weights = {f: spent[f] + rest * c / sum(weights.values()) for f, c in weights.items()}
    print(f"dagml: {', '.join(leaders)} continue with {rest:.1f} s", file=sys.stderr)
    with mock.patch.object(tasks, "_costs", lambda _config: weights):
        for family in leaders:
            try:
                tasks.search_family(config, family, prepared, keys, stores)
            except Exception as exc:  # its row says failed, as a failed search's does
                print(f"dagml: {family} failed on continuing: {exc}", file=sys.stderr)


def _again_if_cut(stores, keys, prepared, family: str) -> None:
    """A leader whose best trial its time limit cut short evaluates that point again first, with
    the time it continues with (TPE would only propose new points): queued in its saved trials."""
    from hyperopt import STATUS_OK

    from dagml.search import _load_trials, _trial_doc, save_trials

    path = stores.artifacts.local_path(stores.load_uri(keys, prepared["load_id"], family, "trials.json"))
    trials = _load_trials(path) if path is not None and path.exists() else None
    ok = [t for t in trials.trials if t["result"].get("status") == STATUS_OK] if trials else []
    if not ok:
        return
    best = min(ok, key=lambda t: t["result"]["loss"])
    if best["result"].get("cut_short"):
        labels = {label: None for t in trials.trials for label in t["misc"]["vals"]}
        point = {k: v[0] for k, v in best["misc"]["vals"].items() if v}
        trials.insert_trial_docs([_trial_doc(max(t["tid"] for t in trials.trials) + 1, point, labels)])
        trials.refresh()
        save_trials(path, trials)
