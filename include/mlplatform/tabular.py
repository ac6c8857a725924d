"""Tabular regression and classification: one row per entity and observation date, labels known later.

A row observed on day t (a customer's monthly snapshot, say) gets its label ``label_delay_days`` later
("defaulted within 90 days"); until then the features mart holds it with a null target. Every cutoff
c therefore has two dates: rows observed up to c can be *scored*, but only rows observed up to
c - delay can be *learnt from*. Training on rows whose outcome was not yet known at the date a model
claims to be from is the classic leak of credit-risk models; every training set here is selected by
that rule and checked again before fitting.

The backtest replays production ``folds`` times. A fold's origin o is a simulated run date: its model
learns from rows labelled by o (observed <= o - delay, within ``model.training_window`` days) and is
scored on the rows observed in (o, o + fold_step], next to a linear baseline fitted on the same rows.
The newest origin is run_date - delay - fold_step, the latest for which every scored row's label is
known by run_date (an origin at run_date - delay would score only rows whose labels are all still
unknown). The final model learns from everything labelled as of run_date.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal, Protocol

from mlplatform.errors import DataQualityError, SpecError
from mlplatform.forecasting import require_columns, to_timestamp
from mlplatform.metrics import (
    HIGHER_IS_BETTER,
    bias,
    brier,
    expected_calibration_error,
    log_loss,
    mae,
    relative_improvement,
    rmse,
    roc_auc,
    wape,
)
from mlplatform.serialise import JoblibSerialisable
from mlplatform.spec import UseCaseSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlplatform.training import TrainingResult

TABULAR_KINDS = ("regression", "classification")
PROBABILITY = "probability"
PREDICTION = "prediction"
RISK_BAND = "risk_band"
OBSERVATION_DATE = "observation_date"
# Illustrative cut-offs only (probability < 0.05 low, < 0.20 medium, else high): real bands are a
# business decision (risk appetite, capacity of the team acting on them) and belong in the consumer.
RISK_THRESHOLDS = (0.05, 0.20)
RISK_LABELS = ("low", "medium", "high")
# Share of the training rows (the latest by observation date) held out to fit the calibrator.
CALIBRATION_SHARE = 0.2
# Probabilities are kept inside [floor, 1 - floor]: a finite calibration sample never justifies
# certainty, and one "impossible" outcome at p = 0 would dominate the backtest's log loss.
PROBABILITY_FLOOR = 1e-3
MISSING_LEVEL = "__missing__"
FROM_SPEC = "spec"
# Internal column names of the pooled evaluation rows.
_MODEL = "_model"
_BASELINE = "_baseline"
_FOLD = "_fold_origin"


class ChampionLike(Protocol):
    """The current champion as the trainer needs it (training.ChampionInput satisfies this).

    ``model`` is a TabularModel; ``trained_to`` is the run date it was trained at (date-like).
    """

    @property
    def version(self) -> str: ...

    @property
    def model(self) -> Any: ...

    @property
    def trained_to(self) -> Any: ...


# ----------------------------------------------------------------------------------------------- helpers


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _as_float(values: pd.Series) -> np.ndarray:
    """A numeric, boolean or nullable column as float64 with NaN for missing (what the trees expect)."""
    import numpy as np
    import pandas as pd

    return pd.to_numeric(values, errors="raise").to_numpy(dtype="float64", na_value=np.nan)


def _days(n: int) -> pd.Timedelta:
    import pandas as pd

    return pd.Timedelta(days=n)


def _require_tabular(spec: UseCaseSpec) -> None:
    if spec.kind not in TABULAR_KINDS or spec.tabular is None:
        raise SpecError(f"use case {spec.name!r} is kind {spec.kind!r}; the tabular trainer handles "
                        f"{list(TABULAR_KINDS)} (forecasts use mlplatform.training)")


def input_columns(spec: UseCaseSpec) -> list[str]:
    """Columns of the features mart this module reads.

    The fairness section's sensitive attributes are read too, to measure group metrics on the backtest
    rows; they are model inputs only if also listed under ``features`` (``fairness.use_as_features``):
    the models take ``numeric`` and ``categorical`` and nothing else.
    """
    f = spec.features
    return _unique([*f.series_keys, f.time_column, f.target, *f.numeric, *f.categorical,
                    *spec.fairness.sensitive_attributes])


def output_column(kind: str) -> str:
    """Name of the prediction column: ``probability`` for classification, ``prediction`` otherwise."""
    return PROBABILITY if kind == "classification" else PREDICTION


# ------------------------------------------------------------------------------------------- data guards


def _check_future(time: pd.Series, run_date: pd.Timestamp) -> None:
    """A row after the run date would leak into training or evaluation: an error, never filtered silently."""
    if time.isna().any():
        raise DataQualityError(f"features contain {int(time.isna().sum())} row(s) with no observation date")
    future = time > run_date
    if future.any():
        raise DataQualityError(
            f"features contain {int(future.sum())} row(s) dated after run_date {run_date.date()} "
            f"(latest {time.max().date()}); training must never see data after the run date"
        )


def _check_unique(frame: pd.DataFrame, spec: UseCaseSpec) -> None:
    """One row per entity and date: a duplicate would be counted twice in training and evaluation."""
    f = spec.features
    dupes = frame.duplicated([*f.series_keys, f.time_column])
    if dupes.any():
        raise DataQualityError(f"features have {int(dupes.sum())} duplicate ({', '.join(f.series_keys)}, "
                               f"{f.time_column}) row(s)")


def _check_target(target: pd.Series, spec: UseCaseSpec) -> pd.Series:
    """Target as float; a classification label must be 0 or 1 (null = not known yet)."""
    import pandas as pd

    try:
        values = pd.to_numeric(target, errors="raise").astype("float64")
    except (TypeError, ValueError) as exc:
        raise DataQualityError(f"target {spec.features.target!r} is not numeric: {exc}") from None
    if spec.kind == "classification":
        bad = values.notna() & ~values.isin([0.0, 1.0])
        if bad.any():
            raise DataQualityError(f"classification target {spec.features.target!r} must be 0/1 or null; "
                                   f"{int(bad.sum())} row(s) hold e.g. {values[bad].unique()[:5].tolist()}")
    return values


def prepare(features: pd.DataFrame, spec: UseCaseSpec, run_date: Any) -> pd.DataFrame:
    """Checked features: datetime time column, float target, sorted by (date, keys).

    Raises DataQualityError on rows after ``run_date``, missing dates, duplicate (entity, date) rows or
    non-0/1 classification labels. Sorting makes every later step (sampling, splits) independent of the
    order the warehouse returned rows in.
    """
    import pandas as pd

    _require_tabular(spec)
    f = spec.features
    require_columns(features, input_columns(spec), "features")
    time = pd.to_datetime(features[f.time_column])
    _check_future(time, to_timestamp(run_date))
    frame = features.assign(**{f.time_column: time, f.target: _check_target(features[f.target], spec)})
    _check_unique(frame, spec)
    return frame.sort_values([f.time_column, *f.series_keys], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------------------ row selection


def label_cutoff(spec: UseCaseSpec, cutoff: Any) -> pd.Timestamp:
    """Latest observation date whose label is known at ``cutoff`` (cutoff - label_delay_days)."""
    return to_timestamp(cutoff) - _days(spec.tabular.label_delay_days)


def _sample(selected: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray:
    """At most ``max_rows`` of the selected positions: a seeded uniform sample, original order kept."""
    import numpy as np

    if max_rows is None or selected.size <= max_rows:
        return selected
    return np.sort(np.random.default_rng(seed).choice(selected, size=max_rows, replace=False))


def training_rows(features: pd.DataFrame, spec: UseCaseSpec, cutoff: Any, max_rows: int | None) -> pd.DataFrame:
    """Rows a model trained at ``cutoff`` may learn from: labelled by then, within the training window.

    Labelled by the cutoff means observed on or before cutoff - label_delay_days with a non-null
    target; the window is the ``model.training_window`` days of observations ending at that date (the
    span of *labelled* history, whatever the delay). ``max_rows`` caps the rows by a seeded sample
    (None = all), so each fit costs the same however large the use case grows.
    """
    import numpy as np
    import pandas as pd

    f = spec.features
    last = label_cutoff(spec, cutoff)
    time = pd.to_datetime(features[f.time_column])
    keep = (time <= last) & (time > last - _days(spec.model.training_window)) & features[f.target].notna()
    selected = _sample(np.flatnonzero(keep.to_numpy()), max_rows, spec.model.random_state)
    return features.iloc[selected].reset_index(drop=True)


def _assert_no_leakage(train: pd.DataFrame, spec: UseCaseSpec, cutoff: pd.Timestamp) -> None:
    """Invariant check (kept under ``python -O``): every training label was known at the cutoff."""
    import pandas as pd

    f = spec.features
    if len(train) and (pd.to_datetime(train[f.time_column]).max() > label_cutoff(spec, cutoff)
                       or train[f.target].isna().any()):
        raise AssertionError(f"training rows whose label was not known at the cutoff {cutoff.date()}")


def backtest_origins(spec: UseCaseSpec, run_date: Any) -> list[pd.Timestamp]:
    """Fold origins (simulated run dates), oldest first, ``fold_step`` days apart.

    The newest is run_date - label_delay_days - fold_step, so each fold's fold_step days of scored
    rows are labelled by run_date (an origin at run_date - delay would have nothing to score against).
    """
    b = spec.backtest
    last = to_timestamp(run_date) - _days(spec.tabular.label_delay_days + b.fold_step)
    return [last - _days(k * b.fold_step) for k in reversed(range(b.folds))]


def evaluation_rows(features: pd.DataFrame, spec: UseCaseSpec, origin: Any, run_date: Any) -> pd.DataFrame:
    """Rows scored by the fold at ``origin``: observed in (origin, origin + fold_step], labelled by run_date."""
    import pandas as pd

    f = spec.features
    origin = to_timestamp(origin)
    time = pd.to_datetime(features[f.time_column])
    keep = (
        (time > origin)
        & (time <= origin + _days(spec.backtest.fold_step))
        & (time <= label_cutoff(spec, run_date))
        & features[f.target].notna()
    )
    return features.loc[keep].reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ models


class _TabularBase(JoblibSerialisable):
    """State shared by the boosted model and the baseline: plain Python only, no spec object.

    Keeping the spec out means a pickled model stays loadable when the spec class evolves; the
    fingerprint still ties the model to the spec it was trained under.
    """

    def __init__(self, spec: UseCaseSpec) -> None:
        _require_tabular(spec)
        f = spec.features
        self.kind = spec.kind
        self.use_case = spec.name
        self.spec_fingerprint = spec.fingerprint()
        self.series_keys = list(f.series_keys)
        self.time_column = f.time_column
        self.target = f.target
        self.numeric = _unique(f.numeric)
        self.categorical = [c for c in _unique(f.categorical) if c not in self.numeric]
        self.feature_names = _unique([*self.numeric, *self.categorical])
        self.random_state = spec.model.random_state
        self.n_training_rows = 0

    @property
    def output_column(self) -> str:
        return output_column(self.kind)

    def _labels(self, train: pd.DataFrame) -> np.ndarray:
        """Training labels; refuses missing labels and single-class classification sets."""
        import numpy as np

        if train.empty:
            raise DataQualityError("no labelled training rows: is the history longer than the label delay?")
        require_columns(train, [self.target, self.time_column, *self.feature_names], "training")
        y = _as_float(train[self.target])
        if np.isnan(y).any():
            raise DataQualityError(f"{int(np.isnan(y).sum())} training row(s) have no label")
        if self.kind == "classification" and np.unique(y).size < 2:
            raise DataQualityError(f"every training label is {y[0]:g}: a classifier needs both 0 and 1")
        return y

    def _values(self, frame: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Keys, time column and ``probability`` (classification) or ``prediction`` (regression), row by row."""
        import pandas as pd

        ids = _unique([*self.series_keys, self.time_column])
        require_columns(frame, [*ids, *self.feature_names], "features")
        out = frame[ids].reset_index(drop=True)
        if frame.empty:
            return out.assign(**{self.output_column: pd.Series(dtype=float)})
        return out.assign(**{self.output_column: self._values(frame)})


def _time_split(train: pd.DataFrame, time_column: str, share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(earlier, later) rows split at an observation date so that about ``share`` of rows are later.

    Rows of one date never straddle the split, so the later part is genuinely out of time.
    """
    import numpy as np
    import pandas as pd

    time = pd.to_datetime(train[time_column])
    ordered = np.sort(time.to_numpy())
    cut = ordered[min(len(ordered) - 1, int(len(ordered) * (1.0 - share)))]
    later = (time >= cut).to_numpy()
    return train.loc[~later], train.loc[later]


class TabularModel(_TabularBase):
    """HistGradientBoosting classifier or regressor, with out-of-time probability calibration.

    Category levels are learnt at fit time and stored, so predict-time encoding is identical; unseen
    levels become missing values instead of errors. For classification with ``calibration`` isotonic
    or sigmoid, the booster is fitted on the earlier ~80 % of training rows (by observation date) and
    the calibrator on the booster's scores of the latest ~20 %. Nothing is refitted afterwards: a
    booster refitted on all rows would score differently from the one the calibrator was fitted to,
    and calibration must reflect how the booster behaves on rows *later* than those it learnt from,
    which is the production situation. (A random K-fold split would calibrate on in-time rows and
    miss drift.) Without both classes in each part, calibration is skipped (``calibration_used``).
    """

    def __init__(self, spec: UseCaseSpec) -> None:
        super().__init__(spec)
        self.params = dict(spec.model.params)
        self.calibration = spec.tabular.calibration if self.kind == "classification" else "none"
        self.calibration_used = "none"
        self.n_calibration_rows = 0
        self.categories: dict[str, list[str]] = {}
        self.estimator: Any = None
        self.calibrator: Any = None

    # --- design matrix

    def _learn_categories(self, frame: pd.DataFrame) -> None:
        """Stable levels per categorical column, capped at max_bins (the estimator's hard limit).

        The most frequent levels are kept (ties by name), the rest are treated as missing.
        """
        max_bins = int(self.params.get("max_bins", 255))
        self.categories = {}
        for col in self.categorical:
            counts = frame[col].astype("string").value_counts(dropna=True)
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_bins]
            self.categories[col] = sorted(level for level, _ in ranked)

    def _design(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Model inputs in a fixed column order: numeric as float, categorical with the stored levels."""
        import pandas as pd

        data = {col: _as_float(frame[col]) for col in self.numeric}
        for col in self.categorical:
            data[col] = pd.Categorical(frame[col].astype("string"), categories=self.categories[col])
        return pd.DataFrame(data, columns=self.feature_names)

    def _booster(self) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingClassifier if self.kind == "classification" else HistGradientBoostingRegressor
        return cls(**{**self.params, "categorical_features": "from_dtype", "random_state": self.random_state})

    # --- fit

    def fit(self, train: pd.DataFrame) -> TabularModel:
        """Fit on labelled rows (the caller selects them, see ``training_rows``)."""
        y = self._labels(train)
        self._learn_categories(train)
        self.calibration_used, self.calibrator, self.n_calibration_rows = "none", None, 0
        if self.calibration != "none":
            early, late = _time_split(train, self.time_column, CALIBRATION_SHARE)
            if _has_both_classes(early, self.target) and _has_both_classes(late, self.target):
                self.estimator = self._booster().fit(self._design(early), _as_float(early[self.target]))
                self._fit_calibrator(late)
                self.n_training_rows = len(train)
                return self
        self.estimator = self._booster().fit(self._design(train), y)
        self.n_training_rows = len(train)
        return self

    def _fit_calibrator(self, late: pd.DataFrame) -> None:
        """Isotonic on the booster's probability, or a 1-D logistic (Platt) on its raw log-odds."""
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import LogisticRegression

        X, y = self._design(late), _as_float(late[self.target])
        if self.calibration == "isotonic":
            raw = self.estimator.predict_proba(X)[:, 1]
            self.calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
        else:
            score = self.estimator.decision_function(X).reshape(-1, 1)
            self.calibrator = LogisticRegression().fit(score, y)
        self.calibration_used = self.calibration
        self.n_calibration_rows = len(late)

    # --- predict

    def raw_probability(self, frame: pd.DataFrame) -> np.ndarray:
        """The booster's probability before calibration (diagnostics: compare with ``predict``)."""
        if self.kind != "classification":
            raise TypeError("raw_probability applies to classification models")
        return self._fitted().predict_proba(self._design(frame))[:, 1]

    def _fitted(self) -> Any:
        if self.estimator is None:
            raise RuntimeError("TabularModel.predict called before fit")
        return self.estimator

    def _values(self, frame: pd.DataFrame) -> np.ndarray:
        import numpy as np

        estimator, X = self._fitted(), self._design(frame)
        if self.kind != "classification":
            return estimator.predict(X)
        if self.calibration_used == "isotonic":
            p = self.calibrator.predict(estimator.predict_proba(X)[:, 1])
        elif self.calibration_used == "sigmoid":
            p = self.calibrator.predict_proba(estimator.decision_function(X).reshape(-1, 1))[:, 1]
        else:
            p = estimator.predict_proba(X)[:, 1]
        return np.clip(p, PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)


def _has_both_classes(frame: pd.DataFrame, target: str) -> bool:
    return frame[target].nunique(dropna=True) >= 2


class BaselineModel(_TabularBase):
    """The linear model a booster must beat to justify its complexity.

    Numeric features: median imputation then standardisation; categorical: one-hot (unseen levels
    ignored, missing as its own level). LogisticRegression for classification, Ridge for regression.
    """

    def __init__(self, spec: UseCaseSpec) -> None:
        super().__init__(spec)
        self.pipeline: Any = None

    def _pipeline(self) -> Any:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import Pipeline, make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        parts = [("numeric", numeric, self.numeric)]
        if self.categorical:
            parts.append(("categorical", OneHotEncoder(handle_unknown="ignore"), self.categorical))
        head = LogisticRegression(max_iter=1000) if self.kind == "classification" else Ridge()
        return Pipeline([("features", ColumnTransformer(parts)), ("model", head)])

    def _design(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Numeric as float (NaN for missing, imputed later); categorical as strings with a missing level."""
        import pandas as pd

        data = {col: _as_float(frame[col]) for col in self.numeric}
        for col in self.categorical:
            data[col] = frame[col].astype("string").fillna(MISSING_LEVEL).astype(object).to_numpy()
        return pd.DataFrame(data, columns=self.feature_names)

    def fit(self, train: pd.DataFrame) -> BaselineModel:
        y = self._labels(train)
        self.pipeline = self._pipeline().fit(self._design(train), y)
        self.n_training_rows = len(train)
        return self

    def _values(self, frame: pd.DataFrame) -> np.ndarray:
        import numpy as np

        if self.pipeline is None:
            raise RuntimeError("BaselineModel.predict called before fit")
        X = self._design(frame)
        if self.kind != "classification":
            return self.pipeline.predict(X)
        return np.clip(self.pipeline.predict_proba(X)[:, 1], PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)


# ------------------------------------------------------------------------------------------- evaluation


def scores(actual: Any, predicted: Any, kind: str) -> dict[str, float]:
    """Accuracy of one set of predictions: the metrics every tabular report carries.

    classification: log_loss, brier, roc_auc, calibration_error (ECE), positive_rate (observed), n;
    regression: mae, rmse, wape, bias, n.
    """
    import numpy as np

    a, p = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    n = int((np.isfinite(a) & np.isfinite(p)).sum())
    if kind == "classification":
        rate = float(np.nanmean(a)) if n else float("nan")
        return {"log_loss": log_loss(a, p), "brier": brier(a, p), "roc_auc": roc_auc(a, p),
                "calibration_error": expected_calibration_error(a, p), "positive_rate": rate, "n": n}
    return {"mae": mae(a, p), "rmse": rmse(a, p), "wape": wape(a, p), "bias": bias(a, p), "n": n}


def _comparison(rows: pd.DataFrame, spec: UseCaseSpec) -> dict[str, Any]:
    """Model and baseline on the same rows, and the gate metric's relative improvement."""
    actual, metric = rows[spec.features.target], spec.gate_metric
    model = scores(actual, rows[_MODEL], spec.kind)
    baseline = scores(actual, rows[_BASELINE], spec.kind)
    improvement = relative_improvement(metric, model[metric], baseline[metric])
    return {"model": model, "baseline": baseline, "improvement": improvement, "n_eval_rows": len(rows)}


def _run_fold(
    features: pd.DataFrame, spec: UseCaseSpec, origin: pd.Timestamp, run_date: pd.Timestamp, max_rows: int | None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit model and baseline on rows labelled by ``origin``; predict the fold's evaluation rows."""
    train = training_rows(features, spec, origin, max_rows)
    if train.empty:
        raise DataQualityError(
            f"no labelled training rows for backtest origin {origin.date()}: history starts "
            f"{features[spec.features.time_column].min().date()}, too short for {spec.backtest.folds} folds "
            f"of {spec.backtest.fold_step} days with a {spec.tabular.label_delay_days}-day label delay"
        )
    _assert_no_leakage(train, spec, origin)
    evaluation = evaluation_rows(features, spec, origin, run_date)
    column = output_column(spec.kind)
    rows = evaluation.assign(**{
        _MODEL: TabularModel(spec).fit(train).predict(evaluation)[column].to_numpy(),
        _BASELINE: BaselineModel(spec).fit(train).predict(evaluation)[column].to_numpy(),
        _FOLD: origin.date().isoformat(),
    })
    fold = {"origin": origin.date().isoformat(), "n_training_rows": len(train), **_comparison(rows, spec)}
    return fold, rows


# -------------------------------------------------------------------------------------- champion check


def _champion_predictions(model: Any, rows: pd.DataFrame, spec: UseCaseSpec) -> tuple[Any, str | None]:
    """(predictions, None) or (None, why the champion cannot score these rows). Never raises."""
    import numpy as np

    kind = getattr(model, "kind", None)
    if not isinstance(model, TabularModel) or kind != spec.kind:
        return None, (f"the champion model ({type(model).__name__}, kind {kind!r}) is not a {spec.kind} "
                      "TabularModel, so it cannot be compared on these rows")
    try:
        values = model.predict(rows)[output_column(spec.kind)].to_numpy(dtype=float)
    except Exception as exc:  # any failure is reported, never raised: a broken champion must not block training
        return None, f"the champion cannot predict these features: {type(exc).__name__}: {exc}"
    if len(values) != len(rows) or not np.isfinite(values).all():
        return None, "the champion returned missing or non-finite predictions for the backtest rows"
    return values, None


def _champion_rows(champion: ChampionLike, rows: pd.DataFrame, spec: UseCaseSpec) -> tuple[Any, str | None]:
    """Backtest rows whose label became known after the champion was trained, or why there are none.

    Only those rows are fair: the champion may have learnt from every label known by ``trained_to``.
    """
    try:
        trained_to = to_timestamp(champion.trained_to)
    except Exception as exc:  # a malformed champion record is reported, not raised
        return None, f"the champion's trained_to {getattr(champion, 'trained_to', None)!r} is not a date ({exc})"
    time = rows[spec.features.time_column]
    subset = rows.loc[(time + _days(spec.tabular.label_delay_days) > trained_to).to_numpy()]
    if subset.empty:
        return None, (f"no backtest row has a label that became known after the champion was trained "
                      f"(trained_to {trained_to.date()}), so the two cannot be compared fairly")
    return subset, None


def _champion_block(champion: ChampionLike | None, rows: pd.DataFrame, spec: UseCaseSpec) -> dict | None:
    """Challenger (backtest predictions) against the champion on the same, fair rows.

    ``beats_champion`` is False whenever no comparison was possible; ``error`` then says why, and the
    caller decides whether that blocks promotion (e.g. a champion that cannot read today's features).
    """
    if champion is None:
        return None
    metric, margin = spec.gate_metric, spec.backtest.champion_margin
    block: dict[str, Any] = {
        "version": str(getattr(champion, "version", None)), "trained_to": None, "n_eval_rows": 0,
        "metric": metric, "challenger": None, "champion": None, "improvement": float("nan"),
        "margin": margin, "beats_champion": False, "error": None,
    }
    subset, error = _champion_rows(champion, rows, spec)
    if error is None:
        block["trained_to"] = to_timestamp(champion.trained_to).date().isoformat()
        values, error = _champion_predictions(getattr(champion, "model", None), subset, spec)
    if error is not None:
        return {**block, "error": error}
    actual = subset[spec.features.target]
    challenger, current = scores(actual, subset[_MODEL], spec.kind), scores(actual, values, spec.kind)
    improvement = relative_improvement(metric, challenger[metric], current[metric])
    return {**block, "n_eval_rows": len(subset), "challenger": challenger, "champion": current,
            "improvement": improvement, "beats_champion": _passes(improvement, margin)}


# ---------------------------------------------------------------------------------------- result assembly


def _passes(improvement: float, required: float) -> bool:
    import math

    return bool(math.isfinite(improvement) and improvement >= required)


def _metrics(folds: list[dict], pooled: dict[str, Any], champion: dict | None, spec: UseCaseSpec) -> dict:
    from mlplatform.training import _json_safe

    metric = spec.gate_metric
    return _json_safe({
        "metric": metric,
        "higher_is_better": metric in HIGHER_IS_BETTER,
        "model": pooled["model"],
        "baseline": pooled["baseline"],
        "improvement": pooled["improvement"],
        "min_improvement": spec.backtest.min_improvement,
        "beats_baseline": _passes(pooled["improvement"], spec.backtest.min_improvement),
        "n_eval_rows": pooled["n_eval_rows"],
        "label_delay_days": spec.tabular.label_delay_days,
        "fold_step": spec.backtest.fold_step,
        "folds": folds,
        "champion": champion,
    })


def _fairness(rows: pd.DataFrame, spec: UseCaseSpec) -> dict[str, Any]:
    """Group fairness of the challenger's backtest predictions (the rows its gate metric comes from).

    The backtest rows are the only predictions with known outcomes that no fitted model has seen, so
    they are where a TPR or FPR gap between groups means something; the check goes to the registry gate.
    """
    from mlplatform import fairness
    from mlplatform.training import _json_safe

    f = spec.fairness
    return _json_safe(fairness.assess(rows[spec.features.target], rows[_MODEL], rows[f.sensitive_attributes], f))


def _row_cap(max_training_rows: int | None | str, spec: UseCaseSpec) -> int | None:
    return spec.model.max_training_rows if max_training_rows == FROM_SPEC else max_training_rows


def train_and_backtest(
    features: pd.DataFrame,
    spec: UseCaseSpec,
    run_date: Any,
    max_training_rows: int | None | Literal["spec"] = FROM_SPEC,
    champion: ChampionLike | None = None,
) -> TrainingResult:
    """Backtest ``spec.backtest.folds`` origins against the baseline (and champion), then fit the final model.

    ``features`` is the features mart up to ``run_date`` (a later row raises DataQualityError) with
    null targets where labels are not known yet. Every fit, in the folds and the final one, uses the
    same row budget (``max_training_rows``; default the spec's ``model.max_training_rows``, None = all
    rows), so the backtest measures the model that gets promoted. Champion problems never raise: they
    are reported in ``metrics['champion']['error']``. With ``fairness.sensitive_attributes``, the group
    report of the backtest rows and its verdict are in ``metrics['fairness']`` (see mlplatform.fairness).
    """
    import pandas as pd

    from mlplatform.training import TrainingResult, reference_frame

    run_date = to_timestamp(run_date)
    frame = prepare(features, spec, run_date)
    max_rows = _row_cap(max_training_rows, spec)
    folds, rows = [], []
    for origin in backtest_origins(spec, run_date):
        fold, fold_rows = _run_fold(frame, spec, origin, run_date, max_rows)
        folds.append(fold)
        rows.append(fold_rows)
    pooled_rows = pd.concat(rows, ignore_index=True)
    metrics = _metrics(folds, _comparison(pooled_rows, spec), _champion_block(champion, pooled_rows, spec), spec)
    if spec.fairness.sensitive_attributes:
        metrics["fairness"] = _fairness(pooled_rows, spec)

    train = training_rows(frame, spec, run_date, max_rows)
    _assert_no_leakage(train, spec, run_date)
    model = TabularModel(spec).fit(train)
    start = train[spec.features.time_column].min().date().isoformat()
    return TrainingResult(
        model=model,
        metrics=metrics,
        training_window={"start": start, "end": run_date.date().isoformat()},
        feature_names=list(model.feature_names),
        n_training_rows=len(train),
        reference=reference_frame(features, spec, run_date),
    )


# ---------------------------------------------------------------------------------------------- scoring


def scoring_rows(features: pd.DataFrame, spec: UseCaseSpec, run_date: Any) -> pd.DataFrame:
    """Each entity's latest row observed in (run_date - score_lookback_days, run_date], sorted by keys.

    Rows after run_date are ignored (a backfill scores as of its own date). Raises DataQualityError
    when no entity has a row in the window: publishing scores for nobody would silently replace the
    previous publication with an empty one.
    """
    import pandas as pd

    f = spec.features
    run_date = to_timestamp(run_date)
    require_columns(features, [*f.series_keys, f.time_column], "features")
    time = pd.to_datetime(features[f.time_column])
    start = run_date - _days(spec.tabular.score_lookback_days)
    inside = ((time > start) & (time <= run_date)).to_numpy()
    if not inside.any():
        latest = time[time <= run_date].max()
        latest_text = "none" if pd.isna(latest) else latest.date().isoformat()
        raise DataQualityError(
            f"no entity has a feature row in the {spec.tabular.score_lookback_days} day(s) up to run_date "
            f"{run_date.date()} (latest feature date on or before it: {latest_text}); "
            "check that the features model was built for this date"
        )
    window = features.loc[inside].assign(**{f.time_column: time[inside]})
    latest_rows = window.sort_values([*f.series_keys, f.time_column], kind="stable")
    return latest_rows.drop_duplicates(f.series_keys, keep="last").reset_index(drop=True)


def risk_band(probability: Any) -> np.ndarray:
    """'low' / 'medium' / 'high' by the illustrative RISK_THRESHOLDS (0.05 and 0.20)."""
    import numpy as np

    p = np.asarray(probability, dtype=float)
    return np.asarray(RISK_LABELS, dtype=object)[np.searchsorted(RISK_THRESHOLDS, p, side="right")]


def _format(predictions: pd.DataFrame, model: _TabularBase, spec: UseCaseSpec) -> pd.DataFrame:
    """Publication columns: keys, observation_date (a date), probability + risk_band or prediction."""
    keys, column = spec.features.series_keys, model.output_column
    out = predictions.rename(columns={spec.features.time_column: OBSERVATION_DATE})
    out = out[[*keys, OBSERVATION_DATE, column]].copy()
    out[OBSERVATION_DATE] = out[OBSERVATION_DATE].dt.date
    if column == PROBABILITY:
        out[RISK_BAND] = risk_band(out[PROBABILITY])
    return out


def score_chunks(
    model: _TabularBase, features: pd.DataFrame, spec: UseCaseSpec, run_date: Any, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """Yield scores of every entity's latest row in the lookback window, at most ``chunk_rows`` rows each.

    Entities come in key order, so the output is deterministic and each entity appears exactly once.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    if getattr(model, "kind", None) != spec.kind:
        raise SpecError(f"model of kind {getattr(model, 'kind', None)!r} cannot score use case "
                        f"{spec.name!r} of kind {spec.kind!r}")
    rows = scoring_rows(features, spec, run_date)
    for start in range(0, len(rows), chunk_rows):
        chunk = rows.iloc[start : start + chunk_rows]
        yield _format(model.predict(chunk), model, spec).reset_index(drop=True)
