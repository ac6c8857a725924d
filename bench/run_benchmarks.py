"""Benchmarks of the ML platform (`make bench`).

Without --sections (what `make bench` runs): the figures of bench/figures.py (dag_parse, scoring_throughput,
drift, orchestration_overhead, scale, accuracy_wape) into bench/results.json; `--smoke` for tiny sizes,
`--output PATH` to write elsewhere, `--help` of bench/figures.py for the size flags.

With --sections: the detailed sections below (parse time, stage timings, scale, publishing memory, dbt
orchestration, thread contention) into bench/results/latest.json and latest.md.

Self-contained: everything lives in a fresh temporary directory (its own SeaweedFS S3 server on free loopback
ports, its own DuckDB warehouses, its own Airflow home on SQLite), which is removed at the end (--keep keeps
it). Each measurement runs in its own Python subprocess so import costs and peak RSS belong to that
measurement alone. Results go to bench/results/latest.json and bench/results/latest.md.

Sections (run all, or pick with --sections):

  parse          cold-interpreter parse of dags/ (BundleDagBag per-file durations) + heavy modules imported
  pipeline       the six stage functions in-process (as `mlplatform run`) at the shipped demo size for
                 RUN_DATE, then a rerun of the same date (idempotent path); peak RSS
  scale          land + dbt build + feature snapshot, then training, at a larger size (default 100 stores x
                 100 SKUs x 365 days = 3.65M raw rows), each step in its own process with its peak RSS
  publish        publish_partition of a large synthetic forecast fed in chunks of spec.publish.chunk_rows vs
                 the same rows as one frame: traced Python/numpy peak, Arrow pool peak, RSS growth
  orchestration  one Airflow task running `dbt build` vs a Cosmos DbtTaskGroup (DBT_MANIFEST, LOCAL,
                 DBT_RUNNER, AFTER_EACH), both run end to end with `airflow dags test`, plus each kind of task
                 started cold (`airflow tasks test`), as every task is under a real executor
  contention     one HistGradientBoosting fit with OpenMP's default threads vs one thread vs the pipeline's
                 own thread cap, with and without one competing busy process

Every measurement also records how much CPU other processes used meanwhile (this machine may be shared).

Usage: .venv/bin/python bench/run_benchmarks.py [--sections parse,pipeline,...] [--scale-stores N] ...
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import textwrap
import time
import traceback
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402 - the bench folder is not a package
    HEAVY,
    RUN_DATE,
    USE_CASE,
    CpuMeter,
    Harness,
    current_rss_mb,
    loadavg,
    machine_info,
    object_store,
    peak_rss_mb,
    settings_for,
    worker_main,
)

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
SECTIONS = ("parse", "pipeline", "scale", "publish", "orchestration", "contention")
STAGES = ["land_raw", "build_features", "validate_features", "monitor_drift", "evaluate_accuracy", "decide_retrain",
          "train_model", "score_and_publish"]
SINGLE_DAG_ID = "bench_dbt_single_build"
COSMOS_DAG_ID = "bench_dbt_cosmos"


# =============================================================================================== helpers


def timed(call):
    start = time.perf_counter()
    value = call()
    return value, round(time.perf_counter() - start, 3)


def spec_and_date():
    from mlplatform.spec import get_spec

    return get_spec(USE_CASE), date.fromisoformat(RUN_DATE)


class FitTimer:
    """Accumulates time spent in QuantileForecaster.fit (the scikit-learn part of training)."""

    def __init__(self) -> None:
        from mlplatform.forecasting import QuantileForecaster

        self.seconds, self.calls = 0.0, 0
        original = QuantileForecaster.fit
        timer = self

        def fit(model, train):
            start = time.perf_counter()
            try:
                return original(model, train)
            finally:
                timer.seconds += time.perf_counter() - start
                timer.calls += 1

        QuantileForecaster.fit = fit

    def take(self) -> dict:
        out = {"fit_s": round(self.seconds, 2), "fit_calls": self.calls}
        self.seconds, self.calls = 0.0, 0
        return out


# =============================================================================================== workers
# Each worker runs in its own interpreter (`run_benchmarks.py --worker NAME --payload JSON --out FILE`).


def worker_parse(payload: dict) -> dict:
    """Cold parse of one dags folder: import cost of Airflow, BundleDagBag per-file durations, imports."""
    start = time.perf_counter()
    import airflow  # noqa: F401
    from airflow.dag_processing.dagbag import BundleDagBag

    import_s = time.perf_counter() - start
    before = set(sys.modules)
    heavy_before = sorted(m for m in HEAVY if m in sys.modules)
    folder = payload["folder"]
    bag, bag_s = timed(lambda: BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder"))
    new = set(sys.modules) - before
    return {
        "import_airflow_s": round(import_s, 3), "dagbag_s": bag_s, "total_s": round(import_s + bag_s, 3),
        "files": [{"file": Path(s.file).name, "duration_s": round(s.duration.total_seconds(), 3),
                   "dags": s.dag_num, "tasks": s.task_num} for s in bag.dagbag_stats],
        "dags": {d.dag_id: len(d.tasks) for d in bag.dags.values()},
        "task_ids": {d.dag_id: [t.task_id for t in d.topological_sort()] for d in bag.dags.values()},
        "import_errors": {Path(k).name: str(v)[-2000:] for k, v in bag.import_errors.items()},
        "heavy_loaded_before_parse": heavy_before,
        "heavy_imported_by_parse": sorted({m.split(".")[0] for m in new} & set(HEAVY)),
        "modules_imported_by_parse": len(new),
        "peak_rss_mb": peak_rss_mb(),
    }


def _stage_summary(name: str, out: dict) -> dict:
    keep = {"land_raw": ["rows_landed", "days_landed"], "build_features": ["rows"],
            "validate_features": ["evaluated"], "train_model": ["created", "model_value", "baseline_value", "skipped"],
            "monitor_drift": ["drift_detected", "drifted_share", "skipped"], "score_and_publish": ["rows", "files"],
            "evaluate_accuracy": ["realised_rows", "breach"], "decide_retrain": ["retrain"]}
    return {k: round(out[k], 4) if isinstance(out[k], float) else out[k] for k in keep.get(name, []) if k in out}


def _bucket_etags(store, prefix: str) -> dict[str, str]:
    return {o["Key"]: o["ETag"] for o in store._iter_objects(prefix)}


def _run_all_stages(spec, run_date, settings, store, fits: FitTimer) -> dict:
    from mlplatform import pipeline as p

    stages = {}
    for name, call in p.stage_calls(spec, run_date, settings, store):
        start = time.perf_counter()
        try:
            out = _stage_summary(name, call())
        except Exception as exc:  # noqa: BLE001 - recorded; later stages still run (their inputs may exist)
            out = {"error": f"{type(exc).__name__}: {exc}"}
        stages[name] = {"seconds": round(time.perf_counter() - start, 3), "peak_rss_mb": peak_rss_mb(), **out}
        if name == "train_model":
            stages[name].update(fits.take())
    return stages


def worker_pipeline(payload: dict) -> dict:
    """All stages at the shipped demo size for RUN_DATE, then a rerun of the same date."""
    fits = FitTimer()
    spec, run_date = spec_and_date()
    settings = settings_for(payload["data_dir"])
    store = object_store(payload["bucket"])
    first = _run_all_stages(spec, run_date, settings, store, fits)
    before = _bucket_etags(store, spec.name + "/")
    rerun = _run_all_stages(spec, run_date, settings, store, fits)
    after = _bucket_etags(store, spec.name + "/")
    volatile = (".html", "evidently_snapshot.json")  # Evidently embeds ids/timestamps (as the DAG test allows)
    changed = sorted(k for k in before if k in after and before[k] != after[k] and not k.endswith(volatile))
    return {
        "source": dict(spec.source.params), "history_start": spec.source.history_start.isoformat(),
        "run": first, "rerun": rerun,
        "run_total_s": round(sum(s["seconds"] for s in first.values()), 2),
        "rerun_total_s": round(sum(s["seconds"] for s in rerun.values()), 2),
        "rerun_objects": {"before": len(before), "after": len(after),
                          "added": len(set(after) - set(before)), "removed": len(set(before) - set(after)),
                          "changed_excluding_drift_html": changed},
        "peak_rss_mb": peak_rss_mb(),
    }


def _scale_spec(payload: dict):
    spec, run_date = spec_and_date()
    start = run_date - timedelta(days=payload["days"] - 1)
    params = {**spec.source.params, "n_stores": payload["stores"], "n_skus": payload["skus"]}
    source = spec.source.model_copy(update={"history_start": start, "params": params})
    return spec.model_copy(update={"source": source}), run_date


def _scale_land(spec, run_date, settings, store) -> dict:
    from mlplatform import pipeline as p

    out, seconds = timed(lambda: p.land_raw(spec, run_date, settings))
    return {"seconds": seconds, "rows_landed": out["rows_landed"], "days_landed": out["days_landed"],
            "duckdb_mb": round(settings.duckdb_path.stat().st_size / 2**20, 1)}


def _scale_build(spec, run_date, settings, store) -> dict:
    """build_features, with the dbt build part timed separately from the snapshot (read, sort, write)."""
    from mlplatform import pipeline as p
    from mlplatform import transform

    original, dbt = transform.run_dbt_build, {}

    def run_dbt_build(*args, **kwargs):
        out, dbt["seconds"] = timed(lambda: original(*args, **kwargs))
        dbt["nodes"] = out.get("nodes")
        return out

    transform.run_dbt_build = run_dbt_build
    out, seconds = timed(lambda: p.build_features(spec, run_date, settings, store))
    manifest = store.get_json(out["snapshot_uri"].split(f"s3://{store.bucket}/")[1] + "_manifest.json")
    return {"seconds": seconds, "dbt_build_s": dbt["seconds"], "snapshot_s": round(seconds - dbt["seconds"], 3),
            "feature_rows": out["rows"], "dbt_nodes": dbt["nodes"],
            "features_parquet_mb": round(manifest["features"]["bytes"] / 2**20, 1)}


def _scale_train(spec, run_date, settings, store) -> dict:
    """The training computation (backtest folds + final fit) on the scale snapshot, default row cap."""
    from mlplatform import pipeline as p
    from mlplatform.training import train_and_backtest

    fits = FitTimer()
    (features, calendar, _), load_s = timed(lambda: p.load_snapshot(spec, run_date, store))
    cap = spec.model.max_training_rows
    with getattr(p, "training_threads", contextlib.nullcontext)():  # as train_model runs it
        result, seconds = timed(lambda: train_and_backtest(features, calendar, spec, run_date,
                                                           max_training_rows=cap))
    return {"seconds": seconds, "load_snapshot_s": load_s, "feature_rows": len(features),
            "max_training_rows": cap, "n_training_rows": result.n_training_rows,
            "backtest_wape": round(result.metrics["model"]["wape"], 4), **fits.take()}


def worker_scale(payload: dict) -> dict:
    spec, run_date = _scale_spec(payload)
    settings = settings_for(payload["data_dir"])
    store = object_store(payload["bucket"])
    step = {"land": _scale_land, "build": _scale_build, "train": _scale_train}[payload["step"]]
    return {**step(spec, run_date, settings, store), "peak_rss_mb": peak_rss_mb(), "loadavg": loadavg()}


def synthetic_forecast(start: int, rows: int, horizon: int, seed: int = 7):
    """Rows [start, start + rows) of a synthetic forecast with the published columns (deterministic by row).

    Like scoring's output, the id strings of a series (and the target dates) are shared by its rows; the
    frame is built with few temporaries so the publisher, not this generator, dominates the measured peak.
    """
    import numpy as np
    import pandas as pd

    idx = np.arange(start, start + rows, dtype=np.int64)
    series, step = idx // horizon, idx % horizon + 1
    first = int(series[0])
    ids = range(first, int(series[-1]) + 1)
    local = series - first
    origin = date.fromisoformat(RUN_DATE)
    dates = np.array([origin + timedelta(days=h) for h in range(1, horizon + 1)], dtype=object)
    p50 = np.random.default_rng([seed, start]).gamma(2.0, 5.0, rows)
    return pd.DataFrame({
        "store_id": np.array([f"S{s // 1000:04d}" for s in ids], dtype=object)[local],
        "sku_id": np.array([f"SKU{s % 1000:04d}" for s in ids], dtype=object)[local],
        "series_id": np.array([f"S{s // 1000:04d}-SKU{s % 1000:04d}" for s in ids], dtype=object)[local],
        "target_date": dates[step - 1], "horizon": step, "p10": p50 * 0.6, "p50": p50, "p90": p50 * 1.5,
    })


def _one_chunk_cost(chunk_rows: int, horizon: int) -> dict:
    """Traced memory held by one chunk frame, and the generator's own peak while making it."""
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    chunk = synthetic_forecast(0, chunk_rows, horizon)
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del chunk
    return {"one_chunk_traced_mb": round(held / 2**20, 1), "generator_peak_mb": round(peak / 2**20, 1)}


def _chunks(rows: int, chunk_rows: int, horizon: int):
    for start in range(0, rows, chunk_rows):
        yield synthetic_forecast(start, min(chunk_rows, rows - start), horizon)


def worker_publish(payload: dict) -> dict:
    """publish_partition of `rows` synthetic forecast rows, chunked (generator) or as one frame.

    With payload["trace"], tracemalloc measures the traced peak; without, RSS growth is measured (tracemalloc
    keeps a record per allocation, which would inflate RSS, so the two are never measured in one process).
    """
    import tracemalloc

    import pyarrow as pa

    from mlplatform.publishing import publish_partition

    spec, _ = spec_and_date()
    store = object_store(payload["bucket"])
    rows, chunk_rows, horizon = payload["rows"], spec.publish.chunk_rows, spec.forecast.horizon
    stamp = {"use_case": spec.name, "run_date": RUN_DATE, "model_version": "vbench"}
    publish_partition(store, "warmup", _chunks(2 * horizon, horizon, horizon), stamp, {})  # lazy imports, pools
    unit = _one_chunk_cost(chunk_rows, horizon) if payload["trace"] else {}
    gc.collect()
    base_rss, arrow_base = current_rss_mb(), pa.default_memory_pool().max_memory()
    if payload["trace"]:
        tracemalloc.start()
    start = time.perf_counter()
    if payload["mode"] == "chunked":
        chunks = _chunks(rows, chunk_rows, horizon)
    else:
        chunks = [synthetic_forecast(0, rows, horizon)]
    prefix = f"{payload['mode']}-{'traced' if payload['trace'] else 'rss'}/run_date={RUN_DATE}"
    manifest = publish_partition(store, prefix, chunks, stamp, {})
    seconds = time.perf_counter() - start
    out = {
        "mode": payload["mode"], "rows": manifest["row_count"], "parts": len(manifest["files"]),
        "chunk_rows": chunk_rows if payload["mode"] == "chunked" else rows,
        "published_mb": round(sum(f["bytes"] for f in manifest["files"]) / 2**20, 1),
        **unit,
        "arrow_pool_peak_mb": round(max(0, pa.default_memory_pool().max_memory() - arrow_base) / 2**20, 1),
    }
    if payload["trace"]:
        out["traced_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        out["traced_seconds"] = round(seconds, 2)
        tracemalloc.stop()
    else:
        out.update({"seconds": round(seconds, 2), "rss_base_mb": base_rss, "peak_rss_mb": peak_rss_mb(),
                    "rss_growth_mb": round(peak_rss_mb() - base_rss, 1)})
    return out


def worker_orch_prepare(payload: dict) -> dict:
    """Land the default data into a DuckDB file and `dbt parse` the project into a temporary target."""
    from mlplatform.transform import parse_project
    from mlplatform.warehouse import land_source

    spec, run_date = spec_and_date()
    work = Path(payload["dir"])
    settings = settings_for(str(work / "data"), str(work / "landed.duckdb"))
    landed, land_s = timed(lambda: land_source(spec, run_date, settings))
    manifest, parse_s = timed(lambda: parse_project(settings, work / "target"))
    for name in ("single", "cosmos"):
        shutil.copyfile(work / "landed.duckdb", work / f"{name}.duckdb")
    return {"rows_landed": landed["rows_landed"], "land_s": land_s, "dbt_parse_s": parse_s,
            "manifest": str(manifest), "select": spec.transform.select}


def worker_fit(payload: dict) -> dict:
    """One P50 QuantileForecaster.fit on the demo-size training set, for the contention section."""
    import sklearn.ensemble  # noqa: F401 - imported before timing in every case (the thread cap imports it first)

    from mlplatform import pipeline as p
    from mlplatform.forecasting import QuantileForecaster, build_training_set
    from mlplatform.storage import Layout

    spec, run_date = spec_and_date()
    store = object_store(payload["bucket"])
    if not store.exists(f"{Layout(spec.name).features(run_date)}/_manifest.json"):
        settings = settings_for(payload["data_dir"])
        p.land_raw(spec, run_date, settings)
        p.build_features(spec, run_date, settings, store)
    features, calendar, _ = p.load_snapshot(spec, run_date, store)
    train = build_training_set(features, calendar, spec, run_date, max_rows=spec.model.max_training_rows)
    # One estimator (P50) instead of one per quantile keeps the contended cases short; same per-fit behaviour.
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"quantiles": [0.5]})})
    # As train_model does: its thread cap (pipeline.training_threads) around the first fit of the process.
    limit = p.training_threads if payload.get("pipeline_thread_cap") else contextlib.nullcontext
    seconds, models = [], []
    for _ in range(payload["repeats"]):
        with limit():
            model, fit_s = timed(lambda: QuantileForecaster(spec).fit(train))
        seconds.append(fit_s)
        models.append(model)
    return {"fit_s": seconds, "fit_median_s": statistics.median(seconds), "training_rows": len(train),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "n_threads_used": [m.estimators[0]._bin_mapper.n_threads for m in models], "loadavg": loadavg()}


WORKERS = {"parse": worker_parse, "pipeline": worker_pipeline, "scale": worker_scale,
           "publish": worker_publish, "orch_prepare": worker_orch_prepare, "fit": worker_fit}


# =========================================================================================== orchestrator


class Bench:
    """The parent process: owns the temp dir, the S3 server, the environment; runs workers; collects."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.harness = Harness(Path(__file__), "mlplatform-bench-", keep=args.keep)
        self.root = self.harness.root
        self.results: dict = {}

    @property
    def env(self) -> dict[str, str]:
        return self.harness.env

    def start(self) -> None:
        seconds = self.harness.start()
        self.results["setup"] = {"s3_start_s": seconds, "temp_dir": str(self.root)}

    def stop(self) -> None:
        self.harness.stop()

    def worker(self, name: str, payload: dict, env: dict | None = None, timeout: float = 900) -> dict:
        """Run one worker in a fresh interpreter (see harness.Harness.worker)."""
        return self.harness.worker(name, payload, env, timeout)

    def section(self, name: str, call) -> None:
        print(f"\n=== {name} (load average {loadavg()}) ...", flush=True)
        before, cpu = loadavg(), CpuMeter()
        start = time.perf_counter()
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
            result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
        seconds = round(time.perf_counter() - start, 1)
        self.results[name] = {**result, "section_s": seconds, "loadavg_before": before, "loadavg_after": loadavg(),
                              "other_processes_cpu_cores": cpu.others_cores()}
        print(f"=== {name} done in {seconds} s (other processes used "
              f"{self.results[name]['other_processes_cpu_cores']} CPU cores meanwhile)", flush=True)
        print(render_section_text(name, self.results[name]), flush=True)

    # ------------------------------------------------------------------------------------- sections
    def run_parse(self) -> dict:
        runs = [self.worker("parse", {"folder": str(PROJECT_ROOT / "dags")}) for _ in range(self.args.parse_repeats)]
        good = [r for r in runs if "error" not in r]
        if not good:
            return {"error": runs[0].get("error"), "runs": runs}
        files = sorted({f["file"] for r in good for f in r["files"]})
        per_file = {f: statistics.median([x["duration_s"] for r in good for x in r["files"] if x["file"] == f])
                    for f in files}
        last = good[-1]
        return {
            "repeats": len(good), "per_file_median_s": per_file,
            "dagbag_median_s": statistics.median(r["dagbag_s"] for r in good),
            "import_airflow_median_s": statistics.median(r["import_airflow_s"] for r in good),
            "process_wall_median_s": statistics.median(r["process_wall_s"] for r in good),
            "dags": last["dags"], "import_errors": last["import_errors"],
            "heavy_imported_by_parse": sorted({m for r in good for m in r["heavy_imported_by_parse"]}),
            "heavy_loaded_before_parse": last["heavy_loaded_before_parse"],
            "modules_imported_by_parse": last["modules_imported_by_parse"], "peak_rss_mb": last["peak_rss_mb"],
        }

    def run_pipeline(self) -> dict:
        return self.worker("pipeline", {"data_dir": str(self.root / "pipeline-data"), "bucket": "bench-pipeline"})

    def run_scale(self) -> dict:
        a = self.args
        base = {"stores": a.scale_stores, "skus": a.scale_skus, "days": a.scale_days,
                "data_dir": str(self.root / "scale-data"), "bucket": "bench-scale"}
        out = {"stores": a.scale_stores, "skus": a.scale_skus, "days": a.scale_days,
               "series": a.scale_stores * a.scale_skus, "expected_raw_rows": a.scale_stores * a.scale_skus * a.scale_days}
        for step in ("land", "build", "train"):
            out[step] = self.worker("scale", {**base, "step": step})
            if "error" in out[step]:
                break
        return out

    def run_publish(self) -> dict:
        """Chunked at half and at full size (a bounded peak does not grow with rows), and one frame."""
        rows = self.args.publish_rows
        out = {}
        for key, mode, n in (("chunked_half", "chunked", rows // 2), ("chunked", "chunked", rows),
                             ("single", "single", rows)):
            runs = [self.worker("publish", {"mode": mode, "rows": n, "trace": trace, "bucket": "bench-publish"})
                    for trace in (False, True)]
            errors = [r for r in runs if "error" in r]
            out[key] = errors[0] if errors else {**runs[1], **runs[0]}
        return out

    def run_orchestration(self) -> dict:
        work = self.root / "orchestration"
        dags = work / "dags"
        dags.mkdir(parents=True)
        env = {**self.env, "AIRFLOW_HOME": str(work / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
               "AIRFLOW__COSMOS__CACHE_DIR": str(work / "cosmos-cache")}  # default is /tmp/cosmos, shared
        prep = self.worker("orch_prepare", {"dir": str(work)}, env)
        if "error" in prep:
            return {"prepare": prep}
        migrate = run_cli([airflow_bin(), "db", "migrate"], env, work / "migrate.log", 600)
        if migrate["returncode"] != 0:
            return {"prepare": prep, "db_migrate": migrate}
        write_bench_dags(dags, work, prep)
        parse = self.worker("parse", {"folder": str(dags)}, env)
        out = {"prepare": prep, "db_migrate_s": migrate["seconds"], "parse": parse}
        for key, dag_id in (("single_task", SINGLE_DAG_ID), ("cosmos", COSMOS_DAG_ID)):
            out[key] = dags_test(dag_id, env, work)
        # `dags test` runs every task in one process, so only the first task pays the cold start (imports, dbt
        # project parse). Under a real executor each task is its own process: measure that per-task cost.
        out["cold_tasks"] = [tasks_test(dag_id, task_id, env, work) for dag_id, task_id in COLD_TASKS]
        return out

    def run_contention(self) -> dict:
        """The same fit with OpenMP's default threads vs one thread, alone and next to one busy process."""
        payload = {"bucket": "bench-pipeline", "data_dir": str(self.root / "contention-data"), "repeats": 1}
        base = {k: v for k, v in self.env.items() if k not in ("OMP_NUM_THREADS", "MLPLATFORM_TRAINING_THREADS")}
        cases = [("omp_threads_default", {}, {}, True), ("omp_threads_1", {"OMP_NUM_THREADS": "1"}, {}, True),
                 ("pipeline_thread_cap", {}, {"pipeline_thread_cap": True}, False)]
        out = {}
        for label, env, extra, alone_too in cases:
            if alone_too:
                out[f"{label}_no_added_load"] = self.worker("fit", {**payload, **extra}, {**base, **env})
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
            try:
                out[f"{label}_one_busy_process"] = self.worker("fit", {**payload, **extra}, {**base, **env})
            finally:
                hog.kill()
                hog.wait()
        return out

    def run(self) -> None:
        started = time.perf_counter()
        self.results["meta"] = machine_info(run_date=RUN_DATE, use_case=USE_CASE)
        self.start()
        try:
            for name in self.args.sections:
                self.section(name, getattr(self, f"run_{name}"))
        finally:
            self.stop()
        self.results["meta"]["total_runtime_s"] = round(time.perf_counter() - started, 1)
        self.results["meta"]["loadavg_end"] = loadavg()
        write_results(self.results)


def airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


def run_cli(cmd: list[str], env: dict, log: Path, timeout: float) -> dict:
    start = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, check=False)
    return {"returncode": proc.returncode, "seconds": round(time.perf_counter() - start, 2), "log": str(log)}


SINGLE_DAG = '''\
"""Benchmark DAG (airflow dag, generated by bench/run_benchmarks.py): ONE task runs `dbt build`.

The task calls mlplatform.transform.run_dbt_build, the dbt part of the build_features stage:
`dbt build --select {select}` in-process (dbtRunner) with vars run_date and horizon_days.
"""
from datetime import UTC, date, datetime

from airflow.sdk import dag, task


@dag(dag_id={dag_id!r}, schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC), catchup=False,
     tags=["bench"])
def bench_dbt_single_build():
    @task
    def dbt_build() -> dict:
        from mlplatform.settings import load_settings
        from mlplatform.spec import get_spec
        from mlplatform.transform import run_dbt_build

        settings = load_settings({{"MLPLATFORM_DATA_DIR": {data_dir!r}, "MLPLATFORM_DUCKDB_PATH": {duckdb!r}}})
        return run_dbt_build(get_spec({use_case!r}), date.fromisoformat({run_date!r}), settings)

    dbt_build()


bench_dbt_single_build()
'''

COSMOS_DAG = '''\
"""Benchmark DAG (airflow dag, generated by bench/run_benchmarks.py): Cosmos DbtTaskGroup from the manifest.

LoadMode.DBT_MANIFEST (manifest from `dbt parse`), ExecutionMode.LOCAL + InvocationMode.DBT_RUNNER,
TestBehavior.AFTER_EACH: one run/seed task per node plus one test task per tested node.
"""
from datetime import UTC, datetime

import airflow  # noqa: F401  - before cosmos.constants (circular import otherwise)
from airflow.sdk import dag
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior


@dag(dag_id={dag_id!r}, schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC), catchup=False,
     tags=["bench"])
def bench_dbt_cosmos():
    DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(dbt_project_path={project!r}, manifest_path={manifest!r}),
        profile_config=ProfileConfig(profile_name="mlplatform", target_name="duckdb",
                                     profiles_yml_filepath={profiles!r}),
        execution_config=ExecutionConfig(execution_mode=ExecutionMode.LOCAL,
                                         invocation_mode=InvocationMode.DBT_RUNNER),
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, select={select!r},
                                   test_behavior=TestBehavior.AFTER_EACH),
        operator_args={{"vars": {{"run_date": {run_date!r}, "horizon_days": {horizon}}},
                       "env": {{"MLPLATFORM_DUCKDB_PATH": {duckdb!r}, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}}}},
    )


bench_dbt_cosmos()
'''


def write_bench_dags(dags: Path, work: Path, prep: dict) -> None:
    """Write the two benchmark DAG files (their text contains "airflow" and "dag": Airflow's safe mode)."""
    from mlplatform import constants as C

    spec, _ = spec_and_date()
    (dags / "bench_dbt_single_build.py").write_text(SINGLE_DAG.format(
        dag_id=SINGLE_DAG_ID, select=prep["select"], data_dir=str(work / "single-data"),
        duckdb=str(work / "single.duckdb"), use_case=USE_CASE, run_date=RUN_DATE))
    (dags / "bench_dbt_cosmos.py").write_text(COSMOS_DAG.format(
        dag_id=COSMOS_DAG_ID, project=str(C.DBT_PROJECT_DIR), manifest=prep["manifest"],
        profiles=str(C.DBT_PROFILES_DIR / "profiles.yml"), select=prep["select"].split(), run_date=RUN_DATE,
        horizon=spec.forecast.horizon, duckdb=str(work / "cosmos.duckdb")))


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def task_instances(db: Path, dag_id: str) -> list[dict]:
    """Task instances of the DAG's (only) run, from the SQLite metadata DB, in start order."""
    with sqlite3.connect(db) as con:
        rows = con.execute("select task_id, state, start_date, end_date, duration from task_instance "
                           "where dag_id = ? order by start_date", [dag_id]).fetchall()
    return [{"task_id": t, "state": s, "start": _ts(a), "end": _ts(b), "duration_s": round(d or 0.0, 2)}
            for t, s, a, b, d in rows]


def dbt_node_totals(log: Path) -> dict:
    """Sum of dbt's 'Done. PASS=.. TOTAL=..' lines in the task logs: how many dbt nodes were executed."""
    text = log.read_text(errors="replace")
    done = re.findall(r"Done\. PASS=(\d+) WARN=(\d+) ERROR=(\d+) SKIP=(\d+) NO-OP=(\d+) TOTAL=(\d+)", text)
    return {"dbt_invocations": len(done), "dbt_nodes_total": sum(int(d[5]) for d in done),
            "dbt_nodes_pass": sum(int(d[0]) for d in done), "dbt_nodes_error": sum(int(d[2]) for d in done)}


def dags_test(dag_id: str, env: dict, work: Path) -> dict:
    """`airflow dags test DAG_ID RUN_DATE`; wall time of the command, task spans from the metadata DB."""
    log = work / f"dags-test-{dag_id}.log"
    cli = run_cli([airflow_bin(), "dags", "test", dag_id, RUN_DATE], env, log, 900)
    tis = task_instances(Path(env["AIRFLOW_HOME"]) / "airflow.db", dag_id)
    out = {"command_wall_s": cli["seconds"], "returncode": cli["returncode"], "tasks": len(tis),
           "task_states": sorted({t["state"] or "none" for t in tis}), **dbt_node_totals(log)}
    started = [t for t in tis if t["start"] and t["end"]]
    if started:
        out["first_task_start_to_last_task_end_s"] = round(
            (max(t["end"] for t in started) - min(t["start"] for t in started)).total_seconds(), 2)
        out["sum_task_durations_s"] = round(sum(t["duration_s"] for t in started), 2)
        out["first_task_s"] = started[0]["duration_s"]
        out["between_tasks_s"] = round(out["first_task_start_to_last_task_end_s"] - out["sum_task_durations_s"], 2)
        if len(started) > 1:
            out["mean_task_after_first_s"] = round(
                (out["sum_task_durations_s"] - out["first_task_s"]) / (len(started) - 1), 2)
        out["task_durations_s"] = {t["task_id"]: t["duration_s"] for t in started}
    out["success"] = cli["returncode"] == 0 and bool(tis) and all(t["state"] == "success" for t in tis)
    if not out["success"]:
        text = log.read_text(errors="replace")
        errors = [ln for ln in text.splitlines() if re.search(r"Error|ERROR|Traceback|failed", ln)]
        out["error_lines"] = errors[-25:]
        out["log_tail"] = text[-3000:]
    return out


COLD_TASKS = [(SINGLE_DAG_ID, "dbt_build"), (COSMOS_DAG_ID, "dbt.stg_stores.run"),
              (COSMOS_DAG_ID, "dbt.fct_demand_features.test")]


def tasks_test(dag_id: str, task_id: str, env: dict, work: Path) -> dict:
    """`airflow tasks test` of one task in a fresh process: the task's own duration is its cold-start cost."""
    log = work / f"tasks-test-{task_id}.log"
    cli = run_cli([airflow_bin(), "tasks", "test", dag_id, task_id, RUN_DATE], env, log, 600)
    tis = [t for t in task_instances(Path(env["AIRFLOW_HOME"]) / "airflow.db", dag_id) if t["task_id"] == task_id]
    latest = max(tis, key=lambda t: t["start"] or datetime.min, default={})
    return {"dag_id": dag_id, "task_id": task_id, "command_wall_s": cli["seconds"], "returncode": cli["returncode"],
            "task_run_s": task_run_seconds(log), "ti_duration_s": latest.get("duration_s"),
            "state": latest.get("state"), **dbt_node_totals(log)}


def task_run_seconds(log: Path) -> float | None:
    """From the execution API's "Task started" to its last state update: the task's own run, cold.

    The TaskInstance duration of `airflow tasks test` also counts the CLI's in-process API start-up (~4 s),
    which a running deployment does not pay per task.
    """
    stamps = {"start": [], "update": []}
    for line in log.read_text(errors="replace").splitlines():
        kind = "start" if "Task started" in line else "update" if "Task instance state updated" in line else None
        if kind and re.match(r"\d{4}-\d\d-\d\dT", line):
            stamps[kind].append(datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")))
    if not stamps["start"] or not stamps["update"]:
        return None
    return round((max(stamps["update"]) - min(stamps["start"])).total_seconds(), 2)


# ============================================================================================= reporting


def _table(headers: list[str], rows: list[list], markdown: bool) -> str:
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells[1:]])
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([fmt(cells[0]), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells[1:]])


def _err(result: dict) -> list[list]:
    return [["ERROR", result["error"]]] if "error" in result else []


def parse_rows(r: dict) -> list[list]:
    rows = [[f"parse {f} (median of {r['repeats']})", f"{s:.3f} s"] for f, s in r["per_file_median_s"].items()]
    return rows + [
        ["BundleDagBag total (median)", f"{r['dagbag_median_s']:.3f} s"],
        ["import airflow (median, cold)", f"{r['import_airflow_median_s']:.3f} s"],
        ["whole process wall (median)", f"{r['process_wall_median_s']:.2f} s"],
        ["DAGs (tasks)", ", ".join(f"{k} ({v})" for k, v in r["dags"].items())],
        ["import errors", len(r["import_errors"])],
        ["heavy modules imported by parsing", ", ".join(r["heavy_imported_by_parse"]) or "none"],
        ["heavy modules already loaded by airflow", ", ".join(r["heavy_loaded_before_parse"]) or "none"],
        ["modules imported by parsing", r["modules_imported_by_parse"]],
    ]


def pipeline_rows(r: dict) -> list[list]:
    rows = []
    for name in STAGES:
        a, b = r["run"][name], r["rerun"][name]
        info = {k: v for k, v in a.items() if k not in ("seconds", "peak_rss_mb")}
        if "error" in b:
            info["RERUN ERROR"] = b["error"]
        rows.append([name, f"{a['seconds']:.2f}", f"{b['seconds']:.2f}", f"{a['peak_rss_mb']:.0f}",
                     json.dumps(info, default=str)])
    objs = r["rerun_objects"]
    rows.append(["TOTAL", f"{r['run_total_s']:.2f}", f"{r['rerun_total_s']:.2f}", f"{r['peak_rss_mb']:.0f}",
                 f"rerun: {objs['added']} objects added, {objs['removed']} removed, "
                 f"{len(objs['changed_excluding_drift_html'])} changed (of {objs['before']})"])
    return rows


def scale_rows(r: dict) -> list[list]:
    rows = []
    for step in ("land", "build", "train"):
        if step not in r:
            continue
        s = r[step]
        if "error" in s:
            rows.append([step, "ERROR", "", s["error"]])
            continue
        info = {k: v for k, v in s.items() if k not in ("seconds", "peak_rss_mb", "process_wall_s", "loadavg")}
        rows.append([step, f"{s['seconds']:.2f}", f"{s['peak_rss_mb']:.0f}", json.dumps(info, default=str)])
    return rows


def publish_rows(r: dict) -> list[list]:
    rows = []
    for key in ("chunked_half", "chunked", "single"):
        s = r.get(key, {})
        if "error" in s:
            rows.append([key, "ERROR", s["error"], "", "", "", "", "", ""])
            continue
        rows.append([key, s["rows"], f"{s['parts']} x {s['chunk_rows']}", f"{s['seconds']:.1f}",
                     f"{s['traced_peak_mb']:.0f}", f"{s['arrow_pool_peak_mb']:.0f}", f"{s['rss_growth_mb']:.0f}",
                     f"{s['one_chunk_traced_mb']:.1f}", f"{s['traced_peak_mb'] / s['one_chunk_traced_mb']:.1f}"])
    return rows


def orchestration_rows(r: dict) -> list[list]:
    prep = r.get("prepare", {})
    rows = [["dbt parse (manifest for Cosmos)", f"{prep.get('dbt_parse_s', '-')} s", ""]]
    parse = r.get("parse", {})
    for f in parse.get("files", []):
        rows.append([f"DAG parse {f['file']} (cold, BundleDagBag)", f"{f['duration_s']:.3f} s", f"{f['tasks']} tasks"])
    for name, err in parse.get("import_errors", {}).items():
        rows.append([f"DAG import error {name}", "ERROR", err[-300:]])
    for key, label in (("single_task", "ONE task: dbt build"), ("cosmos", "Cosmos DbtTaskGroup")):
        s = r.get(key)
        if not s:
            continue
        rows.append([f"{label}: `airflow dags test` wall", f"{s['command_wall_s']:.1f} s",
                     f"success={s['success']}, {s['tasks']} tasks, {s['dbt_invocations']} dbt invocations, "
                     f"{s['dbt_nodes_total']} dbt nodes"])
        if "first_task_start_to_last_task_end_s" in s:
            rows.append([f"{label}: first task start -> last task end", f"{s['first_task_start_to_last_task_end_s']:.1f} s",
                         f"sum of task durations {s['sum_task_durations_s']:.1f} s (first task {s['first_task_s']:.1f} s, "
                         f"later tasks {s.get('mean_task_after_first_s', '-')} s each), "
                         f"between tasks {s['between_tasks_s']:.1f} s"])
        if not s["success"]:
            rows.append([f"{label}: error", "", " | ".join(s.get("error_lines", [])[-3:])[:600]])
    for c in r.get("cold_tasks", []):
        rows.append([f"cold task {c['task_id']} (own process)", f"{c['task_run_s']} s",
                     f"`airflow tasks test` wall {c['command_wall_s']:.1f} s, state {c['state']}, "
                     f"{c['dbt_nodes_total']} dbt nodes"])
    estimate = cosmos_per_process_estimate(r)
    if estimate:
        rows.append(["Cosmos, one process per task (estimate, serial)", f"{estimate['cosmos_s']:.0f} s",
                     f"{estimate['tasks']} tasks x {estimate['per_task_s']:.1f} s (cold task + its DAG parse) "
                     f"vs ONE task {estimate['single_s']:.1f} s; excludes process start-up and scheduling gaps"])
    single, cosmos = r.get("single_task") or {}, r.get("cosmos") or {}
    if single.get("success") and cosmos.get("success"):
        extra = cosmos["command_wall_s"] - single["command_wall_s"]
        rows.append(["Cosmos minus ONE task (dags test wall)", f"{extra:+.1f} s",
                     f"x{cosmos['command_wall_s'] / single['command_wall_s']:.2f}; task span "
                     f"{cosmos['first_task_start_to_last_task_end_s'] - single['first_task_start_to_last_task_end_s']:+.1f} s"])
    return rows


def contention_rows(r: dict) -> list[list]:
    rows = []
    for key, s in r.items():
        if not isinstance(s, dict) or not key.startswith(("omp_", "pipeline_")):
            continue
        if "error" in s:
            rows.append([key, "ERROR", s["error"], "", ""])
            continue
        rows.append([key, f"{s['fit_median_s']:.2f}", s["n_threads_used"], s["training_rows"],
                     s["other_processes_cpu_cores"]])
    return rows


def cosmos_per_process_estimate(r: dict) -> dict | None:
    """Cosmos task span if every task started cold (as under LocalExecutor/Celery): n x mean cold task + gaps."""
    cosmos = r.get("cosmos") or {}
    cold = r.get("cold_tasks") or []
    cosmos_cold = [c["task_run_s"] for c in cold if c["dag_id"] == COSMOS_DAG_ID and c["task_run_s"]]
    single_cold = [c["task_run_s"] for c in cold if c["dag_id"] == SINGLE_DAG_ID and c["task_run_s"]]
    parse = {f["file"]: f["duration_s"] for f in (r.get("parse") or {}).get("files", [])}
    if not (cosmos.get("success") and cosmos_cold and single_cold):
        return None
    # Each task process also parses its DAG file; process start-up and scheduling latency are not included.
    per_task = statistics.mean(cosmos_cold) + parse.get("bench_dbt_cosmos.py", 0.0)
    single = single_cold[0] + parse.get("bench_dbt_single_build.py", 0.0)
    return {"tasks": cosmos["tasks"], "per_task_s": round(per_task, 2), "single_s": round(single, 2),
            "cosmos_s": round(cosmos["tasks"] * per_task, 1)}


RENDER = {
    "parse": (["measure", "value"], parse_rows),
    "pipeline": (["stage", "run s", "rerun s", "peak RSS MB (so far)", "first-run output"], pipeline_rows),
    "scale": (["step", "seconds", "peak RSS MB", "details"], scale_rows),
    "publish": (["case", "rows", "parts x rows", "seconds", "traced peak MB", "arrow pool peak MB",
                 "RSS growth MB", "one chunk MB (traced)", "peak / one chunk"], publish_rows),
    "orchestration": (["measure", "value", "details"], orchestration_rows),
    "contention": (["case", "fit seconds", "threads used", "training rows", "CPU cores used by other processes"],
                   contention_rows),
}


def render_section(name: str, result: dict, markdown: bool) -> str:
    headers, rows_of = RENDER[name]
    if "error" in result:
        return _table(["measure", "value"], _err(result), markdown)
    try:
        return _table(headers, rows_of(result), markdown)
    except Exception as exc:  # noqa: BLE001 - a rendering bug must not hide the JSON
        return f"(could not render {name}: {type(exc).__name__}: {exc}; see latest.json)"


def render_section_text(name: str, result: dict) -> str:
    return render_section(name, result, markdown=False)


EXPLAIN = {
    "parse": "Cold interpreter per repeat: `import airflow`, then BundleDagBag over dags/ (the dag-processor's "
             "work); per-file durations are Airflow's own dagbag_stats. Heavy modules = any of "
             + ", ".join(HEAVY) + " newly imported while parsing.",
    "pipeline": "The six stage functions in one process, called as `mlplatform run` does, at the shipped spec's "
                "size for run date " + RUN_DATE + " (fresh warehouse and bucket), then the same date again "
                "(rerun: idempotent path). Peak RSS is the process high-water mark after each stage (cumulative). "
                "train_model fit_s = time inside QuantileForecaster.fit (scikit-learn).",
    "scale": "land_raw, build_features (dbt build + snapshot to S3) and the training computation "
             "(train_and_backtest with the spec's max_training_rows) at a larger size, each step in its own "
             "process, so each peak RSS is that step's alone.",
    "publish": "publish_partition of synthetic forecast rows to S3: chunked = a generator of spec.publish.chunk_rows "
               "frames (how score_and_publish feeds it); single = the same rows as one frame. Traced peak = "
               "tracemalloc (Python + numpy/pandas buffers); arrow pool peak = pyarrow's allocator (Parquet "
               "encoding, not seen by tracemalloc); RSS growth = peak RSS minus RSS before publishing.",
    "orchestration": "Same landed DuckDB data, same dbt selection and vars, both DAGs run end to end with "
                     "`airflow dags test` (tasks run one after another in the CLI process) on a SQLite Airflow home. "
                     "Command wall includes CLI start-up and DAG parse; the first task of each DAG also pays the "
                     "CLI's in-process API start-up (~4 s) and the dbt import, later tasks reuse the warm process. "
                     "Under a real executor every task is its own process, so each kind of task is also run alone "
                     "with `airflow tasks test` ('cold task': execution-API task start to final state, Cosmos "
                     "partial-parse cache already warm); the per-process estimate multiplies that out.",
    "contention": "One HistGradientBoosting fit (QuantileForecaster restricted to P50; the pipeline fits one per "
                  "quantile) on the demo-size training set (max_training_rows cap), each in a fresh process: OpenMP's default thread count, "
                  "OMP_NUM_THREADS=1, and the pipeline's own cap (pipeline.training_threads, as train_model "
                  "applies it), alone and while one other busy-looping process competes for the CPUs (as another "
                  "Airflow task would under LocalExecutor). 'threads used' is what the fitted model recorded "
                  "(its bin mapper's n_threads).",
}


def write_results(results: dict) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "latest.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    meta = results["meta"]
    lines = [
        "# Benchmark results", "",
        f"Generated by `make bench` (bench/run_benchmarks.py) on {meta['started']}: Python {meta['python']}, "
        f"{meta['cores']} CPUs, {meta['ram_gb']} GB RAM. Total runtime {meta.get('total_runtime_s')} s. "
        f"Load average at start {meta['loadavg_start']}, at end {meta.get('loadavg_end')} "
        "(other processes on the machine inflate wall times).", "",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in meta["packages"].items()), "",
    ]
    for name in SECTIONS:
        if name not in results:
            continue
        r = results[name]
        lines += [f"## {name}", "", EXPLAIN[name], "",
                  f"Section time {r.get('section_s')} s; other processes used {r.get('other_processes_cpu_cores')} "
                  f"CPU cores on average meanwhile (load average before {r.get('loadavg_before')}, after "
                  f"{r.get('loadavg_after')}).", "", render_section(name, r, markdown=True), ""]
        if name == "orchestration":
            lines += orchestration_details(r)
    (RESULTS_DIR / "latest.md").write_text("\n".join(lines) + "\n")


def orchestration_details(r: dict) -> list[str]:
    out = []
    cosmos = r.get("cosmos") or {}
    if cosmos.get("task_durations_s"):
        out += ["Cosmos task durations (s), in start order:", "",
                _table(["task", "seconds"], [[k, v] for k, v in cosmos["task_durations_s"].items()], True), ""]
    return out


# ==================================================================================================== main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--parse-repeats", type=int, default=3)
    parser.add_argument("--scale-stores", type=int, default=100)
    parser.add_argument("--scale-skus", type=int, default=100)
    parser.add_argument("--scale-days", type=int, default=365)
    parser.add_argument("--publish-rows", type=int, default=2_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, warehouses)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--payload", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Default (`make bench`): the issue-6 figures into bench/results.json (bench/figures.py, which takes
    --smoke, --output, --figures and the size flags). With --sections: the detailed sections below."""
    argv = sys.argv[1:] if argv is None else argv
    if not any(a == "--worker" or a.startswith("--sections") for a in argv):
        import figures

        return figures.main(argv)
    args = parse_args(argv)
    if args.worker:
        return worker_main(WORKERS, args.worker, args.payload, args.out)
    print(textwrap.dedent(f"""\
        mlplatform benchmarks: sections {', '.join(args.sections)}; run date {RUN_DATE}
        (each measurement in its own process; everything in a temporary directory)"""), flush=True)
    bench = Bench(args)
    bench.run()
    print(f"\nTotal runtime {bench.results['meta']['total_runtime_s']} s. "
          f"Results: {RESULTS_DIR / 'latest.json'} and {RESULTS_DIR / 'latest.md'}")
    failed = {n: errors_in(bench.results.get(n, {})) for n in args.sections}
    failed = {n: e for n, e in failed.items() if e}
    for name, errors in failed.items():
        print(f"FAILED in {name}: " + "; ".join(errors)[:1500], file=sys.stderr)
    return 1 if failed else 0


def errors_in(result, path: str = "") -> list[str]:
    """Every recorded error in a (nested) result, with where it happened."""
    if isinstance(result, dict):
        found = [f"{path or 'section'}: {result['error']}"] if "error" in result else []
        return found + [e for k, v in result.items() if k != "error" for e in errors_in(v, f"{path}/{k}".lstrip("/"))]
    return []


if __name__ == "__main__":
    sys.exit(main())
