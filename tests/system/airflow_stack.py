"""A real Airflow deployment as subprocesses on loopback, for the system tests.

One ``AirflowStack`` = its own fresh Postgres metadata database, its own Airflow home, data directory,
bucket, api port, JWT secret, Fernet key and admin password, and (CeleryExecutor) its own queue on the
shared Redis broker, so parallel CI runs (and the two stacks of one run) never see each other's state or
take each other's tasks. The environment is the test session's (tests/conftest.py) + ``airflow_env`` for
this stack's paths and ports + ``mlplatform.topology.team_airflow_env``: the configuration `make up` uses
in the team profile.

Services: ``airflow api-server``, ``scheduler``, ``dag-processor`` and (Celery) ``celery worker --queues
<queue>``, each in its own process group with stdout/stderr in ``<root>/logs/<service>.log``. ``stop()``
always ends every process the stack started (process groups, then any leftover descendant found by the
stack's marker variable) and drops the database.

The use-case folder holds a shortened ``demand_forecast`` spec (2 stores x 4 SKUs, history from
2024-09-01, a 240-day training window, no task retries) and ``demand_approval``, its copy with
``approval: required``, so a DAG run takes seconds, not minutes, and a
failing task fails the run at once instead of waiting out the 5-minute retry delay.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from mlplatform import constants as C
from mlplatform.localstack import airflow_env, free_port
from mlplatform.topology import CELERY_EXECUTOR, new_fernet_key, team_airflow_env
from postgres_support import create_database, drop_database, sqlalchemy_url, warehouse_env

AIRFLOW = str(Path(sys.executable).parent / "airflow")
USE_CASE = "demand_forecast"
# Same data, but promotions wait for a person (ApprovalOperator); retrains every run; a 72 s answer window
# so the timeout case finishes in a test.
APPROVAL_USE_CASE = "demand_approval"
APPROVAL_TIMEOUT_H = 0.02
ADMIN = "admin"
REDIS_URL = os.environ.get("MLPLATFORM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MARKER = "MLPLATFORM_SYSTEM_STACK"  # env var carrying the stack id: finds every process a stack started

# The shortened spec: the use case's own generator and model, fewer series and a shorter history.
SHORT_SOURCE = {"history_start": "2024-09-01", "params": {"n_stores": 2, "n_skus": 4, "seed": 42}}
SHORT_TRAINING_WINDOW = 240

# Stacks currently running (for the failure hook in conftest.py, and the exit safety net).
LIVE: list[AirflowStack] = []


def write_short_spec(directory: Path) -> Path:
    """The use-case folder of a stack (returned): _defaults.yaml + the shortened demand_forecast spec."""
    directory.mkdir(parents=True, exist_ok=True)
    source_dir = C.PROJECT_ROOT / "include" / "use_cases"
    (directory / C.DEFAULTS_SPEC_NAME).write_text((source_dir / C.DEFAULTS_SPEC_NAME).read_text())
    spec = yaml.safe_load((source_dir / f"{USE_CASE}.yaml").read_text())
    spec["description"] = "System-test copy of demand_forecast: fewer series, shorter history. " + spec["description"]
    spec["source"]["history_start"] = SHORT_SOURCE["history_start"]
    spec["source"]["params"] = dict(SHORT_SOURCE["params"])
    spec["model"]["training_window"] = SHORT_TRAINING_WINDOW
    spec["retries"] = 0
    (directory / f"{USE_CASE}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    approval = {**spec, "name": APPROVAL_USE_CASE, "approval": {"mode": "required", "timeout_hours": APPROVAL_TIMEOUT_H},
                "retrain": {**spec.get("retrain", {}), "every_days": 1},
                "description": "System-test copy of demand_forecast whose promotions need a person's approval."}
    (directory / f"{APPROVAL_USE_CASE}.yaml").write_text(yaml.safe_dump(approval, sort_keys=False))
    return directory


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"({path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class AirflowStack:
    executor: str
    root: Path
    s3_server: Any
    stack_id: str = field(default_factory=lambda: "mlpsys" + secrets.token_hex(4))
    api_port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    canary: str = field(default_factory=lambda: "canary" + secrets.token_hex(12))  # must never be logged
    dbname: str | None = None
    warehouse_db: str | None = None
    bucket: str = ""
    queue: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    _token: str | None = None

    # --- set-up ------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    def build_env(self) -> dict[str, str]:
        passwords = self.root / "passwords.json"
        passwords.write_text(json.dumps({ADMIN: self.password}))
        passwords.chmod(0o600)
        db_url = sqlalchemy_url(self.dbname)
        celery = self.executor == CELERY_EXECUTOR
        env = {
            **os.environ,
            **airflow_env(airflow_home=self.airflow_home, data_dir=self.root / "data",
                          s3_connection_json=self.s3_server.connection_json(),
                          jwt_secret=secrets.token_urlsafe(64), passwords_file=passwords, api_port=self.api_port),
            **team_airflow_env(
                metadata_db_url=db_url, executor=self.executor,
                broker_url=REDIS_URL if celery else None,
                result_backend=("db+" + db_url.replace("postgresql+psycopg2", "postgresql")) if celery else None,
                queue=self.queue, worker_concurrency=2, fernet_key=new_fernet_key()),
            C.ENV_BUCKET: self.bucket,
            # The production profile: the warehouse (landing, dbt target, reads) on Postgres too.
            C.ENV_PROFILE: C.PROFILE_PRODUCTION,
            **warehouse_env(self.warehouse_db),
            "MLPLATFORM_USE_CASES_DIR": str(write_short_spec(self.root / "use_cases")),
            # Test-stack tuning (not part of the topology):
            # no scheduled runs: unpausing a catchup=False DAG would otherwise start a run for yesterday
            # (17 months of extra history) next to the backfill; backfill and cleared runs still run.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            # one parse at start is enough; re-parsing every 30 s only competes for the 2 CI cores.
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            # the log server of the worker (Celery) / scheduler (Local) on a port of its own.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # one OpenMP thread per fit: two spinning threads per task on 2 shared cores are 10x slower.
            "OMP_NUM_THREADS": "1",
            MARKER: self.stack_id,
            # A canary secret in a setting the tasks read (the alert notifier's webhook URL).
            "MLPLATFORM_ALERT_WEBHOOK": f"http://127.0.0.1:9/alerts?token={self.canary}",
        }
        env.pop("MLPLATFORM_DUCKDB_PATH", None)
        return env

    def start(self, timeout: float = 240) -> AirflowStack:
        started = time.monotonic()
        LIVE.append(self)
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.bucket = "sys-" + secrets.token_hex(6)
        self.s3_server.client().create_bucket(Bucket=self.bucket)
        if self.executor == CELERY_EXECUTOR:
            self.queue = f"{self.stack_id}-q"
        self.dbname = create_database("mlp_system")
        self.warehouse_db = create_database("mlp_system_wh")
        self.env = self.build_env()
        self._cli("db", "migrate", timeout=420)
        self._cli("pools", "set", C.WAREHOUSE_POOL, "1", "Warehouse tasks one at a time: each rebuilds the marts as of its date")
        self.timings["migrate_s"] = round(time.monotonic() - started, 1)
        self._spawn("api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1")
        self._spawn("scheduler", "scheduler")
        self._spawn("dag-processor", "dag-processor")
        if self.executor == CELERY_EXECUTOR:
            self._spawn("celery-worker", "celery", "worker", "--queues", self.queue, "--concurrency", "2",
                        "--celery-hostname", f"{self.stack_id}@%h", "--without-gossip", "--without-mingle")
        self.wait_ready(timeout - (time.monotonic() - started))
        self.timings["start_s"] = round(time.monotonic() - started, 1)
        return self

    def _cli(self, *args: str, timeout: float = 180) -> str:
        result = subprocess.run([AIRFLOW, *args], env=self.env, cwd=self.root, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed ({result.returncode}):\n"
                               f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
        return result.stdout

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.logs_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child process
        try:
            self.processes[name] = subprocess.Popen([AIRFLOW, *args], env=self.env, cwd=self.root, stdout=log,
                                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                    start_new_session=True)
        finally:
            log.close()

    def wait_ready(self, timeout: float) -> None:
        """Ready = api-server healthy (metadata DB, scheduler and dag-processor heartbeats), the use-case DAG
        parsed and visible through the authenticated API, and (Celery) the worker consuming its queue."""
        deadline = time.monotonic() + max(timeout, 30)
        last = "nothing answered yet"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                health = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
                body = health.json() if health.ok else {}
                states = {k: (v or {}).get("status") for k, v in body.items()}
                if health.ok and states.get("metadatabase") == "healthy" and states.get("scheduler") == "healthy" \
                        and states.get("dag_processor") == "healthy":
                    dag = self.get(f"/api/v2/dags/{USE_CASE}")
                    if dag.status_code == 200 and self.worker_ready():
                        return
                    last = f"health ok; GET dag -> {dag.status_code}; worker ready: {self.worker_ready()}"
                else:
                    last = f"health {health.status_code}: {states}"
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(1)
        raise RuntimeError(f"{self.executor} stack not ready after {timeout:.0f}s ({last})\n{self.log_tails()}")

    def worker_ready(self) -> bool:
        if self.executor != CELERY_EXECUTOR:
            return True
        return " ready." in (self.logs_dir / "celery-worker.log").read_text(errors="replace")

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"{self.executor} stack: service(s) exited: {dead}\n{self.log_tails()}")

    # --- REST API ----------------------------------------------------------------------------------

    def token(self, password: str | None = None) -> requests.Response:
        return requests.post(f"{self.base_url}/auth/token", timeout=30,
                             json={"username": ADMIN, "password": self.password if password is None else password})

    def auth_headers(self) -> dict[str, str]:
        if self._token is None:
            response = self.token()
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> requests.Response:
        headers = {**(self.auth_headers() if auth else {}), **kwargs.pop("headers", {})}
        return requests.request(method, self.base_url + path, headers=headers, timeout=kwargs.pop("timeout", 30),
                                **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def api_json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        assert response.ok, f"{method} {path} -> {response.status_code}: {response.text[:2000]}"
        return response.json()

    def task_states(self, run_id: str) -> dict[str, str | None]:
        body = self.api_json("GET", f"/api/v2/dags/{USE_CASE}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in body["task_instances"]}

    def task_log_tails(self, run_id: str, lines: int = 40) -> str:
        """The local task logs of a run (failed / unfinished tasks first), for failure messages."""
        run_dir = self.airflow_home / "logs" / f"dag_id={USE_CASE}" / f"run_id={run_id}"
        out = []
        for path in sorted(run_dir.glob("task_id=*/attempt=*.log")):
            out.append(f"--- {path.relative_to(self.airflow_home)} ---\n{tail(path, lines)}")
        return "\n".join(out) or f"(no task logs under {run_dir})"

    # --- diagnostics and tear-down -----------------------------------------------------------------

    def log_tails(self, lines: int = 40) -> str:
        parts = [f"===== {self.executor} stack {self.stack_id} ({self.root}) ====="]
        for path in sorted(self.logs_dir.glob("*.log")):
            parts.append(f"----- {path.name} (last {lines} lines) -----\n{tail(path, lines)}")
        return "\n".join(parts)

    def stop(self) -> None:
        """End every process this stack started, drop its database, delete its queue; never raises."""
        self._end_processes()
        for name in (self.dbname, self.warehouse_db):
            if name:
                with contextlib.suppress(Exception):
                    drop_database(name)
        self.dbname = self.warehouse_db = None
        if self.queue:
            with contextlib.suppress(Exception):
                _delete_queue(self.queue)
        if self in LIVE:
            LIVE.remove(self)

    def _end_processes(self) -> None:
        """SIGTERM to each service's process group, SIGKILL after 20 s, then any descendant that left its
        group (found by the stack's marker variable)."""
        running = [p for p in self.processes.values() if p.poll() is None]
        for proc in running:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in running:
            _signal_group(proc.pid, signal.SIGKILL)  # the leader may be gone while its children are not
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for pid in marked_processes(self.stack_id):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in marked_processes(self.stack_id):
            _wait_gone(pid, 10)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def marked_processes(stack_id: str) -> list[int]:
    """Pids of live processes whose environment carries this stack's marker (our descendants only)."""
    needle = f"{MARKER}={stack_id}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if needle in environ.split(b"\0") and stat.rsplit(")", 1)[-1].split()[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            return
        if state == "Z":
            return
        time.sleep(0.1)


def _delete_queue(queue: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        # The queue list and kombu's bindings of it (_kombu.binding.<q>, _kombu.binding_permanent.<q>);
        # the queue name holds the stack's random id, so no other deployment's key matches.
        keys = {queue.encode(), *client.scan_iter(match=f"_kombu.*{queue}", count=1000)}
        client.delete(*keys)
    finally:
        client.close()


def stop_all() -> None:
    for stack in list(LIVE):
        stack.stop()
