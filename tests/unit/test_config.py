import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagml.config import BASELINE_FAMILY, ConfigError, DatasetConfig, load_config, load_configs

REPO = Path(__file__).resolve().parents[2]
INVALID = sorted((REPO / "tests" / "data" / "invalid_configs").glob("*.yaml"))


def _expected(path: Path) -> str:
    return re.match(r"# expect: (.*)", path.read_text()).group(1)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_config_names_the_file_and_field(path):
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(str(path)), message
    assert _expected(path) in message, message


def test_every_example_config_is_valid():
    configs, errors = load_configs(REPO / "dags" / "configs")
    assert errors == []
    assert {c.name for c in configs} >= {"breast_cancer", "wine", "diabetes"}
    tasks = {load_config(REPO / "dags" / "configs" / f"{c.name}.yaml").task for c in configs}
    assert {"binary", "regression"} <= tasks


def test_defaults_file_sits_under_each_config(tmp_path):
    (tmp_path / "_defaults.yaml").write_text("owner: data-eng\nretries: 3\nbudget: {max_evals: 7, seconds: 30}\n")
    (tmp_path / "a.yaml").write_text("source: {uri: sklearn://iris}\ntarget: target\nbudget: {seconds: 5}\n")
    config = load_config(tmp_path / "a.yaml")
    assert (config.name, config.owner, config.retries) == ("a", "data-eng", 3)
    assert (config.budget.max_evals, config.budget.seconds) == (7, 5)  # merged field by field


def test_family_shorthand_budget_override_and_baseline():
    config = DatasetConfig.model_validate({
        "name": "x", "source": {"uri": "a.csv"}, "target": "y",
        "families": ["random_forest", {"name": "sklearn:svm", "max_evals": 3}], "budget": {"max_evals": 9},
    })
    names = [f.name for f in config.families]
    assert names == ["sklearn:random_forest", "sklearn:svm", BASELINE_FAMILY]
    assert [f.budget(config.budget).max_evals for f in config.families] == [9, 3, 9]


def test_one_bad_config_does_not_hide_the_others(tmp_path):
    (tmp_path / "good.yaml").write_text("source: {uri: sklearn://iris}\ntarget: target\n")
    (tmp_path / "bad.yaml").write_text("source: {uri: sklearn://iris}\n")
    (tmp_path / "also_good.yaml").write_text("name: good_too\nsource: {uri: sklearn://wine}\ntarget: target\n")
    configs, errors = load_configs(tmp_path)
    assert sorted(c.name for c in configs) == ["good", "good_too"]
    assert len(errors) == 1 and "bad.yaml" in str(errors[0]) and "target: Field required" in str(errors[0])


def test_two_files_with_one_name_is_an_error(tmp_path):
    for stem in ("a", "b"):
        (tmp_path / f"{stem}.yaml").write_text("name: same\nsource: {uri: sklearn://iris}\ntarget: target\n")
    configs, errors = load_configs(tmp_path)
    assert [c.name for c in configs] == ["same"]
    assert "b.yaml" in str(errors[0]) and "already used" in str(errors[0])


_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=20)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
_FIELDS = list(DatasetConfig.model_fields)
_near_valid = st.fixed_dictionaries(
    {"source": st.just({"uri": "sklearn://iris"}) | st.dictionaries(st.sampled_from(["uri", "format", "options"]), _values),
     "target": st.just("target") | _values},
    optional={f: _values | st.sampled_from(["binary", "svm", "roc_auc", "@daily", "random_forest", 3, -1, 0.5])
              for f in _FIELDS if f not in ("source", "target")},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_near_valid | _values | st.text(max_size=200))
def test_loader_fails_only_with_a_config_error(tmp_path, doc):
    path = tmp_path / "fuzz.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert str(path) in str(exc)
    else:
        assert isinstance(config, DatasetConfig)


def test_a_kind_can_be_turned_off():
    config = DatasetConfig.model_validate({
        "name": "x", "source": {"uri": "a.csv"}, "target": "y", "disabled_kinds": ["spark"],
        "families": ["knn", "r:glmnet", "spark:gbt", "spark:linear"]})
    assert [f.name for f in config.families] == ["sklearn:knn", "r:glmnet", BASELINE_FAMILY]
    from dagml.factory import search_groups

    assert search_groups(config) == [("r", 1), ("sklearn", 1)]  # no spark search task
