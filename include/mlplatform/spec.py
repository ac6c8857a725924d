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
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mlplatform import constants as C
from mlplatform.errors import SpecError

NAME_PATTERN = r"^[a-z][a-z0-9_]{1,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


IDENT_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
RELATION_PATTERN = r"^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$"

Kind = Literal["forecast", "regression", "classification"]
Frequency = Literal["daily", "weekly", "monthly", "quarterly"]
Metric = Literal["wape", "mase", "mae", "rmse", "log_loss", "brier", "roc_auc"]

# Primary metric per kind when the spec does not name one; see metrics.HIGHER_IS_BETTER for direction.
DEFAULT_METRIC: dict[str, str] = {"forecast": "wape", "regression": "mae", "classification": "log_loss"}
METRICS_BY_KIND: dict[str, frozenset[str]] = {
    "forecast": frozenset({"wape", "mase"}),
    "regression": frozenset({"mae", "rmse", "wape"}),
    "classification": frozenset({"log_loss", "brier", "roc_auc"}),
}


ColumnType = Literal["date", "string", "integer", "number", "boolean"]
PREFIX_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}(/[a-z0-9][a-z0-9_-]{0,62}){0,4}$"


class FileTableSpec(_Strict):
    """The contract of one raw table delivered as files: what a delivery must look like.

    Blocking (the run stops, nothing of the batch lands): a file that cannot be read (corrupt, truncated
    Parquet, wrong encoding or delimiter), a missing or renamed column, a day with no rows. Row-level
    (the row is quarantined to object storage with its reason, the rest lands): a null or unparseable
    value in a typed column, a null key, a duplicated key, a value outside ``min``/``max``, a date outside
    the file's day or after the run date. Warnings (recorded in the landing report, the rows land): an
    extra column (dropped), extreme outliers, late rows for a day landed earlier.
    """

    kind: Literal["fact", "dimension"] = Field(
        description="fact: one folder per day, rows appended; dimension: the latest file replaces the table.")
    columns: dict[Annotated[str, Field(pattern=IDENT_PATTERN)], ColumnType] = Field(min_length=1)
    keys: list[Annotated[str, Field(pattern=IDENT_PATTERN)]] = Field(min_length=1)
    date_column: str | None = Field(default=None, pattern=IDENT_PATTERN,
                                    description="The business date of a row (fact tables).")
    format: Literal["csv", "parquet"] = "csv"
    delimiter: Literal[",", ";", "|", "\t"] = ","
    encoding: Literal["utf-8", "latin-1", "utf-16"] = "utf-8"
    min: dict[Annotated[str, Field(pattern=IDENT_PATTERN)], float] = Field(default_factory=dict)
    max: dict[Annotated[str, Field(pattern=IDENT_PATTERN)], float] = Field(default_factory=dict)
    outlier_z: float = Field(default=8.0, gt=0, description="Robust z-score above which a value is an outlier (warning).")

    @model_validator(mode="after")
    def _columns_known(self) -> FileTableSpec:
        named = [*self.keys, *self.min, *self.max, *([self.date_column] if self.date_column else [])]
        unknown = sorted({c for c in named if c not in self.columns})
        if unknown:
            raise ValueError(f"{unknown} are not among the declared columns {sorted(self.columns)}")
        if self.kind == "fact" and not self.date_column:
            raise ValueError("a fact table needs 'date_column'")
        if self.date_column and self.columns[self.date_column] != "date":
            raise ValueError(f"date_column {self.date_column!r} must be declared with type 'date'")
        return self


class FilesSourceSpec(_Strict):
    """Raw data delivered as files under ``<inbox>/<table>/day=YYYY-MM-DD/`` in the platform's bucket."""

    inbox: str = Field(pattern=PREFIX_PATTERN, description="Bucket prefix the deliveries arrive under.")
    tables: dict[Annotated[str, Field(pattern=IDENT_PATTERN)], FileTableSpec] = Field(min_length=1)


class SourceSpec(_Strict):
    """Where raw data comes from.

    ``type: generator`` lands a registered, seeded synthetic source (see ``datagen.SOURCES``) day by day;
    ``type: warehouse`` means an external loader (Fivetran, Airbyte, a COPY job...) already fills
    ``table`` in the warehouse, and ``land_raw`` only checks that it holds rows up to the run date;
    ``type: files`` means upstream drops CSV/Parquet files into the bucket, which ``land_raw`` checks
    against the contract in ``files`` and lands (see :class:`FileTableSpec`).
    """

    type: Literal["generator", "warehouse", "files"] = "generator"
    generator: str | None = Field(default=None, pattern=IDENT_PATTERN,
                                  description="Registered synthetic source (type: generator).")
    history_start: date = Field(description="First day of raw history.")
    params: dict[str, Any] = Field(default_factory=dict, description="Generator keyword arguments.")
    table: str | None = Field(default=None, pattern=RELATION_PATTERN,
                              description="schema.table loaded by an external tool (type: warehouse).")
    date_column: str | None = Field(default=None, pattern=IDENT_PATTERN,
                                    description="Date column of `table` used for the readiness check.")
    files: FilesSourceSpec | None = Field(default=None, description="Delivered files and their contract (type: files).")

    @model_validator(mode="after")
    def _fields_for_type(self) -> SourceSpec:
        if self.type == "generator" and not self.generator:
            raise ValueError("type 'generator' needs 'generator' (the name of a registered synthetic source)")
        if self.type == "warehouse" and not (self.table and self.date_column):
            raise ValueError("type 'warehouse' needs 'table' (schema.table) and 'date_column'")
        if self.type == "files" and not self.files:
            raise ValueError("type 'files' needs 'files' (inbox and the tables' contracts)")
        if self.type == "files" and not any(t.kind == "fact" for t in self.files.tables.values()):
            raise ValueError("type 'files' needs at least one fact table (kind: fact)")
        return self


class TransformSpec(_Strict):
    """Which dbt nodes build this use case's features."""

    select: str = Field(pattern=r"^[A-Za-z0-9_+@:.,* -]+$",
                        description="dbt node selection for `dbt build --select`.")
    features_model: str = Field(pattern=IDENT_PATTERN,
                                description="Mart with one row per series (or entity) and date.")
    calendar_model: str | None = Field(
        default=None, pattern=IDENT_PATTERN,
        description="Mart with one row per period date covering the horizon (forecast kind).")


class ValidationSpec(_Strict):
    suite: str = Field(description="Great Expectations suite JSON, relative to include/expectations/.")
    sample_size: int = Field(default=5, ge=1, le=100, description="Offending values quoted per failure.")


_Col = Annotated[str, Field(pattern=IDENT_PATTERN)]


class FeatureSpec(_Strict):
    """Columns of the features mart. For non-daily frequencies ``time_column`` holds the period's last
    day (week ending, month end, quarter end), so 'rows up to the run date' means complete periods."""

    time_column: _Col
    series_keys: list[_Col] = Field(
        min_length=1, description="Series (forecast) or entity (regression/classification) id columns.")
    target: _Col
    numeric: list[_Col] = Field(min_length=1)
    categorical: list[_Col] = Field(default_factory=list)
    calendar: list[_Col] = Field(
        default_factory=list, description="Columns of the calendar model joined on the target date."
    )
    censored_flag: _Col | None = Field(
        default=None, description="Boolean column marking rows whose target is censored (e.g. stock-out)."
    )

    @model_validator(mode="after")
    def _no_overlap(self) -> FeatureSpec:
        cols = [self.time_column, self.target, *self.numeric, *self.categorical]
        dupes = sorted({c for c in cols if cols.count(c) > 1})
        if dupes:
            raise ValueError(f"columns listed twice across time_column/target/numeric/categorical: {dupes}")
        return self


Candidate = Literal["seasonal_naive", "auto_ets", "auto_theta", "gbm", "gbm_scaled", "ensemble"]
# Every forecast candidate, cheapest first: ties in the backtest go to the earlier (simpler) one.
CANDIDATES: tuple[str, ...] = ("seasonal_naive", "auto_ets", "auto_theta", "gbm", "gbm_scaled", "ensemble")
STATISTICAL_CANDIDATES = frozenset({"auto_ets", "auto_theta"})
GBM_CANDIDATES = frozenset({"gbm", "gbm_scaled"})
# Periods of history each per-series statistical fit sees by default: 16 weeks of days (AutoETS costs ~0.05 s
# per 112-day series, 0.3 s per 730), 5 years of weeks, 30 years of months, 50 years of quarters (long
# monthly and quarterly histories are cheap, and ETS and Theta estimate trend and season better on them).
DEFAULT_STATISTICAL_WINDOW = {"daily": 112, "weekly": 260, "monthly": 360, "quarterly": 200}


class StatisticalSpec(_Strict):
    """Budget of the per-series statistical candidates (statsforecast's AutoETS and AutoTheta).

    They fit one model per series and origin, so their cost grows with the number of series: above
    ``max_series`` they are skipped (and the model card says so) and the global models compete alone.
    """

    max_series: int = Field(default=500, ge=0,
                            description="More series than this: statistical candidates are skipped (cost).")
    window: int | None = Field(default=None, ge=8,
                               description="Periods of history per series fit; default by frequency.")


class ModelSpec(_Strict):
    estimator: Literal["hist_gradient_boosting"] = "hist_gradient_boosting"
    candidates: list[Candidate] = Field(
        default=list(CANDIDATES), min_length=1,
        description="Forecast candidates the backtest chooses from (forecast kind); the best one serves.")
    ensemble_size: int = Field(default=3, ge=2, le=5,
                               description="The ensemble is the median of this many best single candidates.")
    selection: Literal["consistent", "best"] = Field(
        default="consistent",
        description="consistent: the simplest candidate that no other beats both pooled and on every "
                    "backtest fold; best: the lowest pooled backtest error.")
    statistical: StatisticalSpec = StatisticalSpec()
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="HistGradientBoostingRegressor/Classifier kwargs.")
    quantiles: list[float] = Field(default=[0.1, 0.5, 0.9], min_length=1)
    training_window: int = Field(default=730, ge=4, description="Periods of history used to train.")
    origin_stride: int = Field(default=1, ge=1, description="Use every n-th period as a training origin.")
    max_training_rows: int | None = Field(
        default=20_000, ge=1_000,
        description="Seeded sample cap per fit (backtest folds and final model alike); null = no cap.",
    )
    random_state: int = 0

    @field_validator("candidates")
    @classmethod
    def _candidates_valid(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"candidates listed twice: {sorted({c for c in v if v.count(c) > 1})}")
        singles = [c for c in v if c != "ensemble"]
        if not singles:
            raise ValueError("'ensemble' combines other candidates: list at least one more")
        if "ensemble" in v and len(singles) < 2:
            raise ValueError(f"'ensemble' needs at least two other candidates to combine, got {singles}")
        return [c for c in CANDIDATES if c in v]  # canonical order: ties go to the simpler candidate

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


class TabularSpec(_Strict):
    """Regression and classification: one row per entity and observation date; the label is known
    ``label_delay_days`` after the observation (e.g. 'defaulted within 90 days')."""

    label_delay_days: int = Field(default=0, ge=0, description="Days after the observation the label is known.")
    calibration: Literal["isotonic", "sigmoid", "none"] = Field(
        default="isotonic", description="Probability calibration (classification).")
    score_lookback_days: int = Field(
        default=31, ge=1, description="Score each entity's latest row observed within this many days.")


class BacktestSpec(_Strict):
    folds: int = Field(default=3, ge=1, le=52)
    fold_step: int = Field(default=14, ge=1, description="Periods (days for tabular kinds) between folds.")
    season_length: int = Field(default=7, ge=1, description="Seasonal-naive baseline period (forecast).")
    metric: Metric | None = Field(default=None, description="Gate metric; default by kind (wape/mae/log_loss).")
    min_improvement: float = Field(
        default=0.0, ge=0.0, lt=1.0,
        description="Required relative improvement of the gate metric over the baseline (0.05 = 5 %).",
    )
    champion_margin: float = Field(
        default=0.0, ge=0.0, lt=1.0,
        description="Required relative improvement over the current champion on the same window.",
    )
    champion_min_rows: int | None = Field(
        default=None, ge=1,
        description="Fewer backtest rows unseen by both models than this: too little evidence to promote; "
                    "null = sized to the use case (see UseCaseSpec.champion_min_rows_for).",
    )


class RetrainSpec(_Strict):
    """When a run retrains. Any trigger suffices; a day with none scores with the current champion."""

    every_days: int | None = Field(default=7, ge=1, description="Retrain when the champion is this old; null = never.")
    on_drift: bool = True
    on_accuracy_decay: bool = True


class AccuracySpec(_Strict):
    """Realised accuracy of published outputs once actuals arrive, and when it counts as decayed."""

    lookback_days: int = Field(default=28, ge=1, description="Published run dates re-scored each run.")
    max_wape: float | None = Field(default=None, gt=0, description="Absolute realised-WAPE alert threshold.")
    max_decay: float = Field(
        default=0.25, gt=0.0,
        description="Alert when realised error exceeds the backtest error by this fraction (0.25 = 25 %).")
    min_rows: int | None = Field(
        default=None, ge=1,
        description="Fewer realised rows than this never alerts; null = sized to the use case "
                    "(see UseCaseSpec.accuracy_min_rows_for).")


class RollupSpec(_Strict):
    """A table derived from every published partition by the downstream consumer DAG."""

    name: str = Field(pattern=IDENT_PATTERN)
    period: Literal["week", "month", "quarter"] = "month"
    group_by: list[_Col] = Field(default_factory=list, description="Keys kept (others are summed over).")


class MonitoringSpec(_Strict):
    window_days: int = Field(default=28, ge=1, description="Latest window compared with the reference.")
    reference_days: int = Field(default=180, ge=7, description="Training days kept as drift reference.")
    drift_share: float = Field(default=0.5, gt=0.0, le=1.0, description="Share of drifted columns = drift.")
    columns: list[str] = Field(default_factory=list, description="Columns to monitor; empty = all features.")
    max_rows: int = Field(default=20_000, ge=100, description="Row cap per side (Evidently is slow on big frames).")


class SeriesPolicySpec(_Strict):
    """Every series accounted for (forecast kind): when series left out of a publication are a breach."""

    max_missing_share: float = Field(
        default=0.05, ge=0.0, le=1.0,
        description="More than this share of the features' series left out of a partition is a breach.")
    top_n: int = Field(default=10, ge=0,
                       description="Any of the n largest series (mean |target|, last season) left out is a breach.")
    on_breach: Literal["warn", "block"] = Field(
        default="warn", description="warn: publish, flagged in the manifest; block: refuse to publish.")


class PublishSpec(_Strict):
    chunk_rows: int = Field(default=100_000, ge=1_000, description="Rows per Parquet part (bounds memory).")
    rollups: list[RollupSpec] = Field(default_factory=list, description="Consumer tables built per partition.")
    series: SeriesPolicySpec = SeriesPolicySpec()


class ApprovalSpec(_Strict):
    """Human sign-off of promotions (regulated use cases).

    ``mode: required``: a challenger that passes the automatic gate is registered, then waits in the Airflow
    UI (the standard provider's ``ApprovalOperator``) until a person approves it (promoted) or rejects it, or
    the request times out (both leave the champion in place). The decision goes to the audit log. A spec
    may say just ``approval: required``.
    """

    mode: Literal["none", "required"] = "none"
    timeout_hours: float = Field(default=72.0, gt=0, le=24 * 30,
                                 description="Unanswered this long: the request times out and the champion stays.")
    approvers: list[str] = Field(default_factory=list,
                                 description="Airflow user names allowed to answer; empty = any user with access.")

    @property
    def required(self) -> bool:
        return self.mode == "required"


class FairnessSpec(_Strict):
    """Group fairness of a classification model over sensitive attributes (fairlearn).

    Training computes selection rate, TPR and FPR per group and the demographic parity and equalized odds
    differences on the backtest rows; a difference above its threshold blocks promotion. Monitoring reports
    the same per group on realised outcomes. The attributes are used for measurement only (never as model
    inputs) unless ``use_as_features`` is true.
    """

    sensitive_attributes: list[Annotated[str, Field(pattern=IDENT_PATTERN)]] = Field(
        default_factory=list, description="Columns of the features mart that define the groups.")
    max_demographic_parity_difference: float | None = Field(default=0.1, ge=0.0, le=1.0)
    max_equalized_odds_difference: float | None = Field(default=0.1, ge=0.0, le=1.0)
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0,
                             description="Probability at or above which a row counts as selected (positive).")
    min_group_rows: int = Field(default=50, ge=1, description="Groups with fewer rows are reported, not gated.")
    use_as_features: bool = False


class FreshnessThreshold(_Strict):
    warn_after_days: int | None = Field(default=None, ge=0,
                                        description="Newest row older than this (days before the run date): warn.")
    error_after_days: int | None = Field(default=None, ge=0,
                                         description="Newest row older than this: error (see on_error).")

    @model_validator(mode="after")
    def _ordered(self) -> FreshnessThreshold:
        if self.warn_after_days is None and self.error_after_days is None:
            raise ValueError("give warn_after_days, error_after_days or both")
        if (self.warn_after_days is not None and self.error_after_days is not None
                and self.warn_after_days > self.error_after_days):
            raise ValueError("warn_after_days must not exceed error_after_days")
        return self


class FreshnessSpec(_Strict):
    """dbt source freshness of the raw tables, judged as of the run date (so backfills judge the past).

    ``on_error: block`` stops the run before scoring when a source is past its error threshold;
    ``publish_stale`` scores and publishes with ``stale: true`` in the manifest. Warnings never fail a run.
    """

    sources: dict[Annotated[str, Field(pattern=IDENT_PATTERN)], FreshnessThreshold] = Field(
        default_factory=dict, description="Raw table name -> thresholds.")
    on_error: Literal["block", "publish_stale"] = "block"


class RetentionSpec(_Strict):
    """How long each kind of object is kept; null keeps it forever. Applied by the maintenance DAG, which
    never removes anything a published partition or a current alias references."""

    raw_days: int | None = Field(default=None, ge=1, description="Landed raw days in the warehouse and delivered files.")
    quarantine_days: int | None = Field(default=None, ge=1)
    reports_days: int | None = Field(default=None, ge=1,
                                     description="Landing, validation, drift, accuracy and lifecycle reports.")
    model_versions_keep: int | None = Field(default=None, ge=1,
                                            description="Unreferenced model versions kept (newest first).")


class PrivacySpec(_Strict):
    """Columns holding personal data: they never reach reports, logs or model cards."""

    pii_columns: list[Annotated[str, Field(pattern=IDENT_PATTERN)]] = Field(default_factory=list)


class HolidaysSpec(_Strict):
    """The public-holiday calendar of the use case, from the ``holidays`` package (offline, any year).

    The land stage writes the holidays of every year the use case needs (history start through the end
    of the horizon) to ``raw.holidays``; dbt's ``stg_holidays`` reads this calendar's rows, so
    ``is_holiday`` and the business-day flags of the calendar marts follow it.
    """

    country: str = Field(default="US", description="Country code of holidays.list_supported_countries().")
    subdivision: str | None = Field(default=None, description="State, province... code of that country; "
                                                              "null = the country's nationwide holidays.")

    @field_validator("country")
    @classmethod
    def _country_supported(cls, v: str) -> str:
        from mlplatform.calendars import country_problem

        problem = country_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _subdivision_supported(self) -> HolidaysSpec:
        from mlplatform.calendars import subdivision_problem

        problem = self.subdivision and subdivision_problem(self.country, self.subdivision)
        if problem:
            raise ValueError(f"subdivision: {problem}")
        return self

    @property
    def key(self) -> str:
        """The calendar's name in raw.holidays ('US', 'US-CA')."""
        from mlplatform.calendars import calendar_key

        return calendar_key(self.country, self.subdivision)


def _approval_shorthand(value: Any) -> Any:
    """``approval: required`` / ``approval: none`` are shorthands for ``{mode: ...}``."""
    return {"mode": value} if isinstance(value, str) else value


# Governance sections that change neither what a model learns nor its gate: never part of the spec
# fingerprint (a model version's identity), so tuning them does not re-version models. Fairness changes
# the gate's verdict, so it counts once it is configured.
_OPERATIONAL_SECTIONS = ("approval", "freshness", "retention", "privacy")
_GATE_SECTIONS = ("fairness",)


class UseCaseSpec(_Strict):
    spec_version: Literal[1] = 1
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(min_length=10)
    owner: str
    consumers: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    kind: Kind
    frequency: Frequency = "daily"
    schedule: str | None = Field(
        default="@daily", description="Cron, preset or null (manual only); unset = derived from the frequency "
                                      "and publication_lag_days (calendars.derived_schedule).")
    publication_lag_days: int = Field(
        default=0, ge=0, description="Days after a period ends until its data is complete (weekly, monthly, "
                                     "quarterly): the derived schedule runs that much later.")
    start_date: date
    catchup: bool = False
    retries: int = Field(default=2, ge=0, le=10)
    retry_delay_minutes: int = Field(default=5, ge=0)
    source: SourceSpec
    transform: TransformSpec
    validation: ValidationSpec
    features: FeatureSpec
    model: ModelSpec = ModelSpec()
    forecast: ForecastSpec | None = None
    tabular: TabularSpec | None = None
    backtest: BacktestSpec = BacktestSpec()
    retrain: RetrainSpec = RetrainSpec()
    accuracy: AccuracySpec = AccuracySpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    publish: PublishSpec = PublishSpec()
    approval: ApprovalSpec = ApprovalSpec()
    fairness: FairnessSpec = FairnessSpec()
    freshness: FreshnessSpec = FreshnessSpec()
    retention: RetentionSpec = RetentionSpec()
    privacy: PrivacySpec = PrivacySpec()
    holidays: HolidaysSpec = HolidaysSpec()

    @field_validator("approval", mode="before")
    @classmethod
    def _approval_str(cls, v: Any) -> Any:
        return _approval_shorthand(v)

    @model_validator(mode="before")
    @classmethod
    def _derive_schedule(cls, data: Any) -> Any:
        """No ``schedule`` in the spec (nor its defaults): run on the frequency's own calendar.

        A weekly, monthly or quarterly use case runs the day after each period end plus
        ``publication_lag_days``; daily stays ``@daily``. An explicit ``schedule`` (null included) wins.
        Invalid inputs are left for the field validators to report.
        """
        from mlplatform.calendars import MAX_PUBLICATION_LAG_DAYS, derived_schedule

        if not isinstance(data, dict) or "schedule" in data:
            return data
        frequency, lag = data.get("frequency", "daily"), data.get("publication_lag_days", 0)
        if frequency in MAX_PUBLICATION_LAG_DAYS and type(lag) is int and 0 <= lag <= MAX_PUBLICATION_LAG_DAYS[frequency]:
            return {**data, "schedule": derived_schedule(frequency, lag)}
        return data

    @field_validator("publication_lag_days")
    @classmethod
    def _lag_fits_schedule(cls, v: int, info: ValidationInfo) -> int:
        from mlplatform.calendars import derived_schedule, publication_lag_problem

        frequency = info.data.get("frequency")
        if frequency is None or "schedule" not in info.data:
            return v
        problem = publication_lag_problem(frequency, v)
        if problem:
            raise ValueError(problem)
        if v and info.data["schedule"] != derived_schedule(frequency, v):
            raise ValueError(f"{v} shapes only the schedule derived from the frequency, but 'schedule' is set "
                             f"explicitly ({info.data['schedule']!r}): remove one of the two")
        return v

    @field_validator("holidays")
    @classmethod
    def _holidays_match_generator(cls, v: HolidaysSpec, info: ValidationInfo) -> HolidaysSpec:
        """The synthetic generators lift demand on US holidays: flags of another calendar would not match."""
        from mlplatform.calendars import calendar_key
        from mlplatform.datagen import SYNTHETIC_HOLIDAYS

        source = info.data.get("source")
        if source is not None and source.type == "generator" and v.key != calendar_key(*SYNTHETIC_HOLIDAYS):
            raise ValueError(f"source.generator {source.generator!r} simulates the {calendar_key(*SYNTHETIC_HOLIDAYS)} "
                             f"holidays, so the calendar marts must flag those: set country "
                             f"{SYNTHETIC_HOLIDAYS[0]!r} and subdivision null (got {v.key!r})")
        return v

    @field_validator("backtest")
    @classmethod
    def _min_rows_reachable(cls, v: BacktestSpec, info: ValidationInfo) -> BacktestSpec:
        """An explicit champion_min_rows the backtest can never supply is refused here when the number of
        series is known from the spec (a generator's params); otherwise training checks it on the data."""
        from mlplatform.datagen import series_count

        forecast, source = info.data.get("forecast"), info.data.get("source")
        if v.champion_min_rows is None or info.data.get("kind") != "forecast" or not forecast or not source:
            return v
        n_series = series_count(source)
        problem = n_series and champion_min_rows_problem(v, forecast.horizon, n_series)
        if problem:
            raise ValueError(f"{problem} (the series count of source.generator {source.generator!r} with its params)")
        return v

    @model_validator(mode="after")
    def _sections_for_kind(self) -> UseCaseSpec:
        if self.kind == "forecast":
            if self.forecast is None:
                raise ValueError("kind 'forecast' needs a 'forecast' section with 'horizon'")
            if not self.transform.calendar_model:
                raise ValueError("kind 'forecast' needs 'transform.calendar_model' (calendar of the horizon)")
        elif self.tabular is None:
            raise ValueError(f"kind '{self.kind}' needs a 'tabular' section (label_delay_days, ...)")
        if self.kind == "forecast" and self.tabular is not None:
            raise ValueError("kind 'forecast' takes no 'tabular' section (that is for regression/classification)")
        if self.kind != "forecast" and self.forecast is not None:
            raise ValueError(f"kind '{self.kind}' takes no 'forecast' section (that is for kind 'forecast')")
        if self.backtest.metric and self.backtest.metric not in METRICS_BY_KIND[self.kind]:
            raise ValueError(f"backtest.metric '{self.backtest.metric}' does not apply to kind '{self.kind}'; "
                             f"use one of {sorted(METRICS_BY_KIND[self.kind])}")
        for rollup in self.publish.rollups:
            unknown = set(rollup.group_by) - set(self.features.series_keys)
            if unknown:
                raise ValueError(f"publish.rollups '{rollup.name}': group_by {sorted(unknown)} are not "
                                 f"series_keys {self.features.series_keys}")
        self._check_governance()
        return self

    def _check_governance(self) -> None:
        f = self.features
        model_inputs = {*f.numeric, *f.categorical}
        if self.fairness.sensitive_attributes:
            if self.kind != "classification":
                raise ValueError("fairness.sensitive_attributes applies to kind 'classification' only")
            used = sorted(set(self.fairness.sensitive_attributes) & model_inputs)
            if used and not self.fairness.use_as_features:
                raise ValueError(f"fairness: sensitive attributes {used} are model features; remove them from "
                                 "features or set fairness.use_as_features: true")
        leaked = sorted(set(self.privacy.pii_columns) & {*model_inputs, *f.series_keys, f.target, f.time_column,
                                                          *self.monitoring.columns, *self.fairness.sensitive_attributes})
        if leaked:
            raise ValueError(f"privacy.pii_columns {leaked} are model features, keys, the target, monitored columns "
                             "or fairness groups: personal data must not drive, identify or be reported with outputs")

    def accuracy_min_rows_for(self, n_series: int) -> tuple[int, str]:
        """(realised rows the accuracy verdict needs, how it was set) for ``n_series`` realised series.

        An explicit ``accuracy.min_rows`` wins. Unset, a forecast asks for one horizon of every series,
        at most ACCURACY_MIN_ROWS_CAP: a fixed 50 could never be met by one daily series forecast 28 days
        ahead (a wrong forecast of it raised no alert), while a panel reaches 50 rows at once. Tabular
        kinds keep the cap.
        """
        a = self.accuracy
        if a.min_rows is not None:
            return a.min_rows, f"accuracy.min_rows {a.min_rows}"
        if self.kind != "forecast":
            return ACCURACY_MIN_ROWS_CAP, f"accuracy.min_rows auto: {ACCURACY_MIN_ROWS_CAP}"
        rows = max(1, min(ACCURACY_MIN_ROWS_CAP, self.horizon * max(n_series, 1)))
        return rows, (f"accuracy.min_rows auto: min({ACCURACY_MIN_ROWS_CAP}, horizon {self.horizon} x "
                      f"{n_series} series)")

    def champion_min_rows_for(self, n_series: int | None) -> tuple[int, str]:
        """(rows, how it was set): the fewest backtest rows unseen by both models that let a challenger
        replace the champion, for ``n_series`` series (known at training time).

        An explicit ``backtest.champion_min_rows`` wins. Unset (null), a forecast asks for one twelfth of
        the most rows the backtest can compare (folds x horizon x series; with 3 folds, a quarter of one
        fold), at least 1 and at most 100: a 1-series, 28-period, 3-fold use case needs 7 rows, where a
        fixed 100 could never be met. Tabular kinds (and an unknown series count) keep 100.
        """
        b = self.backtest
        if b.champion_min_rows is not None:
            return b.champion_min_rows, f"backtest.champion_min_rows {b.champion_min_rows}"
        if self.kind != "forecast" or not n_series:
            return CHAMPION_MIN_ROWS_CAP, f"backtest.champion_min_rows auto: {CHAMPION_MIN_ROWS_CAP}"
        most = b.folds * self.horizon * n_series
        rows = max(1, min(CHAMPION_MIN_ROWS_CAP, -(-most // CHAMPION_MIN_ROWS_SHARE)))
        return rows, (f"backtest.champion_min_rows auto: min({CHAMPION_MIN_ROWS_CAP}, {b.folds} folds x horizon "
                      f"{self.horizon} x {n_series} series / {CHAMPION_MIN_ROWS_SHARE}) = {rows}")

    @property
    def gate_metric(self) -> str:
        """The metric the promotion gate compares (the spec's, or the kind's default)."""
        return self.backtest.metric or DEFAULT_METRIC[self.kind]

    @property
    def horizon(self) -> int:
        """Periods forecast ahead (forecast kind); 0 for tabular kinds, which score the present."""
        return self.forecast.horizon if self.forecast else 0

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
        data = self.model_dump(mode="json")
        for name in _OPERATIONAL_SECTIONS:
            del data[name]
        for name in _GATE_SECTIONS:
            if data[name] == type(getattr(self, name))().model_dump(mode="json"):
                del data[name]
        payload = json.dumps(data, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


# Auto accuracy.min_rows (see UseCaseSpec.accuracy_min_rows_for): one horizon of every series, capped.
ACCURACY_MIN_ROWS_CAP = 50
# Auto champion_min_rows (see UseCaseSpec.champion_min_rows_for): a share of folds x horizon x series, capped.
CHAMPION_MIN_ROWS_CAP = 100
CHAMPION_MIN_ROWS_SHARE = 12


def champion_min_rows_problem(backtest: BacktestSpec, horizon: int, n_series: int) -> str | None:
    """Why an explicit ``champion_min_rows`` can never be met by ``n_series`` series (None if it can).

    Each fold compares at most ``horizon`` targets per series, so no backtest supplies more than
    folds x horizon x series rows unseen by both models: a higher minimum would refuse every retrain.
    """
    most = backtest.folds * horizon * n_series
    if backtest.champion_min_rows is None or backtest.champion_min_rows <= most:
        return None
    return (f"backtest.champion_min_rows {backtest.champion_min_rows} can never be met: the backtest compares at "
            f"most folds {backtest.folds} x horizon {horizon} x {n_series} series = {most} rows; lower it to "
            f"{most} or less, or remove it (null sizes it to the use case)")


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


def _known_fields(loc: tuple) -> list[str]:
    """Field names allowed next to the field at ``loc`` (walks the spec models; [] if unknown)."""
    model: Any = UseCaseSpec
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
        for arg in getattr(model, "__args__", ()):  # Optional[X] / list[X]: take the model inside
            if hasattr(arg, "model_fields"):
                model = arg
    return sorted(getattr(model, "model_fields", {}))


def _unknown_field_hint(loc: tuple) -> str:
    import difflib

    known = _known_fields(loc)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"unknown field: did you mean '{close[0]}'? (remove it or fix its spelling)"
    return f"unknown field: remove it (allowed here: {', '.join(known)})" if known else \
        "unknown field: remove it or fix its spelling"


def _format_error(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid use-case spec ({exc.error_count()} problem(s)):"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "<top level>"
        if err["type"] == "extra_forbidden":
            hint = _unknown_field_hint(err["loc"])
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
