"""A model family that always raises, for the cluster tests only (not a DAG file).

It raises before its first trial, so the search task fails as a whole (not one trial at a
time) with an error that is retried: what a family with a bug, or a worker missing a
library, does.
"""

from dagml.families.sklearn import SklearnFamily

REASON = "always_raises raises by design"


def raise_always(*_, **__):
    raise RuntimeError(REASON)


class AlwaysRaises(SklearnFamily):
    name = "always_raises"
    space = raise_always
    estimator = raise_always


def config(name: str, families: list[str]):
    from datetime import timedelta

    from dagml.config import DatasetConfig

    return DatasetConfig.model_validate({
        "name": name, "source": {"uri": "sklearn://breast_cancer"}, "target": "target", "task": "binary",
        "families": families, "budget": {"max_evals": 2}, "retries": 1, "retry_delay": timedelta(seconds=2)})
