"""The model archive, written and read here only: store a fitted model of any kind, load it
back (its checksum first) and predict on a raw pandas frame.

A model archive holds ``manifest.json`` (family, task, classes, features, and the
``numeric`` and ``categorical`` feature columns), the fitted ``preprocessor.joblib`` and
the family's own files under ``model/``. Search, select, promote and scoring run in
different processes, so everything goes through here.

An ensemble's archive (manifest ``kind: ensemble``) holds its members' archives under
``members/<i>/`` and their weights in its manifest; it loads as an ``EnsemblePredictor``,
whose predictions are the weighted mean of its members'. The one checksum covers them all.

Input is checked before the model sees it (``Predictor.check_input``): a missing feature
column or a numeric feature holding text is a ``DataError`` naming every such column. A
category value never seen in training is not an error: the preprocessor's encoders ignore
it (one-hot: all zeros) or map it to -1 (ordinal), as ``prepare.build_preprocessor`` says.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from dagml.columns import quoted
from dagml.errors import DataError
from dagml.families.base import Shrunk
from dagml.store.artifacts import ArtifactStore, unpack

MANIFEST = "manifest.json"


def manifest(family: str, task: str, metric: str, recipe: dict, params: dict, origin: dict,
             shrinkage: float = 0.0) -> dict:
    """What an archive says of its model: the columns it needs, where it was trained, and how
    much its class probabilities are shrunk toward uniform (``dagml.metrics.shrink``)."""
    return {"family": family, "task": task, "metric": metric, "features": recipe["features"],
            "numeric": recipe["numeric"], "categorical": recipe["onehot"] + recipe["ordinal"],
            "classes": recipe.get("classes"), "params": params, "shrinkage": shrinkage, **origin}


def write_archive(artifacts: ArtifactStore, uri: str, manifest: dict, preprocessor, model) -> str:
    """Store the model with its preprocessing as one archive at ``uri``; returns its SHA-256."""
    import joblib

    with tempfile.TemporaryDirectory(prefix="dagml-model-") as tmp:
        folder = Path(tmp)
        (folder / "model").mkdir()
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        joblib.dump(preprocessor, folder / "preprocessor.joblib")
        model.save(folder / "model")
        return artifacts.write_model(uri, folder)


ENSEMBLE = "ensemble"  # a manifest's kind: the members' own archives sit under members/<i>/


def ensemble_manifest(family: str, task: str, metric: str, recipe: dict, weights: dict[str, float],
                      origin: dict) -> dict:
    """An ensemble's manifest: the weighted mean of its members' predictions (``weights`` sum to 1)."""
    members = [{"family": f, "weight": w, "folder": f"members/{i}"} for i, (f, w) in enumerate(weights.items())]
    return {**manifest(family, task, metric, recipe, weights, origin), "kind": ENSEMBLE, "members": members}


def write_ensemble(artifacts: ArtifactStore, uri: str, manifest: dict, members: list[bytes]) -> str:
    """Store an ensemble as ONE archive at ``uri`` holding its members' archives (``members``: their
    bytes, checksums verified, in the manifest's order); returns its SHA-256."""
    if len(members) != len(manifest["members"]):
        raise ValueError(f"the manifest names {len(manifest['members'])} members, {len(members)} archives given")
    with tempfile.TemporaryDirectory(prefix="dagml-ensemble-") as tmp:
        folder = Path(tmp)
        for member, data in zip(manifest["members"], members):
            unpack(data, folder / member["folder"])
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        return artifacts.write_model(uri, folder)


class Predictor:
    def __init__(self, manifest: dict, preprocessor, model):
        self.manifest = manifest
        self.preprocessor = preprocessor
        self.model = model

    @property
    def classes(self) -> list[str] | None:
        return self.manifest.get("classes")

    @classmethod
    def load(cls, folder: Path) -> Predictor:
        import joblib

        from dagml.families import get_family

        folder = Path(folder)
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("kind") == ENSEMBLE:
            return EnsemblePredictor.load_members(manifest, folder)
        model = get_family(manifest["family"]).model_class.load(folder / "model")
        if manifest.get("shrinkage"):
            model = Shrunk(model, manifest["shrinkage"])
        return cls(manifest, joblib.load(folder / "preprocessor.joblib"), model)

    @property
    def features(self) -> list[str]:
        return list(self.manifest["features"])

    @property
    def numeric_features(self) -> list[str]:
        """The feature columns the model reads as numbers. Archives written before the manifest
        listed them: the columns of the preprocessor's ``numeric`` part, when it has one."""
        if "numeric" in self.manifest:
            return list(self.manifest["numeric"])
        return _preprocessor_columns(self.preprocessor, "numeric")

    @property
    def categorical_features(self) -> list[str]:
        if "categorical" in self.manifest:
            return list(self.manifest["categorical"])
        return [c for part in ("onehot", "ordinal") for c in _preprocessor_columns(self.preprocessor, part)]

    def check_input(self, df):
        """The feature columns of ``df`` as the model needs them, or a ``DataError`` naming every
        missing column and every numeric feature whose values are not numbers."""
        return check_input(df, self.features, self.numeric_features, self.categorical_features)

    def predict_raw(self, df):
        """Class probabilities (n, k) for classification, values for regression."""
        return self._raw(self.check_input(df))

    def _raw(self, features):
        return self.model.predict(self.preprocessor.transform(features))

    def predict(self, df):
        import numpy as np

        raw = self.predict_raw(df)
        if self.classes is None:
            return raw
        return np.asarray(self.classes, dtype=object)[raw.argmax(axis=1)]

    def predict_proba(self, df):
        import pandas as pd

        if self.classes is None:
            raise TypeError("a regression model has no class probabilities")
        return pd.DataFrame(self.predict_raw(df), columns=self.classes, index=df.index)

    def predictions(self, df):
        """One frame, indexed like ``df``: ``prediction``, and ``proba_<class>`` per class for
        classification (the model runs once). What ``dagml score`` and the scoring DAG write."""
        import numpy as np
        import pandas as pd

        features = self.check_input(df)
        if len(features):
            raw = np.asarray(self._raw(features))
        else:  # an empty partition scores to an empty frame with the usual columns
            raw = np.empty((0, len(self.classes)) if self.classes is not None else 0, dtype=float)
        if self.classes is None:
            return pd.DataFrame({"prediction": raw.astype(float)}, index=df.index)
        out = pd.DataFrame({"prediction": np.asarray(self.classes, dtype=object)[raw.argmax(axis=1)]},
                           index=df.index)
        for i, cls in enumerate(self.classes):
            out[f"proba_{cls}"] = raw[:, i].astype(float)
        return out


class EnsemblePredictor(Predictor):
    """The weighted mean of its members' predictions (values, or class probabilities)."""

    def __init__(self, manifest: dict, members: list[Predictor]):
        super().__init__(manifest, None, None)
        self.members = members
        self.weights = [float(m["weight"]) for m in manifest["members"]]

    @classmethod
    def load_members(cls, manifest: dict, folder: Path) -> EnsemblePredictor:
        members = [Predictor.load(folder / m["folder"]) for m in manifest["members"]]
        for spec, member in zip(manifest["members"], members):
            if member.classes != manifest.get("classes"):
                raise ValueError(f"ensemble member {spec['family']} predicts classes {member.classes}, "
                                 f"the ensemble {manifest.get('classes')}")
        return cls(manifest, members)

    def _raw(self, features):
        from dagml.ensemble import blend

        return blend([m._raw(m.check_input(features)) for m in self.members], self.weights)


def _preprocessor_columns(preprocessor, part: str) -> list[str]:
    for name, _, columns in getattr(preprocessor, "transformers_", None) or []:
        if name == part and isinstance(columns, list | tuple):
            return [str(c) for c in columns]
    return []


def _examples(values, n: int = 3) -> str:
    shown = [repr(v) for v in list(dict.fromkeys(values))[:n]]
    return ", ".join(shown) + (", ..." if len(set(values)) > n else "")


def check_input(df, features: list[str], numeric: list[str], categorical: list[str] = ()):
    """``df[features]``, with numeric features given as text (``"1.5"``) turned into numbers.

    Raises ``DataError`` naming every feature column ``df`` lacks, or else every numeric
    feature column holding values that are not numbers (with its dtype and a few of them).
    Columns ``df`` has beyond ``features`` (keys, the target) are ignored. A categorical
    column that arrives as numbers (``007`` read as 7) is compared as text, as in training.
    """
    import pandas as pd

    missing = [c for c in features if c not in df.columns]
    if missing:
        has = list(df.columns)
        has = quoted(has[:20]) + (f", ... ({len(has)} in all)" if len(has) > 20 else "") if has else "none"
        raise DataError(f"input is missing {len(missing)} column(s) the model needs: {quoted(missing)} "
                        f"(its columns: {has})")
    X = df[features].copy()
    bad = []
    for col in (c for c in numeric if c in X.columns):
        s = X[col]
        if pd.api.types.is_bool_dtype(s):
            X[col] = s.astype(float)
            continue
        if pd.api.types.is_numeric_dtype(s):
            continue
        if pd.api.types.is_datetime64_any_dtype(s) or pd.api.types.is_timedelta64_dtype(s):
            bad.append(f"{col!r} ({s.dtype})")
            continue
        as_text = s.where(s.isna(), s.astype(str).str.strip())
        as_text = as_text.mask(as_text == "")  # blank is missing, as in a CSV
        parsed = pd.to_numeric(as_text, errors="coerce")
        unparsed = as_text[parsed.isna() & as_text.notna()]
        if len(unparsed):
            bad.append(f"{col!r} ({s.dtype}: {_examples(unparsed.tolist())})")
        else:
            X[col] = parsed.astype(float)
    if bad:
        raise DataError(f"numeric feature column(s) hold values that are not numbers: {'; '.join(bad)}")
    for col in (c for c in categorical if c in X.columns):
        s = X[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            if pd.api.types.is_float_dtype(s) and s.dropna().mod(1).eq(0).all():
                s = s.astype("Int64")  # 7.0 (an int column with a gap) is the code "7"
            X[col] = pd.Series([None if pd.isna(v) else str(v) for v in s], index=s.index, dtype=object)
    return X


def load_verified(artifacts: ArtifactStore, uri: str, sha256: str, workdir: Path | None = None) -> Predictor:
    """Fetch a model archive, refuse it unless its SHA-256 matches, then load it."""
    data = artifacts.read_verified(uri, sha256)
    folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="dagml-model-"))
    return Predictor.load(unpack(data, folder))
