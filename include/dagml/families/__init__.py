"""Model families, registered as ``<kind>:<name>``.

Every family module is imported here; each keeps its heavy imports (scikit-learn,
rpy2, pyspark, lightgbm, xgboost, catboost) inside methods, so listing the families costs nothing.
"""

from dagml.families import boosting, r, sklearn, spark  # noqa: F401
from dagml.families.base import REGISTRY, Family, Model, get_family

__all__ = ["REGISTRY", "Family", "Model", "get_family"]
