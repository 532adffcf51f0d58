"""Load a stored model of any kind (its checksum first) and predict on a raw pandas frame.

A model archive holds ``manifest.json`` (family, task, classes, features), the fitted
``preprocessor.joblib`` and the family's own files under ``model/``. Search, select,
promote and scoring run in different processes, so everything goes through here.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from dagml.store.artifacts import ArtifactStore, unpack

MANIFEST = "manifest.json"


def save_model_folder(folder: Path, manifest: dict, preprocessor, model) -> Path:
    import joblib

    folder = Path(folder)
    (folder / "model").mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    joblib.dump(preprocessor, folder / "preprocessor.joblib")
    model.save(folder / "model")
    return folder


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
        model = get_family(manifest["family"]).model_class.load(folder / "model")
        return cls(manifest, joblib.load(folder / "preprocessor.joblib"), model)

    def predict_raw(self, df):
        """Class probabilities (n, k) for classification, values for regression."""
        missing = [c for c in self.manifest["features"] if c not in df.columns]
        if missing:
            raise ValueError(f"input is missing column(s) the model was trained on: {', '.join(missing)}")
        return self.model.predict(self.preprocessor.transform(df[self.manifest["features"]]))

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


def load_verified(artifacts: ArtifactStore, uri: str, sha256: str, workdir: Path | None = None) -> Predictor:
    """Fetch a model archive, refuse it unless its SHA-256 matches, then load it."""
    data = artifacts.read_verified(uri, sha256)
    folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="dagml-model-"))
    return Predictor.load(unpack(data, folder))
