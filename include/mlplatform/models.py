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
        from mlplatform.forecasting import QuantileForecaster

        return QuantileForecaster.from_bytes(data)
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
