"""The trigger form's values replace the config's for one run; what depends on dagml is checked
by dagml.trigger.apply (the run's first task), naming the param."""

from pathlib import Path

import pytest

from dagml import trigger
from dagml.config import load_config
from dagml.errors import DataError

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "dags" / "configs"


@pytest.fixture(scope="module")
def breast_cancer():
    return load_config(CONFIGS / "breast_cancer.yaml")


def _defaults(config) -> dict:
    return {name: field["default"] for name, field in trigger.form(config).items()}


def test_the_form_defaults_change_nothing(breast_cancer):
    assert trigger.apply(breast_cancer, _defaults(breast_cancer)) is breast_cancer
    assert trigger.apply(breast_cancer, {}) is breast_cancer


def test_chosen_families_narrow_the_run_and_keep_the_baseline(breast_cancer):
    run = trigger.apply(breast_cancer, {**_defaults(breast_cancer), "families": ["knn", "sklearn:svm"]})
    assert [f.name for f in run.families] == ["sklearn:knn", "sklearn:svm", "sklearn:dummy"]
    assert [f.name for f in breast_cancer.families][-1] == "sklearn:dummy"  # the config itself is untouched
    assert len(breast_cancer.families) == 7


def test_a_family_the_config_does_not_allow_is_refused_naming_the_param(breast_cancer):
    with pytest.raises(DataError, match=r"trigger param 'families': 'lightgbm' not among this config's families "
                                        r"\(sklearn:elastic_net, .*sklearn:dummy\)"):
        trigger.apply(breast_cancer, {"families": ["knn", "lightgbm"]})


def test_a_metric_that_does_not_fit_the_task_is_refused_naming_the_param(breast_cancer):
    with pytest.raises(DataError, match=r"trigger param 'metric': 'rmse' does not fit this dataset's binary task; "
                                        r"valid: roc_auc, log_loss, accuracy, balanced_accuracy, f1"):
        trigger.apply(breast_cancer, {"metric": "rmse"})
    assert trigger.apply(breast_cancer, {"metric": "accuracy"}).metric == "accuracy"


def test_an_inferred_task_is_bounded_by_the_configs_metric():
    wine = load_config(CONFIGS / "wine.yaml")  # no task; metric log_loss: a classification
    assert wine.task is None
    assert trigger.metric_choices(wine) == ["roc_auc", "log_loss", "accuracy", "balanced_accuracy", "f1"]
    with pytest.raises(DataError, match="'metric': 'r2' does not fit this dataset's binary or multiclass task"):
        trigger.apply(wine, {"metric": "r2"})


def test_split_seed_and_budget_are_replaced_for_the_run(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("source: {uri: sklearn://iris}\ntarget: target\nfamilies: [knn, {name: svm, max_evals: 9}]\n"
                    "budget: {max_evals: 5, seconds: 30}\n")
    config = load_config(path)
    run = trigger.apply(config, {"test_size": 0.3, "seed": 7, "max_evals": 2, "total_seconds": 20, "note": "x"})
    assert (run.split.test_size, run.seed) == (0.3, 7)
    assert (run.budget.max_evals, run.budget.seconds, run.budget.total_seconds) == (2, 30, 20)
    svm = next(f for f in run.families if f.name == "sklearn:svm")
    assert svm.budget(run.budget).max_evals == 2  # the form's per-family budget wins over the entry's
    assert next(f for f in config.families if f.name == "sklearn:svm").max_evals == 9


@pytest.mark.parametrize("params, named", [
    ({"test_size": 0.95}, "test_size"), ({"max_evals": 0}, "max_evals"), ({"seconds": -1}, "seconds"),
    ({"seed": -3}, "seed"), ({"families": []}, "families"),
])
def test_out_of_bounds_values_name_their_param(breast_cancer, params, named):
    """Airflow's server refuses these against the form's schema; a conf that reaches the run anyway
    (``airflow dags test -c``, an old serialised DAG) still fails naming the field."""
    with pytest.raises(DataError, match=f"trigger param '{named}'"):
        trigger.apply(breast_cancer, params)


def test_the_form_schema_is_what_airflow_validates_conf_against(breast_cancer):
    from airflow.sdk import Param
    from airflow.sdk.exceptions import ParamValidationError

    fields = {name: Param(**field) for name, field in trigger.form(breast_cancer).items()}
    for name, bad in (("metric", "auc"), ("test_size", 0.9), ("max_evals", 10_001), ("seed", 1.5),
                      ("families", ["knn", "knn"]), ("partition", "2026/01/05")):
        with pytest.raises(ParamValidationError):
            fields[name].resolve(bad)
    assert fields["families"].resolve(["sklearn:knn"]) == ["sklearn:knn"]


def test_recorded_keeps_the_forms_fields_only():
    params = {"families": ["sklearn:knn"], "note": "retrain after the fix", "seed": 3, "other": 1}
    assert trigger.recorded(params) == {"families": ["sklearn:knn"], "seed": 3, "note": "retrain after the fix"}
