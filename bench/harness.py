"""What every benchmark needs, shared by bench/figures.py (`make bench`) and bench/run_benchmarks.py (--sections).

One temporary directory per benchmark run with its own SeaweedFS S3 server on free loopback ports and its own
Airflow home, warehouses and data; each measurement in a fresh interpreter (`<script> --worker NAME --payload
JSON --out FILE`), so import costs and peak RSS belong to that measurement alone; the machine's description;
and how much CPU other processes took meanwhile (the machine may be shared).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

# What every benchmark runs: the demand use case as of this logical date.
RUN_DATE = "2025-06-30"
USE_CASE = "demand_forecast"
# Modules DAG parsing must not import (tests/dags/test_dag_integrity.py's list, plus their companions).
HEAVY = ["pandas", "numpy", "sklearn", "scipy", "evidently", "great_expectations", "boto3", "botocore", "duckdb",
         "pyarrow", "dbt", "joblib", "cosmos"]
# Packages whose versions every result records.
PACKAGES = ("apache-airflow", "astronomer-cosmos", "dbt-core", "dbt-duckdb", "duckdb", "pandas", "pyarrow",
            "scikit-learn", "great-expectations", "evidently", "fairlearn")


def peak_rss_mb() -> float:
    """Peak resident set size of this process since it started or since ``reset_peak_rss`` (VmHWM)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # pragma: no cover


def reset_peak_rss() -> None:
    """Restart the peak (Linux: 5 > /proc/self/clear_refs), so a measurement's peak is not the peak of what
    ran before it in the process (e.g. generating its input, whose transient peak is larger at 16x)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        resident_pages = int(fh.read().split()[1])
    return round(resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class CpuMeter:
    """CPU used by *other* processes while a measurement ran, in cores (0 = the machine was ours alone).

    System-wide busy time from /proc/stat minus this process's and its waited-for children's CPU time.
    """

    def __init__(self) -> None:
        self.start = (self._busy_s(), self._own_s(), time.perf_counter())

    @staticmethod
    def _busy_s() -> float:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:9]]
        return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait

    @staticmethod
    def _own_s() -> float:
        own = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        return sum(r.ru_utime + r.ru_stime for r in own)

    def others_cores(self) -> float:
        busy, own, wall = self._busy_s(), self._own_s(), time.perf_counter()
        elapsed = max(wall - self.start[2], 1e-6)
        return round(max(0.0, (busy - self.start[0]) - (own - self.start[1])) / elapsed, 2)


def object_store(bucket: str):
    """An ObjectStore on the benchmark's S3 server (its connection JSON is in the environment)."""
    from mlplatform import constants as C
    from mlplatform.storage import ObjectStore, client_from_connection_uri

    store = ObjectStore(client_from_connection_uri(os.environ["AIRFLOW_CONN_" + C.DEFAULT_S3_CONN_ID.upper()]),
                        bucket)
    store.ensure_bucket()
    return store


def settings_for(data_dir: str, duckdb_path: str | None = None):
    from mlplatform.settings import load_settings

    env = {"MLPLATFORM_DATA_DIR": data_dir}
    if duckdb_path:
        env["MLPLATFORM_DUCKDB_PATH"] = duckdb_path
    return load_settings(env)


def worker_main(workers: dict[str, Callable[[dict], dict]], name: str, payload: str, out: str) -> int:
    """Body of a worker process: run one measurement, write its JSON result (or the error) to ``out``."""
    try:
        result = workers[name](json.loads(payload))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which records it
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}
    Path(out).write_text(json.dumps(result, default=str))
    return 0


def machine_info(**extra: object) -> dict:
    """Cores, RAM, CPU model, Python, platform, load and package versions of this machine."""
    from importlib.metadata import PackageNotFoundError, version

    model = platform.processor() or "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kb = int(fh.readline().split()[1])
    pkgs = {}
    for pkg in PACKAGES:
        try:
            pkgs[pkg] = version(pkg)
        except PackageNotFoundError:
            pkgs[pkg] = None
    return {"cores": os.cpu_count(), "ram_gb": round(mem_kb / 2**20, 1), "cpu_model": model,
            "python": platform.python_version(), "platform": platform.platform(),
            "started": datetime.now().isoformat(timespec="seconds"), "loadavg_start": loadavg(),
            "packages": pkgs, **extra}


class Harness:
    """The parent side: temp dir, S3 server, environment, and worker processes of one script."""

    def __init__(self, script: Path, prefix: str, keep: bool = False) -> None:
        self.script = Path(script).resolve()
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.keep = keep
        self.server = None
        self.env: dict[str, str] = {}
        self.counter = 0

    def start(self, extra_env: dict[str, str] | None = None) -> float:
        """Start the S3 server and build the workers' environment; return the server's start time (s)."""
        from mlplatform.localstack import SeaweedS3, airflow_env, free_port

        self.server = SeaweedS3(self.root / "seaweedfs", "bench" + secrets.token_hex(4), secrets.token_urlsafe(24))
        started = time.perf_counter()
        self.server.start(timeout=90)
        seconds = round(time.perf_counter() - started, 3)
        passwords = self.root / "passwords.json"
        passwords.write_text(json.dumps({"admin": secrets.token_urlsafe(12)}))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLPLATFORM_"))}
        self.env.update(airflow_env(
            airflow_home=self.root / "airflow", data_dir=self.root / "data",
            s3_connection_json=self.server.connection_json(), jwt_secret=secrets.token_urlsafe(64),
            passwords_file=passwords, api_port=free_port()))
        self.env.update({"PYTHONWARNINGS": "ignore", **(extra_env or {})})
        return seconds

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.keep:
            print(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def worker(self, name: str, payload: dict, env: dict | None = None, timeout: float = 900) -> dict:
        """Run one worker in a fresh interpreter (log in the temp dir); its JSON result plus its wall time and
        the CPU other processes used meanwhile. A timeout is a result with an error, not an exception."""
        self.counter += 1
        out = self.root / "results" / f"{self.counter:02d}-{name}.json"
        log = self.root / "logs" / f"{self.counter:02d}-{name}.log"
        out.parent.mkdir(exist_ok=True)
        log.parent.mkdir(exist_ok=True)
        cmd = [sys.executable, str(self.script), "--worker", name, "--payload", json.dumps(payload), "--out", str(out)]
        start, cpu = time.perf_counter(), CpuMeter()
        try:
            with open(log, "wb") as fh:
                proc = subprocess.run(cmd, env=env or self.env, stdout=fh, stderr=subprocess.STDOUT,
                                      timeout=timeout, cwd=self.root, check=False)
        except subprocess.TimeoutExpired:
            return {"error": f"worker {name} timed out after {timeout} s (size not measured)"}
        meta = {"process_wall_s": round(time.perf_counter() - start, 3),
                "other_processes_cpu_cores": cpu.others_cores()}
        if not out.exists():
            return {"error": f"worker {name} exited with {proc.returncode} without a result",
                    "log_tail": log.read_text(errors="replace")[-3000:], **meta}
        return {**json.loads(out.read_text()), **meta}
