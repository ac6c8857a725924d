"""Accuracy on actuals: score what was published against what actually happened.

Each run joins the partitions published in the last ``accuracy.lookback_days`` to the actuals known as
of its own date (the feature snapshot: targets for forecasts, labels whose outcome window has closed for
classification), and stores realised metrics per published run date and horizon. The serving model's
realised error is compared with its own backtest error: past ``accuracy.max_decay`` (or the absolute
``max_wape``) it is a breach, which alerts and triggers a retrain.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlplatform import metrics as M
from mlplatform.spec import UseCaseSpec

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

TARGET_DATE = "target_date"
OBSERVATION_DATE = "observation_date"
ACTUAL = "actual"
PUBLISHED_RUN_DATE = "published_run_date"


def actuals(features: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """Known outcomes keyed like the published rows (censored or unknown targets left out)."""
    f = spec.features
    keep = features[f.target].notna()
    if f.censored_flag and f.censored_flag in features.columns:
        keep &= ~features[f.censored_flag].fillna(False).astype(bool)
    key = TARGET_DATE if spec.kind == "forecast" else OBSERVATION_DATE
    out = features.loc[keep, [*f.series_keys, f.time_column, f.target]]
    out = out.rename(columns={f.time_column: key, f.target: ACTUAL})
    out[key] = out[key].astype("datetime64[ns]").dt.normalize()
    return out


def join_actuals(published: pd.DataFrame, known: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """Published rows that now have an actual (inner join on series keys and date)."""
    key = TARGET_DATE if spec.kind == "forecast" else OBSERVATION_DATE
    rows = published.copy()
    rows[key] = rows[key].astype("datetime64[ns]").dt.normalize()
    return rows.merge(known, on=[*spec.features.series_keys, key], how="inner")


def realised_metrics(rows: pd.DataFrame, spec: UseCaseSpec) -> dict[str, Any]:
    """Realised metrics of joined rows: WAPE, bias and interval coverage (forecast) or the probability
    metrics (classification) or errors (regression)."""
    n = len(rows)
    if spec.kind == "forecast":
        q = spec.quantile_columns
        out = {"wape": M.wape(rows[ACTUAL], rows["p50"]), "bias": M.bias(rows[ACTUAL], rows["p50"])}
        out["coverage"] = M.interval_coverage(rows[ACTUAL], rows[q[0]], rows[q[-1]]) if len(q) > 1 else None
    elif spec.kind == "classification":
        out = {name: getattr(M, name)(rows[ACTUAL], rows["probability"]) for name in ("log_loss", "brier")}
        out["roc_auc"] = M.roc_auc(rows[ACTUAL], rows["probability"])
    else:
        out = {"mae": M.mae(rows[ACTUAL], rows["prediction"]), "rmse": M.rmse(rows[ACTUAL], rows["prediction"]),
               "wape": M.wape(rows[ACTUAL], rows["prediction"]), "bias": M.bias(rows[ACTUAL], rows["prediction"])}
    return {"n": n, **{k: _clean(v) for k, v in out.items()}}


def _clean(value: Any) -> Any:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def breakdown(rows: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """One row per published run date (and horizon, for forecasts) with its realised metrics."""
    import pandas as pd

    keys = [PUBLISHED_RUN_DATE, "model_version"] + (["horizon"] if spec.kind == "forecast" else [])
    records = []
    for group, part in rows.groupby(keys, sort=True):
        records.append({**dict(zip(keys, group, strict=True)), **realised_metrics(part, spec)})
    return pd.DataFrame.from_records(records)


def assess(rows: pd.DataFrame, spec: UseCaseSpec, serving: dict | None) -> dict[str, Any]:
    """Realised accuracy of the serving model vs its backtest; ``breach`` when it decayed past the spec."""
    a, metric = spec.accuracy, spec.gate_metric
    out: dict[str, Any] = {"metric": metric, "breach": False, "breach_reason": None,
                           "overall": realised_metrics(rows, spec) if len(rows) else {"n": 0}}
    if serving is None:
        out["serving"] = None
        return out
    mine = rows[rows["model_version"] == serving["version"]] if len(rows) else rows
    realised = realised_metrics(mine, spec) if len(mine) else {"n": 0}
    backtest = serving["metrics"]["model"].get(metric)
    out["serving"] = {"version": serving["version"], "realised": realised, "backtest": backtest}
    value = realised.get(metric)
    keys = [k for k in spec.features.series_keys if k in mine.columns]
    n_series = int(mine.groupby(keys, dropna=False).ngroups) if len(mine) and keys else int(len(mine) > 0)
    min_rows, rule = spec.accuracy_min_rows_for(n_series)
    out["serving"]["min_rows"], out["serving"]["min_rows_rule"] = min_rows, rule
    if realised["n"] < min_rows or value is None or backtest is None:
        out["note"] = f"{realised['n']} realised rows of {serving['version']} (< {min_rows}, {rule}): no verdict yet"
        return out
    higher = metric in M.HIGHER_IS_BETTER
    decayed = value < backtest * (1 - a.max_decay) if higher else value > backtest * (1 + a.max_decay)
    absolute = spec.kind == "forecast" and a.max_wape is not None and realised.get("wape", 0) > a.max_wape
    if decayed or absolute:
        out["breach"] = True
        limit = f"max_wape {a.max_wape}" if absolute and not decayed else f"max_decay {a.max_decay:.0%}"
        out["breach_reason"] = (f"realised {metric} {value:.4f} of {serving['version']} on {realised['n']} rows "
                                f"vs backtest {backtest:.4f} ({limit})")
    return out


def _sensitive_attributes(features: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """The fairness section's attributes per (entity, observation date), from the features snapshot.

    Why from the snapshot: published files carry scores only; sensitive attributes never go into them,
    so monitoring joins them back from the run's own features.
    """
    from mlplatform.errors import DataQualityError

    f, attributes = spec.features, spec.fairness.sensitive_attributes
    missing = [a for a in attributes if a not in features.columns]
    if missing:
        raise DataQualityError(f"{spec.name}: fairness.sensitive_attributes {missing} are not columns of the "
                               "features snapshot; add them to the features mart")
    out = features[[*f.series_keys, f.time_column, *attributes]].rename(columns={f.time_column: OBSERVATION_DATE})
    out[OBSERVATION_DATE] = out[OBSERVATION_DATE].astype("datetime64[ns]").dt.normalize()
    return out.drop_duplicates([*f.series_keys, OBSERVATION_DATE])


def realised_fairness(rows: pd.DataFrame, features: pd.DataFrame, spec: UseCaseSpec) -> dict[str, Any] | None:
    """Group fairness of published scores on their realised outcomes; None unless the spec asks for it.

    ``rows`` are published rows joined to their actuals (``join_actuals``, with PUBLISHED_RUN_DATE). A
    review is scored again by every run in its lookback, so each (entity, observation date) counts once,
    with the score of its latest publication: counting repeats would weight long-scored rows more and
    break the minimum group size. The verdict uses the same limits as the training gate, for reference.
    """
    import pandas as pd

    from mlplatform import fairness

    if spec.kind != "classification" or not spec.fairness.sensitive_attributes:
        return None
    attributes = spec.fairness.sensitive_attributes
    keys = [*spec.features.series_keys, OBSERVATION_DATE]
    groups = _sensitive_attributes(features, spec)
    if not len(rows):
        empty = pd.DataFrame({a: pd.Series(dtype=object) for a in attributes})
        return {**fairness.assess([], [], empty, spec.fairness), "model_versions": []}
    latest = rows.sort_values(PUBLISHED_RUN_DATE, kind="stable").drop_duplicates(keys, keep="last")
    joined = latest.drop(columns=[a for a in attributes if a in latest.columns]).merge(groups, on=keys, how="left")
    report = fairness.assess(joined[ACTUAL], joined["probability"], joined[attributes], spec.fairness)
    versions = sorted(map(str, joined["model_version"].unique())) if "model_version" in joined else []
    return {**report, "model_versions": versions}


def lookback_dates(published: list[date], run_date: date, lookback_days: int) -> list[date]:
    """Published run dates before ``run_date`` within the lookback (what is re-scored today)."""
    first = run_date - timedelta(days=lookback_days)
    return [d for d in published if first <= d < run_date]
