"""The benchmark figures of `make bench` (issue 6): bench/results.json, ratios measured side by side in one run.

Every figure compares a value with a baseline measured in the same run on the same machine (absolute times on
a shared machine are noisy; ratios taken side by side are what counts). Each measurement runs in its own fresh
Python process (`figures.py --worker NAME`), so import costs and peak RSS belong to that measurement alone.
Everything (S3 server, warehouses, Airflow home) lives in a temporary directory removed at the end.

Figures (keys of `figures` in the JSON):

  dag_parse               fresh-process parse of dags/ (all use cases) vs a trivial one-task DAG file
  scoring_throughput      rows/s of forecast_chunks + publish_partition to the local S3 server vs the raw
                          floor (model.predict on the same frame + pyarrow to local disk); peak RSS at 1x/4x/16x
  drift                   monitoring.detect_drift on N rows x 30 columns vs Evidently's DataDriftPreset run
                          naively on the full data; same verdicts on seeded drifted and clean data
  orchestration_overhead  wall time of a whole demand_forecast DAG run (dag.test) vs the sum of the stage work
                          inside its tasks, measured in the same process
  scale                   the demand use case end to end (every stage) at 1x, 4x, 16x series; cost growth vs 16
  accuracy_wape           backtest WAPE of the trained model vs seasonal naive (largest scale size)

Usage: .venv/bin/python bench/run_benchmarks.py [--smoke] [--output PATH] [--figures a,b] [--scale-base-stores N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402 - the bench folder is not a package
    HEAVY,
    RUN_DATE,
    USE_CASE,
    Harness,
    current_rss_mb,
    machine_info,
    object_store,
    peak_rss_mb,
    reset_peak_rss,
    settings_for,
    worker_main,
)

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
DEFAULT_OUTPUT = BENCH_DIR / "results.json"
FIGURES = ("dag_parse", "scoring_throughput", "drift", "orchestration_overhead", "scale", "accuracy_wape")
FIGURE_KEYS = ("value", "baseline", "ratio", "unit", "target", "method")

# Sizes: full run and --smoke (seconds; every figure still computed, on tiny data).
FULL = {"parse_repeats": 3, "score_series": 7_500, "drift_rows": 1_000_000, "drift_columns": 30,
        "scale_stores": 25, "scale_skus": 25, "scale_days": 1095, "scale_multipliers": [1, 4, 16]}
SMOKE = {"parse_repeats": 1, "score_series": 200, "drift_rows": 5_000, "drift_columns": 30,
         "scale_stores": 1, "scale_skus": 2, "scale_days": 120, "scale_multipliers": [1, 16]}


# =============================================================================================== helpers


def _spec(payload: dict | None = None):
    """The demand_forecast spec; with stores/skus/days in payload, resized (history ending on RUN_DATE)."""
    from mlplatform.spec import get_spec

    spec, run_date = get_spec(USE_CASE), date.fromisoformat(RUN_DATE)
    if payload and "stores" in payload:
        start = run_date - timedelta(days=payload["days"] - 1)
        params = {**spec.source.params, "n_stores": payload["stores"], "n_skus": payload["skus"]}
        source = spec.source.model_copy(update={"history_start": start, "params": params})
        update = {"source": source}
        if payload.get("smoke"):  # short history: a shorter training window so every stage still runs
            update["model"] = spec.model.model_copy(update={"training_window": 60, "params": {
                **spec.model.params, "max_iter": 20}})
        spec = spec.model_copy(update=update)
    return spec, run_date


# =============================================================================================== workers


def worker_parse(payload: dict) -> dict:
    """One cold parse: `import airflow` + BundleDagBag over a folder, in this fresh process."""
    start = time.perf_counter()
    import airflow  # noqa: F401
    from airflow.dag_processing.dagbag import BundleDagBag

    import_s = time.perf_counter() - start
    before = set(sys.modules)
    folder = payload["folder"]
    t0 = time.perf_counter()
    bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
    bag_s = time.perf_counter() - t0
    new = {m.split(".")[0] for m in set(sys.modules) - before}
    return {"import_airflow_s": round(import_s, 3), "dagbag_s": round(bag_s, 3),
            "total_s": round(import_s + bag_s, 3), "dags": sorted(bag.dags),
            "import_errors": {Path(k).name: str(v)[-1500:] for k, v in bag.import_errors.items()},
            "heavy_imported_by_parse": sorted(new & set(HEAVY)),
            "dbt_called": any(m.startswith("dbt") for m in new)}


def _synthetic_features(n_series: int, days: int, seed: int = 3):
    """A demand features frame (the spec's columns) for n_series x days ending on RUN_DATE, plus a calendar."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    end = pd.Timestamp(RUN_DATE)
    dates = pd.date_range(end=end, periods=days, freq="D")
    n = n_series * days
    series = np.repeat(np.arange(n_series), days)
    day = np.tile(np.arange(days), n_series)
    level = rng.gamma(2.0, 4.0, n_series)[series]
    weekly = 1 + 0.3 * np.sin(2 * np.pi * (day % 7) / 7)
    units = rng.poisson(level * weekly).astype("float64")
    store, sku = series // 100, series % 100
    frame = pd.DataFrame({
        "store_id": pd.Series([f"S{s:04d}" for s in range(store.max() + 1)], dtype=object).to_numpy()[store],
        "sku_id": pd.Series([f"SKU{s:04d}" for s in range(100)], dtype=object).to_numpy()[sku],
        "sales_date": np.tile(dates.to_numpy(), n_series),
        "units_sold": units,
        "unit_price": rng.gamma(3.0, 2.0, n_series)[series],
        "discount_pct": rng.choice([0.0, 0.1, 0.2], n),
        "on_promotion": rng.integers(0, 2, n),
        "is_stockout": rng.random(n) < 0.02,
        "category": np.array(["grocery", "household", "beverages", "snacks"], dtype=object)[sku % 4],
        "region": np.array(["north", "south", "east", "west"], dtype=object)[store % 4],
        "day_of_week": np.tile(dates.dayofweek.to_numpy(), n_series),
        "is_holiday": np.zeros(n, dtype="int64"),
    })
    for lag in (1, 7, 14, 28):  # rows are series-major: a shift within the series, NaN before its start
        frame[f"lag_{lag}"] = np.where(day >= lag, np.roll(units, lag), np.nan)
    frame["rolling_mean_7"] = level * rng.normal(1, 0.1, n)  # stand-ins with realistic scale (not exact)
    frame["rolling_mean_28"] = level * rng.normal(1, 0.05, n)
    frame["rolling_std_28"] = np.sqrt(level) * rng.normal(1, 0.1, n)
    cal_dates = pd.date_range(dates[0], end + pd.Timedelta(days=60), freq="D")
    calendar = pd.DataFrame({"calendar_date": cal_dates, "day_of_week": cal_dates.dayofweek,
                             "day_of_month": cal_dates.day, "month": cal_dates.month, "is_holiday": 0})
    return frame, calendar


def _scoring_model(spec, smoke: bool):
    """The served shape of a large panel, trained on synthetic features of a few hundred series (the spec's
    params): a ForecastModel whose P50 is the median of the two global models and the seasonal naive
    (above model.statistical.max_series series the statistical candidates are skipped), with conformal
    P10/P90 offsets per horizon."""
    from mlplatform import pipeline as p
    from mlplatform.candidates import ForecastModel, gbm_model
    from mlplatform.forecasting import build_training_set

    features, calendar = _synthetic_features(50 if smoke else 300, 120)
    if smoke:
        spec = spec.model_copy(update={"model": spec.model.model_copy(update={"params": {
            **spec.model.params, "max_iter": 20}})})
    train = build_training_set(features, calendar, spec.model_copy(update={"model": spec.model.model_copy(
        update={"training_window": 90})}), RUN_DATE, max_rows=spec.model.max_training_rows)
    with p.training_threads():
        gbms = {name: gbm_model(spec, name).fit(train) for name in ("gbm", "gbm_scaled")}
    horizon = spec.forecast.horizon
    table = {"p10": [-1.0 - 0.02 * h for h in range(horizon)], "p50": [0.0] * horizon,
             "p90": [1.5 + 0.03 * h for h in range(horizon)]}
    return ForecastModel(spec, "ensemble", ["gbm", "gbm_scaled", "seasonal_naive"], gbms, table, True)


def worker_score(payload: dict) -> dict:
    """Score + publish n_series x H rows to S3 (the pipeline's path); then, with floor, the raw floor."""
    import gc

    import numpy as np  # noqa: F401
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlplatform import pipeline as p
    from mlplatform.forecasting import make_supervised
    from mlplatform.publishing import publish_partition
    from mlplatform.scoring import forecast_chunks

    spec, run_date = _spec()
    store = object_store(payload["bucket"])
    model = _scoring_model(spec, payload["smoke"])
    from mlplatform.forecasting import required_history_periods

    features, calendar = _synthetic_features(payload["series"], required_history_periods(spec) + 1)
    stamp = {"use_case": spec.name, "run_date": RUN_DATE, "model_version": "vbench"}
    chunk_rows = spec.publish.chunk_rows
    # warm-up (lazy imports, S3 connection, Arrow pools) on a few series
    head = features[features["store_id"] == features["store_id"].iloc[0]]
    with p.training_threads():
        publish_partition(store, "warmup", forecast_chunks(model, head, calendar, spec, run_date, chunk_rows),
                          stamp, {})
        gc.collect()
        base_rss = current_rss_mb()
        reset_peak_rss()  # the peak of scoring and publishing, not of generating the input frames
        t0 = time.perf_counter()
        manifest = publish_partition(store, f"score-{payload['series']}/run_date={RUN_DATE}",
                                     forecast_chunks(model, features, calendar, spec, run_date, chunk_rows),
                                     stamp, {})
        seconds = time.perf_counter() - t0
        rows = manifest["row_count"]
        out = {"series": payload["series"], "rows": rows, "parts": len(manifest["files"]), "chunk_rows": chunk_rows,
               "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds, 1),
               "rss_with_inputs_mb": base_rss, "peak_rss_mb": peak_rss_mb(),
               "peak_growth_mb": round(peak_rss_mb() - base_rss, 1)}
        if payload.get("floor"):
            origin_rows = features[features["sales_date"] == features["sales_date"].max()]
            frame = make_supervised(features, calendar, spec, [run_date], with_target=False)
            del origin_rows
            path = Path(payload["tmp"]) / f"floor-{payload['series']}.parquet"
            t0 = time.perf_counter()
            preds = pd.DataFrame({name: gbm.predict(frame)["p50"] for name, gbm in model.gbms.items()})
            pq.write_table(pa.Table.from_pandas(preds, preserve_index=False), path)
            floor_s = time.perf_counter() - t0
            out.update({"floor_rows": len(preds), "floor_seconds": round(floor_s, 3),
                        "floor_rows_per_s": round(len(preds) / floor_s, 1)})
    return out


def _drift_frames(rows: int, columns: int, drifted: bool, seed: int = 11):
    """Reference and current frames: 2/3 numeric, 1/3 small-integer categorical; drifted shifts 40% of columns."""
    import numpy as np
    import pandas as pd

    n_cat = columns // 3
    n_num = columns - n_cat
    shifted = set(range(0, columns, 5)) | set(range(1, columns, 5)) if drifted else set()

    def side(rng, current: bool):
        data = {}
        for i in range(n_num):
            shift = 0.6 if (current and i in shifted) else 0.0
            if i % 3 == 0:
                data[f"num_{i:02d}"] = rng.normal(10 + i + shift * 3, 3, rows)
            elif i % 3 == 1:
                data[f"num_{i:02d}"] = rng.gamma(2.0 + shift * 2, 2.0, rows)
            else:
                data[f"num_{i:02d}"] = rng.lognormal(1 + shift, 0.5, rows)
        for j in range(n_cat):
            k = n_num + j
            p = np.full(6, 1 / 6)
            if current and k in shifted:
                p = np.array([0.4, 0.2, 0.15, 0.1, 0.1, 0.05])
            data[f"cat_{j:02d}"] = rng.choice(6, rows, p=p)
        return pd.DataFrame(data)

    reference = side(np.random.default_rng([seed, 0]), False)
    current = side(np.random.default_rng([seed, 1]), True)
    return reference, current


def worker_drift(payload: dict) -> dict:
    """mlplatform.monitoring.detect_drift (mode=platform) or Evidently naive on the full frames (mode=naive)."""
    import gc

    reference, current = _drift_frames(payload["rows"], payload["columns"], payload["drifted"])
    columns = list(reference.columns)
    share = payload["drift_share"]
    import evidently  # noqa: F401 - import cost outside the timing (both modes)

    gc.collect()
    base_rss = current_rss_mb()
    t0 = time.perf_counter()
    if payload["mode"] == "platform":
        from mlplatform.monitoring import detect_drift

        report = detect_drift(reference, current, columns, share, payload["max_rows"])
        verdict = {"drift_detected": report.drift_detected, "drifted_columns": report.drifted_columns,
                   "html_bytes": len(report.html)}
    else:
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        from mlplatform.monitoring import _summarise, split_column_types

        numerical, categorical = split_column_types(reference, current, columns)
        definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
        snapshot = Report([DataDriftPreset(columns=columns, drift_share=share)], include_tests=True).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition))
        summary = _summarise(snapshot.dict(), columns, share, {})
        html = snapshot.get_html_str(as_iframe=False)
        snapshot.json()
        verdict = {"drift_detected": summary["drift_detected"], "drifted_columns": summary["drifted_columns"],
                   "html_bytes": len(html)}
    seconds = time.perf_counter() - t0
    return {"mode": payload["mode"], "drifted_data": payload["drifted"], "rows": payload["rows"],
            "columns": len(columns), "seconds": round(seconds, 3), **verdict,
            "rss_with_data_mb": base_rss, "peak_rss_mb": peak_rss_mb()}


def _timed_stages(spec, run_date, settings, store) -> list[dict]:
    from mlplatform import pipeline as p

    out = []
    for name, call in p.stage_calls(spec, run_date, settings, store):
        t0 = time.perf_counter()
        result = call()
        row = {"stage": name, "seconds": round(time.perf_counter() - t0, 3), "peak_rss_mb_so_far": peak_rss_mb()}
        for key in ("rows_landed", "rows", "skipped", "created", "metric", "model_value", "baseline_value",
                    "drift_detected", "retrain"):
            if isinstance(result, dict) and key in result:
                row[key] = result[key]
        out.append(row)
    return out


def worker_scale(payload: dict) -> dict:
    """Every stage of the demand use case, in DAG order, at one size (one process: cumulative peak RSS)."""
    spec, run_date = _spec(payload)
    settings, store = settings_for(payload["data_dir"]), object_store(payload["bucket"])
    t0 = time.perf_counter()
    stages = _timed_stages(spec, run_date, settings, store)
    return {"stores": payload["stores"], "skus": payload["skus"], "days": payload["days"],
            "series": payload["stores"] * payload["skus"], "stages": stages,
            "work_s": round(sum(s["seconds"] for s in stages), 3), "wall_s": round(time.perf_counter() - t0, 3),
            "peak_rss_mb": peak_rss_mb()}


STAGE_NAMES = ("land_raw", "build_features", "validate_features", "monitor_drift", "evaluate_accuracy",
               "decide_retrain", "train_model", "score_and_publish")


def worker_dagrun(payload: dict) -> dict:
    """One whole demand_forecast DAG run (dag.test, as the integration tests) with the stage calls timed."""
    from airflow.dag_processing.dagbag import BundleDagBag

    from mlplatform import pipeline as p

    work: dict[str, float] = {}

    def wrap(name, original):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                work[name] = work.get(name, 0.0) + time.perf_counter() - t0
        return timed

    for name in STAGE_NAMES:
        setattr(p, name, wrap(name, getattr(p, name)))
    dags = PROJECT_ROOT / "dags"
    bag = BundleDagBag(dag_folder=dags, bundle_path=dags, bundle_name="dags-folder")
    dag = bag.dags[USE_CASE]
    for task in dag.tasks:
        task.retries = 0
    t0 = time.perf_counter()
    dr = dag.test(logical_date=datetime.fromisoformat(RUN_DATE + "T00:00:00+00:00"))
    wall = time.perf_counter() - t0
    tis = dr.get_task_instances()
    return {"state": str(dr.state), "dag_test_wall_s": round(wall, 3),
            "stage_work_s": {k: round(v, 3) for k, v in work.items()},
            "work_s": round(sum(work.values()), 3),
            "task_states": {ti.task_id: str(ti.state) for ti in tis},
            "sum_ti_duration_s": round(sum(ti.duration or 0.0 for ti in tis), 3)}


WORKERS = {"parse": worker_parse, "score": worker_score, "drift": worker_drift, "scale": worker_scale,
           "dagrun": worker_dagrun}


# ========================================================================================== orchestrator

TRIVIAL_DAG = '''\
"""A trivial one-task airflow dag: the parse-time baseline."""
from datetime import UTC, datetime

from airflow.sdk import dag, task


@dag(dag_id="bench_trivial", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC), catchup=False)
def bench_trivial():
    @task
    def noop() -> None:
        return None

    noop()


bench_trivial()
'''


def figure(value, baseline, ratio, unit: str, target: str, met: bool | None, method: str, **details) -> dict:
    out = {"value": value, "baseline": baseline, "ratio": None if ratio is None else round(ratio, 3),
           "unit": unit, "target": target, "met": met, "method": method}
    if details:
        out["details"] = details
    return out


def failed_figure(unit: str, target: str, method: str, error: str) -> dict:
    return figure(None, None, None, unit, target, False, method, error=error)


class FigureBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = dict(SMOKE if args.smoke else FULL)
        for key in ("score_series", "drift_rows", "scale_stores", "scale_skus", "scale_days", "parse_repeats"):
            value = getattr(args, key, None)
            if value is not None:
                self.sizes[key] = value
        if args.scale_multipliers:
            self.sizes["scale_multipliers"] = [int(x) for x in args.scale_multipliers.split(",")]
        self.harness = Harness(Path(__file__), "mlplatform-figures-", keep=args.keep)
        self.root = self.harness.root
        self.figures: dict = {}
        self.details: dict = {}
        self.scale_runs: list[dict] = []

    def log(self, text: str) -> None:
        if not self.args.quiet:
            print(text, flush=True)

    @property
    def env(self) -> dict[str, str]:
        return self.harness.env

    def start(self) -> None:
        # one OpenMP thread and one training thread per measurement: ratios, not this box's core count
        self.harness.start({"OMP_NUM_THREADS": "1", "MLPLATFORM_TRAINING_THREADS": "1"})

    def stop(self) -> None:
        self.harness.stop()

    def worker(self, name: str, payload: dict, env: dict | None = None, timeout: float = 3600) -> dict:
        return self.harness.worker(name, payload, env, timeout)

    # ----------------------------------------------------------------------------------------- figures
    def fig_dag_parse(self) -> dict:
        trivial = self.root / "trivial_dags"
        trivial.mkdir()
        (trivial / "bench_trivial.py").write_text(TRIVIAL_DAG)
        runs = {"dags": [], "trivial": []}
        for _ in range(self.sizes["parse_repeats"]):  # interleaved: both see the same machine load
            for key, folder in (("dags", PROJECT_ROOT / "dags"), ("trivial", trivial)):
                runs[key].append(self.worker("parse", {"folder": str(folder)}))
        errors = [r["error"] for rs in runs.values() for r in rs if "error" in r]
        method = ("Fresh interpreter per parse (repeats interleaved, median): process wall of `import airflow` + "
                  "BundleDagBag over dags/ (every use case) vs over a folder holding one trivial one-task DAG.")
        if errors:
            return failed_figure("s", "ratio <= 2 and value < 1 s", method, errors[0])
        value = statistics.median(r["process_wall_s"] for r in runs["dags"])
        base = statistics.median(r["process_wall_s"] for r in runs["trivial"])
        dagbag = statistics.median(r["dagbag_s"] for r in runs["dags"])
        dagbag_base = statistics.median(r["dagbag_s"] for r in runs["trivial"])
        ratio = value / base
        last = runs["dags"][-1]
        heavy = sorted({m for r in runs["dags"] for m in r["heavy_imported_by_parse"]})
        return figure(round(value, 3), round(base, 3), ratio, "s", "ratio <= 2 and parse (dagbag) < 1 s",
                      ratio <= 2 and dagbag < 1 and not heavy and not last["import_errors"], method,
                      dagbag_s=dagbag, dagbag_trivial_s=dagbag_base,
                      import_airflow_s=statistics.median(r["import_airflow_s"] for r in runs["dags"]),
                      dags=last["dags"], import_errors=last["import_errors"], heavy_imported_by_parse=heavy,
                      dbt_called=any(r["dbt_called"] for r in runs["dags"]), repeats=self.sizes["parse_repeats"])

    def fig_scoring_throughput(self) -> dict:
        base = self.sizes["score_series"]
        method = ("Rows/s of scoring.forecast_chunks (the served shape of a large panel: a ForecastModel, median of "
                  "gbm, gbm_scaled and the seasonal naive, conformal P10/P90) fed to "
                  "publishing.publish_partition on the local S3 server, vs the raw floor in the same process: "
                  "the two global models' predict on the same supervised frame (built outside the timing) + pyarrow writing one "
                  "Parquet file to local disk. Peak memory: peak RSS while scoring and publishing (the peak is reset "
                  "after the inputs are built: Linux clear_refs) minus RSS with the inputs loaded, each size in its "
                  "own process (chunk_rows parts); flat = 16x growth <= 1.5 x 1x growth + 50 MB. 1x is chosen "
                  "to be at least one chunk of rows (full run: 7,500 series x 14 = 105,000 rows).")
        runs = {}
        for mult in (1, 4, 16):
            runs[mult] = self.worker("score", {"series": base * mult, "bucket": "bench-score", "floor": mult == 16,
                                               "smoke": self.args.smoke, "tmp": str(self.root)})
        errors = [r["error"] for r in runs.values() if "error" in r]
        if errors:
            return failed_figure("rows/s", ">= 0.7 of the floor", method, errors[0] + runs[16].get("traceback", ""))
        top = runs[16]
        ratio = top["rows_per_s"] / top["floor_rows_per_s"]
        growth = {f"{m}x": {"series": r["series"], "rows": r["rows"], "parts": r["parts"],
                            "seconds": r["seconds"], "rows_per_s": r["rows_per_s"],
                            "peak_growth_mb": r["peak_growth_mb"], "peak_rss_mb": r["peak_rss_mb"],
                            "rss_with_inputs_mb": r["rss_with_inputs_mb"]} for m, r in runs.items()}
        # flat: 16x the rows costs at most 1.5x the 1x working memory (+50 MB slack for allocator noise)
        flat = runs[16]["peak_growth_mb"] <= 1.5 * runs[1]["peak_growth_mb"] + 50
        return figure(top["rows_per_s"], top["floor_rows_per_s"], ratio, "rows/s", ">= 0.7 of the floor; "
                      "peak memory flat from 1x to 16x rows", ratio >= 0.7 and flat, method,
                      sizes=growth, memory_flat=flat, floor_seconds=top["floor_seconds"])

    def fig_drift(self) -> dict:
        rows, cols = self.sizes["drift_rows"], self.sizes["drift_columns"]
        from mlplatform.spec import get_spec

        spec = get_spec(USE_CASE)
        share = 0.3
        method = (f"{rows:,} rows x {cols} columns per side (2/3 numeric, 1/3 6-level integer categories), seeded; "
                  "clean (same distributions) and drifted (40% of columns shifted). Value: "
                  f"monitoring.detect_drift (max_rows={spec.monitoring.max_rows} seeded sample per side, same "
                  "Evidently preset, HTML + JSON); baseline: Evidently DataDriftPreset on the full frames "
                  "(same data definition, HTML + JSON). Each in its own process; time excludes data generation and "
                  "imports. Ratio = baseline / value (speed-up); peak = peak RSS of the monitoring process.")
        runs = {}
        for drifted in (True, False):
            for mode in ("platform", "naive"):
                runs[(mode, drifted)] = self.worker("drift", {
                    "mode": mode, "drifted": drifted, "rows": rows, "columns": cols, "drift_share": share,
                    "max_rows": spec.monitoring.max_rows})
        errors = [r["error"] for r in runs.values() if "error" in r]
        if errors:
            return failed_figure("s", ">= 5x faster, <= 2 GB, same verdicts", method, errors[0])
        value = sum(runs[("platform", d)]["seconds"] for d in (True, False))
        base = sum(runs[("naive", d)]["seconds"] for d in (True, False))
        same = all(runs[("platform", d)]["drift_detected"] == runs[("naive", d)]["drift_detected"]
                   and runs[("platform", d)]["drifted_columns"] == runs[("naive", d)]["drifted_columns"]
                   for d in (True, False))
        verdicts_right = runs[("platform", True)]["drift_detected"] and not runs[("platform", False)]["drift_detected"]
        peak = max(runs[("platform", d)]["peak_rss_mb"] for d in (True, False))
        ratio = base / value
        return figure(round(value, 3), round(base, 3), ratio, "s (drifted + clean)",
                      "ratio (speed-up) >= 5, peak <= 2048 MB, same verdicts",
                      ratio >= 5 and peak <= 2048 and same and verdicts_right, method,
                      platform_peak_rss_mb=peak,
                      naive_peak_rss_mb=max(runs[("naive", d)]["peak_rss_mb"] for d in (True, False)),
                      same_verdicts=same, drift_found_on_drifted_and_not_on_clean=verdicts_right,
                      runs={f"{m}-{'drifted' if d else 'clean'}": r for (m, d), r in runs.items()})

    def fig_orchestration_overhead(self) -> dict:
        method = ("One whole demand_forecast DAG run at the shipped size (first run: trains, promotes, scores, "
                  "publishes) with dag.test() in a fresh process on a migrated SQLite Airflow home; value = wall "
                  "time of the run, baseline = the sum of the time spent inside the stage functions its tasks "
                  "call (mlplatform.pipeline.*, timed in the same process). Ratio = value / baseline.")
        airflow = str(Path(sys.executable).parent / "airflow")
        for cmd in ([airflow, "db", "migrate"],
                    [airflow, "pools", "set", "mlplatform_warehouse", "1", "DuckDB single writer"]):
            proc = subprocess.run(cmd, env=self.env, capture_output=True, timeout=600, check=False)
            if proc.returncode:
                return failed_figure("s", "ratio <= 1.5", method, proc.stderr.decode(errors="replace")[-1500:])
        r = self.worker("dagrun", {})
        if "error" in r:
            return failed_figure("s", "ratio <= 1.5", method, r["error"] + r.get("traceback", ""))
        ratio = r["dag_test_wall_s"] / r["work_s"]
        return figure(r["dag_test_wall_s"], r["work_s"], ratio, "s", "ratio <= 1.5",
                      ratio <= 1.5 and r["state"].endswith("success"), method, **r)

    def fig_scale(self) -> dict:
        s = self.sizes
        method = ("The demand use case end to end (every stage in DAG order via pipeline.stage_calls: land, dbt "
                  "build + snapshot, validation, drift, accuracy, retrain decision, train with backtest, score + "
                  "publish) on fresh storage at each size, one process per size; cost = sum of the stage times. "
                  "Value = cost(16x) / cost(1x); baseline = 16 (linear); ratio = value / 16.")
        runs = []
        for mult in s["scale_multipliers"]:
            # series grow by mult: stores x sqrt(mult), skus x sqrt(mult) (1x, 4x, 16x -> x1, x2, x4 each)
            k = int(round(mult ** 0.5))
            stores, skus = s["scale_stores"] * k, s["scale_skus"] * (mult // k)
            self.log(f"  scale {mult}x: {stores} stores x {skus} skus x {s['scale_days']} days")
            r = self.worker("scale", {"stores": stores, "skus": skus, "days": s["scale_days"], "smoke": self.args.smoke,
                                      "data_dir": str(self.root / f"scale-{mult}"), "bucket": f"bench-scale-{mult}"},
                            timeout=self.args.scale_timeout)
            r["multiplier"] = mult
            runs.append(r)
            self.log(f"    -> {r.get('work_s')} s, peak {r.get('peak_rss_mb')} MB {r.get('error', '')}")
            if "error" in r:
                break
        self.scale_runs = runs
        errors = [r["error"] for r in runs if "error" in r]
        sizes = [{k: r.get(k) for k in ("multiplier", "stores", "skus", "days", "series", "work_s", "wall_s",
                                        "peak_rss_mb", "error")} | {
                  "raw_rows": (r.get("series") or 0) * (r.get("days") or 0),
                  "stage_s": {x["stage"]: x["seconds"] for x in r.get("stages", [])}} for r in runs]
        good = [r for r in runs if "error" not in r]
        if len(good) < 2:
            return failed_figure("x cost", "ratio <= 1.25", method, errors[0] if errors else "fewer than two sizes")
        lo, hi = good[0], good[-1]
        mult = hi["multiplier"] / lo["multiplier"]
        growth = hi["work_s"] / lo["work_s"]
        ratio = growth / mult
        return figure(round(growth, 3), mult, ratio, f"x cost from {lo['multiplier']}x to {hi['multiplier']}x",
                      "ratio <= 1.25", ratio <= 1.25 and not errors, method, sizes=sizes,
                      errors=errors or None)

    def fig_accuracy_wape(self) -> dict:
        method = ("Backtest (rolling origin, 3 folds x 14 days) WAPE of the trained model's P50 vs the seasonal-naive "
                  "forecast on the same rows, from train_model at the largest scale size actually run "
                  "(synthetic retail_sales benchmark data). Ratio = model / baseline.")
        good = [r for r in self.scale_runs if "error" not in r]
        for r in reversed(good):
            train = next((s for s in r["stages"] if s["stage"] == "train_model"), {})
            if train.get("model_value") is not None and train.get("metric") == "wape":
                ratio = train["model_value"] / train["baseline_value"]
                return figure(round(train["model_value"], 4), round(train["baseline_value"], 4), ratio, "WAPE",
                              "ratio <= 0.8", ratio <= 0.8, method, size={k: r[k] for k in ("stores", "skus", "days",
                                                                                             "series")})
        return failed_figure("WAPE", "ratio <= 0.8", method, "no trained model in the scale runs")

    def run(self) -> dict:
        started = time.perf_counter()
        machine = machine_info(run_date=RUN_DATE, use_case=USE_CASE)
        self.start()
        try:
            wanted = self.args.figures
            order = [f for f in FIGURES if f in wanted]
            if "accuracy_wape" in order and "scale" not in order:
                order.insert(order.index("accuracy_wape"), "scale")
            for name in order:
                self.log(f"=== {name} ...")
                t0 = time.perf_counter()
                try:
                    result = getattr(self, f"fig_{name}")()
                except Exception as exc:  # noqa: BLE001 - one failed figure must not lose the others
                    result = failed_figure("-", "-", "-", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
                result.setdefault("details", {})["figure_s"] = round(time.perf_counter() - t0, 1)
                if name in wanted:
                    self.figures[name] = result
                self.log(f"=== {name}: value {result['value']} baseline {result['baseline']} ratio "
                         f"{result['ratio']} target {result['target']} met {result['met']} "
                         f"({result['details']['figure_s']} s)")
        finally:
            self.stop()
        return {"machine": machine, "figures": self.figures,
                "details": {"smoke": self.args.smoke, "sizes": self.sizes, "run_date": RUN_DATE,
                            "total_runtime_s": round(time.perf_counter() - started, 1),
                            "loadavg_end": list(os.getloadavg())}}


def markdown_table(results: dict) -> str:
    m = results["machine"]
    lines = [f"Measured by `make bench` on {m['cores']} cores, {m['ram_gb']} GB RAM, {m['cpu_model']} "
             f"({m['started']}); ratios are measured side by side in one run.", "",
             "| figure | value | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    for name, f in results["figures"].items():
        lines.append(f"| {name} | {f['value']} {f['unit']} | {f['baseline']} | {f['ratio']} | {f['target']} | "
                     f"{'yes' if f['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def check_schema(results: dict) -> list[str]:
    """Problems with a results object (empty = valid): the contract of bench/results.json."""
    problems = []
    for key in ("cores", "ram_gb", "cpu_model"):
        if key not in results.get("machine", {}):
            problems.append(f"machine.{key} missing")
    figures = results.get("figures", {})
    for name in FIGURES:
        if name not in figures:
            problems.append(f"figure {name} missing")
            continue
        problems += [f"{name}.{k} missing" for k in FIGURE_KEYS if k not in figures[name]]
    return problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds), every figure computed")
    parser.add_argument("--output", type=Path, default=None, help=f"results JSON (default {DEFAULT_OUTPUT})")
    parser.add_argument("--figures", default=",".join(FIGURES), help="comma-separated subset of figures")
    parser.add_argument("--parse-repeats", type=int)
    parser.add_argument("--score-series", type=int, help="series scored at 1x (4x and 16x follow)")
    parser.add_argument("--drift-rows", type=int)
    parser.add_argument("--scale-stores", type=int, help="stores at 1x")
    parser.add_argument("--scale-skus", type=int, help="SKUs at 1x")
    parser.add_argument("--scale-days", type=int, help="days of history at every size")
    parser.add_argument("--scale-multipliers", help="comma-separated series multipliers (default 1,4,16)")
    parser.add_argument("--scale-timeout", type=float, default=2400, help="seconds allowed per scale size")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")


def run_figures(args: argparse.Namespace) -> int:
    args.figures = [f.strip() for f in args.figures.split(",") if f.strip()]
    unknown = set(args.figures) - set(FIGURES)
    if unknown:
        raise SystemExit(f"unknown figure(s) {sorted(unknown)}; choose from {','.join(FIGURES)}")
    output = args.output or DEFAULT_OUTPUT
    results = FigureBench(args).run()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    table = markdown_table(results)
    output.with_suffix(".md").write_text(table)
    print(table)
    print(f"results: {output} (Markdown table: {output.with_suffix('.md')})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--payload", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(WORKERS, args.worker, args.payload, args.out)
    return run_figures(args)


if __name__ == "__main__":
    sys.path.insert(0, str(PROJECT_ROOT / "include"))
    sys.exit(main())
