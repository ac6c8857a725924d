"""A small seeded synthetic credit panel shaped like a tabular features mart, plus test specs.

Customers are observed every 30 days (each on its own day of the month) for about two years. The
90-day default risk follows a logistic model of utilisation (with a jump above 80 %, which a linear
baseline can only approximate), days past due, income and segment; ``spend_90d`` (the regression
target) depends on the same features. Labels of rows observed in the last 90 days before the panel's
``as_of`` date are null, as in a mart built on that date.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlplatform.spec import UseCaseSpec

START = pd.Timestamp("2023-01-02")
DELAY = 90
FAST_PARAMS = {"max_iter": 40, "learning_rate": 0.1, "max_leaf_nodes": 8, "min_samples_leaf": 40}
SEGMENT_EFFECT = {"retail": 0.0, "sme": 0.6, "premium": -0.9}
NUMERIC = ["utilisation", "days_past_due", "income_k", "tenure_months", "noise"]
CATEGORICAL = ["segment", "region"]


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def make_spec(kind: str = "classification", overrides: dict[str, Any] | None = None) -> UseCaseSpec:
    """A credit use case validated like a real spec (placeholder suite and dbt names)."""
    raw = {
        "name": "credit_default" if kind == "classification" else "credit_spend",
        "description": "Synthetic 90-day credit outcome per customer, for unit tests.",
        "owner": "risk-analytics",
        "kind": kind,
        "start_date": "2025-01-01",
        "source": {"type": "generator", "generator": "credit_panel", "history_start": "2023-01-01"},
        "transform": {"select": "+fct_credit_features", "features_model": "fct_credit_features"},
        "validation": {"suite": "credit_features.json"},
        "features": {
            "time_column": "snapshot_date",
            "series_keys": ["customer_id"],
            "target": "defaulted_90d" if kind == "classification" else "spend_90d",
            "numeric": NUMERIC,
            "categorical": CATEGORICAL,
        },
        "model": {"params": FAST_PARAMS, "training_window": 540, "max_training_rows": 20_000},
        "tabular": {"label_delay_days": DELAY, "calibration": "isotonic", "score_lookback_days": 31},
        "backtest": {"folds": 3, "fold_step": 30, "min_improvement": 0.0, "champion_margin": 0.02},
        "monitoring": {"window_days": 28, "reference_days": 180},
    }
    return UseCaseSpec.model_validate(_merge(raw, overrides or {}))


def _customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": [f"C{i:04d}" for i in range(n)],
        "segment": rng.choice(list(SEGMENT_EFFECT), size=n, p=[0.6, 0.25, 0.15]),
        "region": rng.choice(["north", "south", "east"], size=n),
        "income_k": np.round(np.exp(rng.normal(3.6, 0.4, n)), 1),
        "offset": rng.integers(0, 30, n),
        "base_util": rng.beta(2, 3, n),
        "tenure0": rng.integers(1, 120, n),
    })


def _snapshots(customers: pd.DataFrame, n_periods: int, rng: np.random.Generator) -> pd.DataFrame:
    """One row per customer every 30 days, utilisation drifting as a bounded random walk."""
    n = len(customers)
    period = np.tile(np.arange(n_periods), n)
    frame = customers.loc[customers.index.repeat(n_periods)].reset_index(drop=True)
    frame["snapshot_date"] = START + pd.to_timedelta(frame["offset"] + 30 * period, unit="D")
    steps = rng.normal(0.0, 0.06, (n, n_periods)).cumsum(axis=1).ravel()
    frame["utilisation"] = np.clip(frame["base_util"] + steps, 0.0, 1.0).round(3)
    frame["tenure_months"] = frame["tenure0"] + period
    frame["days_past_due"] = rng.poisson(0.3 + 2.0 * frame["utilisation"] ** 3)
    frame["noise"] = rng.normal(size=len(frame))
    return frame


def _outcomes(frame: pd.DataFrame, rng: np.random.Generator, signal: float, intercept: float) -> pd.DataFrame:
    util = frame["utilisation"].to_numpy()
    logit = (intercept + signal * (2.2 * (util > 0.8) + 1.0 * util + 0.5 * frame["days_past_due"]
                              - 0.8 * np.log(frame["income_k"] / 36.0) + frame["segment"].map(SEGMENT_EFFECT)))
    p = 1.0 / (1.0 + np.exp(-logit.to_numpy()))
    frame["true_probability"] = p
    frame["defaulted_90d"] = (rng.uniform(size=len(frame)) < p).astype(float)
    spend = 2.0 + signal * (3.0 * util + 1.5 * (util > 0.8) + 0.02 * frame["income_k"])
    frame["spend_90d"] = (spend + rng.normal(0.0, 0.8, len(frame))).round(3)
    return frame


def make_panel(
    n_customers: int = 400, n_periods: int = 24, seed: int = 0, signal: float = 1.0, intercept: float = -3.4
) -> pd.DataFrame:
    """The full panel with every label filled in (the truth); use ``as_of`` for what a mart would hold.

    ``signal`` scales every feature effect (0 = labels independent of the features); ``intercept`` is
    the default log-odds before feature effects (-3.4 gives ~13 % defaults with signal 1). Income is
    missing for ~3 % of rows to exercise imputation.
    """
    rng = np.random.default_rng(seed)
    frame = _outcomes(_snapshots(_customers(n_customers, rng), n_periods, rng), rng, signal, intercept)
    frame.loc[rng.uniform(size=len(frame)) < 0.03, "income_k"] = np.nan
    columns = ["customer_id", "snapshot_date", *NUMERIC, *CATEGORICAL, "defaulted_90d", "spend_90d",
               "true_probability"]
    return frame[columns].sort_values(["snapshot_date", "customer_id"]).reset_index(drop=True)


def as_of(panel: pd.DataFrame, run_date: Any, delay: int = DELAY) -> pd.DataFrame:
    """What the mart holds on ``run_date``: rows observed by then, labels null unless known by then."""
    run_date = pd.Timestamp(run_date)
    out = panel.loc[panel["snapshot_date"] <= run_date].copy()
    unknown = out["snapshot_date"] > run_date - pd.Timedelta(days=delay)
    out.loc[unknown, ["defaulted_90d", "spend_90d"]] = np.nan
    return out.reset_index(drop=True)


def last_date(panel: pd.DataFrame) -> pd.Timestamp:
    return pd.Timestamp(panel["snapshot_date"].max())
