"""Build one Airflow DAG per use-case spec.

The DAG only wires tasks: each task resolves its I/O handles and calls exactly one function of
``mlplatform.pipeline``. Nothing here imports pandas, scikit-learn or the other heavy libraries, and
nothing touches the network, the warehouse or dbt at parse time.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow.sdk import dag, get_current_context, task

from mlplatform.constants import WAREHOUSE_POOL
from mlplatform.spec import UseCaseSpec, load_all_specs

log = logging.getLogger(__name__)

DOC_TEMPLATE = """\
# {name}

{description}

**Owner:** {owner} · **Consumers:** {consumers} · **Spec:** `include/use_cases/{name}.yaml`

Stages (each task calls one function of `mlplatform.pipeline`, for the run's logical date D, using only
data up to D):

1. `land_raw` – land raw source data up to D in the warehouse (days already landed stay untouched).
2. `build_features` – `dbt build --select {select}` with `run_date=D`; snapshot the feature marts to S3.
3. `validate_features` – Great Expectations suite `{suite}`; a failed critical expectation stops the run.
4. `train_model` – HistGradientBoosting P10/P50/P90, {folds}-fold rolling-origin backtest vs seasonal
   naive; registers an immutable version and promotes it only if it beats the baseline.
5. `monitor_drift` – Evidently data drift of the last {window} days vs the serving model's reference.
6. `score_and_publish` – {horizon}-day forecasts for every series to
   `s3://<bucket>/{name}/forecasts/run_date=D/`, data first, `_manifest.json` last.
"""


def run_date_from_context() -> date:
    """The logical date drives every stage; a run without one (manual, no date) uses its run_after."""
    ctx = get_current_context()
    moment = ctx.get("logical_date") or ctx["dag_run"].run_after
    return moment.date()


def _io(spec_name: str) -> tuple[Any, ...]:
    """Spec, settings and object store for a task, resolved at run time (never at parse time)."""
    from mlplatform.settings import load_settings
    from mlplatform.spec import get_spec
    from mlplatform_airflow.connections import object_store

    settings = load_settings()
    return get_spec(spec_name), settings, object_store(settings)


def build_dag(spec: UseCaseSpec):
    """The DAG of one use case: land -> transform -> validate -> train -> monitor -> score & publish."""
    name = spec.name

    @dag(
        dag_id=spec.dag_id,
        schedule=spec.schedule,
        start_date=datetime.combine(spec.start_date, datetime.min.time(), tzinfo=UTC),
        catchup=spec.catchup,
        max_active_runs=1,
        tags=sorted({"mlplatform", spec.kind, *spec.tags}),
        doc_md=DOC_TEMPLATE.format(
            name=name, description=spec.description, owner=spec.owner,
            consumers=", ".join(spec.consumers) or "-", select=spec.transform.select,
            suite=spec.validation.suite, folds=spec.backtest.folds, window=spec.monitoring.window_days,
            horizon=spec.forecast.horizon),
        default_args={"owner": spec.owner, "retries": spec.retries,
                      "retry_delay": timedelta(minutes=spec.retry_delay_minutes)},
    )
    def pipeline():
        @task(pool=WAREHOUSE_POOL)
        def land_raw() -> dict:
            from mlplatform import pipeline as p
            from mlplatform.settings import load_settings
            from mlplatform.spec import get_spec

            return p.land_raw(get_spec(name), run_date_from_context(), load_settings())

        @task(pool=WAREHOUSE_POOL)
        def build_features() -> dict:
            from mlplatform import pipeline as p

            spec_, settings, store = _io(name)
            return p.build_features(spec_, run_date_from_context(), settings, store)

        @task
        def validate_features() -> dict:
            from mlplatform import pipeline as p

            spec_, _, store = _io(name)
            return p.validate_features(spec_, run_date_from_context(), store)

        @task
        def train_model() -> dict:
            from mlplatform import pipeline as p

            spec_, _, store = _io(name)
            return p.train_model(spec_, run_date_from_context(), store)

        @task
        def monitor_drift() -> dict:
            from mlplatform import pipeline as p

            spec_, _, store = _io(name)
            return p.monitor_drift(spec_, run_date_from_context(), store)

        @task
        def score_and_publish() -> dict:
            from mlplatform import pipeline as p

            spec_, _, store = _io(name)
            return p.score_and_publish(spec_, run_date_from_context(), store)

        land_raw() >> build_features() >> validate_features() >> train_model() >> monitor_drift() \
            >> score_and_publish()

    return pipeline()


def register_all(namespace: dict) -> dict[str, str]:
    """Build a DAG for every valid spec into ``namespace``; return {file: error} for invalid ones.

    An invalid spec is logged with its file, field and fix, and skipped: it never breaks the other DAGs.
    """
    specs, errors = load_all_specs()
    for message in errors.values():
        log.error("use-case spec rejected, its DAG is not built: %s", message)
    for spec in specs:
        namespace[spec.dag_id] = build_dag(spec)
    return {str(p): m for p, m in errors.items()}
