"""Declarative use-case specs: one YAML file per use case, merged over shared defaults, validated on load.

A spec is the only thing a data engineer writes (besides dbt models) to add a use case. Validation is
strict (unknown keys are rejected) and every error names the file, the field path and what to do.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlplatform import constants as C
from mlplatform.errors import SpecError

NAME_PATTERN = r"^[a-z][a-z0-9_]{1,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Strict):
    """Where raw data comes from. ``generator`` names a registered synthetic source (see datagen)."""

    generator: Literal["retail_sales"]
    history_start: date = Field(description="First day of raw history landed before the first run.")
    params: dict[str, Any] = Field(default_factory=dict, description="Generator keyword arguments.")


class TransformSpec(_Strict):
    """Which dbt nodes build this use case's features."""

    select: str = Field(description="dbt node selection for `dbt build --select`.")
    features_model: str = Field(description="Mart with one row per series and date (features and target).")
    calendar_model: str = Field(description="Mart with one row per calendar date, covering the horizon.")


class ValidationSpec(_Strict):
    suite: str = Field(description="Great Expectations suite JSON, relative to include/expectations/.")
    sample_size: int = Field(default=5, ge=1, le=100, description="Offending values quoted per failure.")


class FeatureSpec(_Strict):
    time_column: str
    series_keys: list[str] = Field(min_length=1)
    target: str
    numeric: list[str] = Field(min_length=1)
    categorical: list[str] = Field(default_factory=list)
    calendar: list[str] = Field(
        default_factory=list, description="Columns of the calendar model joined on the target date."
    )
    censored_flag: str | None = Field(
        default=None, description="Boolean column marking rows whose target is censored (e.g. stock-out)."
    )

    @model_validator(mode="after")
    def _no_overlap(self) -> FeatureSpec:
        cols = [self.time_column, self.target, *self.numeric, *self.categorical]
        dupes = sorted({c for c in cols if cols.count(c) > 1})
        if dupes:
            raise ValueError(f"columns listed twice across time_column/target/numeric/categorical: {dupes}")
        return self


class ModelSpec(_Strict):
    estimator: Literal["hist_gradient_boosting"] = "hist_gradient_boosting"
    params: dict[str, Any] = Field(default_factory=dict, description="HistGradientBoostingRegressor kwargs.")
    quantiles: list[float] = Field(default=[0.1, 0.5, 0.9], min_length=1)
    training_window_days: int = Field(default=730, ge=28)
    origin_stride_days: int = Field(default=1, ge=1, description="Use every n-th day as a training origin.")
    max_training_rows: int | None = Field(
        default=20_000, ge=1_000,
        description="Seeded sample cap per fit (backtest folds and final model alike); null = no cap.",
    )
    random_state: int = 0

    @field_validator("quantiles")
    @classmethod
    def _quantiles_in_range(cls, v: list[float]) -> list[float]:
        if any(not 0.0 < q < 1.0 for q in v):
            raise ValueError("every quantile must be strictly between 0 and 1, e.g. [0.1, 0.5, 0.9]")
        if 0.5 not in v:
            raise ValueError("quantiles must include 0.5 (the point forecast used for WAPE, MASE and bias)")
        return sorted(v)


class ForecastSpec(_Strict):
    horizon: int = Field(ge=1, le=366, description="Periods ahead forecast from each origin.")


class BacktestSpec(_Strict):
    folds: int = Field(default=3, ge=1, le=52)
    fold_step_days: int = Field(default=14, ge=1)
    season_length: int = Field(default=7, ge=1, description="Seasonal-naive baseline period.")
    min_improvement: float = Field(
        default=0.0, ge=0.0, lt=1.0,
        description="Required relative WAPE improvement over the baseline to promote (0.05 = 5 %).",
    )


class MonitoringSpec(_Strict):
    window_days: int = Field(default=28, ge=1, description="Latest window compared with the reference.")
    reference_days: int = Field(default=180, ge=7, description="Training days kept as drift reference.")
    drift_share: float = Field(default=0.5, gt=0.0, le=1.0, description="Share of drifted columns = drift.")
    columns: list[str] = Field(default_factory=list, description="Columns to monitor; empty = all features.")
    max_rows: int = Field(default=20_000, ge=100, description="Row cap per side (Evidently is slow on big frames).")


class PublishSpec(_Strict):
    chunk_rows: int = Field(default=100_000, ge=1_000, description="Rows per Parquet part (bounds memory).")


class UseCaseSpec(_Strict):
    spec_version: Literal[1] = 1
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(min_length=10)
    owner: str
    consumers: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    kind: Literal["forecast"]
    frequency: Literal["daily"] = "daily"
    schedule: str | None = "@daily"
    start_date: date
    catchup: bool = False
    retries: int = Field(default=2, ge=0, le=10)
    retry_delay_minutes: int = Field(default=5, ge=0)
    source: SourceSpec
    transform: TransformSpec
    validation: ValidationSpec
    features: FeatureSpec
    model: ModelSpec = ModelSpec()
    forecast: ForecastSpec
    backtest: BacktestSpec = BacktestSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    publish: PublishSpec = PublishSpec()

    @property
    def dag_id(self) -> str:
        return self.name

    @property
    def suite_path(self) -> Path:
        return C.EXPECTATIONS_DIR / self.validation.suite

    @property
    def quantile_columns(self) -> list[str]:
        """Output column per quantile: 0.1 -> p10."""
        return [quantile_column(q) for q in self.model.quantiles]

    def fingerprint(self) -> str:
        """Stable hash of the full spec: part of every model version's identity."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def quantile_column(q: float) -> str:
    return f"p{round(q * 100):02d}"


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
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the top level must be a mapping of fields, got {type(data).__name__}")
    return data


def _format_error(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid use-case spec ({exc.error_count()} problem(s)):"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "<top level>"
        if err["type"] == "extra_forbidden":
            hint = "unknown field: remove it or fix its spelling"
        elif err["type"] == "missing":
            hint = "required field is missing: add it"
        else:
            hint = f"{err['msg']} (got {err.get('input')!r})"
        lines.append(f"  - field '{field}': {hint}")
    return "\n".join(lines)


def load_spec(path: Path, defaults: dict | None = None) -> UseCaseSpec:
    """Load one spec file, merged over ``defaults``; raise SpecError naming file and field."""
    path = Path(path)
    raw = _deep_merge(defaults or {}, _read_yaml(path))
    try:
        spec = UseCaseSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_error(path, exc)) from None
    if spec.name != path.stem:
        raise SpecError(f"{path}: field 'name' is {spec.name!r} but must equal the file name {path.stem!r}")
    if not spec.suite_path.is_file():
        raise SpecError(f"{path}: field 'validation.suite': no such file {spec.suite_path}")
    return spec


def spec_paths(directory: Path = C.USE_CASES_DIR) -> list[Path]:
    """Spec files in ``directory`` (files starting with '_' hold shared defaults, not use cases)."""
    return sorted(p for p in Path(directory).glob("*.yaml") if not p.name.startswith("_"))


def load_defaults(directory: Path = C.USE_CASES_DIR) -> dict:
    path = Path(directory) / C.DEFAULTS_SPEC_NAME
    return _read_yaml(path) if path.is_file() else {}


def load_all_specs(directory: Path = C.USE_CASES_DIR) -> tuple[list[UseCaseSpec], dict[Path, str]]:
    """Every valid spec, plus an error message per invalid file: one bad spec never hides the others."""
    defaults = load_defaults(directory)
    specs, errors = [], {}
    for path in spec_paths(directory):
        try:
            specs.append(load_spec(path, defaults))
        except SpecError as exc:
            errors[path] = str(exc)
    return specs, errors


def get_spec(name: str, directory: Path = C.USE_CASES_DIR) -> UseCaseSpec:
    """The spec of one use case by name (the CLI and the DAG tasks use this)."""
    if not re.match(NAME_PATTERN, name):
        raise SpecError(f"use case name {name!r} does not match {NAME_PATTERN}")
    path = Path(directory) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in spec_paths(directory)) or "none"
        raise SpecError(f"no spec for use case {name!r} at {path}; known use cases: {known}")
    return load_spec(path, load_defaults(directory))
