"""What real files hold, dealt with before any family sees the data: infinite values, duplicate
column names, constant and identifier-like columns, dates, malformed files; each message quotes
the column, and what was dropped or transformed is recorded in the recipe and the run's report."""

import gzip
import logging
import sqlite3
from html import unescape

import numpy as np
import pandas as pd
import pytest

from dagml import tasks
from dagml.config import DatasetConfig, Source
from dagml.errors import DataError
from dagml.predictors import Predictor, load_verified, manifest, write_archive
from dagml.prepare import FrameData, build_preprocessor, make_recipe, make_split
from dagml.profile import profile
from dagml.sources import read_frame, read_source


def _frame(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({
        "x": x,
        "colour": rng.choice(["red", "green", "blue"], n),
        "y": np.where(x + rng.normal(scale=0.3, size=n) > 0, "yes", "no"),
    })


# infinite values

def test_a_few_infinite_values_are_missing_in_the_profile_split_and_preprocessor():
    df = _frame()
    df.loc[[0, 5, 9], "x"] = [np.inf, -np.inf, np.inf]
    summary = profile(df, "y")
    assert summary["infinite_as_missing"] == {"x": 3}
    recipe = make_recipe(df, "y", "binary")
    X = build_preprocessor(recipe, scale=False).fit_transform(df[recipe["features"]])
    assert np.isfinite(X).all()
    missing_indicator = X[:, 1]  # numeric x, then its missing indicator
    assert missing_indicator[[0, 5, 9]].tolist() == [1.0, 1.0, 1.0] and missing_indicator.sum() == 3


def test_an_infinite_regression_target_is_a_missing_target():
    df = _frame().assign(y=lambda d: d["x"] * 2.0)
    df.loc[[1, 2], "y"] = np.inf
    assert profile(df, "y", task="regression")["target_missing_rows"] == 2
    roles = make_split(df["y"], "regression", 0.2, "holdout", 0.2, 3, 0)
    assert roles[[1, 2]].tolist() == ["dropped", "dropped"] and (roles != "dropped").sum() == len(df) - 2


def test_a_mostly_infinite_column_is_an_error_naming_it_quoted():
    df = _frame().rename(columns={"x": "x "})
    df.loc[:70, "x "] = np.inf  # 71 of 120 rows
    with pytest.raises(DataError, match=r"column\(s\) 'x ' \(71 of 120 rows\) are mostly infinite"):
        profile(df, "y")
    df.loc[11:70, "x "] = 1.0  # 11 of 120: a few overflows, treated as missing
    assert profile(df, "y")["infinite_as_missing"] == {"x ": 11}


# duplicate column names

def test_a_csv_with_a_duplicate_header_is_refused_naming_it(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("a,b,a,y\n1,2,3,x\n4,5,6,z\n")
    with pytest.raises(DataError, match=f"source {path}: duplicate column name\\(s\\) 'a'"):
        read_source(str(path))


def test_a_real_column_named_like_a_renamed_duplicate_is_fine(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text("a,a.1,y\n1,2,x\n4,5,z\n")
    assert list(read_source(str(path)).columns) == ["a", "a.1", "y"]


def test_a_duplicate_header_behind_a_separator_option_is_refused(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("a;b;b\n1;2;3\n")
    with pytest.raises(DataError, match="duplicate column name\\(s\\) 'b'"):
        read_source(str(path), options={"sep": ";"})


def test_a_parquet_file_with_a_duplicate_name_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table([pa.array([1, 2]), pa.array([3, 4]), pa.array(["x", "z"])], names=["a", "a", "y"]),
                   path)
    with pytest.raises(DataError, match=f"source {path}: duplicate column name\\(s\\) 'a'"):
        read_source(str(path))


def test_a_query_selecting_a_name_twice_is_refused(tmp_path, monkeypatch):
    db = tmp_path / "w.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (a INTEGER, b INTEGER, y TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 2, 'x')")
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", f"sqlite:///{db}")
    source = Source.model_validate({"sql": "SELECT a, b AS a, y FROM t", "conn_id": "warehouse"})
    with pytest.raises(DataError, match="duplicate column name\\(s\\) 'a'"):
        read_frame(source, None, {})


def test_a_frame_with_duplicate_names_fails_the_profile():
    df = pd.concat([_frame(), _frame()[["x"]]], axis=1)
    with pytest.raises(DataError, match="the data: duplicate column name\\(s\\) 'x'"):
        profile(df, "y")


# constant and identifier-like columns

def test_constant_and_identifier_columns_are_dropped_with_a_log_line(caplog):
    n = 120
    df = _frame(n).assign(
        row_id=np.arange(1000, 1000 + n),  # whole numbers filling their range
        customer=[f"c-{i}" for i in range(n)],  # text, distinct per row
        ticket=np.where(np.arange(n) < 3, "dup", [f"t{i}" for i in range(n)]),  # 118 of 120 distinct: nearly
        version="v1",  # constant
        income=np.random.default_rng(1).integers(20_000, 90_000, n),  # whole, distinct, but spread: a measurement
        reading=np.random.default_rng(2).normal(size=n),  # floats are never identifiers
    )
    with caplog.at_level(logging.INFO, logger="dagml.prepare"):
        recipe = make_recipe(df, "y", "binary")
    assert set(recipe["dropped"]) == {"row_id", "customer", "ticket", "version"}
    assert recipe["dropped"]["version"] == "constant (every row is 'v1')"
    assert recipe["dropped"]["row_id"].startswith("identifier-like (120 distinct whole numbers in 120 rows")
    assert recipe["features"] == ["x", "colour", "income", "reading"]
    assert sorted(recipe["numeric"]) == ["income", "reading", "x"]
    assert "dropped column 'customer': identifier-like (120 distinct values in 120 rows)" in caplog.text
    assert "dropped column 'version': constant" in caplog.text


def test_a_column_with_one_value_and_gaps_is_kept_and_small_frames_keep_unique_codes():
    df = _frame().assign(flag=lambda d: np.where(d.index % 2 == 0, 1.0, np.nan))
    assert "flag" in make_recipe(df, "y", "binary")["numeric"]  # its missing values carry information
    small = _frame(12).assign(code=[f"k{i}" for i in range(12)])  # under 20 rows: too few to call it an id
    assert "code" in make_recipe(small, "y", "binary")["features"]


def test_when_every_feature_is_dropped_the_error_names_them():
    df = pd.DataFrame({"id": range(50), "const": 0, "y": ["a", "b"] * 25})
    with pytest.raises(DataError, match="no feature columns left: every one was dropped \\('id': identifier-like"):
        make_recipe(df, "y", "binary")


# dates

def _dated(n=150, seed=0):
    rng = np.random.default_rng(seed)
    day = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    x = rng.normal(size=n)
    y = np.where((day.year == 2025) ^ (x > 1.5), "late", "early")  # the label depends on the year
    return pd.DataFrame({"signup": day.strftime("%d/%m/%Y"), "seen": day + pd.Timedelta(hours=6), "x": x, "y": y})


def test_text_and_datetime_dates_become_year_month_weekday_and_elapsed_days():
    df = _dated()
    df.loc[0, "signup"] = "not a date"  # one of 150: still a date column; this value is missing
    recipe = make_recipe(df, "y", "binary")
    assert recipe["dates"] == ["signup", "seen"] and recipe["date_formats"] == {"signup": "%d/%m/%Y", "seen": None}
    assert recipe["numeric"] == ["x"] and recipe["onehot"] == recipe["ordinal"] == []
    pre = build_preprocessor(recipe, scale=False).fit(df[recipe["features"]])
    names = list(pre.get_feature_names_out())
    X = pd.DataFrame(pre.transform(df[recipe["features"]]), columns=names)
    day = pd.to_datetime(df["signup"], format="%d/%m/%Y", errors="coerce")
    row = 3
    assert X.loc[row, "dates__signup__year"] == day[row].year
    assert X.loc[row, "dates__signup__month"] == day[row].month
    assert X.loc[row, "dates__signup__day_of_week"] == day[row].dayofweek
    assert X.loc[row, "dates__signup__days_since_1970"] == (day[row] - pd.Timestamp("1970-01-01")).days
    assert X.loc[row, "dates__seen__days_since_1970"] == pytest.approx((day[row] - pd.Timestamp("1970-01-01")).days
                                                                       + 0.25)
    assert X["dates__signup__missing"].tolist() == [1.0] + [0.0] * (len(df) - 1)  # the unparsable value
    assert X.loc[0, "dates__signup__year"] == day.dropna().dt.year.median()  # imputed


def test_iso_text_is_read_year_month_day_and_time_zones_become_utc():
    df = _frame(40).assign(at=["2024-01-01T10:00:00+02:00"] * 20 + ["2024-01-02T10:00:00Z"] * 20,
                           local=pd.date_range("2024-03-01 00:30", periods=40, freq="D", tz="Europe/Berlin"))
    recipe = make_recipe(df, "y", "binary")
    assert recipe["date_formats"] == {"at": "ISO8601", "local": None}
    pre = build_preprocessor(recipe, scale=False).fit(df[recipe["features"]])
    X = pd.DataFrame(pre.transform(df[recipe["features"]]), columns=pre.get_feature_names_out())
    assert X.loc[39, ["dates__at__month", "dates__at__day_of_week"]].tolist() == [1, 1]  # 2 January, a Tuesday
    days = (pd.Timestamp("2024-01-01 08:00") - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    assert X.loc[0, "dates__at__days_since_1970"] == pytest.approx(days)
    assert X.loc[0, ["dates__local__month", "dates__local__day_of_week"]].tolist() == [2, 3]  # 29 Feb 23:30 UTC


def test_numbers_and_words_are_not_dates():
    df = _frame().assign(zip=[f"{i:05d}" for i in range(120)], word=["spring", "autumn"] * 60)
    recipe = make_recipe(df, "y", "binary")
    assert recipe["dates"] == [] and "word" in recipe["onehot"]


def test_the_champion_applies_the_date_features_to_new_rows(stores):
    """Round trip: the archive's preprocessor parses and expands the dates of rows it never saw."""
    from dagml.families.sklearn import RandomForest

    df = _dated()
    recipe = make_recipe(df, "y", "binary")
    data = FrameData(df, make_split(df["y"], "binary", 0.2, "holdout", 0.2, 3, 0), recipe, scale=False)
    pre, X, y = data.final()
    family = RandomForest()
    params = {"n_estimators": 50, "min_samples_leaf": 1, "max_features": 1.0}
    model = family.fit(params, X, y, "binary", 2, 0)
    uri = stores.artifacts.uri("automl__d", "p", "r", "model.tar")
    sha = write_archive(stores.artifacts, uri, manifest("sklearn:random_forest", "binary", "accuracy", recipe, params,
                                                        {}), pre, model)
    predictor = load_verified(stores.artifacts, uri, sha)
    assert isinstance(predictor, Predictor)

    fresh = _dated(60, seed=7).drop(columns="y")
    as_read_from_csv = fresh.assign(seen=fresh["seen"].astype(str))  # a CSV brings the datetime as text
    expected = pre.transform(fresh[recipe["features"]])
    assert np.allclose(predictor.preprocessor.transform(predictor.check_input(fresh)), expected)
    assert np.allclose(predictor.preprocessor.transform(predictor.check_input(as_read_from_csv)), expected)
    truth = _dated(60, seed=7)["y"].to_numpy()
    assert (predictor.predict(as_read_from_csv) == truth).mean() > 0.9  # the year decides the label


# malformed files name the file and what to set

@pytest.mark.parametrize("content, options, hint", [
    ("a;b;y\n1;2;x\n3;4;z\n", {}, "the file has one column 'a;b;y': is it ';'-separated? Set source.options.sep."),
    ("a\tb\ty\n1\t2\tx\n", {}, "is it '\\t'-separated? Set source.options.sep."),
    ("a,b,y\n1,2,x\n3,4,z\n", {"sep": ";"}, "is it ','-separated? Set source.options.sep."),
    ("a,b,y\n1,2,x\n3,4,5,z\n", {}, "check source.options.sep and source.options.quotechar"),
])
def test_a_malformed_csv_names_the_file_and_what_to_set(tmp_path, content, options, hint):
    path = tmp_path / "d.csv"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        read_source(str(path), options=options)
    assert str(err.value).startswith(f"source {path}: ") and hint in str(err.value)


def test_a_wrongly_encoded_or_mislabelled_file_says_what_to_set(tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("city,y\nZürich,x\n".encode("latin-1"))
    with pytest.raises(DataError, match=f"source {latin}: .*Set source.options.encoding"):
        read_source(str(latin))
    parquet = tmp_path / "data.csv"
    _frame().to_parquet(parquet)
    with pytest.raises(DataError, match="The file is Parquet: set source.format: parquet"):
        read_source(str(parquet))
    packed = tmp_path / "packed.csv"
    packed.write_bytes(gzip.compress(b"a,y\n1,x\n"))
    with pytest.raises(DataError, match="The file is gzip-compressed: set source.options.compression: gzip"):
        read_source(str(packed))
    text = tmp_path / "data.parquet"
    text.write_text("a,y\n1,x\n")
    with pytest.raises(DataError, match="The file is not Parquet: set source.format: csv"):
        read_source(str(text))


# through the task functions: the recipe, the prepare summary and the report

def test_load_profile_prepare_record_and_report_what_was_dropped(tmp_path, stores):
    df = _dated(160).assign(order_id=np.arange(160), batch="b7", y=lambda d: d["y"])
    df.loc[4, "x"] = np.inf
    df.to_csv(tmp_path / "d.csv", index=False)
    config = DatasetConfig.model_validate({
        "name": "h", "source": {"uri": str(tmp_path / "d.csv")}, "target": "y",
        "families": ["elastic_net"], "budget": {"max_evals": 2, "seconds": 30}})
    keys = tasks.RunKeys(config.dag_id, "2026-01-01", "r1")
    loaded = tasks.load(config, config.source.uri, keys, stores)
    summary = tasks.profile(config, loaded, keys, stores)
    prepared = tasks.prepare(config, loaded, summary, keys, stores)
    changes = prepared["column_changes"]
    assert set(changes["dropped"]) == {"order_id", "batch"}
    assert changes["dates"] == ["signup", "seen"] and changes["infinite_as_missing"] == {"x": 1}
    recipe = stores.artifacts.read_json(prepared["recipe_uri"])
    assert recipe["dropped"] == changes["dropped"] and recipe["date_formats"]["seen"] == "ISO8601"

    for family in config.families:
        tasks.search_family(config, family.name, prepared, keys, stores)
    promotion = tasks.promote(config, tasks.select(config, keys, stores), prepared, keys, stores)
    uri = tasks.report(config, promotion, keys, stores)
    html = unescape(stores.artifacts.read_bytes(uri).decode())
    section = html[html.index("Columns dropped or transformed"):]
    assert "'order_id'" in section and "dropped: identifier-like (160 distinct whole numbers" in section
    assert "'batch'" in section and "dropped: constant (every row is 'b7')" in section
    assert "'signup'" in section and "date: became year, month, day of week and days since 1970-01-01" in section
    assert "'x'" in section and "1 infinite value(s) treated as missing" in section


def test_the_report_section_quotes_names_so_a_stray_space_shows():
    from dagml.report import _column_changes

    dropped = {"id ": "identifier-like (50 distinct values in 50 rows)"}
    html = unescape(_column_changes({"column_changes": {"dropped": dropped, "dates": [], "infinite_as_missing": {}}}))
    assert "<code>'id '</code>" in html and "dropped: identifier-like" in html
    assert "every column was used as it came" in _column_changes({"column_changes": {"dropped": {}, "dates": []}})
    assert "Not recorded" in _column_changes({"rows": 10})  # a run from before dagml kept them
