"""The Family contract: one class per model family, in the spirit of FLAML's estimators.

A family declares its name, kind, supported tasks and hyperopt space once; ``fit`` turns
one point of that space into a fitted ``Model``. Families see numeric matrices only: the
shared preprocessing recipe (``dagml.prepare``) runs before them, so every kind trains on
the same columns. Classification labels arrive encoded as 0..k-1.

Subclasses register themselves by name as ``<kind>:<name>``; importing a family module
must stay cheap (heavy libraries are imported inside methods), because the registry is
read when configs are validated at DAG parse time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from dagml.time_limit import SOFT_SHARE

REGISTRY: dict[str, type[Family]] = {}


class Model(ABC):
    """A fitted model that predicts values (regression) or class probabilities (n, k)."""

    @abstractmethod
    def predict(self, X) -> Any: ...

    @abstractmethod
    def save(self, folder: Path) -> None:
        """Write everything needed to load this model back into ``folder``."""

    @classmethod
    @abstractmethod
    def load(cls, folder: Path) -> Model: ...


class Shrunk(Model):
    """A classifier's probabilities shrunk toward uniform (``dagml.metrics.shrink``). The amount
    is kept in the archive's manifest; the inner model saves and loads as its kind does."""

    def __init__(self, inner: Model, alpha: float):
        self.inner, self.alpha = inner, alpha

    def predict(self, X):
        from dagml.metrics import shrink

        return shrink(self.inner.predict(X), self.alpha)

    def save(self, folder: Path) -> None:
        self.inner.save(folder)

    @classmethod
    def load(cls, folder: Path) -> Model:
        raise TypeError("load the inner model with its family's model_class; the manifest has the shrinkage")


class Family(ABC):
    name: ClassVar[str]
    kind: ClassVar[str]
    tasks: ClassVar[frozenset[str]] = frozenset({"binary", "multiclass", "regression"})
    needs_scaling: ClassVar[bool] = False
    # A row cap: above this many training rows the family searches and fits on a seeded sample of
    # so many (SVM, kNN: what their fits and predictions cost grows faster than the rows)
    max_rows: ClassVar[int | None] = None
    # Training rows a search of 60 s affords at 1 thread on ~50 mixed columns (a few trials of its
    # first points; bench/largedata.py): above ``search_rows_for(seconds)`` (in proportion to the
    # budget) the search runs on a seeded sample of that many and the best point is then fit on all
    # training rows. None: all rows.
    search_rows: ClassVar[int | None] = None
    MIN_SEARCH_ROWS: ClassVar[int] = 5000  # however short the budget
    # The relative cost of one trial (elastic_net 1): a whole-run time budget is split across
    # families in proportion to it. A rough figure, from bench/families.py and bench/boosting_families.py.
    cost: ClassVar[float] = 1.0
    # Each trial runs in a forked child killed when the budget is up (dagml.time_limit); off for
    # kinds that must not be forked (R's embedded interpreter, Spark's JVM gateway).
    hard_time_limit: ClassVar[bool] = False
    # The share of a trial's time limit its fit may grow for (``dagml.time_limit.seconds_left``);
    # the rest finishes the fit, predicts the validation rows and sends them back.
    deadline_share: ClassVar[float] = SOFT_SHARE
    # Modules ``fit`` imports, imported once before the trials are forked (else every trial would)
    modules: ClassVar[tuple[str, ...]] = ()
    model_class: ClassVar[type[Model]]
    # Native threads a fit may use: the config's ``threads`` for the family (dagml.threads sets the
    # OpenMP and BLAS pools to it around each fit); a family passes it to its library's own
    # parameter where it has one (n_jobs, num_threads, nthread, thread_count)
    threads: int = 1
    # The config's ``memory_mb`` for the family: what a forked trial may allocate above the task
    # process (dagml.time_limit); None: no limit but the machine's
    memory_mb: float | None = None
    # The family handles categorical columns itself (CatBoost): its matrix starts with every
    # categorical column as integer codes (``dagml.prepare.native_categorical_recipe``), one-hot none
    native_categoricals: ClassVar[bool] = False
    categoricals: int = 0  # how many leading columns of its matrix are such codes (set by ``adopt``)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            REGISTRY[cls.key()] = cls

    @classmethod
    def key(cls) -> str:
        return f"{cls.kind}:{cls.name}"

    @abstractmethod
    def space(self, task: str, n_rows: int, n_cols: int) -> dict:
        """The hyperopt space; it may depend on the training data's shape."""

    def check_available(self) -> None:
        """Raise ``FamilyFailed`` with a clear message when this worker cannot run the family."""

    def init_points(self, task: str) -> list[dict]:
        """Good first points, tried before TPE takes over (values as in the space)."""
        return []

    @abstractmethod
    def fit(self, params: dict, X, y, task: str, n_classes: int, seed: int, eval_set=None) -> Model:
        """Fit one point of the space. ``eval_set`` is ``(X_valid, y_valid)`` when the search has a
        validation fold: a family that stops early (boosting) stops on it; others ignore it. The
        final refit passes none, so such a family holds out its own rows or reuses the
        number of rounds the search found."""

    def adopt(self, recipe: dict) -> dict:
        """The recipe this family's matrices are built by: the run's, or for a family with
        ``native_categoricals`` one that gives it the categorical columns first, as codes."""
        if not self.native_categoricals:
            return recipe
        from dagml.prepare import native_categorical_recipe

        own = native_categorical_recipe(recipe)
        self.categoricals = len(own["ordinal"])
        return own

    @classmethod
    def search_rows_for(cls, seconds: float) -> int | None:
        """The training rows a search of ``seconds`` affords: ``search_rows`` per 60 s."""
        return None if not cls.search_rows else max(cls.MIN_SEARCH_ROWS, int(cls.search_rows * seconds / 60))

    def capped(self, X, y, seed: int):
        """At most ``max_rows`` training rows, drawn with the run's seed (for SVMs and the like)."""
        if not self.max_rows or len(y) <= self.max_rows:
            return X, y
        import numpy as np

        keep = np.sort(np.random.default_rng(seed).choice(len(y), self.max_rows, replace=False))
        return X[keep], y[keep]


def hyperopt_parts():
    """hyperopt's ``hp`` and ``scope``, imported when a space is built, not when families are listed."""
    from hyperopt import hp
    from hyperopt.pyll import scope

    return hp, scope


def get_family(key: str) -> type[Family]:
    from dagml import families  # noqa: F401  (registers every family module)

    try:
        return REGISTRY[key]
    except KeyError:
        raise KeyError(f"unknown family {key!r}; valid: {', '.join(sorted(REGISTRY))}") from None
