"""Fixtures of the system tests: real Airflow stacks (api-server, scheduler, dag-processor, Celery worker)
as subprocesses on loopback, each on a fresh Postgres metadata database, against the session's S3 server.

* ``celery_stack`` (session): the CeleryExecutor stack, shared by the backfill tests and the UI test, so the
  UI shows the backfill's runs.
* ``airflow_stack`` (module, parametrised LocalExecutor / CeleryExecutor): the stack of one executor; the
  LocalExecutor stack is started for its tests and stopped before the Celery one is used, so at most one
  stack runs beside the shared Celery stack.
* ``backfills`` (session): each executor's backfill scenario, run once and shared (see backfill_support).

On any failing test the tail of every running service's log is printed; stacks are always stopped (process
groups killed, database dropped) even when start-up or a test fails, and once more at exit as a safety net.
"""

from __future__ import annotations

import atexit
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import airflow_stack as st
import pytest

from mlplatform.topology import CELERY_EXECUTOR, LOCAL_EXECUTOR

atexit.register(st.stop_all)


@pytest.fixture(scope="session", autouse=True)
def _stop_stacks_on_sigterm():
    """A cancelled CI job sends SIGTERM, which would end pytest without fixture finalizers or atexit:
    stop the stacks first, then stop the session as Ctrl-C does."""
    def handler(signum, frame):
        st.stop_all()
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    yield
    signal.signal(signal.SIGTERM, previous)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(autouse=True)
def _service_logs_on_failure(request):
    """Print the tail of each running service's log when the test (or its set-up) failed."""
    yield
    failed = any(getattr(getattr(request.node, f"rep_{when}", None), "failed", False) for when in ("setup", "call"))
    if failed:
        for stack in list(st.LIVE):
            print(stack.log_tails(60))


@contextmanager
def running_stack(executor: str, s3_server, tmp_path_factory) -> Iterator[st.AirflowStack]:
    stack = st.AirflowStack(executor, tmp_path_factory.mktemp(f"airflow-{executor.lower()}"), s3_server)
    try:
        stack.start()
        print(f"\n{executor} stack up in {stack.timings['start_s']} s (db migrate {stack.timings['migrate_s']} s): "
              f"{stack.base_url}, db {stack.dbname}, bucket {stack.bucket}, queue {stack.queue}")
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def celery_stack(s3_server, tmp_path_factory) -> Iterator[st.AirflowStack]:
    with running_stack(CELERY_EXECUTOR, s3_server, tmp_path_factory) as stack:
        yield stack


@pytest.fixture(scope="module", params=[LOCAL_EXECUTOR, CELERY_EXECUTOR])
def airflow_stack(request, s3_server, tmp_path_factory) -> Iterator[st.AirflowStack]:
    if request.param == CELERY_EXECUTOR:
        yield request.getfixturevalue("celery_stack")
        return
    with running_stack(request.param, s3_server, tmp_path_factory) as stack:
        yield stack


@pytest.fixture(scope="session")
def backfills() -> dict:
    """executor -> BackfillOutcome, filled by backfill_support.ensure_backfill."""
    return {}
