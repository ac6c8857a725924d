"""Forecast accuracy on real public data (`make evaluate`): the platform side by side with statsforecast.

Why: the platform's own backtests run on data it generated itself. This measures its published forecasts
on real series that ship offline inside statsmodels (nothing is downloaded), against two references fitted
in the same run on exactly the same history: statsforecast's AutoETS (P10-P90 = its 80 % interval) and the
seasonal naive forecast (statsforecast's SeasonalNaive, same interval).

Each dataset is a normal use case (bench/evaluation/use_cases/<name>.yaml, `source.type: warehouse`, dbt
models under dbt_project/models/*/evaluation/, a GX suite in include/expectations/):

1. the runner, as the use case's external loader, writes the dataset's whole history into
   raw_eval.<table> of a fresh DuckDB warehouse; dbt's staging as-of filters make each run see only the
   rows up to its run date;
2. for each of N rolling-origin cut-offs (the last N period ends spaced by the horizon, oldest first: the
   forecast windows tile the last N x H periods) the use case's real DAG runs for that logical date with
   dag.test(), exactly as tests/integration does: land (readiness check), dbt build, GX validation, drift,
   training with its backtest and promotion gate, scoring, atomic publication to a real S3 server. All
   DAG runs of a dataset share one fresh interpreter (a worker) whose MLPLATFORM_USE_CASES_DIR points at
   bench/evaluation/use_cases;
3. the published partition is read as a consumer reads it (publishing.read_published); a cut-off that
   published nothing (e.g. the gate refused the model, so there is no champion and score_and_publish
   fails) is recorded as ``published: false`` with the error, never a crash;
4. the references forecast the same series from the same cut-offs; every method is scored on the same
   rows: (series, cut-off, horizon) that all three forecast and whose actual is known (the weeks without
   a CO2 measurement have no actual and are left out).

Registry: by default each cut-off runs in its own bucket (``--registry fresh``): no champion from an
earlier cut-off, so every cut-off trains on the data up to it, like the references refit at every cut-off.
``--registry shared`` runs the cut-offs in one bucket in date order, like a backfill: a later cut-off
compares with (and may keep) the champion of an earlier one.

Output: bench/evaluation.json ({"<dataset>": {"platform": ..., "seasonal_naive": ..., "auto_ets": ...,
"ratio_vs_best_reference": ..., "targets_met": ...}, "machine": ..., "method": ...}) and
bench/evaluation.md; the table is printed. ``--check`` exits 1 when a target is missed.

Usage: .venv/bin/python bench/evaluate.py [--datasets a,b] [--cutoffs N] [--registry fresh|shared] [--check]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Harness, machine_info, object_store, worker_main  # noqa: E402 - bench is not a package

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
USE_CASES_DIR = BENCH_DIR / "evaluation" / "use_cases"
DEFAULT_OUTPUT = BENCH_DIR / "evaluation.json"
RAW_SCHEMA = "raw_eval"
KEYS = ["series_id", "cutoff", "horizon"]
# Rows are aligned on the target date too: a method numbering horizons differently would otherwise be
# compared on other periods' actuals; with it, such rows fall out of the common set (and are counted).
ALIGN_KEYS = [*KEYS, "target_date"]
METHODS = ("platform", "seasonal_naive", "auto_ets")
REFERENCES = ("seasonal_naive", "auto_ets")
COVERAGE_TARGET = (0.75, 0.85)
# Stage functions of mlplatform.pipeline the DAG's tasks call: timed, and their errors kept per cut-off.
STAGES = ("land_raw", "build_features", "validate_features", "monitor_drift", "evaluate_accuracy",
          "decide_retrain", "train_model", "score_and_publish")
TRAIN_KEYS = ("version", "created", "metric", "model_value", "baseline_value")
# Where a model's metadata may name the forecast candidate it serves (the model is being extended to
# choose among candidates; nothing here relies on these keys, they are reported when present).
CHOICE_KEYS = ("chosen", "candidate")


# ============================================================================================== datasets


@dataclass(frozen=True)
class Dataset:
    """A public dataset, the use case evaluating it, and its raw table's columns (long format)."""

    key: str
    use_case: str
    table: str
    date_column: str
    target: str
    default_cutoffs: int
    loader: Callable[[], Any]
    note: str


def load_macro_quarterly():
    """statsmodels macrodata: eight trending series of very different scale, dated by quarter end."""
    import pandas as pd
    from statsmodels.datasets import macrodata

    data = macrodata.load_pandas().data
    quarters = pd.PeriodIndex.from_fields(year=data["year"].astype(int), quarter=data["quarter"].astype(int),
                                          freq="Q")
    data = data.assign(quarter_end_date=quarters.to_timestamp(how="end").normalize())
    series = ["realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "pop"]
    long = data.melt(id_vars="quarter_end_date", value_vars=series, var_name="series_id", value_name="value")
    return long[["series_id", "quarter_end_date", "value"]]


def load_elec_equip_monthly():
    """statsmodels elec_equip: the euro-area orders index, one series; month starts moved to month ends."""
    import pandas as pd
    from statsmodels.datasets import elec_equip

    data = elec_equip.load().data
    return pd.DataFrame({"series_id": "elec_equip",
                         "month_end_date": (data.index + pd.offsets.MonthEnd(0)).normalize(),
                         "orders_index": data.iloc[:, 0].to_numpy(dtype=float)})


def load_co2_weekly():
    """statsmodels co2: weekly Mauna Loa CO2, weeks ending Saturday; gap weeks stay rows with NaN."""
    import pandas as pd
    from statsmodels.datasets import co2

    data = co2.load_pandas().data
    return pd.DataFrame({"series_id": "mauna_loa", "week_end_date": data.index.normalize(),
                         "co2_ppm": data["co2"].to_numpy(dtype=float)})


DATASETS: dict[str, Dataset] = {d.key: d for d in (
    Dataset("macro_quarterly", "eval_macro_quarterly", "macro_quarterly", "quarter_end_date", "value", 6,
            load_macro_quarterly, "statsmodels macrodata, 8 US quarterly series 1959Q1-2009Q3"),
    Dataset("elec_equip_monthly", "eval_elec_equip_monthly", "elec_equip_monthly", "month_end_date",
            "orders_index", 6, load_elec_equip_monthly,
            "statsmodels elec_equip, euro-area electrical-equipment orders index, monthly 1995-01..2016-05"),
    Dataset("co2_weekly", "eval_co2_weekly", "co2_weekly", "week_end_date", "co2_ppm", 6, load_co2_weekly,
            "statsmodels co2, weekly Mauna Loa CO2 1958-03..2001-12 (weeks ending Saturday, 59 gap weeks)"),
)}


def use_case_settings(use_case: str) -> dict:
    """Horizon, season length and frequency from the use case's spec (the same file the DAG is built from)."""
    from mlplatform.spec import load_defaults, load_spec

    spec = load_spec(USE_CASES_DIR / f"{use_case}.yaml", load_defaults(USE_CASES_DIR))
    return {"horizon": spec.horizon, "season_length": spec.backtest.season_length, "frequency": spec.frequency}


def period_ends(frame, date_column: str) -> list[date]:
    """Every period end of a dataset, in order (the grid cut-offs and target dates are taken from)."""
    import pandas as pd

    return [d.date() for d in sorted(pd.to_datetime(frame[date_column]).unique())]


def cutoff_dates(ends: list[date], horizon: int, n: int) -> list[date]:
    """The last ``n`` period ends spaced by ``horizon`` whose whole horizon is observed, oldest first.

    Why spaced by the horizon: the forecast windows then tile the last n x horizon periods, so every
    actual is scored once per method and the cut-offs are as far apart as the forecasts reach.
    """
    if n < 1 or horizon < 1:
        raise ValueError(f"need at least one cut-off and a horizon >= 1, got n={n}, horizon={horizon}")
    positions = [len(ends) - 1 - k * horizon for k in range(n, 0, -1)]
    if positions[0] < 2 * horizon:
        raise ValueError(f"{n} cut-offs x horizon {horizon} leave too little history ({len(ends)} periods)")
    return [ends[p] for p in positions]


def to_long(frame, dataset: Dataset):
    """The raw table in the common long shape: series_id, date, y."""
    return frame.rename(columns={dataset.date_column: "date", dataset.target: "y"})[["series_id", "date", "y"]]


def load_warehouse(duckdb_path: Path, frames: dict[str, Any]) -> dict[str, int]:
    """Write each dataset's whole history into raw_eval.<table> (what a loader would deliver): rows per table."""
    import duckdb

    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(duckdb_path)) as con:
        con.execute(f"create schema if not exists {RAW_SCHEMA}")
        for table, frame in frames.items():
            con.register("incoming", frame)
            con.execute(f"create or replace table {RAW_SCHEMA}.{table} as select * from incoming")
            con.unregister("incoming")
    return {f"{RAW_SCHEMA}.{table}": len(frame) for table, frame in frames.items()}


# ======================================================================================= metrics & joins


def mase_scales(history, cutoffs: list[date], season_length: int):
    """MASE scale per (series, cut-off): mean |y_t - y_{t-m}| over the history up to the cut-off.

    ``history`` has one row per series and period (series_id, date, y; NaN where unobserved); only pairs
    of observed periods count. A series without any such pair gets NaN (its rows then have no MASE).
    """
    import pandas as pd

    history = history.sort_values(["series_id", "date"])
    diffs = history.assign(
        diff=(history["y"] - history.groupby("series_id")["y"].shift(season_length)).abs())
    rows = []
    for cutoff in cutoffs:
        known = diffs[pd.to_datetime(diffs["date"]) <= pd.Timestamp(cutoff)]
        scale = known.groupby("series_id")["diff"].mean()
        rows.append(pd.DataFrame({"series_id": scale.index, "cutoff": pd.Timestamp(cutoff),
                                  "scale": scale.to_numpy()}))
    return pd.concat(rows, ignore_index=True)


def join_actuals(forecasts, actuals, scales):
    """Forecast rows (series_id, cutoff, target_date, horizon, p10, p50, p90) with their actual ``y`` and
    MASE ``scale``; rows whose actual is unknown (not yet observed, or a gap) are left out.

    A (series, cut-off, horizon) forecast twice is an error: it would be scored twice.
    """
    import pandas as pd

    frame = forecasts.assign(cutoff=pd.to_datetime(forecasts["cutoff"]),
                             target_date=pd.to_datetime(forecasts["target_date"]))
    dupes = frame.duplicated(KEYS)
    if dupes.any():
        raise ValueError(f"{int(dupes.sum())} forecast row(s) repeat a (series_id, cutoff, horizon) key, e.g. "
                         f"{frame.loc[dupes, KEYS].head(1).to_dict('records')}")
    known = actuals.assign(target_date=pd.to_datetime(actuals["date"]))[["series_id", "target_date", "y"]]
    joined = frame.merge(known.dropna(subset=["y"]), on=["series_id", "target_date"], how="inner")
    return joined.merge(scales, on=["series_id", "cutoff"], how="left")


def same_rows(joined: dict[str, Any]) -> dict[str, Any]:
    """Each method's rows restricted to the (series, cut-off, horizon, target date) keys every method has.

    Why: a method scored on rows another lacks (a cut-off that did not publish, a series left out) would
    be compared on a different sample; only identical rows make the WAPEs comparable.
    """
    import pandas as pd

    if not joined:
        raise ValueError("no method to align")
    common = None
    for frame in joined.values():
        keys = pd.MultiIndex.from_frame(frame[ALIGN_KEYS])
        common = keys if common is None else common.intersection(keys)
    out = {}
    for name, frame in joined.items():
        keep = pd.MultiIndex.from_frame(frame[ALIGN_KEYS]).isin(common)
        out[name] = frame[keep].sort_values(KEYS).reset_index(drop=True)
    return out


def _finite(value: float) -> float | None:
    return round(float(value), 6) if value is not None and math.isfinite(value) else None


def score(rows) -> dict:
    """WAPE of the P50, MASE, bias and P10-P90 coverage of scored rows (y, p10, p50, p90, scale).

    WAPE = sum|y - p50| / sum|y|; MASE = mean of |y - p50| / scale; bias = sum(p50 - y) / sum|y|;
    coverage = share of actuals within [p10, p90]. No rows (or all-zero actuals): metrics are None.
    """
    import numpy as np

    n = len(rows)
    if n == 0:
        return {"wape": None, "mase": None, "bias": None, "coverage_p10_p90": None, "rows": 0}
    y, p50 = rows["y"].to_numpy(float), rows["p50"].to_numpy(float)
    err, total = np.abs(y - p50), np.abs(y).sum()
    scaled = err / rows["scale"].to_numpy(float)
    inside = (rows["p10"].to_numpy(float) <= y) & (y <= rows["p90"].to_numpy(float))
    return {"wape": _finite(err.sum() / total) if total > 0 else None,
            "mase": _finite(np.nanmean(scaled)) if np.isfinite(scaled).any() else None,
            "bias": _finite((p50 - y).sum() / total) if total > 0 else None,
            "coverage_p10_p90": _finite(inside.mean()), "rows": int(n)}


def targets_met(platform: dict, references: dict[str, dict], runs: list[dict]) -> dict:
    """The evaluation's targets: P50 WAPE at most the best reference's, P10-P90 coverage within 75-85 %,
    and a publication at every cut-off (a model that refuses to publish half the time does not pass)."""
    best = min((r["wape"] for r in references.values() if r.get("wape") is not None), default=None)
    wape, coverage = platform.get("wape"), platform.get("coverage_p10_p90")
    lo, hi = COVERAGE_TARGET
    return {"p50_wape_at_most_best_reference": wape is not None and best is not None and wape <= best,
            "coverage_p10_p90_within_75_85": coverage is not None and lo <= coverage <= hi,
            "published_every_cutoff": bool(runs) and all(r.get("published") for r in runs)}


def ratio_vs_best(platform: dict, references: dict[str, dict]) -> float | None:
    """Platform WAPE / min(reference WAPEs): below 1 beats both references."""
    best = min((r["wape"] for r in references.values() if r.get("wape")), default=None)
    return _finite(platform["wape"] / best) if platform.get("wape") is not None and best else None


# ============================================================================================ references


def reference_forecasts(history, ends: list[date], cutoffs: list[date], horizon: int, season_length: int) -> dict:
    """AutoETS and SeasonalNaive (statsforecast, level 80) from each cut-off, on the history up to it.

    statsforecast needs a gap-free series: unobserved periods inside the history are linearly
    interpolated for the fit only (leading ones dropped); actuals are never filled. Periods are integer
    positions on the dataset's period grid, so no pandas frequency alias is involved.
    """
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, SeasonalNaive

    position = {d: i for i, d in enumerate(ends)}
    frames: dict[str, list] = {m: [] for m in REFERENCES}
    for cutoff in cutoffs:
        train = _fit_frame(history, position, cutoff)
        models = [AutoETS(season_length=season_length), SeasonalNaive(season_length=season_length)]
        out = StatsForecast(models=models, freq=1, n_jobs=1).forecast(df=train, h=horizon, level=[80])
        out["horizon"] = out["ds"] - position[cutoff]
        out["target_date"] = pd.to_datetime([ends[p] if p < len(ends) else pd.NaT for p in out["ds"]])
        out["cutoff"] = pd.Timestamp(cutoff)
        for method, column in (("auto_ets", "AutoETS"), ("seasonal_naive", "SeasonalNaive")):
            frames[method].append(pd.DataFrame({
                "series_id": out["unique_id"].astype(str), "cutoff": out["cutoff"], "target_date": out["target_date"],
                "horizon": out["horizon"].astype(int), "p10": out[f"{column}-lo-80"], "p50": out[column],
                "p90": out[f"{column}-hi-80"]}))
    return {m: pd.concat(f, ignore_index=True) for m, f in frames.items()}


def _fit_frame(history, position: dict[date, int], cutoff: date):
    """statsforecast's input (unique_id, ds = period position, y) of the history up to ``cutoff``."""
    import pandas as pd

    known = history[pd.to_datetime(history["date"]) <= pd.Timestamp(cutoff)].sort_values(["series_id", "date"])
    known = known.assign(ds=[position[d.date()] for d in pd.to_datetime(known["date"])])
    filled = known.groupby("series_id")["y"].transform(lambda s: s.interpolate(limit_area="inside"))
    frame = pd.DataFrame({"unique_id": known["series_id"].to_numpy(), "ds": known["ds"].to_numpy(),
                          "y": filled.to_numpy()})
    return frame.dropna(subset=["y"]).reset_index(drop=True)


def platform_forecasts(runs: list[dict]):
    """The published rows of every cut-off that published, in the join's shape (cutoff = run date)."""
    import pandas as pd

    frames = []
    for run in runs:
        if run.get("published"):
            frame = pd.read_parquet(run["forecasts"])
            frames.append(pd.DataFrame({
                "series_id": frame["series_id"].astype(str), "cutoff": pd.Timestamp(run["cutoff"]),
                "target_date": pd.to_datetime(frame["target_date"]), "horizon": frame["horizon"].astype(int),
                "p10": frame["p10"], "p50": frame["p50"], "p90": frame["p90"]}))
    columns = ["series_id", "cutoff", "target_date", "horizon", "p10", "p50", "p90"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


# ================================================================================== worker: the DAG runs


class StageRecorder:
    """Wraps mlplatform.pipeline's stage functions (which the DAG's tasks call): seconds, errors and the
    training result of the current cut-off. dag.test() logs a task's exception but returns only states."""

    def __init__(self) -> None:
        from mlplatform import pipeline

        self.seconds: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.training: dict = {}
        for name in STAGES:
            setattr(pipeline, name, self._wrap(name, getattr(pipeline, name)))

    def reset(self) -> None:
        self.seconds, self.errors, self.training = {}, {}, {}

    def _wrap(self, name: str, original: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = original(*args, **kwargs)
            except Exception as exc:
                self.errors[name] = f"{type(exc).__name__}: {exc}"[:2000]
                raise
            finally:
                self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 3)
            if name == "train_model" and isinstance(result, dict):
                self.training = {k: result.get(k) for k in TRAIN_KEYS} | {
                    "decision": (result.get("decision") or {}).get("reason")}
            return result
        return timed

    def first_error(self) -> str | None:
        """The earliest stage's error (later stages usually fail because of it)."""
        return next((f"{s}: {self.errors[s]}" for s in STAGES if s in self.errors), None)


def bucket_name(use_case: str, cutoff: date | None) -> str:
    """One bucket per cut-off (fresh registry) or per use case (shared); S3 names: no underscores."""
    name = use_case.replace("_", "-")
    return f"{name}-{cutoff.isoformat()}" if cutoff else name


def served_model(store: Any, use_case: str, manifest: dict) -> dict:
    """The model version a partition names, its backtest, and the candidate it serves if it says so."""
    from mlplatform import registry
    from mlplatform.storage import Layout

    model = manifest.get("model") or {}
    fallback = manifest.get("fallback")
    out = {"version": model.get("version"), "selected_by": model.get("selected_by"),
           "description": model.get("candidate"), "fallback": bool(fallback),
           "fallback_reason": (fallback or {}).get("reason") if isinstance(fallback, dict) else None,
           "backtest": model.get("backtest"), "training_window": model.get("training_window")}
    try:
        meta = registry.read_metadata(store, Layout(use_case), model["version"])
    except Exception as exc:  # noqa: BLE001 - the metadata is informative only
        return {**out, "metadata_error": f"{type(exc).__name__}: {exc}"}
    for where in (meta, meta.get("model") or {}, meta.get("decision") or {}, meta.get("metrics") or {}):
        for key in CHOICE_KEYS:
            if key in where and key not in out:
                out[key] = where[key]
    candidates = (meta.get("metrics") or {}).get("candidates")
    if isinstance(candidates, dict):  # the platform's own backtest per candidate, when it reports one
        keys = ("wape", "mase", "coverage", "fit_seconds", "status", "members", "fold_wape", "fold_mase",
                "selection_evidence")
        out["candidates"] = {name: {k: c[k] for k in keys if k in c}
                             for name, c in candidates.items() if isinstance(c, dict)}
    return out


def reported_fit_seconds(runs: list[dict]) -> float | None:
    """Fit seconds the platform itself reports for its candidates (ensemble excluded: it sums its members)."""
    seconds = [c["fit_seconds"] for r in runs if r.get("published")
               for name, c in (r["model"].get("candidates") or {}).items()
               if name != "ensemble" and isinstance(c.get("fit_seconds"), int | float)]
    return round(sum(seconds), 2) if seconds else None


def run_cutoff(dag: Any, use_case: str, cutoff: date, registry_mode: str, out_dir: Path,
               recorder: StageRecorder) -> dict:
    """One DAG run for the cut-off (logical date) with dag.test; what it published, or why not."""
    from mlplatform.publishing import read_manifest, read_published
    from mlplatform.storage import Layout

    bucket = bucket_name(use_case, cutoff if registry_mode == "fresh" else None)
    os.environ["MLPLATFORM_BUCKET"] = bucket  # the tasks resolve settings (and so the bucket) at run time
    store = object_store(bucket)
    recorder.reset()
    started, state, tasks = time.perf_counter(), "error", {}
    try:
        run = dag.test(logical_date=datetime.combine(cutoff, datetime.min.time(), tzinfo=UTC))
        state = str(getattr(run.state, "value", run.state))
        tasks = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
    except Exception as exc:  # noqa: BLE001 - recorded; the next cut-off still runs
        recorder.errors.setdefault("dag_test", f"{type(exc).__name__}: {exc}"[:2000])
    out = {"cutoff": cutoff.isoformat(), "bucket": bucket, "dag_state": state,
           "dag_seconds": round(time.perf_counter() - started, 2), "tasks": tasks,
           "stage_seconds": dict(recorder.seconds), "training": dict(recorder.training)}
    prefix = Layout(use_case).forecasts(cutoff)
    if not store.exists(f"{prefix}/_manifest.json"):
        error = recorder.first_error() or recorder.errors.get("dag_test") or f"no partition (DAG run {state})"
        return {**out, "published": False, "error": error}
    frame = read_published(store, prefix)
    path = out_dir / f"{use_case}-{cutoff.isoformat()}.parquet"
    frame.to_parquet(path, index=False)
    return {**out, "published": True, "rows": len(frame), "forecasts": str(path),
            "model": served_model(store, use_case, read_manifest(store, prefix))}


def worker_dataset(payload: dict) -> dict:
    """Every cut-off of one use case through its real DAG (dag.test), oldest first, in this interpreter."""
    from airflow.dag_processing.dagbag import BundleDagBag

    dags = PROJECT_ROOT / "dags"
    bag = BundleDagBag(dag_folder=dags, bundle_path=dags, bundle_name="dags-folder")
    use_case = payload["use_case"]
    if use_case not in bag.dags:
        return {"error": f"DAG {use_case} not built from {os.environ.get('MLPLATFORM_USE_CASES_DIR')}: "
                         f"{ {Path(k).name: str(v)[-1500:] for k, v in bag.import_errors.items()} }"}
    dag = bag.dags[use_case]
    for task in dag.tasks:
        task.retries = 0  # the first failure ends the run (dag.test would wait out the retry delay)
    recorder, out_dir = StageRecorder(), Path(payload["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = [run_cutoff(dag, use_case, date.fromisoformat(c), payload["registry"], out_dir, recorder)
            for c in payload["cutoffs"]]
    return {"use_case": use_case, "runs": runs}


WORKERS = {"dataset": worker_dataset}


# ========================================================================================= orchestration


def evaluate_dataset(dataset: Dataset, raw, settings: dict, cutoffs: list[date], runs: list[dict]) -> dict:
    """References and metrics of one dataset: every method scored on the same rows."""
    history = to_long(raw, dataset)
    ends = period_ends(raw, dataset.date_column)
    m, horizon = settings["season_length"], settings["horizon"]
    scales = mase_scales(history, cutoffs, m)
    started = time.perf_counter()
    forecasts = {"platform": platform_forecasts(runs),
                 **reference_forecasts(history, ends, cutoffs, horizon, m)}
    reference_s = round(time.perf_counter() - started, 2)
    joined = {name: join_actuals(frame, history, scales) for name, frame in forecasts.items()}
    scored_on = "rows every method forecast"
    if joined["platform"].empty:  # nothing published: references on all their rows, platform has none
        scored_on = "the references' rows (the platform published nothing)"
        aligned = {**same_rows({k: joined[k] for k in REFERENCES}), "platform": joined["platform"]}
    else:
        aligned = same_rows(joined)
    metrics = {name: {**score(aligned[name]), "rows_left_out": len(joined[name]) - len(aligned[name])}
               for name in METHODS}
    published = [r for r in runs if r.get("published")]
    metrics["platform"].update({
        "cutoffs": len(runs), "published_cutoffs": len(published),
        "fallback_cutoffs": sum(bool(r["model"].get("fallback")) for r in published),
        "train_model_seconds": round(sum(r["stage_seconds"].get("train_model", 0.0) for r in runs), 2),
        "reported_candidate_fit_seconds": reported_fit_seconds(runs),
        "dag_seconds": round(sum(r.get("dag_seconds", 0.0) for r in runs), 2),
        "model_versions": sorted({r["model"]["version"] for r in published if r["model"].get("version")})})
    metrics["auto_ets"]["fit_and_forecast_seconds_both_references"] = reference_s
    references = {k: metrics[k] for k in REFERENCES}
    return {"use_case": dataset.use_case, "data": dataset.note, **settings,
            "series": int(history["series_id"].nunique()), "cutoffs": [c.isoformat() for c in cutoffs],
            "scored_on": scored_on, **metrics,
            "ratio_vs_best_reference": ratio_vs_best(metrics["platform"], references),
            "targets_met": targets_met(metrics["platform"], references, runs),
            "runs": [{k: v for k, v in r.items() if k != "forecasts"} for r in runs]}


def migrate_airflow(env: dict[str, str]) -> None:
    """`airflow db migrate` and the warehouse pool in the harness's Airflow home (as make airflow-init)."""
    airflow = str(Path(sys.executable).parent / "airflow")
    for cmd in ([airflow, "db", "migrate"], [airflow, "pools", "set", "mlplatform_warehouse", "1", "DuckDB"]):
        proc = subprocess.run(cmd, env=env, capture_output=True, timeout=600, check=False)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(cmd[1:3])} failed: {proc.stderr.decode(errors='replace')[-1500:]}")


def code_state() -> dict:
    """The code evaluated: the platform's own code version (package, git commit, source hash; a release
    label from MLPLATFORM_CODE_VERSION) and the files under include/ with uncommitted changes."""
    from mlplatform.lineage import code_version

    proc = subprocess.run(["git", "status", "--porcelain", "include"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, check=False)
    return {**code_version(), "uncommitted": proc.stdout.splitlines() if proc.returncode == 0 else None}


METHOD_TEXT = (
    "Per dataset, N rolling-origin cut-offs: the last N period ends spaced by the horizon (oldest first), so "
    "the forecast windows tile the last N x H periods. Platform: the use case's real DAG (dag.test: "
    "readiness of the warehouse table, dbt build as of the cut-off on DuckDB, GX, drift, training with "
    "backtest and promotion gate, scoring, publication to a local SeaweedFS S3) for the cut-off as logical "
    "date; its published partition read with publishing.read_published. registry 'fresh': each cut-off in "
    "its own bucket (no champion carried over); 'shared': one bucket, cut-offs in date order (a backfill). "
    "References (same run, same history up to each cut-off, full history): statsforecast 2.x AutoETS and "
    "SeasonalNaive with level=[80] for P10/P90; unobserved periods inside the history are linearly "
    "interpolated for their fit only. statsforecast's ETS estimates no seasonality when season_length > 24, "
    "so on weekly co2 AutoETS is non-seasonal. Metrics pooled over cut-offs on the rows all three methods "
    "forecast with a known actual: WAPE = sum|y - p50| / sum|y|; MASE = mean |y - p50| / scale, scale = "
    "in-sample mean |y_t - y_{t-m}| of the series up to the cut-off (m = season_length, observed pairs "
    "only); bias = sum(p50 - y) / sum|y|; coverage = share of actuals within [p10, p90]. Targets: platform "
    "P50 WAPE <= min(AutoETS, seasonal naive) WAPE, P10-P90 coverage within 75-85 %, a publication at "
    "every cut-off. A cut-off that did not publish is recorded with its error (published: false).")


class Evaluation:
    """The parent side: temp dir + S3 server + Airflow home (bench/harness.py), warehouse load, one worker
    per dataset, references and metrics, output files."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.harness = Harness(Path(__file__), "mlplatform-evaluate-", keep=args.keep)

    def log(self, text: str) -> None:
        if not self.args.quiet:
            print(text, flush=True)

    def run(self) -> dict:
        started = time.perf_counter()
        machine = machine_info()
        machine["packages"]["statsforecast"] = _version("statsforecast")
        self.harness.start({"MLPLATFORM_USE_CASES_DIR": str(USE_CASES_DIR)})
        results: dict[str, Any] = {}
        try:
            migrate_airflow(self.harness.env)
            data_dir = Path(self.harness.env["MLPLATFORM_DATA_DIR"])
            raws = {key: DATASETS[key].loader() for key in self.args.datasets}
            loaded = load_warehouse(data_dir / "warehouse.duckdb", {DATASETS[k].table: raws[k] for k in raws})
            self.log(f"loaded {loaded} into {data_dir / 'warehouse.duckdb'}")
            for key in self.args.datasets:
                results[key] = self.dataset(DATASETS[key], raws[key])
        finally:
            self.harness.stop()
        total = round(time.perf_counter() - started, 1)
        return {**results, "machine": machine, "method": METHOD_TEXT,
                "run": {"registry": self.args.registry, "cutoffs_requested": self.args.cutoffs,
                        "datasets": list(self.args.datasets), "total_seconds": total, "code": code_state(),
                        "loadavg_end": [round(x, 2) for x in os.getloadavg()]}}

    def dataset(self, dataset: Dataset, raw) -> dict:
        settings = use_case_settings(dataset.use_case)
        n = self.args.cutoffs or dataset.default_cutoffs
        cutoffs = cutoff_dates(period_ends(raw, dataset.date_column), settings["horizon"], n)
        self.log(f"=== {dataset.key}: {dataset.use_case}, cut-offs {[c.isoformat() for c in cutoffs]}")
        started = time.perf_counter()
        result = self.harness.worker("dataset", {
            "use_case": dataset.use_case, "cutoffs": [c.isoformat() for c in cutoffs],
            "registry": self.args.registry, "out_dir": str(self.harness.root / "forecasts")},
            timeout=self.args.timeout)
        if "error" in result:
            result = {"runs": [{"cutoff": c.isoformat(), "published": False, "stage_seconds": {},
                                "error": f"worker: {result['error']}"} for c in cutoffs],
                      "worker_error": result.get("traceback") or result.get("log_tail")}
        for run in result["runs"]:
            self.log(f"    {run['cutoff']}: " + (f"published {run['rows']} rows, model {run['model'].get('version')}"
                                                  if run.get("published") else f"NOT published: {run['error'][:300]}"))
        out = evaluate_dataset(dataset, raw, settings, cutoffs, result["runs"])
        out["seconds"] = round(time.perf_counter() - started, 1)
        if result.get("worker_error"):
            out["worker_error"] = result["worker_error"]
        return out


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


# ================================================================================================ output


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if pct else f"{value:.3f}"


def _code_label(code: dict) -> str:
    label = f"code {code.get('release') or (code.get('git_commit') or '')[:10] or 'outside git'}"
    label += f", source hash {(code.get('source_hash') or '')[:12]}"
    return label + (" (uncommitted changes in include/)" if code.get("uncommitted") else "")


def markdown_table(results: dict) -> str:
    """The side-by-side table (one row per dataset and method) and the targets per dataset."""
    m, run = results["machine"], results["run"]
    lines = [f"`make evaluate` on {m['cores']} cores, {m['ram_gb']} GB RAM, {m['cpu_model']} ({m['started']}), "
             f"registry {run['registry']}, {run['total_seconds']} s in total; {_code_label(run['code'])}.", "",
             "| dataset | method | P50 WAPE | MASE | bias | P10-P90 coverage | rows | cut-offs published | "
             "train s |", "|---|---|---|---|---|---|---|---|---|"]
    for key in (k for k in results if k in DATASETS):
        d = results[key]
        for method in METHODS:
            r = d[method]
            published = "-"
            if method == "platform":
                published = f"{r['published_cutoffs']}/{r['cutoffs']}" + (
                    f" ({r['fallback_cutoffs']} fallback)" if r.get("fallback_cutoffs") else "")
            train = _fmt(r.get("train_model_seconds")) if method == "platform" else "-"
            lines.append(f"| {key} (H={d['horizon']}, m={d['season_length']}) | {method} | {_fmt(r['wape'])} | "
                         f"{_fmt(r['mase'])} | {_fmt(r['bias'])} | {_fmt(r['coverage_p10_p90'], True)} | "
                         f"{r['rows']} | {published} | {train} |")
    lines += ["", "| dataset | WAPE ratio vs best reference | targets met | served model versions |",
              "|---|---|---|---|"]
    for key in (k for k in results if k in DATASETS):
        d = results[key]
        met = ", ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in d["targets_met"].items())
        lines.append(f"| {key} | {_fmt(d['ratio_vs_best_reference'])} | {met} | "
                     f"{', '.join(d['platform']['model_versions']) or '-'} |")
    failures = [(k, r) for k in results if k in DATASETS for r in results[k]["runs"] if not r.get("published")]
    if failures:
        lines += ["", "Cut-offs without a publication:", ""]
        lines += [f"- {k} {r['cutoff']}: {r['error'][:400]}" + (
            f" (training: {r['training']['decision']})" if (r.get("training") or {}).get("decision") else "")
            for k, r in failures]
    choices = [(k, r) for k in results if k in DATASETS for r in results[k]["runs"]
               if r.get("published") and any(c in r["model"] for c in CHOICE_KEYS)]
    if choices:
        lines += ["", "Served candidates (model metadata):", ""]
        lines += [f"- {k} {r['cutoff']}: " + ", ".join(f"{c}={r['model'][c]}" for c in CHOICE_KEYS if c in r["model"])
                  for k, r in choices]
    return "\n".join(lines) + "\n"


def all_targets_met(results: dict) -> bool:
    return all(all(results[k]["targets_met"].values()) for k in results if k in DATASETS)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"comma-separated subset of {','.join(DATASETS)}")
    parser.add_argument("--cutoffs", type=int, default=None,
                        help="rolling-origin cut-offs per dataset (default: " + ", ".join(
                            f"{d.key} {d.default_cutoffs}" for d in DATASETS.values()) + ")")
    parser.add_argument("--registry", choices=("fresh", "shared"), default="fresh",
                        help="fresh: each cut-off trains without an earlier champion; shared: one registry, "
                             "cut-offs in date order (a backfill)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON (+ .md next to it)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per dataset's DAG runs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--payload", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = sorted(set(args.datasets) - set(DATASETS))
    if unknown or not args.datasets:
        parser.error(f"unknown dataset(s) {unknown}; choose from {','.join(DATASETS)}")
    if args.cutoffs is not None and args.cutoffs < 1:
        parser.error("--cutoffs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(WORKERS, args.worker, args.payload, args.out)
    try:
        results = Evaluation(args).run()
    except Exception:  # noqa: BLE001 - the set-up failed (S3, Airflow DB, data): say where, exit 2
        traceback.print_exc()
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    table = markdown_table(results)
    args.output.with_suffix(".md").write_text(table)
    print(table)
    print(f"results: {args.output} (Markdown table: {args.output.with_suffix('.md')})")
    if args.check and not all_targets_met(results):
        print("evaluation targets missed (see targets_met above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(PROJECT_ROOT / "include"))
    sys.exit(main())
