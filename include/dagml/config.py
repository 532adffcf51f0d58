"""A dataset config: one YAML file per dataset, validated by pydantic.

``load_config`` reads one file (merged over an optional ``_defaults.yaml`` beside it)
and raises ``ConfigError`` naming the file and every bad field. Nothing here touches
data, a database or a heavy library: it runs at DAG parse time.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dagml.metrics import DEFAULT_METRIC, METRICS

DEFAULTS_FILE = "_defaults.yaml"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: configs are read at every parse
BASELINE_FAMILY = "sklearn:dummy"
Task = Literal["binary", "multiclass", "regression"]
# refit_full: auto refits below this many rows with a target, and on any holdout-validated partition
# under a whole-run budget, which holds back REFIT_SHARE of its seconds for the refit (docs/benchmarks.md,
# "Letter: the refit on all rows")
REFIT_FULL_MAX_ROWS = 5000
REFIT_SHARE = 0.3


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value):
    """``90``, ``"90s"``, ``"5m"``, ``"6h"``, ``"1d"`` -> seconds."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value)
        if not match:
            raise ValueError(f"{value!r} is not a duration like 90s, 5m, 6h or 1d")
        return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    return value


class Wait(_Strict):
    """Wait for a missing partition (file, object or rows) instead of failing at once; the wait
    holds no worker slot (the sensor reschedules itself)."""

    timeout: float = Field(6 * 3600, gt=0, le=7 * 86400, description="seconds, or 90s / 5m / 6h / 1d")
    poke_interval: float = Field(300, ge=1, le=86400, description="seconds between looks")

    @field_validator("timeout", "poke_interval", mode="before")
    @classmethod
    def _durations(cls, value):
        return _duration(value)

    @model_validator(mode="after")
    def _interval_within_timeout(self):
        if self.poke_interval > self.timeout:
            raise ValueError(f"poke_interval ({self.poke_interval:g} s) is longer than timeout ({self.timeout:g} s)")
        return self


class Source(_Strict):
    """Where a run's partition comes from: either ``uri`` or ``sql``.

    ``uri`` is a Jinja template rendered per run (``{{ ds }}``, ``{{ data_interval_start }}``...):
    a local CSV or Parquet path, an ``s3://bucket/key`` object, or ``sklearn://<name>`` for a
    dataset bundled with scikit-learn. ``sql`` is a query with ``:name`` binds, run on the
    database of the Airflow connection ``conn_id``; only the ``parameters`` values are
    templated, and they are bound, never formatted into the query."""

    uri: str | None = Field(None, min_length=1)
    sql: str | None = Field(None, min_length=1, description="a query with :name binds (never templated)")
    parameters: dict[str, Any] = Field(default_factory=dict, description="bind values, templated per run")
    format: Literal["auto", "csv", "parquet"] = "auto"
    options: dict[str, Any] = Field(default_factory=dict, description="extra pandas reader arguments, e.g. sep")
    conn_id: str | None = Field(None, min_length=1, description=(
        "Airflow connection: type aws for s3:// (credentials, endpoint); postgres or mysql for sql"))
    wait: Wait | None = None

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.uri is None) == (self.sql is None):
            raise ValueError("give exactly one of uri (a file or object) and sql (a query)")
        if self.sql is not None:
            if self.conn_id is None:
                raise ValueError("sql: needs conn_id, the Airflow connection of the database to query")
            binds = set(re.findall(r"(?<![:\w]):([A-Za-z_]\w*)", self.sql))
            missing = sorted(binds - set(self.parameters))
            if missing:
                raise ValueError(f"sql: no value in parameters for :{', :'.join(missing)}")
        elif self.parameters:
            raise ValueError("parameters: only a sql source takes bind parameters")
        return self

    @property
    def where(self) -> str:
        """The source as a person names it in a message."""
        return self.uri if self.uri is not None else f"connection {self.conn_id!r}"


def _asset_uris(uris: list[str]) -> list[str]:
    if not uris:
        raise ValueError("an empty list of assets never triggers a run; use null for manual runs")
    bad = [v for v in uris if "://" not in v]
    if bad:
        raise ValueError(f"{', '.join(map(repr, bad))}: an asset is a URI like s3://bucket/sales or warehouse://sales")
    return uris


class AssetSchedule(_Strict):
    """Run when upstream DAGs publish these assets. ``partitioned``: once per partition key the
    producers put on their events (Airflow's PartitionedAssetTimetable); the run trains on it."""

    assets: list[str]
    partitioned: bool = False

    _uris = field_validator("assets")(classmethod(lambda cls, v: _asset_uris(v)))


class Scoring(_Strict):
    """A scoring DAG ``score__<name>``: the current champion predicts each partition of ``source``."""

    source: Source
    output: str = Field(min_length=1, description="templated local path or s3:// URI of the predictions")
    key_columns: list[str] = Field(default_factory=list, description="input columns copied to the output")
    schedule: str | None = Field(None, description="cron or preset, 'champion' (when the champion changes), or null")
    conn_id: str | None = Field(None, min_length=1, description="Airflow connection (type aws) for an s3:// output")


class Budget(_Strict):
    max_evals: int = Field(20, ge=1, le=10_000)
    seconds: float = Field(120, gt=0, le=7 * 24 * 3600)
    total_seconds: float | None = Field(None, gt=0, le=7 * 24 * 3600, description=(
        "the whole run's search seconds, shared by its families by their relative cost; when set, "
        "`seconds` applies only to a family whose entry names it (as a cap). On a partition validated by "
        f"holdout, {REFIT_SHARE:.0%} of them pay for the refit on all rows (`refit_full`)"))


MAX_THREADS = 256
MAX_SHARDS = 64


class FamilyEntry(_Strict):
    name: str
    max_evals: int | None = Field(None, ge=1, le=10_000)
    seconds: float | None = Field(None, gt=0, le=7 * 24 * 3600)
    threads: int = Field(1, ge=1, le=MAX_THREADS, description=(
        "native threads (OpenMP, BLAS, the library's own) the family's search and fits use; the search "
        "task then holds as many slots of the search pool (DAGML_SEARCH_POOL), so a worker is not "
        "oversubscribed"))
    shards: int = Field(1, ge=1, le=MAX_SHARDS, description=(
        "mapped search instances the family's search is split into, on whatever worker slots are free: "
        "each with its own seed and a k-th of the family's evaluations and seconds; select keeps the best "
        "shard as the family's leaderboard row"))
    memory_mb: float | None = Field(None, gt=0, le=2**30, description=(
        "what one trial or fit of the family may allocate above its search task's process, in MB (scikit-learn "
        "kind: it runs in a forked child with this address-space limit); a trial above it fails as out of "
        "memory and the search goes on; unset: only the machine's memory bounds it"))

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from dagml.families import REGISTRY

        if ":" not in name:  # a bare name means scikit-learn: `random_forest`
            name = f"sklearn:{name}"
        if name not in REGISTRY:
            raise ValueError(f"unknown family {name!r}; valid: {', '.join(sorted(REGISTRY))}")
        return name

    @model_validator(mode="after")
    def _shardable(self):
        if self.shards > 1 and self.name == BASELINE_FAMILY:  # its space has two points
            raise ValueError(f"shards: {BASELINE_FAMILY}, the baseline, searches its two points in one search")
        if self.max_evals is not None and self.shards > self.max_evals:
            raise ValueError(f"shards: {self.shards} shards of {self.max_evals} evaluations (max_evals); "
                             "each shard needs at least one")
        return self

    @model_validator(mode="after")
    def _memory_where_forked(self):
        from dagml.families import REGISTRY

        if self.memory_mb is not None and not REGISTRY[self.name].hard_time_limit:
            raise ValueError(f"memory_mb: {self.name}'s fits run in the task process (not forked), so no limit "
                             "can hold them alone; it applies to scikit-learn-kind families")
        return self

    def budget(self, default: Budget) -> Budget:
        return Budget(
            max_evals=self.max_evals or default.max_evals,
            seconds=self.seconds or default.seconds,
            total_seconds=default.total_seconds,
        )

    @property
    def kind(self) -> str:
        return self.name.split(":", 1)[0]


class Split(_Strict):
    test_size: float = Field(0.2, gt=0, lt=0.9)
    validation: Literal["auto", "holdout", "kfold"] = Field("auto", description=(
        "auto: kfold when the non-test rows are fewer than kfold_below (a validation split of a few "
        "dozen rows lets the family that got lucky on them win), else holdout"))
    valid_size: float = Field(0.2, gt=0, lt=0.9, description="share of the non-test rows, for holdout")
    valid_max_rows: int | None = Field(50_000, ge=100, description=(
        "for holdout: at most so many validation rows, the rest of their share trains. Every trial of every "
        "family predicts them: on a large partition that costs more search time than it buys (50,000 rows "
        "give an accuracy to about +-0.005); null: no cap"))
    folds: int = Field(5, ge=2, le=20, description="for kfold")
    kfold_below: int = Field(5000, ge=0, description="for auto: rows (not test) below which it is kfold")

    def resolved(self, labelled_rows: int) -> str:
        """holdout or kfold, for a partition with this many rows that have a target."""
        if self.validation != "auto":
            return self.validation
        return "kfold" if labelled_rows * (1 - self.test_size) < self.kfold_below else "holdout"


class Preprocessing(_Strict):
    onehot_max_categories: int = Field(20, ge=2, le=1000, description="above this, categoricals are ordinal-encoded")


class SparkOptions(_Strict):
    direct_read_mb: float = Field(256, ge=0, description=(
        "above this partition size, Spark families read the Parquet partition directly, not through pandas"))


class Promotion(_Strict):
    margin: float = Field(0.0, ge=0, description="how much better the challenger must score on test rows")


class Registry(_Strict):
    """Register each run's winner in a model registry (its task ``register`` runs after promote)."""

    kind: Literal["mlflow"] = Field("mlflow", description="mlflow: MLflow's model registry, as `dagml.<name>`")
    conn_id: str = Field("mlflow", min_length=1, description=(
        "Airflow connection whose URI is the MLflow tracking URI: http(s)://server, or a sqlite/postgres/mysql "
        "database; extra artifact_location sets where a database store keeps the models"))


class DatasetConfig(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    description: str = ""
    source: Source
    target: str = Field(min_length=1)
    task: Task | None = None
    metric: str | None = None
    families: list[FamilyEntry] = Field(default_factory=lambda: [FamilyEntry(name=BASELINE_FAMILY)])
    disabled_kinds: list[Literal["r", "spark"]] = Field(
        default_factory=list, description="drop every family of these kinds, e.g. where no R worker runs")
    budget: Budget = Budget()
    split: Split = Split()
    preprocessing: Preprocessing = Preprocessing()
    promotion: Promotion = Promotion()
    spark: SparkOptions = SparkOptions()
    seed: int = Field(42, ge=0, le=2**32 - 1)
    drop_columns: list[str] = Field(default_factory=list)
    schedule: str | list[str] | AssetSchedule | None = Field(None, description=(
        "cron or preset (a run per completed interval), a list of asset URIs (a run when all have new events), "
        "{assets: [...], partitioned: true} (a run per published partition), or null (manual runs only)"))
    warm_start: bool = Field(True, description="start searches from the best points of earlier partitions")
    ensemble: bool = Field(True, description=(
        "offer `ensemble:greedy`, a weighted mean of the best families' predictions, as one more leaderboard row"))
    refit_full: Literal["auto"] | bool = Field("auto", description=(
        "refit a promoted model on all the partition's rows with a target; auto: below "
        f"{REFIT_FULL_MAX_ROWS} such rows, and on a holdout-validated partition with `budget.total_seconds`"))
    scoring: Scoring | None = None
    registry: Registry | None = Field(None, description=(
        "register each run's winner as a version of `dagml.<name>` (alias challenger); alias champion follows "
        "dagml's champion"))
    start_date: date = date(2026, 1, 1)
    catchup: bool = False
    max_active_runs: int = Field(1, ge=1, le=64)
    retries: int = Field(1, ge=0, le=20)
    retry_delay: timedelta = timedelta(minutes=1)
    owner: str = "dagml"
    tags: list[str] = Field(default_factory=list)

    @field_validator("families", mode="before")
    @classmethod
    def _families_shorthand(cls, value):
        # `families: [random_forest, {name: svm, max_evals: 5}]`
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, name):
        if name is not None and name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; valid: {', '.join(sorted(METRICS))}")
        return name

    @field_validator("schedule", mode="before")
    @classmethod
    def _asset_schedule(cls, value):
        if not isinstance(value, dict):
            return value
        try:
            return AssetSchedule.model_validate(value)
        except ValidationError as exc:  # one message, not one per member of the union
            raise ValueError("; ".join(_describe(e) for e in exc.errors())) from None

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value):
        if isinstance(value, list):
            return _asset_uris(value)
        if value is None or isinstance(value, AssetSchedule):
            return value
        if value.startswith("@"):
            from dagml.partitions import CRON_PRESETS

            if value not in CRON_PRESETS:
                raise ValueError(f"{value!r}: a run trains on a completed interval, so the schedule is a cron "
                                 f"expression or one of {', '.join(CRON_PRESETS)}")
            return value
        if len(value.split()) not in (5, 6):
            raise ValueError(f"{value!r} is neither a cron expression nor a preset like @daily")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.disabled_kinds:
            kept = [f for f in self.families if f.kind not in self.disabled_kinds]
            object.__setattr__(self, "families", kept)
        names = [f.name for f in self.families]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"families: listed more than once: {', '.join(duplicated)}")
        if BASELINE_FAMILY not in names:  # every leaderboard carries the baseline row
            object.__setattr__(self, "families", [*self.families, FamilyEntry(name=BASELINE_FAMILY)])
        unshardable = [f"{f.name} ({f.shards})" for f in self.families
                       if f.max_evals is None and f.shards > self.budget.max_evals]
        if unshardable:
            raise ValueError(f"families: shards: more shards than budget.max_evals ({self.budget.max_evals}) "
                             f"evaluations for {', '.join(unshardable)}; each shard needs at least one")
        if self.target in self.drop_columns:
            raise ValueError(f"drop_columns: contains the target {self.target!r}")
        if self.metric and self.task and self.task not in METRICS[self.metric].tasks:
            raise ValueError(f"metric: {self.metric!r} does not apply to a {self.task} task")
        if self.task:
            from dagml.families import REGISTRY

            unfit = [f.name for f in self.families if self.task not in REGISTRY[f.name].tasks]
            if unfit:
                raise ValueError(f"families: {', '.join(unfit)} cannot do a {self.task} task")
        return self

    @property
    def dag_id(self) -> str:
        return f"automl__{self.name}"

    @property
    def schedule_assets(self) -> list[str]:
        """The asset URIs that trigger this dataset's runs (none for a cron or manual schedule)."""
        if isinstance(self.schedule, list):
            return self.schedule
        return self.schedule.assets if isinstance(self.schedule, AssetSchedule) else []

    @property
    def scoring_dag_id(self) -> str:
        return f"score__{self.name}"

    @property
    def champion_asset(self) -> str:
        """The asset whose events say the champion changed (extra: family, partition, score, URI, digest)."""
        return f"dagml://{self.name}/champion"

    def metric_for(self, task: str) -> str:
        return self.metric or DEFAULT_METRIC[task]


class ConfigError(ValueError):
    """A config file that cannot become a DAG; the message names the file and fields."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"cannot read: {exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, [f"not valid YAML: {' '.join(str(exc).split())}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(path, [f"must be a mapping of fields, got {type(data).__name__}"])
    return data


def _describe(err: dict) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{where}: {msg}"


def load_config(path: Path | str, defaults: dict | None = None) -> DatasetConfig:
    """Read and validate one dataset config. ``defaults`` (a parsed ``_defaults.yaml``) sit under it."""
    path = Path(path)
    if defaults is None:
        defaults_path = path.parent / DEFAULTS_FILE
        defaults = _read_yaml(defaults_path) if defaults_path.exists() and defaults_path != path else {}
    data = _deep_merge(defaults, _read_yaml(path))
    data.setdefault("name", re.sub(r"[^a-z0-9_]", "_", path.stem.lower()))
    try:
        return DatasetConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, [_describe(e) for e in exc.errors()]) from None


def config_files(folder: Path | str) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.glob("*.y*ml") if not p.name.startswith("_") and p.suffix in (".yaml", ".yml"))


def _defaults(folder: Path, errors: list[ConfigError]) -> dict:
    path = folder / DEFAULTS_FILE
    if not path.exists():
        return {}
    try:
        return _read_yaml(path)
    except ConfigError as exc:
        errors.append(exc)
        return {}


def load_one(folder: Path | str, name: str) -> DatasetConfig | None:
    """The config named ``name`` when it sits in ``<name>.yaml`` (the usual case): a task process
    needs only its own DAG, so it need not validate every other file. None when not found so."""
    folder, errors = Path(folder), []
    for path in (folder / f"{name}.yaml", folder / f"{name}.yml"):
        if path.exists():
            try:
                config = load_config(path, _defaults(folder, errors))
            except ConfigError:
                return None
            return config if config.name == name and not errors else None
    return None


def load_configs(folder: Path | str) -> tuple[list[DatasetConfig], list[ConfigError]]:
    """Every config in a folder: the valid ones, and an error per invalid file (none hides another)."""
    folder = Path(folder)
    errors: list[ConfigError] = []
    defaults = _defaults(folder, errors)
    configs: list[DatasetConfig] = []
    seen: dict[str, Path] = {}
    for path in config_files(folder):
        try:
            config = load_config(path, defaults)
        except ConfigError as exc:
            errors.append(exc)
            continue
        if config.name in seen:
            errors.append(ConfigError(path, [f"name: {config.name!r} is already used by {seen[config.name]}"]))
            continue
        seen[config.name] = path
        configs.append(config)
    return configs, errors
