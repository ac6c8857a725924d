"""Training with a rolling-origin backtest against the seasonal-naive baseline and the champion.

The backtest replays the production situation ``folds`` times: at each fold origin a model is fitted
only on what was known then (targets dated <= the origin), forecasts the next H periods and is scored
against what actually happened, next to the seasonal-naive forecast of the same rows and, when given,
the current champion's forecast from the very same inputs. The promotion gate reads
``metrics['beats_baseline']`` and ``metrics['champion']``; the final model is then refitted on
everything up to the run date's forecast origin (its latest period end). Nothing after ``run_date``
may be used: the input is checked, and every training set is checked again before fitting.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlplatform.errors import DataQualityError
from mlplatform.forecasting import (
    HORIZON,
    MAX_TRAINING_ROWS,
    ORIGIN_DATE,
    TARGET_DATE,
    Periods,
    QuantileForecaster,
    build_training_set,
    censored_mask,
    feature_input_columns,
    make_supervised,
    periods_for,
    require_columns,
    required_history_periods,
    seasonal_naive,
    series_columns,
    to_timestamp,
)
from mlplatform.metrics import HIGHER_IS_BETTER, bias, interval_coverage, mase, relative_improvement, wape
from mlplatform.spec import GBM_CANDIDATES, STATISTICAL_CANDIDATES, UseCaseSpec, quantile_column

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

ACTUAL = "actual"
BASELINE = "baseline"
CHAMPION = "champion"
SCALE = "scale"
PERIOD = "period"


@dataclass
class TrainingResult:
    """Everything the registry stores for one trained model version.

    ``fallback`` is the best forecast that needs no learning (the seasonal naive or the best statistical
    candidate), calibrated like the model: what a use case publishes, flagged, while no model has
    cleared the gate yet. None for the tabular kinds.
    """

    model: Any
    metrics: dict[str, Any]
    training_window: dict[str, str]
    feature_names: list[str]
    n_training_rows: int
    reference: pd.DataFrame
    fallback: Any = None
    fallback_metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChampionInput:
    """The current champion, to be compared with the challenger on the same backtest rows.

    ``model`` is the champion's fitted model (loaded from the registry) and ``trained_to`` (date-like)
    the end of its training window: it is only scored on targets after that date, where it is out of
    sample like the challenger's fold models.
    """

    version: str
    model: QuantileForecaster
    trained_to: Any


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
    if features[time_col].dtype == time.dtype:  # already datetimes: no copy of the whole frame
        return features
    return features.assign(**{time_col: time})


def _assert_no_leakage(train: pd.DataFrame, cutoff: pd.Timestamp) -> None:
    """Invariant check (kept under ``python -O``): no training target after the cutoff."""
    if len(train) and train[TARGET_DATE].max() > cutoff:
        raise AssertionError(f"training rows with target dates after the cutoff {cutoff.date()}")


def backtest_origins(spec: UseCaseSpec, run_date: Any, periods: Periods | None = None) -> list[pd.Timestamp]:
    """Fold origins (period ends), oldest first, ``fold_step`` periods apart.

    The last is H periods before the run date's forecast origin (its latest period end), so every
    fold's targets are observed. ``periods`` fixes the week-ending weekday (weekly); default
    ``periods_for(spec)``.
    """
    import numpy as np

    periods = periods or periods_for(spec)
    last = periods.latest(run_date) - spec.forecast.horizon
    steps = np.arange(spec.backtest.folds - 1, -1, -1, dtype=np.int64)
    return list(periods.ends(last - steps * spec.backtest.fold_step))


# ------------------------------------------------------------------------------------------ evaluation


def _actuals(features: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """Observed, uncensored targets keyed by series and date: what forecasts are scored against."""
    f = spec.features
    keep = features[f.target].notna().to_numpy() & ~censored_mask(features, spec)
    out = features.loc[keep, [*f.series_keys, f.time_column, f.target]]
    return out.rename(columns={f.time_column: TARGET_DATE, f.target: ACTUAL})


def series_scales(history: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """Per-series MASE scale: mean |y(p) - y(p - m)| over the history (censored periods left out).

    m is the season length in periods. Pairs are found by a lookup on (series, period number) shifted by
    m (no assumption that periods are contiguous rows). Series with no valid pair get NaN and are left
    out of MASE.
    """
    import numpy as np
    import pandas as pd

    f = spec.features
    keys = list(f.series_keys)
    what = f"features column '{f.time_column}'"
    y = _actuals(history, spec)
    period = periods_for(spec, y[TARGET_DATE], what).numbers(y[TARGET_DATE], what)
    codes = y.groupby(keys, sort=True, dropna=False).ngroup().to_numpy(np.int64)
    low = int(period.min()) if len(period) else 0
    span = int(period.max()) - low + 1 if len(period) else 1
    index = pd.Index(codes * span + (period - low))
    if not index.is_unique:  # duplicate rows: pair every duplicate, as a join would
        return _series_scales_by_merge(y.assign(**{PERIOD: period}), spec)
    lag = period - spec.backtest.season_length
    lag_pos = np.full(len(y), -1, dtype=np.int64)
    inside = lag >= low
    lag_pos[inside] = index.get_indexer(codes[inside] * span + (lag[inside] - low))
    paired = np.flatnonzero(lag_pos >= 0)
    actual = y[ACTUAL].to_numpy()
    pairs = y[keys].iloc[paired].reset_index(drop=True)
    pairs[SCALE] = np.abs(actual[paired] - actual[lag_pos[paired]])
    return pairs.groupby(keys, as_index=False, dropna=False)[SCALE].mean()


def _series_scales_by_merge(y: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    f = spec.features
    y = y[[*f.series_keys, PERIOD, ACTUAL]]
    lagged = y.assign(**{PERIOD: y[PERIOD] + spec.backtest.season_length})
    pairs = y.merge(lagged, on=[*f.series_keys, PERIOD], suffixes=("", "_lag"))
    pairs[SCALE] = (pairs[ACTUAL] - pairs[f"{ACTUAL}_lag"]).abs()
    return pairs.groupby(f.series_keys, as_index=False, dropna=False)[SCALE].mean()


def _recent(history: pd.DataFrame, spec: UseCaseSpec, origin: Any) -> pd.DataFrame:
    """Rows of the periods a forecast from ``origin`` looks back on (``required_history_periods``) up to it.

    Everything ``make_supervised`` and ``seasonal_naive`` read for one origin: the same output as from
    the whole history, without indexing years of rows per fold.
    """
    import numpy as np
    import pandas as pd

    time_col = spec.features.time_column
    time = pd.to_datetime(history[time_col])
    periods = periods_for(spec, time, f"features column '{time_col}'")
    latest = periods.latest(origin)
    first = periods.ends(np.array([latest - required_history_periods(spec) - 1]))[0]
    return history.loc[((time > first) & (time <= to_timestamp(origin))).to_numpy()]


def _evaluation_rows(
    predictions: pd.DataFrame, features: pd.DataFrame, history: pd.DataFrame, spec: UseCaseSpec, origin: Any,
    recent: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Forecast rows joined with actuals, baseline and series scale; rows lacking an actual or a baseline go.

    ``history`` (rows up to the origin) needs only the series keys, time, target and censored flag;
    ``recent`` (default: from ``history``) the full feature columns of the origin's look-back window.
    """
    import pandas as pd

    keys = spec.features.series_keys
    p50 = quantile_column(0.5)
    time = features[spec.features.time_column]
    if len(predictions):  # only the forecast rows' target dates are joined: no copy of the whole history
        targets = pd.to_datetime(predictions[TARGET_DATE])
        features = features.loc[((time >= targets.min()) & (time <= targets.max())).to_numpy()]
    recent = _recent(history, spec, origin) if recent is None else recent
    base = seasonal_naive(recent, spec, origin)[[*keys, TARGET_DATE, p50]]
    base = base.rename(columns={p50: BASELINE})
    rows = predictions.merge(base, on=[*keys, TARGET_DATE]).merge(
        _actuals(features, spec), on=[*keys, TARGET_DATE]
    )
    rows = rows.merge(series_scales(history, spec), on=keys, how="left")
    return rows.loc[rows[BASELINE].notna()].reset_index(drop=True)


def _point_scores(rows: pd.DataFrame, forecast: str) -> dict[str, float]:
    """WAPE, MASE and bias of one point-forecast column against the rows' actuals."""
    actual, scale, point = rows[ACTUAL], rows[SCALE], rows[forecast]
    return {"wape": wape(actual, point), "mase": mase(actual, point, scale), "bias": bias(actual, point)}


def _scores(rows: pd.DataFrame, spec: UseCaseSpec) -> dict[str, Any]:
    """Model and baseline accuracy on the same rows, and the relative improvement on the gate metric."""
    qcols = spec.quantile_columns
    model = _point_scores(rows, quantile_column(0.5))
    has_interval = len(qcols) > 1
    coverage = interval_coverage(rows[ACTUAL], rows[qcols[0]], rows[qcols[-1]]) if has_interval else None
    model["coverage"] = coverage
    baseline = _point_scores(rows, BASELINE)
    metric = spec.gate_metric
    improvement = relative_improvement(metric, model.get(metric), baseline.get(metric))
    return {"model": model, "baseline": baseline, "improvement": improvement, "n_eval_rows": len(rows)}


# ------------------------------------------------------------------------------------------- champion


def _champion_incompatibility(
    champion: ChampionInput, supervised: pd.DataFrame, spec: UseCaseSpec
) -> str | None:
    """Why the champion cannot forecast these rows like the challenger does, or None if it can.

    Checked up front so the reason reads as a sentence rather than an estimator traceback.
    """
    model, name = champion.model, f"champion {champion.version}"
    frequency = getattr(model, "frequency", "daily")  # models saved before frequencies existed are daily
    if frequency != spec.frequency:
        return f"{name} forecasts {frequency} periods but the spec's frequency is now {spec.frequency}"
    if getattr(model, "horizon", None) != spec.forecast.horizon:
        return (f"{name} was trained for a horizon of {getattr(model, 'horizon', None)} periods but the "
                f"spec now forecasts {spec.forecast.horizon}, so it cannot be scored on the same rows")
    missing = [c for c in getattr(model, "feature_names", []) if c not in supervised.columns]
    if missing:
        return f"{name} needs feature column(s) {missing} that the current features do not provide"
    return None


def _champion_p50(
    champion: ChampionInput, recent: pd.DataFrame, calendar: pd.DataFrame, supervised: pd.DataFrame,
    spec: UseCaseSpec, origin: pd.Timestamp,
) -> tuple[np.ndarray, str | None]:
    """The champion's p50 for each row of the challenger's supervised frame, and an error if it failed.

    The champion forecasts from the same look-back rows as the candidates (``forecast_frame``: a
    ``ForecastModel`` or an older bare quantile model), so the two differ only by the model. Never
    raises: a champion that cannot predict must not stop a new model from being trained, it is just not
    compared (all-NaN p50 plus the reason).
    """
    import numpy as np

    from mlplatform.candidates import forecast_frame

    missing = np.full(len(supervised), np.nan)
    error = _champion_incompatibility(champion, supervised, spec)
    if error:
        return missing, error
    try:
        predictions = forecast_frame(champion.model, recent, calendar, spec, origin)
        return predictions[quantile_column(0.5)].to_numpy(dtype=float), None
    except Exception as exc:  # an old pickled model can fail in ways no check above foresees
        reason = f"{type(exc).__name__}: {exc}"
        return missing, f"champion {champion.version} could not predict the backtest rows: {reason}"


def _champion_error_result(base: dict[str, Any], error: str) -> dict[str, Any]:
    return {**base, "improvement": None, "beats_champion": False, "error": error}


def champion_comparison(
    rows: pd.DataFrame, spec: UseCaseSpec, champion: ChampionInput | None, error: str | None = None
) -> dict[str, Any] | None:
    """Challenger vs champion on the pooled backtest rows whose target date is after ``trained_to``.

    Only those rows are out of sample for both models (the champion saw every earlier target), so
    only they are compared. ``rows`` are evaluation rows with the champion's p50 in column
    ``champion``; ``error`` is a prediction failure already met. None without a champion.
    """
    import numpy as np

    if champion is None:
        return None
    trained_to = to_timestamp(champion.trained_to)
    metric = spec.gate_metric
    base = {"version": champion.version, "trained_to": trained_to.date().isoformat(), "n_eval_rows": 0,
            "metric": metric, "challenger": None, "champion": None, "margin": spec.backtest.champion_margin}
    if error:
        return _champion_error_result(base, error)
    eligible = rows.loc[(rows[TARGET_DATE] > trained_to).to_numpy() & np.isfinite(rows[CHAMPION].to_numpy())]
    if eligible.empty:
        latest = rows[TARGET_DATE].max().date() if len(rows) else None
        return _champion_error_result(base, (
            f"no backtest target is dated after champion {champion.version}'s training end "
            f"{trained_to.date()} (latest backtest target: {latest}), so the two models cannot be "
            "compared out of sample"))
    challenger, incumbent = _point_scores(eligible, quantile_column(0.5)), _point_scores(eligible, CHAMPION)
    improvement = relative_improvement(metric, challenger[metric], incumbent[metric])
    out = {**base, "n_eval_rows": len(eligible), "challenger": challenger, "champion": incumbent}
    if not math.isfinite(improvement):
        return _champion_error_result(out, (
            f"{metric} comparison is undefined on the {len(eligible)} shared row(s) "
            f"(challenger {challenger[metric]}, champion {incumbent[metric]})"))
    beats = improvement >= spec.backtest.champion_margin
    return {**out, "improvement": improvement, "beats_champion": bool(beats), "error": None}


# -------------------------------------------------------------------------------------------- folds

CANDIDATE_PREFIX = "cand_"
CAL_SCALE = "cal_scale"
FOLD = "fold"


def candidate_column(name: str) -> str:
    return CANDIDATE_PREFIX + name


def runnable_candidates(spec: UseCaseSpec, n_series: int) -> tuple[list[str], dict[str, str]]:
    """(single candidates to backtest, {skipped candidate: why}); the ensemble is formed afterwards."""
    from mlplatform.candidates import statistical_budget

    budget = statistical_budget(spec, n_series)
    # the seasonal naive is always evaluated (it costs nothing): the floor, and the last-resort fallback
    singles = ["seasonal_naive", *(c for c in spec.model.candidates if c not in ("ensemble", "seasonal_naive"))]
    skipped = {c: budget for c in singles if c in STATISTICAL_CANDIDATES and budget}
    return [c for c in singles if c not in skipped], skipped


def _fold_training_set(
    features: pd.DataFrame, calendar: pd.DataFrame, spec: UseCaseSpec, origin: pd.Timestamp, max_rows: int | None,
) -> pd.DataFrame:
    """The global models' training rows of one fold: targets <= origin only."""
    train = build_training_set(features, calendar, spec, origin, max_rows=max_rows)
    if train.empty:
        first = features[spec.features.time_column].min() if len(features) else None
        start = f"history starts {first.date()}" if first is not None else "no feature history"
        raise DataQualityError(
            f"no training rows for backtest origin {origin.date()}: {start}, "
            f"too short for {spec.backtest.folds} folds"
        )
    _assert_no_leakage(train, origin)
    return train


def _candidate_p50s(
    features: pd.DataFrame, calendar: pd.DataFrame, spec: UseCaseSpec, origin: pd.Timestamp, max_rows: int | None,
    recent: pd.DataFrame, supervised: pd.DataFrame, names: list[str], seconds: dict[str, float],
) -> tuple[dict[str, np.ndarray], int]:
    """Every candidate's P50 for the fold's supervised rows, each fitted on targets <= origin only."""
    from mlplatform.candidates import gbm_model, seasonal_naive_p50, statistical_p50

    p50s, n_train = {}, 0
    train = None
    for name in names:
        start = time.perf_counter()
        if name in GBM_CANDIDATES:
            train = _fold_training_set(features, calendar, spec, origin, max_rows) if train is None else train
            n_train = len(train)
            p50s[name] = gbm_model(spec, name).fit(train).predict(supervised)[quantile_column(0.5)].to_numpy()
        elif name in STATISTICAL_CANDIDATES:
            p50s[name] = statistical_p50(recent, spec, origin, name)
        else:
            p50s[name] = seasonal_naive_p50(recent, spec, origin)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
    return p50s, n_train


def _run_fold(
    features: pd.DataFrame,
    calendar: pd.DataFrame,
    spec: UseCaseSpec,
    origin: pd.Timestamp,
    max_rows: int | None,
    names: list[str],
    seconds: dict[str, float],
    champion: ChampionInput | None = None,
) -> tuple[pd.DataFrame, int, str | None]:
    """Every candidate forecasts origin + 1..H from what was known at the origin; rows scored against
    the actuals, the baseline and each series' scale. Returns (rows, global training rows, champion error).

    The champion (if any) forecasts from the exact inputs the candidates see; its p50 is kept in the
    rows as ``champion``.
    """
    import numpy as np

    from mlplatform.candidates import series_scale

    f = spec.features
    time_col = features[f.time_column]
    flag = [f.censored_flag] if f.censored_flag else []
    needed = list(dict.fromkeys([*f.series_keys, f.time_column, f.target, *flag]))
    history = features.loc[(time_col <= origin).to_numpy(), needed]
    recent = _recent(features, spec, origin)
    supervised = make_supervised(recent, calendar, spec, [origin], with_target=False)
    p50s, n_train = _candidate_p50s(features, calendar, spec, origin, max_rows, recent, supervised, names, seconds)
    predictions = supervised[[*series_columns(supervised, f.series_keys), ORIGIN_DATE, TARGET_DATE, HORIZON]]
    predictions = predictions.reset_index(drop=True).assign(
        **{candidate_column(n): v for n, v in p50s.items()},
        **{CAL_SCALE: np.repeat(series_scale(recent, spec, origin), spec.forecast.horizon)})
    error = None
    if champion is not None:
        predictions[CHAMPION], error = _champion_p50(champion, recent, calendar, supervised, spec, origin)
    rows = _evaluation_rows(predictions, features, history, spec, origin, recent)
    return rows.assign(**{FOLD: origin.date().isoformat()}), n_train, error


# --------------------------------------------------------------------------------------- selection


def _rank(scores: dict[str, dict[str, float]], names: list[str], metric: str) -> list[str]:
    """Candidates best first by the gate metric (lower is better for forecasts); NaN scores last."""
    def key(name: str) -> tuple[bool, float, int]:
        value = scores[name].get(metric)
        ok = value is not None and math.isfinite(value)
        return (not ok, value if ok else 0.0, names.index(name))

    return sorted(names, key=key)


def _select(rows: pd.DataFrame, spec: UseCaseSpec, names: list[str]) -> tuple[pd.DataFrame, dict, str, dict]:
    """Score every candidate on the same pooled rows, add the ensemble, pick the best.

    A candidate's missing forecast (a failed statistical fit, a new series) is filled with the baseline,
    as the served model does, so every candidate is scored on exactly the same rows. Returns (rows with
    an ``ensemble`` column, scores per candidate, chosen name, members per candidate).
    """
    import numpy as np

    metric = spec.gate_metric
    baseline = rows[BASELINE].to_numpy(dtype=float)
    for name in names:
        col = candidate_column(name)
        rows[col] = np.where(np.isfinite(rows[col].to_numpy(dtype=float)), rows[col], baseline)
    scores = {n: _point_scores(rows, candidate_column(n)) for n in names}
    members = {n: [n] for n in names}
    ranked = _rank(scores, names, metric)
    top = ranked[: spec.model.ensemble_size]
    if "ensemble" in spec.model.candidates and len(top) >= 2:
        stacked = np.column_stack([rows[candidate_column(n)].to_numpy(dtype=float) for n in top])
        rows[candidate_column("ensemble")] = np.median(stacked, axis=1)
        scores["ensemble"] = _point_scores(rows, candidate_column("ensemble"))
        members["ensemble"] = top
    everything = [*names, *(["ensemble"] if "ensemble" in scores else [])]
    for name in everything:  # per-fold scores: the evidence behind the choice, kept in the version's metadata
        scores[name]["fold_" + metric] = [_point_scores(part, candidate_column(name)).get(metric)
                                          for _, part in rows.groupby(FOLD, sort=True)]
    if spec.model.selection == "best":
        return rows, scores, _rank(scores, everything, metric)[0], members
    return rows, scores, consistent_choice(scores, everything, metric), members


def _beats(a: float | None, b: float | None, metric: str) -> bool:
    """Whether score ``a`` is strictly better than ``b`` (both finite)."""
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return False
    return a > b if metric in HIGHER_IS_BETTER else a < b


def consistent_choice(scores: dict[str, dict[str, Any]], names: list[str], metric: str) -> str:
    """The simplest candidate that no other candidate beats both pooled and on every fold.

    ``scores[name]`` holds the pooled ``metric`` and its per-fold values ``fold_<metric>``; ``names``
    is in simplicity order. Why not simply the lowest pooled error: with a few folds of a few series,
    the pooled ranking of close candidates is mostly noise (on real data the argmin switched between
    AutoETS, AutoTheta and the ensemble from one cut-off to the next and lost to AutoETS alone on the
    held-out actuals). A more complex candidate replaces a simpler one only when it wins on every fold,
    not on average. The seasonal naive is the gate's baseline, so it is considered last. The pooled best
    is never beaten pooled, so a choice always exists; with a single fold this is the pooled best.
    """
    def beaten(name: str) -> bool:
        mine = scores[name].get("fold_" + metric) or []
        for other in names:
            theirs = scores[other].get("fold_" + metric) or []
            if other != name and _beats(scores[other].get(metric), scores[name].get(metric), metric) \
                    and len(theirs) == len(mine) and all(_beats(a, b, metric) for a, b in zip(theirs, mine, strict=True)):
                return True
        return False

    order = [n for n in names if n != "seasonal_naive"] + [n for n in names if n == "seasonal_naive"]
    for name in order:
        if not beaten(name):
            return name
    return _rank(scores, names, metric)[0]


def _fallback_choice(scores: dict[str, dict[str, float]], spec: UseCaseSpec) -> str:
    """The best candidate that learns nothing across series: seasonal naive or a statistical model."""
    simple = [n for n in scores if n == "seasonal_naive" or n in STATISTICAL_CANDIDATES]
    return _rank(scores, simple, spec.gate_metric)[0] if simple else "seasonal_naive"


def _calibrated_rows(rows: pd.DataFrame, point: str, spec: UseCaseSpec) -> tuple[pd.DataFrame, bool]:
    """Rows whose quantile columns are ``point`` with cross-fitted conformal bands (see candidates)."""
    from mlplatform.candidates import cross_fitted_bands

    bands, cross = cross_fitted_bands(rows, point, spec)
    return rows.assign(**bands), cross


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


def _fold_metrics(rows: pd.DataFrame, spec: UseCaseSpec, n_train: dict[str, int]) -> list[dict[str, Any]]:
    return [{"origin": origin, "n_training_rows": n_train.get(origin, 0), **_scores(part, spec)}
            for origin, part in rows.groupby(FOLD, sort=True)]


def _candidate_report(scores: dict, seconds: dict, skipped: dict, members: dict[str, list[str]],
                      coverage: dict[str, float | None]) -> dict[str, Any]:
    """Per candidate: backtest scores, cross-fitted interval coverage, fit seconds, or why it was skipped."""
    report = {n: {**scores[n], "coverage": coverage.get(n), "fit_seconds": round(seconds.get(n, 0.0), 3),
                  "status": "ok"} for n in scores}
    if "ensemble" in report:
        report["ensemble"]["members"] = members["ensemble"]
        report["ensemble"]["fit_seconds"] = round(sum(seconds.get(m, 0.0) for m in members["ensemble"]), 3)
    for name, why in skipped.items():
        report[name] = {"status": why}
    return report


def _metrics(
    folds: list[dict[str, Any]], pooled: dict[str, Any], spec: UseCaseSpec, champion: dict[str, Any] | None,
    selection: dict[str, Any],
) -> dict[str, Any]:
    """The registry's metrics: pooled scores, the baseline gate, the champion comparison, per-fold detail,
    and the candidates (each one's backtest, the chosen one, the calibration of its intervals).

    The seasonal naive never beats itself: when it is the best candidate, no model beat the baseline.
    """
    improvement = pooled["improvement"]
    qcols = spec.quantile_columns
    beats = bool(math.isfinite(improvement) and improvement >= spec.backtest.min_improvement
                 and selection["chosen"] != "seasonal_naive")
    return _json_safe(
        {
            "model": pooled["model"],
            "baseline": pooled["baseline"],
            "improvement": improvement,
            "min_improvement": spec.backtest.min_improvement,
            "beats_baseline": beats,
            "n_eval_rows": pooled["n_eval_rows"],
            "coverage_interval": [qcols[0], qcols[-1]],
            "season_length": spec.backtest.season_length,
            "horizon": spec.forecast.horizon,
            "folds": folds,
            "metric": spec.gate_metric,
            "higher_is_better": spec.gate_metric in HIGHER_IS_BETTER,
            "frequency": spec.frequency,
            "champion": champion,
            **selection,
        }
    )


def reference_frame(features: pd.DataFrame, spec: UseCaseSpec, run_date: Any) -> pd.DataFrame:
    """Drift reference: features of the ``reference_days`` days ending at run_date - window_days.

    The days (run_date - window_days, run_date] are the latest monitoring window and are left out, so
    the reference and the window never overlap. Capped at ``max_rows`` by a seeded sample (same input,
    same reference), in the original row order. PII columns (``privacy.pii_columns``) are left out: the
    reference feeds drift reports and the model card's statistics, which must not show personal data.
    """
    import pandas as pd

    from mlplatform.privacy import without_pii

    m, f = spec.monitoring, spec.features
    time = pd.to_datetime(features[f.time_column])
    end = to_timestamp(run_date) - pd.Timedelta(days=m.window_days)
    start = end - pd.Timedelta(days=m.reference_days - 1)
    columns = without_pii(list(m.columns) or list(dict.fromkeys([*f.numeric, *f.categorical, f.target])),
                          spec.privacy.pii_columns)
    require_columns(features, columns, "features")
    reference = features.loc[(time >= start) & (time <= end), columns]
    if len(reference) > m.max_rows:
        reference = reference.sample(n=m.max_rows, random_state=spec.model.random_state).sort_index()
    return reference.reset_index(drop=True)


def _backtest(
    features: pd.DataFrame,
    calendar: pd.DataFrame,
    spec: UseCaseSpec,
    origins: list[pd.Timestamp],
    max_rows: int | None,
    champion: ChampionInput | None,
    names: list[str],
    seconds: dict[str, float],
) -> tuple[pd.DataFrame, dict[str, int], str | None]:
    """Run every fold; (pooled evaluation rows, global training rows per fold, first champion error)."""
    import pandas as pd

    rows, n_train, errors = [], {}, []
    for origin in origins:
        fold_rows, n, error = _run_fold(features, calendar, spec, origin, max_rows, names, seconds, champion)
        rows.append(fold_rows)
        n_train[origin.date().isoformat()] = n
        errors += [error] if error else []
    return pd.concat(rows, ignore_index=True), n_train, (errors[0] if errors else None)


def _served_model(
    spec: UseCaseSpec, features: pd.DataFrame, calendar: pd.DataFrame, origin: pd.Timestamp,
    max_rows: int | None, candidate: str, members: list[str], rows: pd.DataFrame, fallback: bool = False,
) -> tuple[Any, pd.DataFrame | None]:
    """The ``ForecastModel`` of ``candidate``: global members refitted on everything up to the origin,
    intervals calibrated on the candidate's backtest residuals. Returns (model, global training rows)."""
    from mlplatform.candidates import ForecastModel, calibrate, gbm_model, normalised_residuals

    train = None
    gbms = {}
    for name in members:
        if name in GBM_CANDIDATES:
            train = build_training_set(features, calendar, spec, origin, max_rows=max_rows) if train is None else train
            _assert_no_leakage(train, origin)
            gbms[name] = gbm_model(spec, name).fit(train)
    z = normalised_residuals(rows, candidate_column(candidate))
    table = calibrate(z, rows[HORIZON].to_numpy(), spec.forecast.horizon, spec.model.quantiles)
    nonnegative = bool((features[spec.features.target].dropna() >= 0).all())
    model = ForecastModel(spec, candidate, members, gbms, table, nonnegative, fallback=fallback)
    return model, train


def _training_window(spec: UseCaseSpec, periods: Periods, origin: pd.Timestamp, train: pd.DataFrame | None) -> dict:
    """First and last date the served model learnt from: the global training set's, or the statistical
    window's (local models see each series' last ``model.statistical.window`` periods)."""
    import numpy as np

    from mlplatform.candidates import statistical_window

    if train is not None and len(train):
        start = train[ORIGIN_DATE].min()
    else:
        start = periods.ends(np.array([periods.latest(origin) - statistical_window(spec) + 1]))[0]
    return {"start": start.date().isoformat(), "end": origin.date().isoformat()}


def _selection_metrics(rows: pd.DataFrame, spec: UseCaseSpec, scores: dict, chosen: str, members: dict,
                       seconds: dict, skipped: dict, fallback: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Rows calibrated for the chosen candidate, and the candidates' part of the metrics."""
    coverage = {}
    for name in scores:
        calibrated, cross = _calibrated_rows(rows, candidate_column(name), spec)
        qcols = spec.quantile_columns
        coverage[name] = _scores(calibrated, spec)["model"]["coverage"] if len(qcols) > 1 else None
        if name == chosen:
            chosen_rows, chosen_cross = calibrated, cross
    chosen_rows[quantile_column(0.5)] = chosen_rows[candidate_column(chosen)]
    selection = {
        "chosen": chosen, "members": members[chosen], "selection": spec.model.selection,
        "candidates": _candidate_report(scores, seconds, skipped, members, coverage),
        "calibration": {"method": "conformal", "cross_fitted": chosen_cross,
                        "n_residuals": int(len(rows)), "coverage": coverage.get(chosen)},
        "fallback_candidate": fallback,
    }
    return chosen_rows, selection


def train_and_backtest(
    features: pd.DataFrame,
    calendar: pd.DataFrame,
    spec: UseCaseSpec,
    run_date: Any,
    max_training_rows: int | None = MAX_TRAINING_ROWS,
    champion: ChampionInput | None = None,
) -> TrainingResult:
    """Backtest every candidate on ``spec.backtest.folds`` rolling origins, choose, fit the served model.

    The run date may be any date: the served model is trained up to its forecast origin (the latest
    period end of ``spec.frequency`` on or before it), which is the training window's end.
    ``features`` must not contain rows after ``run_date`` (DataQualityError otherwise); ``calendar``
    may (the calendar of future periods is known in advance). Every candidate is scored on the same
    rows; global models are fitted the same way in the folds and at the end (same row budget
    ``max_training_rows``, None = all rows), so the backtest measures the model that gets promoted.
    ``champion`` (the current champion) is scored on the same fold inputs; see ``champion_comparison``.
    """
    run_date = to_timestamp(run_date)
    features = _prepare(features, spec, run_date)
    time_col = spec.features.time_column
    periods = periods_for(spec, features[time_col], f"features column '{time_col}'")
    origin = periods.origin(run_date)
    origins = backtest_origins(spec, origin, periods)
    n_series = int(features.groupby(spec.features.series_keys, dropna=False).ngroups)
    names, skipped = runnable_candidates(spec, n_series)
    seconds: dict[str, float] = {}
    rows, n_train, champion_error = _backtest(features, calendar, spec, origins, max_training_rows, champion,
                                              names, seconds)
    rows, scores, chosen, members = _select(rows, spec, names)
    fallback = _fallback_choice(scores, spec)
    rows, selection = _selection_metrics(rows, spec, scores, chosen, members, seconds, skipped, fallback)
    comparison = champion_comparison(rows, spec, champion, champion_error)
    selection["n_series"] = n_series
    metrics = _metrics(_fold_metrics(rows, spec, n_train), _scores(rows, spec), spec, comparison, selection)

    model, train = _served_model(spec, features, calendar, origin, max_training_rows, chosen, members[chosen], rows)
    backup, _ = _served_model(spec, features, calendar, origin, max_training_rows, fallback, [fallback], rows,
                              fallback=True)
    window = _training_window(spec, periods, origin, train)
    feature_names = list(model.feature_names) or [spec.features.target]
    return TrainingResult(
        model=model,
        metrics=metrics,
        training_window=window,
        feature_names=feature_names,
        n_training_rows=len(train) if train is not None else int(len(_recent(features, spec, origin))),
        reference=reference_frame(features, spec, run_date),
        fallback=backup,
        fallback_metrics={"candidate": fallback, **metrics["candidates"][fallback]},
    )
