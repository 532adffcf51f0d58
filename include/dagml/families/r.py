"""R families through rpy2: glmnet, ranger, gbm and e1071's SVM, on the shared numeric matrix.

The R side of each family is two small R functions (fit and predict) in ``_R_CODE``;
Python converts the training matrix to R once per search task and scores the returned
predictions with the shared metric code. Models are saved with R's own ``saveRDS``.
rpy2 is imported only when a family is used, so a worker without R imports dagml fine and
fails only the task that needs R, with a message saying so.
"""

from __future__ import annotations

import json
import os
import logging
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from dagml.errors import FamilyFailed
from dagml.families.base import Family, Model
from dagml.families.base import hyperopt_parts as _hp

_R_CODE = r"""
dagml_matrix <- function(x) { colnames(x) <- paste0("x", seq_len(ncol(x))); x }
dagml_factor <- function(y, k) factor(y, levels = as.character(seq_len(k) - 1))
dagml_two <- function(p) { p <- as.numeric(p); m <- cbind(1 - p, p); colnames(m) <- c("0", "1"); m }

dagml_fit_glmnet <- function(x, y, task, k, p, seed) {
  fam <- switch(task, binary = "binomial", multiclass = "multinomial", regression = "gaussian")
  if (task != "regression") y <- dagml_factor(y, k)
  glmnet::glmnet(x, y, family = fam, alpha = p$alpha, lambda = p$lambda, standardize = FALSE,
                 thresh = 1e-10, maxit = 1e6)
}
dagml_predict_glmnet <- function(fit, x, task) {
  p <- predict(fit, newx = x, type = "response")
  switch(task, binary = dagml_two(p), multiclass = p[, , 1, drop = TRUE], regression = as.numeric(p))
}

dagml_fit_ranger <- function(x, y, task, k, p, seed) {
  if (task != "regression") y <- dagml_factor(y, k)
  ranger::ranger(x = x, y = y, num.trees = p$num_trees, mtry = max(1, round(p$mtry_share * ncol(x))),
                 min.node.size = p$min_node_size, probability = task != "regression", seed = seed,
                 num.threads = p$threads)
}
dagml_predict_ranger <- function(fit, x, task) predict(fit, data = x, num.threads = 1)$predictions

dagml_fit_gbm <- function(x, y, task, k, p, seed) {
  set.seed(seed)
  dist <- switch(task, binary = "bernoulli", multiclass = "multinomial", regression = "gaussian")
  if (task == "multiclass") y <- dagml_factor(y, k)
  gbm::gbm.fit(x = as.data.frame(x), y = y, distribution = dist, n.trees = p$n_trees,
               interaction.depth = p$depth, shrinkage = p$shrinkage, n.minobsinnode = p$min_node,
               bag.fraction = p$bag_fraction, verbose = FALSE)
}
dagml_predict_gbm <- function(fit, x, task) {
  p <- predict(fit, newdata = as.data.frame(x), n.trees = fit$n.trees, type = "response")
  switch(task, binary = dagml_two(p), multiclass = p[, , 1, drop = TRUE], regression = as.numeric(p))
}

dagml_fit_svm <- function(x, y, task, k, p, seed) {
  set.seed(seed)
  if (task == "regression")
    return(e1071::svm(x, y, type = "eps-regression", kernel = "radial", cost = p$cost, gamma = p$gamma,
                      epsilon = p$epsilon, scale = FALSE))
  e1071::svm(x, droplevels(dagml_factor(y, k)), type = "C-classification", kernel = "radial",
             cost = p$cost, gamma = p$gamma, probability = TRUE, scale = FALSE)
}
dagml_predict_svm <- function(fit, x, task) {
  if (task == "regression") return(as.numeric(predict(fit, x)))
  attr(predict(fit, x, probability = TRUE), "probabilities")
}
"""


log = logging.getLogger("dagml.r")
_LIBRARY_PATH = os.environ.get("LD_LIBRARY_PATH")  # as it was before rpy2 (imported only in here) changed it


def _to_log(level):
    return lambda text: log.log(level, "R: %s", text.rstrip()) if text.strip() else None


@lru_cache(maxsize=1)
def _init_r():
    """The embedded R, with dagml's functions defined once per process; R's console goes to the log.
    Everything here that touches rpy2 goes through it first."""
    import rpy2.robjects as ro
    from rpy2.rinterface_lib import callbacks

    # rpy2 puts R's library path (with the system's lib folder first) into LD_LIBRARY_PATH. R is
    # loaded by now, so it no longer needs it; left there, every later subprocess (another
    # Python, Java) would load the system's libpython and fail ("undefined symbol").
    if _LIBRARY_PATH is None:
        os.environ.pop("LD_LIBRARY_PATH", None)
    else:
        os.environ["LD_LIBRARY_PATH"] = _LIBRARY_PATH

    callbacks.consolewrite_print = _to_log(logging.INFO)
    callbacks.consolewrite_warnerror = _to_log(logging.WARNING)
    ro.r(_R_CODE)
    return ro


def _r():
    ro = _init_r()
    # rpy2 keeps its conversion rules in a ContextVar: a task run in another context of the
    # same process (dag.test() runs every task in one process) starts without them.
    if ro.conversion.converter_ctx.get(None) is None:
        ro.conversion.set_conversion(ro.default_converter)
    return ro


def _matrix(X):
    import numpy as np

    ro = _r()
    from rpy2.robjects import numpy2ri
    from rpy2.robjects.conversion import localconverter

    with localconverter(ro.default_converter + numpy2ri.converter):
        rx = ro.conversion.get_conversion().py2rpy(np.ascontiguousarray(X, dtype=float))
    return ro.r["dagml_matrix"](rx)


def _params(params: dict):
    ro = _r()
    return ro.ListVector({k: (ro.IntVector([v]) if isinstance(v, int) else ro.FloatVector([float(v)]))
                          for k, v in params.items()})


class RModel(Model):
    def __init__(self, name: str, task: str, n_classes: int, fit):
        self.name, self.task, self.n_classes, self.fit = name, task, n_classes, fit

    def predict(self, X):
        import numpy as np

        ro = _r()
        out = ro.r[f"dagml_predict_{self.name}"](self.fit, _matrix(X), self.task)
        values = np.asarray(out, dtype=float)
        if self.task == "regression":
            return values.reshape(-1)
        values = values.reshape(len(X), -1)
        full = np.zeros((len(X), self.n_classes))
        full[:, [int(c) for c in ro.r["colnames"](out)]] = values  # R orders columns its own way
        return full

    def save(self, folder: Path) -> None:
        _r().r["saveRDS"](self.fit, str(Path(folder) / "model.rds"))
        (Path(folder) / "r_model.json").write_text(json.dumps(
            {"name": self.name, "task": self.task, "n_classes": self.n_classes}))

    @classmethod
    def load(cls, folder: Path) -> RModel:
        meta = json.loads((Path(folder) / "r_model.json").read_text())
        return cls(meta["name"], meta["task"], meta["n_classes"], _r().r["readRDS"](str(Path(folder) / "model.rds")))


class RFamily(Family):
    kind = "r"
    model_class = RModel
    r_package: ClassVar[str]
    r_functions: ClassVar[str]  # dagml_fit_<this> and dagml_predict_<this> in _R_CODE

    def check_available(self) -> None:
        try:
            _r()
            from rpy2.robjects.packages import importr

            importr(self.r_package)
        except Exception as exc:  # no rpy2, no R, or no such R package on this worker
            raise FamilyFailed(
                f"{self.key()} needs R with the {self.r_package!r} package on this worker "
                f"(Debian: r-cran-{self.r_package.lower()}; Python: rpy2): {type(exc).__name__}: {exc}"
            ) from None

    def fit(self, params, X, y, task, n_classes, seed, eval_set=None):
        import numpy as np

        X, y = self.capped(X, y, seed)
        ro = _r()
        ry = ro.FloatVector(np.asarray(y, dtype=float)) if task == "regression" else ro.IntVector(np.asarray(y, int))
        fit = ro.r[f"dagml_fit_{self.r_functions}"](self._cached_matrix(X), ry, task, n_classes,
                                                     _params({**params, "threads": int(self.threads)}), seed)
        return RModel(self.r_functions, task, n_classes, fit)

    def _cached_matrix(self, X):
        """The same training matrix crosses to R once per search, not once per trial."""
        cached = getattr(self, "_cache", None)
        if cached is None or cached[0] is not X:
            self._cache = (X, _matrix(X))
        return self._cache[1]


class Glmnet(RFamily):
    """Penalised GLM (elastic net); the same objective as scikit-learn's with C = 1 / (n * lambda)."""

    name = "glmnet"
    r_package = "glmnet"
    r_functions = "glmnet"
    needs_scaling = True

    def space(self, task, n_rows, n_cols):
        hp, _ = _hp()
        return {"alpha": hp.uniform("alpha", 0, 1), "lambda": hp.loguniform("lambda", -9.2, 0)}  # 1e-4..1

    def init_points(self, task):
        return [{"alpha": 0.5, "lambda": 0.01}]


class Ranger(RFamily):
    name = "ranger"
    r_package = "ranger"
    r_functions = "ranger"

    def space(self, task, n_rows, n_cols):
        hp, scope = _hp()
        return {
            "num_trees": scope.int(hp.quniform("num_trees", 50, 400, 25)),
            "mtry_share": hp.uniform("mtry_share", 0.1, 1.0),
            "min_node_size": scope.int(hp.qloguniform("min_node_size", 0, 3, 1)),
        }

    def init_points(self, task):
        return [{"num_trees": 200, "mtry_share": 0.5, "min_node_size": 5 if task == "regression" else 1}]


class Gbm(RFamily):
    name = "gbm"
    r_package = "gbm"
    r_functions = "gbm"

    def space(self, task, n_rows, n_cols):
        hp, scope = _hp()
        return {
            "n_trees": scope.int(hp.quniform("n_trees", 50, 500, 25)),
            "depth": scope.int(hp.quniform("depth", 1, 6, 1)),
            "shrinkage": hp.loguniform("shrinkage", -4.6, -1.6),  # 0.01..0.2
            "min_node": scope.int(hp.quniform("min_node", 2, 20, 1)),
            "bag_fraction": hp.uniform("bag_fraction", 0.5, 1.0),
        }

    def init_points(self, task):
        return [{"n_trees": 150, "depth": 3, "shrinkage": 0.1, "min_node": 10, "bag_fraction": 0.8}]


class Svm(RFamily):
    """e1071's RBF SVM; trained on at most 5,000 rows, as the scikit-learn one."""

    name = "svm"
    r_package = "e1071"
    r_functions = "svm"
    needs_scaling = True
    max_rows = 5000

    def space(self, task, n_rows, n_cols):
        hp, _ = _hp()
        space = {"cost": hp.loguniform("cost", -4.6, 6.9), "gamma": hp.loguniform("gamma", -9.2, 0)}
        if task == "regression":
            space["epsilon"] = hp.loguniform("epsilon", -6.9, 0)
        return space
