import numpy as np
import pytest
from sklearn import metrics as skm

from dagml.metrics import DEFAULT_METRIC, METRICS, get_metric

RNG = np.random.default_rng(0)
Y_BIN = RNG.integers(0, 2, 200)
P_BIN = np.clip(np.column_stack([1 - Y_BIN * 0.6 - RNG.random(200) * 0.3, np.zeros(200)]), 0.01, 0.99)
P_BIN[:, 1] = 1 - P_BIN[:, 0]
Y_REG = RNG.normal(size=200)
P_REG = Y_REG + RNG.normal(scale=0.5, size=200)


@pytest.mark.parametrize("name, expected", [
    ("roc_auc", skm.roc_auc_score(Y_BIN, P_BIN[:, 1])),
    ("log_loss", skm.log_loss(Y_BIN, P_BIN)),
    ("accuracy", skm.accuracy_score(Y_BIN, P_BIN.argmax(1))),
    ("balanced_accuracy", skm.balanced_accuracy_score(Y_BIN, P_BIN.argmax(1))),
    ("f1", skm.f1_score(Y_BIN, P_BIN.argmax(1))),
])
def test_classification_metrics_agree_with_sklearn(name, expected):
    assert get_metric(name)(Y_BIN, P_BIN) == pytest.approx(expected)


@pytest.mark.parametrize("name, expected", [
    ("rmse", skm.root_mean_squared_error(Y_REG, P_REG)),
    ("mae", skm.mean_absolute_error(Y_REG, P_REG)),
    ("r2", skm.r2_score(Y_REG, P_REG)),
])
def test_regression_metrics_agree_with_sklearn(name, expected):
    assert get_metric(name)(Y_REG, P_REG) == pytest.approx(expected)


def test_multiclass_metrics_take_probabilities_for_all_classes():
    y = np.array([0, 1, 2, 2, 1, 0])
    proba = np.eye(3)[[0, 1, 2, 1, 1, 0]] * 0.8 + 0.2 / 3
    assert get_metric("accuracy")(y, proba) == pytest.approx(5 / 6)
    assert get_metric("roc_auc")(y, proba) == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert get_metric("f1")(y, proba) == pytest.approx(skm.f1_score(y, proba.argmax(1), average="macro"))


def test_direction_turns_scores_into_losses_and_comparisons():
    auc, rmse = get_metric("roc_auc"), get_metric("rmse")
    assert auc.loss(0.9) < auc.loss(0.8) and rmse.loss(1.0) < rmse.loss(2.0)
    assert auc.better(0.9, 0.8) and not auc.better(0.8, 0.9)
    assert rmse.better(1.0, 2.0) and not rmse.better(2.0, 1.0)
    assert not auc.better(0.805, 0.8, margin=0.01) and auc.better(0.82, 0.8, margin=0.01)


def test_every_task_has_a_default_metric_and_unknown_names_list_the_valid_ones():
    assert all(task in METRICS[m].tasks for task, m in DEFAULT_METRIC.items())
    with pytest.raises(KeyError, match="valid: accuracy, balanced_accuracy, f1, log_loss, mae, r2, rmse, roc_auc"):
        get_metric("auc")
