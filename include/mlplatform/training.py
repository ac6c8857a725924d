"""Training with a rolling-origin backtest against the seasonal-naive baseline.

The backtest replays the production situation ``folds`` times: at each fold origin a model is fitted
only on what was known then (targets dated <= the origin), forecasts the next H days and is scored
against what actually happened, next to the seasonal-naive forecast of the same rows. The promotion
gate reads ``metrics['beats_baseline']``; the final model is then refitted on everything up to the run
date. Nothing after ``run_date`` may be used: the input is checked, and every training set is checked
again before fitting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlplatform.errors import DataQualityError
from mlplatform.forecasting import (
    MAX_TRAINING_ROWS,
    ORIGIN_DATE,
    TARGET_DATE,
    QuantileForecaster,
    build_training_set,
    censored_mask,
    feature_input_columns,
    make_supervised,
    require_columns,
    seasonal_naive,
    to_timestamp,
)
from mlplatform.metrics import bias, interval_coverage, mase, wape
from mlplatform.spec import UseCaseSpec, quantile_column

if TYPE_CHECKING:
    import pandas as pd

ACTUAL = "actual"
BASELINE = "baseline"
SCALE = "scale"


@dataclass
class TrainingResult:
    """Everything the registry stores for one trained model version."""

    model: QuantileForecaster
    metrics: dict[str, Any]
    training_window: dict[str, str]
    feature_names: list[str]
    n_training_rows: int
    reference: pd.DataFrame


# --------------------------------------------------------------------------------------------- guards


def _prepare(features: pd.DataFrame, spec: UseCaseSpec, run_date: pd.Timestamp) -> pd.DataFrame:
    """Features with a datetime time column, refusing any row dated after the run date.

    A row from the future would leak into the backtest's actuals or the final model and make the
    recorded metrics a lie, so it is an error, not something to filter silently.
    """
    import pandas as pd

    require_columns(features, feature_input_columns(spec), "features")
    time_col = spec.features.time_column
    time = pd.to_datetime(features[time_col])
    future = time > run_date
    if future.any():
        raise DataQualityError(
            f"features contain {int(future.sum())} row(s) dated after run_date {run_date.date()} "
            f"(latest {time.max().date()}); training must never see data after the run date"
        )
    return features.assign(**{time_col: time})


def _assert_no_leakage(train: pd.DataFrame, cutoff: pd.Timestamp) -> None:
    """Invariant check (kept under ``python -O``): no training target after the cutoff."""
    if len(train) and train[TARGET_DATE].max() > cutoff:
        raise AssertionError(f"training rows with target dates after the cutoff {cutoff.date()}")


def backtest_origins(spec: UseCaseSpec, run_date: Any) -> list[pd.Timestamp]:
    """Fold origins, oldest first; the last is run_date - H so every fold's targets are observed."""
    import pandas as pd

    last = to_timestamp(run_date) - pd.Timedelta(days=spec.forecast.horizon)
    step = pd.Timedelta(days=spec.backtest.fold_step_days)
    return [last - k * step for k in reversed(range(spec.backtest.folds))]


# ------------------------------------------------------------------------------------------ evaluation


def _actuals(features: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """Observed, uncensored targets keyed by series and date: what forecasts are scored against."""
    f = spec.features
    keep = features[f.target].notna().to_numpy() & ~censored_mask(features, spec)
    out = features.loc[keep, [*f.series_keys, f.time_column, f.target]]
    return out.rename(columns={f.time_column: TARGET_DATE, f.target: ACTUAL})


def series_scales(history: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """Per-series MASE scale: mean |y(d) - y(d - m)| over the history (censored days left out).

    Computed by a merge on dates shifted by the season length (no assumption that days are
    contiguous rows). Series with no valid pair get NaN and are left out of MASE.
    """
    import pandas as pd

    f = spec.features
    y = _actuals(history, spec)
    lagged = y.assign(**{TARGET_DATE: y[TARGET_DATE] + pd.Timedelta(days=spec.backtest.season_length)})
    pairs = y.merge(lagged, on=[*f.series_keys, TARGET_DATE], suffixes=("", "_lag"))
    pairs[SCALE] = (pairs[ACTUAL] - pairs[f"{ACTUAL}_lag"]).abs()
    return pairs.groupby(f.series_keys, as_index=False, dropna=False)[SCALE].mean()


def _evaluation_rows(
    predictions: pd.DataFrame, features: pd.DataFrame, history: pd.DataFrame, spec: UseCaseSpec, origin: Any
) -> pd.DataFrame:
    """Forecast rows joined with actuals, baseline and series scale; rows lacking an actual or a baseline go."""
    keys = spec.features.series_keys
    p50 = quantile_column(0.5)
    base = seasonal_naive(history, spec, origin)[[*keys, TARGET_DATE, p50]].rename(columns={p50: BASELINE})
    rows = predictions.merge(base, on=[*keys, TARGET_DATE]).merge(
        _actuals(features, spec), on=[*keys, TARGET_DATE]
    )
    rows = rows.merge(series_scales(history, spec), on=keys, how="left")
    return rows.loc[rows[BASELINE].notna()].reset_index(drop=True)


def _scores(rows: pd.DataFrame, spec: UseCaseSpec) -> dict[str, Any]:
    """Model and baseline accuracy on the same rows, and the relative WAPE improvement."""
    qcols = spec.quantile_columns
    actual, scale, p50 = rows[ACTUAL], rows[SCALE], rows[quantile_column(0.5)]
    model = {"wape": wape(actual, p50), "mase": mase(actual, p50, scale), "bias": bias(actual, p50)}
    has_interval = len(qcols) > 1
    model["coverage"] = interval_coverage(actual, rows[qcols[0]], rows[qcols[-1]]) if has_interval else None
    base = rows[BASELINE]
    baseline = {"wape": wape(actual, base), "mase": mase(actual, base, scale), "bias": bias(actual, base)}
    improvement = float("nan")
    if baseline["wape"] > 0:
        improvement = 1.0 - model["wape"] / baseline["wape"]
    return {"model": model, "baseline": baseline, "improvement": improvement, "n_eval_rows": len(rows)}


def _run_fold(
    features: pd.DataFrame,
    calendar: pd.DataFrame,
    spec: UseCaseSpec,
    origin: pd.Timestamp,
    max_rows: int | None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit on targets <= origin, forecast origin + 1..H, score against actuals and the baseline."""
    history = features.loc[features[spec.features.time_column] <= origin]
    train = build_training_set(history, calendar, spec, origin, max_rows=max_rows)
    if train.empty:
        raise DataQualityError(
            f"no training rows for backtest origin {origin.date()}: history starts "
            f"{features[spec.features.time_column].min().date()}, too short for {spec.backtest.folds} folds"
        )
    _assert_no_leakage(train, origin)
    model = QuantileForecaster(spec).fit(train)
    predictions = model.predict(make_supervised(history, calendar, spec, [origin], with_target=False))
    rows = _evaluation_rows(predictions, features, history, spec, origin)
    fold = {"origin": origin.date().isoformat(), "n_training_rows": len(train), **_scores(rows, spec)}
    return fold, rows


# ----------------------------------------------------------------------------------- result assembly


def _json_safe(value: Any) -> Any:
    """Plain JSON types only: NaN/inf become None (strict JSON has no NaN), numpy scalars become Python."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _metrics(folds: list[dict[str, Any]], pooled: dict[str, Any], spec: UseCaseSpec) -> dict[str, Any]:
    improvement = pooled["improvement"]
    qcols = spec.quantile_columns
    return _json_safe(
        {
            "model": pooled["model"],
            "baseline": pooled["baseline"],
            "improvement": improvement,
            "min_improvement": spec.backtest.min_improvement,
            "beats_baseline": bool(
                math.isfinite(improvement) and improvement >= spec.backtest.min_improvement
            ),
            "n_eval_rows": pooled["n_eval_rows"],
            "coverage_interval": [qcols[0], qcols[-1]],
            "season_length": spec.backtest.season_length,
            "horizon": spec.forecast.horizon,
            "folds": folds,
        }
    )


def reference_frame(features: pd.DataFrame, spec: UseCaseSpec, run_date: Any) -> pd.DataFrame:
    """Drift reference: features of the ``reference_days`` days ending at run_date - window_days.

    The days (run_date - window_days, run_date] are the latest monitoring window and are left out, so
    the reference and the window never overlap. Capped at ``max_rows`` by a seeded sample (same input,
    same reference), in the original row order.
    """
    import pandas as pd

    m, f = spec.monitoring, spec.features
    time = pd.to_datetime(features[f.time_column])
    end = to_timestamp(run_date) - pd.Timedelta(days=m.window_days)
    start = end - pd.Timedelta(days=m.reference_days - 1)
    columns = list(m.columns) or list(dict.fromkeys([*f.numeric, *f.categorical, f.target]))
    require_columns(features, columns, "features")
    reference = features.loc[(time >= start) & (time <= end), columns]
    if len(reference) > m.max_rows:
        reference = reference.sample(n=m.max_rows, random_state=spec.model.random_state).sort_index()
    return reference.reset_index(drop=True)


def train_and_backtest(
    features: pd.DataFrame,
    calendar: pd.DataFrame,
    spec: UseCaseSpec,
    run_date: Any,
    max_training_rows: int | None = MAX_TRAINING_ROWS,
) -> TrainingResult:
    """Backtest ``spec.backtest.folds`` rolling origins, then fit the final model up to ``run_date``.

    ``features`` must not contain rows after ``run_date`` (DataQualityError otherwise); ``calendar``
    may (the calendar of future days is known in advance). Every model, in the folds and the final
    one, is fitted the same way (same row budget ``max_training_rows``, None = all rows), so the
    backtest measures the model that gets promoted.
    """
    import pandas as pd

    run_date = to_timestamp(run_date)
    features = _prepare(features, spec, run_date)
    folds, rows = [], []
    for origin in backtest_origins(spec, run_date):
        fold, fold_rows = _run_fold(features, calendar, spec, origin, max_training_rows)
        folds.append(fold)
        rows.append(fold_rows)
    pooled = _scores(pd.concat(rows, ignore_index=True), spec)

    train = build_training_set(features, calendar, spec, run_date, max_rows=max_training_rows)
    _assert_no_leakage(train, run_date)
    model = QuantileForecaster(spec).fit(train)
    window = {"start": train[ORIGIN_DATE].min().date().isoformat(), "end": run_date.date().isoformat()}
    return TrainingResult(
        model=model,
        metrics=_metrics(folds, pooled, spec),
        training_window=window,
        feature_names=list(model.feature_names),
        n_training_rows=len(train),
        reference=reference_frame(features, spec, run_date),
    )
