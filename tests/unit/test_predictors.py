"""A champion's input checks on small frames: missing columns, numeric columns with text,
unseen categories (not an error), archives whose manifest predates the numeric/categorical lists."""

import numpy as np
import pandas as pd
import pytest

from dagml.errors import DataError
from dagml.predictors import Predictor, check_input
from dagml.prepare import build_preprocessor

RECIPE = {"numeric": ["x1", "x2"], "onehot": ["colour"], "ordinal": ["city"]}
FEATURES = ["x1", "x2", "colour", "city"]


class _Model:
    """Stands in for a family's model: P(yes) grows with the first preprocessed column."""

    def predict(self, X):
        p = 1 / (1 + np.exp(-np.asarray(X, dtype=float)[:, 0]))
        return np.column_stack([1 - p, p])


def _train():
    return pd.DataFrame({"x1": [0.1, -1.0, 2.0, 0.5, np.nan], "x2": [1.0, 2.0, 3.0, 4.0, 5.0],
                         "colour": ["red", "green", "blue", "red", None], "city": ["a", "b", "c", "d", "e"]})


def _predictor(manifest_lists=True):
    pre = build_preprocessor(RECIPE, scale=False).fit(_train())
    manifest = {"family": "sklearn:elastic_net", "task": "binary", "features": FEATURES, "classes": ["no", "yes"]}
    if manifest_lists:
        manifest |= {"numeric": RECIPE["numeric"], "categorical": RECIPE["onehot"] + RECIPE["ordinal"]}
    return Predictor(manifest, pre, _Model())


def test_missing_columns_are_all_named():
    df = _train().drop(columns=["x2", "city"]).assign(customer_id=1)
    with pytest.raises(DataError) as err:
        _predictor().predictions(df)
    assert "input is missing 2 column(s) the model needs: 'x2', 'city'" in str(err.value)
    assert "customer_id" in str(err.value)  # what the input has instead


def test_numeric_columns_with_text_are_named_with_their_dtypes():
    df = _train().astype({"x1": object, "x2": object})
    df.loc[0, "x1"], df.loc[1, "x2"], df.loc[2, "x2"] = "abc", "1,5", "n/a"
    with pytest.raises(DataError) as err:
        _predictor().predict(df)
    message = str(err.value)
    assert message.startswith("numeric feature column(s) hold values that are not numbers:")
    assert "'x1' (object: 'abc')" in message and "'x2' (object: '1,5', 'n/a')" in message


def test_a_datetime_in_a_numeric_column_is_named():
    df = _train().assign(x2=pd.Timestamp("2026-01-01"))
    with pytest.raises(DataError, match=r"'x2' \(datetime64"):
        _predictor().predict(df)


def test_numbers_given_as_text_and_blanks_score_like_numbers():
    predictor = _predictor()
    df = _train()
    as_text = df.assign(x1=["0.1", " -1 ", "2", "5e-1", ""], x2=df["x2"].astype(str))
    expected = predictor.predictions(df)
    pd.testing.assert_frame_equal(predictor.predictions(as_text), expected)
    as_strings = df.astype({"x1": "string"})
    pd.testing.assert_frame_equal(predictor.predictions(as_strings), expected)


def test_unseen_categories_score_without_error():
    predictor = _predictor()
    df = _train().assign(colour=["purple", "red", None, "teal", "red"], city=["zz", "a", "new", "b", "c"])
    out = predictor.predictions(df)
    assert list(out.columns) == ["prediction", "proba_no", "proba_yes"]
    assert len(out) == len(df) and set(out["prediction"]) <= {"no", "yes"}
    assert np.allclose(out["proba_no"] + out["proba_yes"], 1.0)
    # one-hot ignores an unknown category (all zeros); ordinal gives it -1
    X = predictor.preprocessor.transform(predictor.check_input(df))
    onehot = X[:, 3:6]
    assert onehot[0].sum() == 0 and onehot[1].sum() == 1
    assert X[0, -1] == -1 and X[1, -1] == 0


def test_a_categorical_column_read_as_numbers_is_compared_as_text():
    pre = build_preprocessor({"numeric": [], "onehot": ["code"], "ordinal": []}, scale=False)
    pre.fit(pd.DataFrame({"code": ["7", "12", "x"]}))
    predictor = Predictor({"family": "sklearn:dummy", "task": "regression", "features": ["code"], "numeric": [],
                           "categorical": ["code"]}, pre, None)
    X = predictor.check_input(pd.DataFrame({"code": [7.0, np.nan, 12.0]}))  # an int column with a gap
    assert X["code"].tolist() == ["7", None, "12"]
    assert pre.transform(X).tolist() == [[0, 1, 0], [0, 0, 0], [1, 0, 0]]


def test_extra_columns_are_ignored_and_predictions_keep_the_input_index():
    df = _train().assign(y="yes", customer_id=range(5)).set_index(pd.Index([10, 11, 12, 13, 14]))
    out = _predictor().predictions(df)
    assert list(out.index) == [10, 11, 12, 13, 14]
    assert out["prediction"].tolist() == _predictor().predict(df).tolist()
    assert np.allclose(out[["proba_no", "proba_yes"]].to_numpy(), _predictor().predict_proba(df).to_numpy())


def test_an_empty_frame_scores_to_an_empty_frame_with_the_usual_columns():
    out = _predictor().predictions(_train().iloc[:0])
    assert list(out.columns) == ["prediction", "proba_no", "proba_yes"] and len(out) == 0


def test_old_archives_without_the_lists_take_them_from_the_preprocessor():
    old = _predictor(manifest_lists=False)
    assert old.numeric_features == ["x1", "x2"]
    assert old.categorical_features == ["colour", "city"]
    df = _train().astype({"x2": object})
    df.loc[3, "x2"] = "four"
    with pytest.raises(DataError, match=r"'x2' \(object: 'four'\)"):
        old.predict(df)


def test_check_input_is_usable_on_its_own():
    X = check_input(pd.DataFrame({"a": ["1", "2"], "b": ["u", "v"], "extra": [0, 0]}), ["a", "b"], ["a"], ["b"])
    assert list(X.columns) == ["a", "b"] and X["a"].tolist() == [1.0, 2.0]
    with pytest.raises(DataError, match="missing 1 column"):
        check_input(pd.DataFrame({"a": [1]}), ["a", "b"], ["a"])


def _stored_member(artifacts, family_key: str, tmp_name: str):
    """A real family fit on a small frame and stored as an archive: (archive bytes, predictor)."""
    from dagml.families import get_family
    from dagml.predictors import load_verified, manifest, write_archive

    family = get_family(family_key)()
    recipe = {**RECIPE, "features": FEATURES, "classes": ["no", "yes"]}
    train = pd.concat([_train()] * 8, ignore_index=True)
    y = (np.arange(len(train)) % 3 == 0).astype(int)
    pre = build_preprocessor(RECIPE, scale=family.needs_scaling)
    model = family.fit({"C": 1.0, "l1_ratio": 0.0} if "elastic" in family_key else
                       {"n_neighbors": 5, "weights": "uniform", "p": 2}, pre.fit_transform(train), y, "binary", 2, 0)
    uri = artifacts.uri("d", "p", "r", tmp_name, "model.tar")
    sha = write_archive(artifacts, uri, manifest(family_key, "binary", "log_loss", recipe, {}, {}), pre, model)
    return artifacts.read_verified(uri, sha), load_verified(artifacts, uri, sha)


def test_an_ensemble_is_one_archive_of_its_members_and_predicts_their_weighted_mean(tmp_path):
    from dagml.errors import ChecksumMismatch
    from dagml.predictors import EnsemblePredictor, ensemble_manifest, load_verified, write_ensemble
    from dagml.store.artifacts import ArtifactStore

    artifacts = ArtifactStore(str(tmp_path))
    linear, linear_model = _stored_member(artifacts, "sklearn:elastic_net", "a")
    knn, knn_model = _stored_member(artifacts, "sklearn:knn", "b")
    recipe = {**RECIPE, "features": FEATURES, "classes": ["no", "yes"]}
    about = ensemble_manifest("ensemble:greedy", "binary", "log_loss", recipe,
                              {"sklearn:elastic_net": 0.25, "sklearn:knn": 0.75}, {"partition": "p"})
    uri = artifacts.uri("d", "p", "r", "ensemble", "model.tar")
    sha = write_ensemble(artifacts, uri, about, [linear, knn])
    assert write_ensemble(artifacts, uri, about, [linear, knn]) == sha  # the same members hash the same

    ensemble = load_verified(artifacts, uri, sha)
    assert isinstance(ensemble, EnsemblePredictor) and ensemble.weights == [0.25, 0.75]
    df = _train().assign(colour=["red", "teal", None, "blue", "red"])  # an unseen category too
    expected = 0.25 * linear_model.predict_proba(df).to_numpy() + 0.75 * knn_model.predict_proba(df).to_numpy()
    out = ensemble.predictions(df)
    np.testing.assert_allclose(out[["proba_no", "proba_yes"]].to_numpy(), expected)
    assert not np.allclose(expected, knn_model.predict_proba(df).to_numpy())
    assert out["prediction"].tolist() == ensemble.predict(df).tolist()
    with pytest.raises(DataError, match="missing 1 column"):  # checked as any champion's input
        ensemble.predictions(df.drop(columns="city"))

    artifacts.write_bytes(uri, artifacts.read_bytes(uri).replace(b"sklearn:knn", b"sklearn:kNN", 1))
    with pytest.raises(ChecksumMismatch, match="does not match the recorded"):
        load_verified(artifacts, uri, sha)


def test_an_ensemble_needs_an_archive_per_member(tmp_path):
    from dagml.predictors import ensemble_manifest, write_ensemble
    from dagml.store.artifacts import ArtifactStore

    about = ensemble_manifest("ensemble:greedy", "binary", "log_loss", {**RECIPE, "features": FEATURES},
                              {"sklearn:elastic_net": 0.5, "sklearn:knn": 0.5}, {})
    with pytest.raises(ValueError, match="names 2 members, 1 archives given"):
        write_ensemble(ArtifactStore(str(tmp_path)), str(tmp_path / "m.tar"), about, [b""])


def _encoding_objects(recipe, scale):
    """The preprocessor as it was before ``CategoryCodes``: scikit-learn's encoders on objects."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

    from dagml import prepare

    as_object = FunctionTransformer(prepare._object_array, feature_names_out="one-to-one")
    numeric = make_pipeline(FunctionTransformer(prepare._finite32, feature_names_out="one-to-one"),
                            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                            *([StandardScaler()] if scale else []))
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
    ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1,
                             dtype=np.float32)
    return ColumnTransformer([("numeric", numeric, recipe["numeric"]),
                              ("onehot", make_pipeline(as_object, onehot), recipe["onehot"]),
                              ("ordinal", make_pipeline(as_object, ordinal, *([StandardScaler()] if scale else [])),
                               recipe["ordinal"])], remainder="drop", sparse_threshold=0)


@pytest.mark.parametrize("scale", [False, True])
def test_category_codes_give_the_matrix_the_encoders_gave_on_objects(scale):
    """Categoricals (pandas' category dtype, nullable strings, booleans, missing values) are coded
    as integers before the encoders: the same matrix as the encoders on objects, on the training
    rows and on later rows with unseen and missing values."""
    recipe = {"numeric": ["x1", "x2"], "onehot": ["colour", "flag", "size"], "ordinal": ["city", "shop"]}
    # a fold's rows of the compact frame: its category dtype may list values these rows lack (violet)
    colours = pd.CategoricalDtype(["blue", "green", "red", "violet"])
    train = _train().astype({"colour": colours}).assign(
        city=pd.array(["a", pd.NA, "c", "d", "e"], dtype="string"), flag=[True, False, True, None, False],
        size=["s", "m", "l", "m", "s"], shop=["p", "q", "r", "p", "q"])  # the last two: nothing missing
    later = _train().assign(colour=["red", "violet", None, "blue", "green"], city=["e", "z", None, "a", "b"],
                            flag=[None, True, False, False, True], size=[None, "xl", "s", "m", "l"],
                            shop=["q", None, "z", "p", "r"])
    new = build_preprocessor(recipe, scale=scale).fit(train)
    old = _encoding_objects(recipe, scale).fit(train)
    for frame in (train, later, later.astype({"colour": colours, "size": "category"})):
        np.testing.assert_allclose(new.transform(frame), old.transform(frame), rtol=1e-6)


def test_the_encoders_read_text_as_an_object_array_with_the_frame_paths_result():
    """Preprocessors stored before read text columns through a frame (``_as_object``), later ones
    as an object array (``_object_array``); both are kept for them and give the same matrix, on
    categoricals, nullable strings and unseen values."""
    from sklearn.preprocessing import FunctionTransformer

    from dagml import prepare

    train = _train().astype({"colour": "category"}).assign(city=pd.array(["a", pd.NA, "c", "d", "e"], dtype="string"))
    later = _train().assign(colour=["red", "purple", None, "blue", "green"], city=["e", "z", None, "a", "b"])
    new = _encoding_objects(RECIPE, scale=True).fit(train)
    old = _encoding_objects(RECIPE, scale=True)
    for _, pipeline, _ in old.transformers:
        for i, (name, step) in enumerate(getattr(pipeline, "steps", [])):
            if isinstance(step, FunctionTransformer) and step.func is prepare._object_array:
                pipeline.steps[i] = (name, FunctionTransformer(prepare._as_object, feature_names_out="one-to-one"))
    old.fit(train)
    assert any(step.func is prepare._as_object for _, p, _ in old.transformers for _, step in getattr(p, "steps", [])
               if isinstance(step, FunctionTransformer))
    for frame in (train, later):
        np.testing.assert_array_equal(new.transform(frame), old.transform(frame))