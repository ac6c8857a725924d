"""Build the Airflow DAGs of every use-case spec.

The DAGs only wire tasks: each task resolves its I/O handles and calls exactly one function of an
Airflow-free module (``mlplatform.pipeline``, ``mlplatform.rollups``, ``mlplatform.registry``). Nothing
here imports pandas, scikit-learn or the other heavy libraries, and nothing touches the network, the
warehouse or dbt at parse time.

Per use case:
* ``<use case>``: the pipeline, on the spec's schedule; publishes the forecast Asset.
* ``<use case>__rollups``: only if the spec declares roll-ups; scheduled on that Asset (data-aware).
And once: ``mlplatform_model_rollback``, triggered by hand with params, moves a champion back (audited).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from mlplatform.calendars import describe_schedule
from mlplatform.constants import WAREHOUSE_POOL
from mlplatform.errors import ModelNotAvailableError, is_retryable
from mlplatform.spec import UseCaseSpec, load_all_specs

log = logging.getLogger(__name__)

NO_RETRAIN_TASK = "keep_champion"
APPROVAL_TASK = "approve_promotion"
FRESH_TASK, WARN_TASK = "sources_fresh", "freshness_warning"

DOC_TEMPLATE = """\
# {name}

{description}

**Kind:** {kind} ({frequency}) · **Owner:** {owner} · **Consumers:** {consumers} ·
**Spec:** `include/use_cases/{name}.yaml`

**Schedule:** {schedule}. A run date that is not a period end uses the latest complete period as of
that date. **Retries:** {retries} for transient errors (storage or warehouse unreachable, a lock, dbt
losing its connection); an invalid spec, failed data checks, a source not ready for the date, or no
model allowed to serve fail the task at once (a retry would fail the same way).

Every task calls one function of `mlplatform.pipeline` for the run's logical date D, using only data up
to D:

1. `land_raw` – raw source data up to D in the warehouse (days already landed stay untouched; an external
   table must hold the latest complete period as of D), and the holiday calendar `{holidays}`; with
   `freshness:` in the spec, `check_freshness` then runs dbt source freshness as of D (an error blocks or
   flags the partition stale; a warning takes the visible `freshness_warning` path).
2. `build_features` – `dbt build --select {select}` with `run_date=D`; snapshot the marts to S3.
3. `validate_features` – Great Expectations suite `{suite}`; a failed critical expectation stops the run.
4. `monitor_drift` – Evidently drift of the last {window} days vs the serving model's reference.
5. `evaluate_accuracy` – earlier published outputs joined to the actuals known on D; alerts on decay.
6. `decide_retrain` – retrains only if a trigger fires: no champion, schedule, drift, accuracy decay.
7. `train_model` – {folds}-fold rolling-origin backtest vs the baseline and the champion; registers an
   immutable version; the champion alias moves only if it beats both (audited).
8. `score_and_publish` – the champion as of D (or the version pinned in the run's params) scores; the
   partition lands under `s3://<bucket>/{name}/forecasts/run_date=D/`, `_manifest.json` last, and the
   Asset `{asset}` is updated.

{approval}**Params:** `model_version` pins a registered version for a run (reproduce or compare); empty = champion.
"""

APPROVAL_DOC = """\
**Approval required:** a version that passes the gate waits in `approve_promotion` (Browse -> Required
Actions) with its backtest comparison and model card. Approve promotes it; Reject, or no answer within
{hours:g} h, keeps the champion. Every decision goes to the audit log with the approver and the time.

"""


def run_date_from_context() -> date:
    """The logical date drives every stage; a run without one (manual, no date) uses its run_after."""
    ctx = get_current_context()
    moment = ctx.get("logical_date") or ctx["dag_run"].run_after
    return moment.date()


def actor_from_context() -> tuple[str, str]:
    """(actor, run id) for the audit log: who triggered the run, or the scheduler."""
    ctx = get_current_context()
    run = ctx["dag_run"]
    user = getattr(run, "triggering_user_name", None) or "scheduler"
    return f"airflow:{user}", f"{run.dag_id}/{run.run_id}"


def run_ref() -> dict[str, str]:
    """The Airflow run a published partition links to (stable across clears and retries of the run)."""
    run = get_current_context()["dag_run"]
    return {"dag_id": run.dag_id, "run_id": run.run_id}


def report_lineage(inputs: list[str | None], outputs: list[str | None]) -> None:
    """Tell Airflow's hook-lineage collector what the task read and wrote, for OpenLineage events.

    The OpenLineage provider has no extractor for Python tasks; it falls back to these collected assets,
    so the run events carry the task's real inputs and outputs (s3:// objects, warehouse relations).
    Lineage is observability: a failure to collect it is logged, never fails the task.
    """
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector

        collector, task_ = get_hook_lineage_collector(), get_current_context()["task"]
        for uri in filter(None, inputs):
            collector.add_input_asset(context=task_, uri=uri)
        for uri in filter(None, outputs):
            collector.add_output_asset(context=task_, uri=uri)
    except Exception as exc:  # noqa: BLE001 - see docstring
        log.warning("lineage not collected: %s", exc)


def pinned_version() -> str | None:
    value = (get_current_context().get("params") or {}).get("model_version")
    return value.strip() if isinstance(value, str) and value.strip() else None


_F = TypeVar("_F", bound=Callable[..., Any])


def _options_for(use_case: str) -> str:
    """What an operator can do when no model may serve the run (registry.model_options); '' if unreadable."""
    try:
        from mlplatform import registry
        from mlplatform.constants import USE_CASES_DIR
        from mlplatform.storage import Layout

        spec_, _, store = _io(use_case)
        return registry.model_options(store, Layout(use_case), run_date_from_context(),
                                      spec_.backtest.min_improvement, str(USE_CASES_DIR / f"{use_case}.yaml"))
    except Exception as lookup:  # noqa: BLE001 - the hint must never hide the original error
        log.warning("%s: could not list the model options: %s", use_case, lookup)
        return ""


def _no_retry_message(exc: Exception, use_case: str | None) -> str:
    """The original message, the real options when no model may serve, and why there is no retry."""
    lines = [str(exc)]
    if use_case and isinstance(exc, ModelNotAvailableError) and "options:" not in str(exc):
        lines.append(_options_for(use_case))
    lines.append(f"(not retried: a {type(exc).__name__} fails the same way on every attempt; fix the cause, "
                 "then clear the task)")
    return "\n".join(line for line in lines if line)


def fail_fast(use_case: str | None = None) -> Callable[[_F], _F]:
    """Decorate a task's function: an error a retry cannot fix fails the task at once, without retries.

    ``mlplatform.errors.is_retryable`` decides: an invalid spec, a failed data check, a source not ready
    for the date, no model allowed to serve, or dbt failing on the data raise
    ``AirflowFailException`` (the task SDK then marks the task failed, never up for retry) with the
    original message first; anything else (storage or warehouse unreachable, a lock, an unknown error)
    propagates unchanged and keeps the spec's retries. ``use_case`` lets a missing model name the real
    options (pin or roll back to an eligible version, lower the gate...).
    """

    def decorate(func: _F) -> _F:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                if is_retryable(exc):
                    raise
                raise AirflowFailException(_no_retry_message(exc, use_case)) from exc

        run.fail_fast = True  # type: ignore[attr-defined] - the DAG-integrity tests look for it
        return run  # type: ignore[return-value]

    return decorate


def _io(spec_name: str) -> tuple[Any, ...]:
    """Spec, settings and object store for a task, resolved at run time (never at parse time)."""
    from mlplatform.settings import load_settings
    from mlplatform.spec import get_spec
    from mlplatform_airflow.connections import object_store

    settings = load_settings()
    return get_spec(spec_name), settings, object_store(settings)


def forecast_asset(spec: UseCaseSpec) -> Asset:
    """The Asset a use case's published partitions update (consumers schedule on it).

    The URI scheme is ``x-mlplatform`` rather than ``s3``: Airflow normalises s3:// URIs through the amazon
    provider, which imports boto3 at parse time (0.2 s per DAG file). The URI names the use case's
    forecasts, not the bucket: Airflow refuses to activate an Asset whose name is already active under
    another URI, so a bucket change must not change it. The S3 prefix is in ``extra``.
    """
    from mlplatform.settings import load_settings

    bucket = load_settings().bucket
    return Asset(name=f"{spec.name}_forecasts", uri=f"x-mlplatform://{spec.name}/forecasts",
                 group="mlplatform", extra={"s3_prefix": f"s3://{bucket}/{spec.name}/forecasts/"})


def _dag_kwargs(spec: UseCaseSpec) -> dict[str, Any]:
    return {
        "start_date": datetime.combine(spec.start_date, datetime.min.time(), tzinfo=UTC),
        "tags": sorted({"mlplatform", spec.kind, spec.frequency, *spec.tags}),
        "default_args": {"owner": spec.owner, "retries": spec.retries,
                         "retry_delay": timedelta(minutes=spec.retry_delay_minutes)},
    }


def build_dag(spec: UseCaseSpec):  # noqa: C901 - one nested function per task, no branching
    """The pipeline DAG of one use case (see DOC_TEMPLATE for the stages)."""
    name = spec.name
    asset = forecast_asset(spec)

    @dag(
        dag_id=spec.dag_id,
        schedule=spec.schedule,
        catchup=spec.catchup,
        max_active_runs=1,
        doc_md=DOC_TEMPLATE.format(
            name=name, description=spec.description, kind=spec.kind, frequency=spec.frequency,
            owner=spec.owner, consumers=", ".join(spec.consumers) or "-", select=spec.transform.select,
            schedule=describe_schedule(spec.frequency, spec.publication_lag_days, spec.schedule),
            holidays=spec.holidays.key,
            retries=f"{spec.retries} x {spec.retry_delay_minutes} min",
            suite=spec.validation.suite, folds=spec.backtest.folds, window=spec.monitoring.window_days,
            asset=asset.name, approval=APPROVAL_DOC.format(hours=spec.approval.timeout_hours)
            if spec.approval.required else ""),
        params={"model_version": Param(None, type=["null", "string"],
                                       description="Pin a registered model version for this run; "
                                                   "empty = the champion as of the logical date.")},
        **_dag_kwargs(spec),
    )
    def pipeline():  # noqa: C901
        @task(pool=WAREHOUSE_POOL)
        @fail_fast(name)
        def land_raw() -> dict:
            from mlplatform import pipeline as p

            spec_, settings, store = _io(name)
            return p.land_raw(spec_, run_date_from_context(), settings, store)

        @task.branch(task_id="check_freshness", pool=WAREHOUSE_POOL)
        @fail_fast(name)
        def check_freshness() -> str:
            """dbt source freshness as of D: error blocks (task fails) unless the spec publishes stale;
            a warning or a stale publication takes the visible ``freshness_warning`` path."""
            from mlplatform import pipeline as p

            spec_, settings, store = _io(name)
            result = p.check_freshness(spec_, run_date_from_context(), settings, store)
            return FRESH_TASK if result["status"] == "pass" else WARN_TASK

        @task(task_id=FRESH_TASK)
        def sources_fresh() -> str:
            return "every source is within its freshness thresholds as of the run date"

        @task(task_id=WARN_TASK)
        @fail_fast(name)
        def freshness_warning() -> dict:
            from mlplatform import pipeline as p

            spec_, _, store = _io(name)
            summary = p.run_freshness(spec_, run_date_from_context(), store)
            log.warning("%s: source freshness %s: %s", name, summary["status"], "; ".join(summary["messages"]))
            return summary

        @task(pool=WAREHOUSE_POOL, trigger_rule="none_failed_min_one_success")
        @fail_fast(name)
        def build_features() -> dict:
            from mlplatform import pipeline as p

            spec_, settings, store = _io(name)
            result = p.build_features(spec_, run_date_from_context(), settings, store)
            report_lineage([], [result["snapshot_uri"], result.get("dbt_invocation_uri")])
            return result

        @task
        @fail_fast(name)
        def validate_features() -> dict:
            from mlplatform import pipeline as p

            spec_, _, store = _io(name)
            return p.validate_features(spec_, run_date_from_context(), store)

        @task
        @fail_fast(name)
        def monitor_drift() -> dict:
            from mlplatform import pipeline as p

            spec_, _, store = _io(name)
            return p.monitor_drift(spec_, run_date_from_context(), store, pinned_version())

        @task
        @fail_fast(name)
        def evaluate_accuracy() -> dict:
            from mlplatform import pipeline as p
            from mlplatform_airflow.alerts import AccuracyAlertNotifier

            spec_, _, store = _io(name)
            result = p.evaluate_accuracy(spec_, run_date_from_context(), store)
            if result["breach"]:
                AccuracyAlertNotifier(use_case=name, summary=result).notify(get_current_context())
            return result

        @task.branch
        @fail_fast(name)
        def decide_retrain() -> str:
            from mlplatform import pipeline as p

            spec_, _, store = _io(name)
            decision = p.decide_retrain(spec_, run_date_from_context(), store, pinned_version())
            return "train_model" if decision["retrain"] else NO_RETRAIN_TASK

        @task
        @fail_fast(name)
        def train_model() -> dict:
            from mlplatform import pipeline as p

            spec_, _, store = _io(name)
            actor, run_id = actor_from_context()
            result = p.train_model(spec_, run_date_from_context(), store, actor=actor, run_id=run_id)
            report_lineage([result.get("training_data")], [result.get("model_uri")])
            return result

        @task(task_id=NO_RETRAIN_TASK)
        def keep_champion() -> str:
            return "no retraining trigger fired: the champion as of the run date serves"

        @task(outlets=[asset], trigger_rule="none_failed_min_one_success")
        @fail_fast(name)
        def score_and_publish() -> dict:
            from mlplatform import pipeline as p

            spec_, _, store = _io(name)
            result = p.score_and_publish(spec_, run_date_from_context(), store, pinned_version(), run=run_ref())
            report_lineage([result["features_snapshot"], result["model_uri"]], [result["partition_uri"]])
            get_current_context()["outlet_events"][asset].extra = {
                "run_date": result["run_date"], "partition_uri": result["partition_uri"],
                "model_version": result["model_version"], "rows": result["rows"]}
            return result

        checks = validate_features()
        features = build_features()
        if spec.freshness.sources:
            landed, fresh = land_raw(), check_freshness()
            landed >> fresh >> [sources_fresh(), freshness_warning()] >> features
        else:
            land_raw() >> features
        features >> checks
        branch = decide_retrain()
        checks >> [monitor_drift(), evaluate_accuracy()] >> branch
        trained, kept, publish = train_model(), keep_champion(), score_and_publish()
        branch >> [trained, kept]
        if spec.approval.required:
            from mlplatform_airflow.approval import PromotionApprovalOperator

            approve = PromotionApprovalOperator(task_id=APPROVAL_TASK, spec=spec)
            trained >> approve
            [trained, approve, kept] >> publish
        else:
            [trained, kept] >> publish

    return pipeline()


def build_rollup_dag(spec: UseCaseSpec):
    """Downstream consumer: roll the published forecasts up (e.g. finance months) whenever they land."""
    name = spec.name
    asset = forecast_asset(spec)

    @dag(
        dag_id=f"{name}__rollups",
        schedule=[asset],
        catchup=False,
        max_active_runs=1,
        doc_md=(f"# {name} roll-ups\n\nScheduled on the Asset `{asset.name}`: each time `{name}` publishes a "
                "partition, this DAG reads it (manifest and checksums) and publishes "
                + ", ".join(f"`{r.name}` ({r.period} by {', '.join(r.group_by) or 'total'})"
                            for r in spec.publish.rollups)
                + f" under `s3://<bucket>/{name}/rollups/<name>/run_date=D/`."),
        params={"run_date": Param(None, type=["null", "string"],
                                  description="Run date to roll up when triggered by hand (YYYY-MM-DD).")},
        **{**_dag_kwargs(spec), "tags": sorted({"mlplatform", "consumer", *spec.tags})},
    )
    def rollups():
        @task
        @fail_fast()
        def build_rollups() -> list[dict]:
            from mlplatform import rollups as r

            spec_, _, store = _io(name)
            out = []
            for run_date in sorted(_triggering_run_dates(asset)):
                out.extend(r.build_rollups(spec_, run_date, store))
            return out

        build_rollups()

    return rollups()


def _triggering_run_dates(asset: Asset) -> set[date]:
    """Run dates named by the asset events that triggered this run (or the run_date param by hand)."""
    ctx = get_current_context()
    dates = set()
    for events in (ctx.get("triggering_asset_events") or {}).values():
        for event in events:
            extra = getattr(event, "extra", None) or {}
            if extra.get("run_date"):
                dates.add(date.fromisoformat(extra["run_date"]))
    param = (ctx.get("params") or {}).get("run_date")
    if param:
        dates.add(date.fromisoformat(param))
    if not dates:
        raise ValueError(f"no run date: the run was not triggered by {asset.name} and no run_date param was given")
    return dates


def build_rollback_dag(use_cases: list[str]):
    """Manually triggered: point a use case's champion back at a registered version (audited)."""

    @dag(
        dag_id="mlplatform_model_rollback",
        schedule=None,
        start_date=datetime(2025, 1, 1, tzinfo=UTC),
        catchup=False,
        tags=["mlplatform", "operations"],
        doc_md="# Model rollback\n\nTrigger with params `use_case`, `version` (a registered version that "
               "passed the baseline check) and `reason`. The champion alias moves from today on; the move "
               "(who, when, why, metrics before and after) goes to the use case's audit log. Same as "
               "`mlplatform registry rollback`.",
        params={"use_case": Param(use_cases[0] if use_cases else "", enum=use_cases or [""]),
                "version": Param("", type="string", minLength=1),
                "reason": Param("", type="string", minLength=3)},
    )
    def rollback():
        @task
        @fail_fast()
        def move_champion() -> dict:
            from mlplatform import registry
            from mlplatform.storage import Layout

            params = get_current_context()["params"]
            spec_, _, store = _io(params["use_case"])
            actor, run_id = actor_from_context()
            return registry.rollback(store, Layout(spec_.name), params["version"], reason=params["reason"],
                                     actor=f"{actor} ({run_id})")

        move_champion()

    return rollback()


def build_maintenance_dag(specs: list[UseCaseSpec]):
    """Daily housekeeping: each use case's retention policy, as of the logical date (dry run by param)."""

    @dag(
        dag_id="mlplatform_maintenance",
        schedule="@daily",
        start_date=datetime(2025, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=["mlplatform", "operations", "governance"],
        doc_md="# Maintenance\n\nApplies each use case's `retention` policy (raw days, quarantine, reports, "
               "model versions) as of the logical date. It never removes a published partition, anything a "
               "published manifest references, or a version a current alias (or any published date's "
               "champion) points to. Every removal, and every old item kept because it is referenced, is in "
               "`s3://<bucket>/<use case>/maintenance/` and the task log. Trigger with `dry_run: true` to see "
               "the plan without deleting.",
        params={"dry_run": Param(False, type="boolean", description="Report what would go; delete nothing.")},
    )
    def maintenance():
        for spec in specs:
            @task(task_id=f"retention__{spec.name}", pool=WAREHOUSE_POOL)
            @fail_fast()
            def apply_retention(use_case: str = spec.name) -> dict:
                from mlplatform import retention

                spec_, settings, store = _io(use_case)
                dry_run = bool((get_current_context().get("params") or {}).get("dry_run"))
                report = retention.apply(spec_, store, settings, run_date_from_context(), dry_run=dry_run)
                return {"counts": report["counts"], "report_uri": report.get("report_uri"), "dry_run": dry_run}

            apply_retention()

    return maintenance()


def _has_retention(spec: UseCaseSpec) -> bool:
    return any(v is not None for v in spec.retention.model_dump().values())


def register_all(namespace: dict) -> dict[str, str]:
    """Build every DAG into ``namespace``; return {file: error} for invalid specs.

    An invalid spec is logged with its file, field and fix, and skipped: it never breaks the other DAGs.
    """
    specs, errors = load_all_specs()
    for message in errors.values():
        log.error("use-case spec rejected, its DAG is not built: %s", message)
    for spec in specs:
        namespace[spec.dag_id] = build_dag(spec)
        if spec.publish.rollups and spec.kind == "forecast":
            namespace[f"{spec.dag_id}__rollups"] = build_rollup_dag(spec)
    namespace["mlplatform_model_rollback"] = build_rollback_dag([s.name for s in specs])
    retained = [s for s in specs if _has_retention(s)]
    if retained:
        namespace["mlplatform_maintenance"] = build_maintenance_dag(retained)
    return {str(p): m for p, m in errors.items()}
