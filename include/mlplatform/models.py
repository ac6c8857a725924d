"""One entry point per model operation, whatever the use case's kind.

Forecasts use the quantile forecaster (``training``/``forecasting``/``scoring``); regression and
classification use the tabular trainer (``tabular``). The pipeline calls only these functions, so a
stage never branches on the kind itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING, Any

from mlplatform.spec import UseCaseSpec

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from mlplatform.training import TrainingResult


def champion_input(version: str, model: Any, trained_to: str) -> Any:
    """What the trainers need of the current champion to compare on the same backtest window."""
    from mlplatform.training import ChampionInput

    return ChampionInput(version=version, model=model, trained_to=date.fromisoformat(trained_to))


def train(spec: UseCaseSpec, features: pd.DataFrame, calendar: pd.DataFrame, run_date: date,
          champion: Any = None) -> TrainingResult:
    """Backtest against the baseline (and the champion, if any) and fit the final model."""
    if spec.kind == "forecast":
        from mlplatform.training import train_and_backtest

        return train_and_backtest(features, calendar, spec, run_date,
                                  max_training_rows=spec.model.max_training_rows, champion=champion)
    from mlplatform.tabular import train_and_backtest as train_tabular

    return train_tabular(features, spec, run_date, max_training_rows=spec.model.max_training_rows,
                         champion=champion)


def load(spec: UseCaseSpec, data: bytes) -> Any:
    """A registered model from its bytes (the class checks it is the kind it should be)."""
    if spec.kind == "forecast":
        from mlplatform.candidates import ForecastModel
        from mlplatform.forecasting import QuantileForecaster
        from mlplatform.serialise import JoblibSerialisable

        model = JoblibSerialisable.from_bytes(data)
        if not isinstance(model, ForecastModel | QuantileForecaster):  # versions before candidates: bare trees
            raise TypeError(f"expected a serialised ForecastModel, got {type(model).__name__}")
        return model
    from mlplatform.tabular import TabularModel

    return TabularModel.from_bytes(data)


def score(spec: UseCaseSpec, model: Any, features: pd.DataFrame, calendar: pd.DataFrame, run_date: date,
          chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The rows to publish for ``run_date``, in bounded chunks."""
    if spec.kind == "forecast":
        from mlplatform.scoring import forecast_chunks

        return forecast_chunks(model, features, calendar, spec, run_date, chunk_rows)
    from mlplatform.tabular import score_chunks

    return score_chunks(model, features, spec, run_date, chunk_rows)


def output_columns(spec: UseCaseSpec) -> list[str]:
    """The value columns a published row carries (besides keys and dates)."""
    if spec.kind == "forecast":
        return spec.quantile_columns
    return ["probability", "risk_band"] if spec.kind == "classification" else ["prediction"]


def sanity_check(spec: UseCaseSpec, model_bytes: bytes, features: pd.DataFrame, calendar: pd.DataFrame,
                 run_date: date, chunk_rows: int) -> dict[str, Any]:
    """Score the run's own rows with the model *as it will be served* (loaded back from its bytes).

    Why: the backtest scores the fold models, not the final fit, and not the serialised artifact; a
    final fit or a serialisation that yields NaN/inf (or probabilities outside [0, 1]) would otherwise
    be promoted and publish garbage the next day. The verdict blocks promotion and eligibility.
    """
    import numpy as np

    model = load(spec, model_bytes)
    columns = output_columns(spec)
    numeric = [c for c in columns if c != "risk_band"]
    rows = bad = out_of_range = 0
    for chunk in score(spec, model, features, calendar, run_date, chunk_rows):
        values = chunk[numeric].to_numpy(dtype=float)
        rows += len(chunk)
        bad += int((~np.isfinite(values)).any(axis=1).sum())
        if spec.kind == "classification":
            out_of_range += int(((values < 0) | (values > 1)).any(axis=1).sum())
    problems = []
    if rows == 0:
        problems.append("the model scored no rows of the run's features")
    if bad:
        problems.append(f"{bad} of {rows} scored rows have NaN or infinite {'/'.join(numeric)}")
    if out_of_range:
        problems.append(f"{out_of_range} of {rows} probabilities outside [0, 1]")
    return {"passed": not problems, "rows_scored": rows, "non_finite_rows": bad,
            "out_of_range_rows": out_of_range, "problems": problems}
