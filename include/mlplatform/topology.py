"""The team topology: Airflow on a shared Postgres metadata DB, with Celery workers (or a LocalExecutor).

``localstack.airflow_env`` describes the one-person stack (SQLite, LocalExecutor, everything on one
machine). A team runs the same DAGs with the metadata in Postgres, so the api-server, the scheduler, the
dag-processor and any number of workers can run as separate processes (or machines) and see the same
state, and with Celery, so task execution scales out to workers on a broker queue. This module returns
only the variables that differ: the caller layers its result over ``airflow_env(...)``::

    env = {**airflow_env(...), **team_airflow_env(metadata_db_url=..., broker_url=..., result_backend=...)}

Why a function and not a static file: every process of one deployment must get the *same* values (the
metadata DB, the broker, the queue, the Fernet key that encrypts connections in the metadata DB), and a
wrong combination fails late and obscurely (a Celery scheduler on SQLite; a worker listening on another
queue than the one tasks are sent to: tasks then sit "queued" until the scheduler's queued timeout fails
them). Validating here turns the detectable mistakes into one ConfigError at start-up that names the value
and the fix. The same function serves `make up` in the team profile and the system tests (tests/system),
so both run the configuration that is tested.

Airflow-free and light: nothing here imports Airflow, Celery or a database driver.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets

from mlplatform.errors import ConfigError

LOCAL_EXECUTOR = "LocalExecutor"
CELERY_EXECUTOR = "CeleryExecutor"
EXECUTORS: tuple[str, ...] = (LOCAL_EXECUTOR, CELERY_EXECUTOR)

# Schemes SQLAlchemy accepts for a multi-process metadata DB (SQLite allows one writer: single machine,
# LocalExecutor only, which is what the embedded profile uses).
_SERVER_DB_SCHEMES = ("postgresql", "postgres", "mysql")
_BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "sqs")
_RESULT_BACKEND_SCHEMES = ("db+postgresql", "db+mysql", "redis", "rediss", "rpc")
_QUEUE_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def new_fernet_key() -> str:
    """A fresh Fernet key (what ``cryptography.fernet.Fernet.generate_key()`` returns), without the import."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _check_url(name: str, url: str | None, schemes: tuple[str, ...], why: str) -> str:
    if not url or not url.strip():
        raise ConfigError(f"{name} is empty; {why}")
    scheme = _scheme(url)
    # "postgresql+psycopg2" and "db+postgresql+psycopg2" count as their base scheme.
    if not any(scheme == s or scheme.startswith(s + "+") for s in schemes):
        raise ConfigError(f"{name} {_redact(url)!r} has scheme {scheme or '(none)'!r}; use one of "
                          f"{', '.join(s + '://' for s in schemes)} ({why})")
    return url


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _check_fernet_key(key: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(key.encode())
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError("fernet_key is not a Fernet key (url-safe base64 of 32 bytes); "
                          "generate one with mlplatform.topology.new_fernet_key()")
    return key


def team_airflow_env(*, metadata_db_url: str, broker_url: str | None = None, result_backend: str | None = None,
                     executor: str = CELERY_EXECUTOR, queue: str | None = None, worker_concurrency: int = 2,
                     fernet_key: str | None = None, parallelism: int | None = None) -> dict[str, str]:
    """Environment overlay for Airflow on a server metadata DB with ``executor``.

    * ``metadata_db_url``: SQLAlchemy URL of the metadata DB (``postgresql+psycopg2://...``); SQLite is
      refused: its single writer is why the embedded profile runs one machine with the LocalExecutor.
    * ``broker_url``, ``result_backend``: Celery's broker (``redis://host:6379/0``) and result store
      (``db+postgresql://...``); required for the CeleryExecutor, ignored by the LocalExecutor.
    * ``queue``: the default queue every task is sent to and the worker must consume
      (``airflow celery worker --queues <queue>``); a separate queue per deployment lets stacks share one
      broker without taking each other's tasks.
    * ``worker_concurrency``: task slots per Celery worker.
    * ``fernet_key``: encrypts connections and variables in the metadata DB; every process must share it.
      None = leave it unset (Airflow then stores them unencrypted: acceptable only for throw-away stacks).
    * ``parallelism``: scheduler-wide cap on running tasks (None = keep airflow_env's value).
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"executor {executor!r} is not supported; use one of {', '.join(EXECUTORS)}")
    _check_url("metadata_db_url", metadata_db_url, _SERVER_DB_SCHEMES,
               "the team topology needs a server database; SQLite allows one writer only")
    if isinstance(worker_concurrency, bool) or not isinstance(worker_concurrency, int) or worker_concurrency < 1:
        raise ConfigError(f"worker_concurrency must be a positive integer, got {worker_concurrency!r}")
    if queue is not None and not _QUEUE_PATTERN.match(queue):
        raise ConfigError(f"queue {queue!r} is not a valid queue name: use 1-128 letters, digits, '_.:-'")

    env = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db_url,
        "AIRFLOW__CORE__EXECUTOR": executor,
    }
    if executor == CELERY_EXECUTOR:
        env["AIRFLOW__CELERY__BROKER_URL"] = _check_url(
            "broker_url", broker_url, _BROKER_SCHEMES, "the CeleryExecutor sends tasks through a broker")
        env["AIRFLOW__CELERY__RESULT_BACKEND"] = _check_url(
            "result_backend", result_backend, _RESULT_BACKEND_SCHEMES,
            "the CeleryExecutor reads task states from a result backend, e.g. db+postgresql://...")
        env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(worker_concurrency)
    if queue is not None:
        # [operators] default_queue is both the queue tasks are sent to and Celery's task_default_queue.
        env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] = queue
    if fernet_key is not None:
        env["AIRFLOW__CORE__FERNET_KEY"] = _check_fernet_key(fernet_key)
    if parallelism is not None:
        if parallelism < 1:
            raise ConfigError(f"parallelism must be a positive integer, got {parallelism!r}")
        env["AIRFLOW__CORE__PARALLELISM"] = str(parallelism)
    return env
