"""Artifacts (data, split, recipe, models, reports) in a local folder or an object store.

Paths go through fsspec, so ``/srv/dagml`` and ``s3://bucket/dagml`` are the same code.
Layout: ``<root>/<dag_id>/<partition>/<run_id>/<family>/<file>``. A model is one tar
archive whose SHA-256 is recorded in the results DB; ``read_verified`` refuses bytes
whose digest differs, so nothing is unpickled that was not written by dagml.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from contextlib import contextmanager
from pathlib import Path

from dagml.errors import ChecksumMismatch


def safe_part(value: str) -> str:
    """Run ids carry ':' and '+' (manual__2026-01-01T00:00:00+00:00): keep paths portable."""
    return re.sub(r"[^A-Za-z0-9_.=-]", "_", str(value))


@contextmanager
def _naming(uri: str):
    """An object store's errors ("The specified bucket does not exist") name no path: add it."""
    try:
        yield
    except OSError as exc:
        if uri in str(exc):
            raise
        try:
            named = type(exc)(f"{uri}: {exc}")
        except TypeError:
            named = OSError(f"{uri}: {exc}")
        raise named from exc


class ArtifactStore:
    def __init__(self, root: str, storage_options: dict | None = None):
        self.root = str(root).rstrip("/")
        self.storage_options = storage_options or {}

    @classmethod
    def from_settings(cls) -> ArtifactStore:
        from dagml import settings

        return cls(settings.artifacts_root(), settings.artifacts_storage_options())

    @property
    def is_local(self) -> bool:
        return "://" not in self.root or self.root.startswith("file://")

    def local_path(self, uri: str) -> Path | None:
        """``uri`` as a path on this machine, or None on an object store."""
        return Path(uri.removeprefix("file://")) if self.is_local else None

    def _fs(self, uri: str):
        import fsspec

        return fsspec.core.url_to_fs(uri, **self.storage_options)

    def uri(self, *parts: str) -> str:
        return "/".join([self.root, *(safe_part(p) for p in parts)])

    def write_bytes(self, uri: str, data: bytes) -> str:
        return self._write(uri, lambda fs, tmp: fs.pipe_file(tmp, data))

    def write_file(self, uri: str, local: Path) -> str:
        """Copy a local file to ``uri`` without reading it into memory."""
        return self._write(uri, lambda fs, tmp: fs.put_file(str(local), tmp))

    def _write(self, uri: str, put) -> str:
        fs, path = self._fs(uri)
        if self.is_local:  # an object store has no folders (and dagml never creates buckets)
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{path}.tmp"
        with _naming(uri):
            put(fs, tmp)
            fs.mv(tmp, path)  # readers never see half a file
        return uri

    def read_bytes(self, uri: str) -> bytes:
        fs, path = self._fs(uri)
        with _naming(uri), fs.open(path, "rb") as fh:
            return fh.read()

    def exists(self, uri: str) -> bool:
        fs, path = self._fs(uri)
        with _naming(uri):
            return fs.exists(path)

    def size(self, uri: str) -> int:
        fs, path = self._fs(uri)
        with _naming(uri):
            return fs.size(path)

    def write_json(self, uri: str, obj) -> str:
        return self.write_bytes(uri, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, uri: str):
        return json.loads(self.read_bytes(uri))

    def write_parquet(self, uri: str, df) -> str:
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return self.write_bytes(uri, buf.getvalue())

    def read_parquet(self, uri: str):
        import pandas as pd

        return pd.read_parquet(io.BytesIO(self.read_bytes(uri)))

    def write_model(self, uri: str, folder: Path) -> str:
        """Archive a model folder to ``uri``; returns the archive's SHA-256."""
        data = pack(folder)
        self.write_bytes(uri, data)
        return sha256(data)

    def read_verified(self, uri: str, expected_sha256: str) -> bytes:
        data = self.read_bytes(uri)
        actual = sha256(data)
        if actual != expected_sha256:
            raise ChecksumMismatch(f"{uri}: SHA-256 {actual} does not match the recorded {expected_sha256}; not loading it")
        return data


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(folder: Path) -> bytes:
    """A deterministic tar of a folder (sorted names, zeroed times), so equal models hash equal."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(Path(folder).rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_file():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    return buf.getvalue()


def unpack(data: bytes, folder: Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(folder, filter="data")
    return folder
