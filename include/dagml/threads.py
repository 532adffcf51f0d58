"""Native threads: a search uses exactly the threads its worker slot is given.

A search is one worker slot, so the native thread pools (OpenMP, BLAS) run 1 thread unless a
family entry says ``threads: N`` (its search task then holds N slots of the search pool, see
``dagml.factory``). Three layers, from the outside in:

- the worker's environment (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``
  = 1: ``airflow_config/cluster.py``, the compose files), read by each library when it loads;
- the task process itself (``pin_environment``, before a task body imports numpy), for a worker
  started without them;
- threadpoolctl (``limit``) around the search, which reaches the libraries already loaded and may
  also raise a limit above the environment's (``omp_set_num_threads`` and
  ``openblas_set_num_threads`` override ``*_NUM_THREADS``).

Trials are forked (``dagml.time_limit``), and GNU libgomp is not fork-safe: a child that runs a
parallel region of N > 1 threads after its parent ran one waits forever for the parent's
threads, which do not exist in it (measured with OMP_NUM_THREADS=1, as the workers run: a
HistGradientBoosting fit raised to 2 threads in the parent, then one in a forked child, hung
until its 20 s limit killed it; with the parent kept at 1, the child's 2-thread fit took 0.2 s). So the task process stays at 1 thread
for as long as it forks: a family with ``threads: N`` raises the limit only inside its forked
trials and its forked refit (``call``); the process that forks never runs more than 1.

``report()`` is threadpoolctl's account of what each loaded library uses, taken right after a
fit: the search logs it and stores it on the family's leaderboard row (``threads``).
"""

from __future__ import annotations

import os
import sys

ENVIRONMENT = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_environment() -> None:
    """1 thread per native pool, unless the worker's environment says otherwise, in a process that
    has not loaded numpy yet (a task process: a library reads these once, when it loads). A process
    that already has (a test, ``dag.test()``) is left alone: the variables would reach only its
    later subprocesses, and threadpoolctl limits what it loaded."""
    if "numpy" in sys.modules:
        return
    for name in ENVIRONMENT:
        os.environ.setdefault(name, "1")


def limit(threads: int = 1):
    """threadpoolctl's limit of every loaded native pool to ``threads`` (a context manager).
    threadpoolctl reaches only libraries already loaded, so scikit-learn's OpenMP runtime is loaded
    first (without it, HistGradientBoosting ran 2 threads per search: docs/benchmarks.md)."""
    import sklearn.utils._openmp_helpers  # noqa: F401  (loads the OpenMP runtime)
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


_KEYS = ("user_api", "internal_api", "prefix", "version", "num_threads")


def report() -> list[dict]:
    """What each loaded native library's thread pool uses now (threadpoolctl's ``threadpool_info``):
    ``[{user_api: openmp|blas, internal_api: openmp|openblas|mkl|..., prefix, version, num_threads}]``,
    one entry per loaded library (numpy and scipy may each bring an OpenBLAS)."""
    from threadpoolctl import threadpool_info

    return [{k: info.get(k) for k in _KEYS} for info in threadpool_info()]


def describe(entries: list[dict] | None) -> str:
    """``openmp libgomp 2, openblas libscipy_openblas 2``: the report as one log line."""
    if not entries:
        return "no native thread pool loaded"
    return ", ".join(f"{e['internal_api']} {e['prefix']} {e['num_threads']}" for e in entries)


def call(fn, threads: int, fork: bool):
    """``(fn(), report())`` with the native pools at ``threads``: in a forked child when ``fork``
    and ``threads`` > 1, so this process stays at 1 thread and may fork again safely (see above).
    ``fn``'s value must pickle when it crosses back from a child."""
    def body():
        with limit(threads):
            value = fn()
            return value, report()

    if threads == 1 or not fork:
        return body()
    from dagml.time_limit import call_with_time_limit

    return call_with_time_limit(body, None)
