"""What a boosting fit stopped at its deadline still has to do before the trial's kill: the
seconds after its last round (LightGBM rebuilds its model from text) and predicting the
validation rows, against the seconds it spent growing, as its rounds grow (docs/benchmarks.md,
"A boosting fit's reserve"). The letter-sized synthetic problem of the deadline tests: 26
classes, 9,600 training and 2,400 validation rows of 16 small-integer features; the libraries'
default trees, one thread.

    taskset -c 1 .venv/bin/python bench/quality/boosting_reserve.py

Prints a Markdown table. ``1 / (1 + reserve)`` is the largest share of a trial's limit that
growing may take so that the rest still fits in the limit (``Family.deadline_share`` must stay
below it, with a margin for sending the predictions back).
"""

from __future__ import annotations

import time

import numpy as np

ROUNDS = (10, 25, 50, 100, 200)


def problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 16, size=(12_000, 16)).astype(float)
    y = np.argmax(X @ rng.normal(size=(16, 26)) + 8 * rng.gumbel(size=(12_000, 26)), axis=1)
    y = np.unique(y, return_inverse=True)[1]  # codes 0..k-1, as dagml's boosting families encode them
    valid = np.isin(y[9600:], y[:9600])
    return X[:9600], y[:9600], X[9600:][valid], y[9600:][valid]


def lightgbm_fit(rounds, X, y, Xv, yv, on_round):
    import lightgbm

    est = lightgbm.LGBMClassifier(n_estimators=rounds, n_jobs=1, verbosity=-1, random_state=0)
    return est.fit(X, y, eval_X=(Xv,), eval_y=(yv,), callbacks=[lambda env: on_round()])


def xgboost_fit(rounds, X, y, Xv, yv, on_round):
    import xgboost

    class Clock(xgboost.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            on_round()
            return False

    est = xgboost.XGBClassifier(n_estimators=rounds, n_jobs=1, random_state=0, callbacks=[Clock()])
    return est.fit(X, y, eval_set=[(Xv, yv)], verbose=False)


def measure(fit, rounds, X, y, Xv, yv) -> tuple[float, float, float]:
    """(seconds growing, seconds from the last round to the fitted estimator, seconds predicting)."""
    last = {}
    started = time.perf_counter()
    est = fit(rounds, X, y, Xv, yv, lambda: last.update(at=time.perf_counter()))
    fitted = time.perf_counter()
    est.predict_proba(Xv)
    return last["at"] - started, fitted - last["at"], time.perf_counter() - fitted


def main() -> None:
    X, y, Xv, yv = problem()
    lightgbm_fit(2, X, y, Xv, yv, lambda: None)  # the first fit of a process pays for loading the library
    print("| library | rounds | growing (s) | after the last round (s) | predicting (s) | reserve (after + predicting) / growing | 1 / (1 + reserve) |")
    print("|---|---|---|---|---|---|---|")
    for name, fit in (("lightgbm", lightgbm_fit), ("xgboost", xgboost_fit)):
        for rounds in ROUNDS:
            grow, after, predict = measure(fit, rounds, X, y, Xv, yv)
            reserve = (after + predict) / grow
            print(f"| {name} | {rounds} | {grow:.2f} | {after:.2f} | {predict:.2f} | {reserve:.2f} | {1 / (1 + reserve):.2f} |")


if __name__ == "__main__":
    main()
