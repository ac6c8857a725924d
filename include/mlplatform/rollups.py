"""Roll-ups of a published forecast partition into the periods consumers plan in (e.g. finance months).

Built by the downstream consumer DAG, scheduled on the forecast asset: it reads exactly the published
partition (manifest and checksums), aggregates, and publishes its own partition the same atomic way.
Sums of per-day P10/P90 are reported as ``sum_p10``/``sum_p90``: they bound the period total more widely
than its true 10/90 % quantiles (quantiles do not add), which the column names keep honest.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from mlplatform.errors import PlatformError
from mlplatform.publishing import publish_partition, read_manifest, read_published
from mlplatform.spec import RollupSpec, UseCaseSpec
from mlplatform.storage import Layout, ObjectStore

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_PERIOD_CODE = {"week": "W-SUN", "month": "M", "quarter": "Q"}


def rollup_frame(forecasts: pd.DataFrame, rollup: RollupSpec, quantiles: list[str]) -> pd.DataFrame:
    """Period totals per ``group_by`` keys, with how many of the period's days the forecast covers."""
    import pandas as pd

    days = pd.to_datetime(forecasts["target_date"])
    periods = days.dt.to_period(_PERIOD_CODE[rollup.period])
    frame = forecasts.assign(period=periods)
    keys = [*rollup.group_by, "period"]
    sums = {q: "sum" for q in quantiles}
    out = frame.groupby(keys, sort=True).agg(**{f"sum_{q}": (q, "sum") for q in sums},
                                             days_forecast=("target_date", "nunique")).reset_index()
    out = out.rename(columns={"sum_p50": "forecast"})
    out["period_start"] = out["period"].dt.start_time.dt.date
    out["period_end"] = out["period"].dt.end_time.dt.date
    out["days_in_period"] = (out["period"].dt.end_time - out["period"].dt.start_time).dt.days + 1
    out["complete_period"] = out["days_forecast"] == out["days_in_period"]
    cols = [*rollup.group_by, "period_start", "period_end", "forecast",
            *[c for c in out.columns if c.startswith("sum_")], "days_forecast", "days_in_period",
            "complete_period"]
    return out[cols]


def build_rollups(spec: UseCaseSpec, run_date: date, store: ObjectStore) -> list[dict]:
    """Every roll-up the spec declares, for the partition published for ``run_date``."""
    if spec.kind != "forecast":
        raise PlatformError(f"{spec.name}: roll-ups apply to forecasts, not to kind {spec.kind!r}")
    layout = Layout(spec.name)
    manifest = read_manifest(store, layout.forecasts(run_date))
    forecasts = read_published(store, layout.forecasts(run_date))
    out = []
    for rollup in spec.publish.rollups:
        table = rollup_frame(forecasts, rollup, manifest["quantiles"])
        stamp = {"use_case": spec.name, "run_date": run_date.isoformat(), "model_version": manifest["model_version"]}
        published = publish_partition(store, layout.rollup(rollup.name, run_date), [table], stamp, {
            "rollup": rollup.model_dump(mode="json"), "source_partition": manifest["partition_uri"],
            "source_files": [f["sha256"] for f in manifest["files"]]})
        out.append({"rollup": rollup.name, "partition_uri": published["partition_uri"],
                    "rows": published["row_count"]})
    return out
