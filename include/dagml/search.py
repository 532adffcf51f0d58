"""The hyperopt driver: TPE over one family's space, within an evaluation and seconds budget.

Trials are saved as JSON after every evaluation (``trials_path``; ``checkpoint`` is called
after each, to copy the file elsewhere), so a retried task resumes where its predecessor
stopped instead of starting over, and resuming unpickles nothing. A trial that raises is logged
with its message and marked failed; the search goes on. Only when every trial fails
does the family fail, with the first reason.

A fresh search may be warm-started: ``warm_points`` (hyperopt's raw points of earlier
searches, see ``dagml.warm_start``) are evaluated first, then the family's own first points,
then TPE. A resumed search evaluates what its file holds and adds no points.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dagml import threads
from dagml.budget import FamilyBudget
from dagml.errors import FamilyFailed, OutOfMemory
from dagml.families.base import Family
from dagml.metrics import Metric, best_shrinkage, shrink
from dagml.prepare import Fold
from dagml.time_limit import ChildFailed, call_with_time_limit
from dagml.warm_start import grid_points

log = logging.getLogger("dagml.search")
logging.getLogger("hyperopt").setLevel(logging.WARNING)  # it logs every TPE step at INFO
OUT_OF_MEMORY = "out of memory"  # how a reason that is one begins (trials, leaderboard rows)


@dataclass
class SearchResult:
    best_params: dict
    best_score: float
    n_trials: int
    n_failed: int
    seconds: float
    trials: list[dict] = field(default_factory=list)
    # the best point's out-of-fold predictions: rows (positions in the partition) and values
    valid_rows: object = None
    valid_predictions: object = None
    shrinkage: float = 0.0  # the best point's (see dagml.metrics.best_shrinkage)
    # holdout validation: the best trial's model, fit on the rows a refit would use (None: refit),
    # and that trial's seconds
    best_model: object = None
    best_model_seconds: float | None = None
    # threadpoolctl's report (dagml.threads.report) right after the first successful trial's fits,
    # taken where they ran (a forked child); None when no trial succeeded in this process
    thread_report: list | None = None


def _point(space_keys, point: dict) -> dict:
    return {k: v for k, v in point.items() if k in space_keys}


def _first_trials(space, name: str, warm_points: list[dict], init_points: list[dict], room: int, shard=None):
    """A Trials holding the points to evaluate before TPE: warm ones first, each point once; a
    ``shard`` (``dagml.shards.Shard``) takes its every k-th of them."""
    from hyperopt import Trials

    from dagml.warm_start import hyperparameters, reenter

    warm = [p for p in (reenter(space, v, name) for v in warm_points) if p is not None]
    if warm_points:
        log.info("%s: warm start with %d of %d stored points", name, len(warm), len(warm_points))
    points, seen = [], set()
    for point, is_warm in [(p, True) for p in warm] + [(p, False) for p in init_points]:
        key = tuple(sorted(point.items()))
        if key not in seen:
            seen.add(key)
            points.append((point, is_warm))
    if shard is not None and shard.count > 1:
        log.info("%s: shard %d of %d evaluates %d of the %d first points", name, shard.index, shard.count,
                 len(shard.first_points(points)), len(points))
        points = shard.first_points(points)
    labels = hyperparameters(space) if points else {}
    trials = Trials()
    trials.insert_trial_docs([_trial_doc(tid, point, labels, is_warm)
                              for tid, (point, is_warm) in enumerate(points[:room])])
    trials.refresh()  # so fmin counts the first points against max_evals
    return trials


def _trial_doc(tid: int, point: dict, labels, is_warm: bool = False) -> dict:
    from hyperopt.fmin import generate_trial

    doc = generate_trial(tid, point)
    for label in labels.keys() - point.keys():  # inactive conditional labels: hyperopt keeps them empty
        doc["misc"]["idxs"][label], doc["misc"]["vals"][label] = [], []
    doc["misc"]["warm_start"] = is_warm
    return doc


def _grid_search(space, grid: list[dict]):
    """A hyperopt algorithm that proposes each point of a finite space once, in order."""
    from dagml.warm_start import hyperparameters

    labels = hyperparameters(space)

    def suggest(new_ids, domain, trials, seed):
        tried = {tuple(sorted((k, v[0]) for k, v in t["misc"]["vals"].items() if v)) for t in trials.trials}
        todo = [p for p in grid if tuple(sorted(p.items())) not in tried]
        return [_trial_doc(tid, point, labels) for tid, point in zip(new_ids, todo)]

    return suggest


TRIALS_FORMAT = 1


def _doc_json(doc: dict) -> dict:
    """A finished trial as JSON: hyperopt's own document without its timestamps."""
    misc = doc["misc"]
    return {"tid": int(doc["tid"]), "state": int(doc["state"]), "spec": doc["spec"], "result": doc["result"],
            "misc": {**misc, "tid": int(misc["tid"]),
                     "idxs": {k: [int(i) for i in v] for k, v in misc["idxs"].items()},
                     "vals": {k: [_scalar(x) for x in v] for k, v in misc["vals"].items()}},
            "exp_key": doc["exp_key"], "owner": doc["owner"], "version": doc["version"]}


def _scalar(value):
    return value.item() if hasattr(value, "item") else value


def save_trials(path: Path, trials) -> None:
    """The finished trials as JSON (written whole, then moved into place): resuming needs no unpickling."""
    from hyperopt import JOB_STATE_DONE

    docs = [_doc_json(t) for t in trials.trials if t["state"] == JOB_STATE_DONE]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"format": TRIALS_FORMAT, "trials": docs}, default=_scalar))
    tmp.replace(path)


def _load_trials(path: Path | None):
    from hyperopt import Trials

    if path is None or not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
        if saved.get("format") != TRIALS_FORMAT:
            raise ValueError(f"format {saved.get('format')!r}, expected {TRIALS_FORMAT}")
        trials = Trials()
        for doc in saved["trials"]:
            doc.update(book_time=None, refresh_time=None)
        trials.insert_trial_docs(saved["trials"])
        trials.refresh()
    except Exception as exc:  # a file cut short by a killed worker, or of another format: start over
        log.warning("cannot resume trials from %s (%s); starting over", path, exc)
        path.unlink()
        return None
    log.info("resuming %d saved trials from %s", len(trials.trials), path)
    return trials


def search(family: Family, folds: list[Fold], task: str, n_classes: int, metric: Metric,
           max_evals: int, seconds: float, seed: int, trials_path: Path | None = None,
           checkpoint: Callable[[], None] | None = None, warm_points: list[dict] | None = None,
           clock=None, on_trial: Callable[[float, bool], None] | None = None, shard=None) -> SearchResult:
    """TPE until ``max_evals`` trials or the time runs out: ``clock`` (a ``dagml.budget`` budget,
    e.g. the run's shared one) or else ``seconds``. A family with ``hard_time_limit`` has each
    trial stopped when the time left is up, so the search ends within its budget. A ``shard`` of
    the family's search (``dagml.shards.Shard``) evaluates only its part of the first points.

    After a k-fold search the best point is fit again on all training rows, and that fit is paid
    from the same clock: the search stops while the time left still holds it (``refit_seconds``).
    A ``clock`` passed in is left running for its owner to ``finish()`` after that fit; one this
    function makes is finished here.

    Each trial's fits use ``family.threads`` native threads; a forked trial raises the limit in
    its child only, and this process stays at 1 (``dagml.threads``).

    ``on_trial(seconds, ok)`` is called in this process as each trial ends (dagml.telemetry)."""
    import numpy as np
    from hyperopt import STATUS_FAIL, STATUS_OK, Trials, fmin, space_eval, tpe
    from hyperopt.exceptions import AllTrialsFailed
    from hyperopt.fmin import fmin_pass_expr_memo_ctrl
    from hyperopt.pyll import rec_eval

    n_rows, n_cols = folds[0].X_train.shape
    space = family.space(task, n_rows, n_cols)
    state = {"i": 0, "best": None, "fastest": math.inf}  # the fastest trial that scored
    name = family.key()

    @fmin_pass_expr_memo_ctrl  # to see the trial itself: was it a warm-start point?
    def objective(expr, memo, ctrl):
        params = rec_eval(expr, memo=memo)
        if trials_path:  # the trials so far (all but this one), so a retry resumes them
            save_trials(trials_path, ctrl.trials)
            if checkpoint:
                checkpoint()
        state["i"] += 1
        of = f"{state['i']} of {max_evals}" + (" (warm start)" if ctrl.current_trial["misc"].get("warm_start") else "")
        started = time.perf_counter()
        try:
            def evaluate():
                with threads.limit(family.threads) if family.threads != 1 else nullcontext():
                    predictions, cut_short, models = _fold_predictions(family, params, folds, task, n_classes, seed)
                    report = threads.report() if state.get("report") is None else None  # once: ~10 ms
                alpha = best_shrinkage(metric, np.concatenate([f.y_valid for f in folds]), np.concatenate(predictions))
                predictions = [shrink(pred, alpha) for pred in predictions] if alpha else predictions
                score = float(np.mean([metric(fold.y_valid, pred) for fold, pred in zip(folds, predictions)]))
                if not math.isfinite(score):
                    raise ValueError(f"{metric.name} is {score}")
                # one fold (holdout): its model is the refit, so the best one comes back (only
                # an improving trial's crosses the pipe)
                better = state["best"] is None or metric.better(score, state["best"])
                return (predictions, cut_short, found_params(models), alpha, score,
                        models[0] if len(folds) == 1 and better else None, report)

            predictions, cut_short, found, alpha, score, model, report = (
                call_with_time_limit(evaluate, time_left(), family.memory_mb, soft_share=family.deadline_share)
                if family.hard_time_limit
                else evaluate())
        except Exception as exc:  # one bad point must not end the search
            error = str(exc) if isinstance(exc, (ChildFailed, OutOfMemory)) else f"{type(exc).__name__}: {exc}"
            if isinstance(exc, (OutOfMemory, MemoryError)):
                error = f"{OUT_OF_MEMORY}: {error}"
            log.warning("%s trial %s failed: %s", name, of, error)
            took = time.perf_counter() - started
            if on_trial:
                on_trial(took, False)
            return {"status": STATUS_FAIL, "error": error, "seconds": took}
        finally:
            clock.spend()
        elapsed = time.perf_counter() - started
        if on_trial:
            on_trial(elapsed, True)
        if report is not None and state.get("report") is None:
            state["report"] = report
            log.info("%s trial %s used native threads: %s", name, of, threads.describe(report))
        state["fastest"] = min(state["fastest"], elapsed)
        if state["best"] is None or metric.better(score, state["best"]):
            state.update(best=score, best_predictions=predictions, best_model=model, best_seconds=elapsed)
        log.info("%s trial %s: %s %.5f (best %.5f) in %.2f s%s", name, of, metric.name, score, state["best"],
                 elapsed, f" (cut short by the time left: {cut_short})" if cut_short else "")
        return {"status": STATUS_OK, "loss": metric.loss(score), "score": score, "seconds": elapsed,
                "shrinkage": alpha, "cut_short": cut_short, "found": found}

    trials = _load_trials(trials_path)
    if trials is not None:
        state["i"] = len(trials.trials)
        ok = [t["result"] for t in trials.trials if t["result"].get("status") == STATUS_OK]
        state["best"] = (max if metric.greater_is_better else min)(r["score"] for r in ok) if ok else None
        state["fastest"] = min([state["fastest"], *(r["seconds"] for r in ok if r.get("seconds"))])
    grid = grid_points(space)
    if grid is not None:  # a finite space (the baseline's): each point once, no warm start needed
        if max_evals > len(grid):
            log.info("%s: its space has %d points; searching %d, not %d", name, len(grid), len(grid), max_evals)
        max_evals = min(max_evals, len(grid))
        trials = trials if trials is not None else Trials()
    if trials is None:
        init = [_point(space, p) for p in family.init_points(task)]
        trials = _first_trials(space, name, warm_points or [], init, max(0, max_evals - 1), shard)
    own_clock = clock is None
    clock = clock or FamilyBudget(seconds)

    def time_left() -> float:  # for trials: what the refit of the best point so far will need is kept
        return clock.remaining() - refit_seconds(state.get("best_seconds"), len(folds))

    def done() -> bool:
        """Out of time, or, for trials under a hard limit, with less left than the family's fastest
        trial took: such a trial is killed with nothing to show (on satellite the last trials of
        six families were), and what its seconds would have bought goes to the families still
        searching."""
        left = time_left()
        return left <= 0 or (family.hard_time_limit and math.isfinite(state["fastest"]) and left < state["fastest"])

    if family.hard_time_limit:
        for module in family.modules:
            importlib.import_module(module)
    started = time.perf_counter()
    try:
        with threads.limit(1):
            fmin(
                objective, space, algo=_grid_search(space, grid) if grid is not None else tpe.suggest,
                max_evals=max_evals, trials=trials, early_stop_fn=lambda *_: (done(), []),
                rstate=np.random.default_rng(seed + len(trials.trials)), show_progressbar=False,
                return_argmin=False,
            )
    except AllTrialsFailed:  # raised on the way out; _summarise reports it with the first reason
        pass
    finally:
        clock.finish() if own_clock else clock.spend()
    if trials_path:
        save_trials(trials_path, trials)
    elapsed = time.perf_counter() - started
    result = _summarise(trials, space, space_eval, AllTrialsFailed, name, elapsed, (n_rows, n_cols))
    result.best_model = state.get("best_model")  # None when the best trial ran before a retry
    result.best_model_seconds = state.get("best_seconds") if result.best_model is not None else None
    result.thread_report = state.get("report")
    if all(f.valid_rows is not None for f in folds):
        predictions = state.get("best_predictions")
        if predictions is None:  # the best trial ran before a retry: fit its point on the folds again
            predictions = [shrink(p, result.shrinkage) if result.shrinkage else p for p in
                           _fold_predictions(family, result.best_params, folds, task, n_classes, seed)[0]]
        result.valid_rows = np.concatenate([f.valid_rows for f in folds])
        result.valid_predictions = np.concatenate(predictions)
    return result


def refit_seconds(trial_seconds: float | None, n_folds: int) -> float:
    """About how long fitting a point on all training rows takes, from one k-fold trial of it:
    the trial fit ``n_folds`` models, each on (k-1)/k of the rows. 0 for a holdout search, whose
    best trial's model is kept."""
    if n_folds < 2 or not trial_seconds:
        return 0.0
    return trial_seconds / (n_folds - 1)


def _fold_predictions(family: Family, params: dict, folds: list[Fold], task: str, n_classes: int, seed: int):
    """(each fold's validation predictions by a model fit on that fold's training rows, the
    parameters the fits actually used where a deadline cut them short: the smallest per key,
    the models).
    Under a time limit each fold may spend its share of the time left."""
    from dagml import time_limit

    out, used, models = [], {}, []
    for i, fold in enumerate(folds):
        with time_limit.share(1 / (len(folds) - i)):
            model = family.fit(params, fold.X_train, fold.y_train, task, n_classes, seed,
                               eval_set=(fold.X_valid, fold.y_valid))
        out.append(model.predict(fold.X_valid))
        models.append(model)
        for key, value in getattr(model, "cut_short", {}).items():
            used[key] = min(value, used.get(key, value))
    return out, used, models


def found_params(models: list) -> dict:
    """What every fold's fit found for itself (boosting's rounds), as the folds' median: the fit on
    all rows after a k-fold search reuses it. Empty for a holdout (its model is kept) or when a
    fold found none."""
    from statistics import median

    if len(models) < 2:
        return {}
    found = [getattr(m, "found_params", {}) for m in models]
    keys = set.intersection(*(set(f) for f in found))
    return {k: int(median(f[k] for f in found)) for k in sorted(keys)}


def _summarise(trials, space, space_eval, all_failed, name, elapsed, shape) -> SearchResult:
    rows = []
    for t in trials.trials:
        vals = {k: v[0] for k, v in t["misc"]["vals"].items() if v}
        result = t["result"]
        rows.append({
            "trial": int(t["tid"]),
            "status": "ok" if result.get("status") == "ok" else "failed",
            "params": _jsonable(space_eval(space, vals)),
            "vals": _jsonable(vals),
            "warm_start": bool(t["misc"].get("warm_start", False)),
            "loss": result.get("loss"),
            "seconds": result.get("seconds"),
            "error": result.get("error"),
        })
    failed = [r for r in rows if r["status"] == "failed"]
    try:
        best = trials.best_trial
    except all_failed:
        reason = failed[0]["error"] if failed else "no trial ran"
        memory = [r["error"] for r in failed if (r["error"] or "").startswith(OUT_OF_MEMORY)]
        if memory:
            raise OutOfMemory(f"{OUT_OF_MEMORY}: {name} on {shape[0]:,} training rows x {shape[1]} columns: "
                              f"all {len(rows)} trial(s) failed, {len(memory)} of them out of memory; "
                              f"first: {memory[0]}") from None
        raise FamilyFailed(f"{name}: all {len(rows)} trial(s) failed; first error: {reason}") from None
    vals = {k: v[0] for k, v in best["misc"]["vals"].items() if v}
    # a best point whose fits a deadline cut short is kept at the size that scored (fewer trees);
    # what its folds found for themselves (boosting's rounds) goes to the fit on all rows
    best_params = {**_jsonable(space_eval(space, vals)), **(best["result"].get("cut_short") or {}),
                   **(best["result"].get("found") or {})}
    return SearchResult(
        best_params=best_params, best_score=float(best["result"]["score"]),
        n_trials=len(rows), n_failed=len(failed), seconds=elapsed, trials=rows,
        shrinkage=float(best["result"].get("shrinkage", 0.0)),
    )


def _jsonable(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        if hasattr(v, "item"):  # numpy scalars
            v = v.item()
        out[k] = v
    return out
