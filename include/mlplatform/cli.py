"""`mlplatform` command line: local stack, spec checks, run summaries, and running a pipeline without Airflow.

    mlplatform local init            generate .local/local.env (credentials, ports) once per checkout
    mlplatform local s3-start        start the local SeaweedFS S3 server (idempotent)
    mlplatform local s3-stop
    mlplatform specs                 validate every use-case spec (exit 1 naming file and field)
    mlplatform summary USE_CASE DATE print where a run's forecasts landed, model, metrics, drift
    mlplatform run USE_CASE DATE     run all stages in-process (no Airflow), e.g. for benchmarks
    mlplatform maintenance retention --use-case NAME [--dry-run] [--today DATE]
                                     apply the spec's retention policy (report stored and printed)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from datetime import date
from pathlib import Path

from mlplatform import constants as C
from mlplatform.errors import PlatformError

LOCAL_DIR = C.PROJECT_ROOT / ".local"
ENV_FILE = LOCAL_DIR / "local.env"
S3_STATE = LOCAL_DIR / "s3.json"
# Fixed loopback ports of the developer stack (tests use free random ports instead).
LOCAL_PORTS = {"s3_port": 28333, "master_port": 29333, "volume_port": 28080, "filer_port": 28888,
               "admin_port": 23647}
API_PORT = 8080


def _local_config() -> dict:
    if not S3_STATE.exists():
        raise PlatformError(f"{S3_STATE} is missing: run `mlplatform local init` (or `make demo`) first")
    return json.loads(S3_STATE.read_text())


TEAM_AIRFLOW_DB = "mlplatform_airflow"
TEAM_WAREHOUSE_DB = "mlplatform_warehouse"
TEAM_QUEUE = "mlplatform"


def _ensure_databases(server_url: str, names: tuple[str, ...]) -> None:
    """Create the team profile's databases on ``server_url`` (postgresql://user[:pw]@host:port) if missing."""
    from urllib.parse import urlsplit

    import psycopg2

    url = urlsplit(server_url)
    try:
        con = psycopg2.connect(host=url.hostname, port=url.port or 5432, user=url.username,
                               password=url.password, dbname="postgres", connect_timeout=10)
    except psycopg2.OperationalError as exc:
        raise PlatformError(f"cannot reach Postgres at {url.hostname}:{url.port or 5432} as {url.username}: "
                            f"{' '.join(str(exc).split())}") from exc
    con.autocommit = True
    try:
        with con.cursor() as cur:
            for name in names:
                cur.execute("select 1 from pg_database where datname = %s", [name])
                if cur.fetchone() is None:
                    cur.execute(f'create database "{name}"')
                    print(f"created database {name}")
    finally:
        con.close()


def _team_env(args: argparse.Namespace, state: dict) -> dict[str, str]:
    """Postgres metadata DB + CeleryExecutor on Redis + the production profile's Postgres warehouse."""
    from urllib.parse import urlsplit

    from mlplatform.topology import team_airflow_env

    server = args.pg_url.rstrip("/")
    url = urlsplit(server)
    if url.scheme not in ("postgresql", "postgres") or not url.hostname or not url.username:
        raise PlatformError(f"--pg-url {url.scheme}://{url.hostname}... must look like "
                            "postgresql://user@host:5432 (a server, no database name)")
    _ensure_databases(server, (TEAM_AIRFLOW_DB, TEAM_WAREHOUSE_DB))
    netloc = server.split("://", 1)[1]
    env = team_airflow_env(metadata_db_url=f"postgresql+psycopg2://{netloc}/{TEAM_AIRFLOW_DB}",
                           broker_url=args.redis_url, result_backend=f"db+postgresql://{netloc}/{TEAM_AIRFLOW_DB}",
                           queue=TEAM_QUEUE, worker_concurrency=args.worker_concurrency,
                           fernet_key=state["fernet_key"])
    return {**env, C.ENV_PROFILE: C.PROFILE_PRODUCTION, C.ENV_PG_HOST: url.hostname,
            C.ENV_PG_PORT: str(url.port or 5432), C.ENV_PG_USER: url.username,
            C.ENV_PG_PASSWORD: url.password or "", C.ENV_PG_DBNAME: TEAM_WAREHOUSE_DB}


def cmd_local_init(args: argparse.Namespace) -> int:
    """Create credentials and the env file; later calls keep the credentials (the S3 data stays readable).

    ``--profile team`` writes the team topology instead of the embedded one: Postgres metadata DB,
    CeleryExecutor on Redis, and the production profile's Postgres warehouse (databases created if
    missing). The env file is rewritten on every call, so switching back is ``local init`` again.
    """
    from mlplatform.localstack import SeaweedS3, airflow_env
    from mlplatform.topology import new_fernet_key

    LOCAL_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(LOCAL_DIR, 0o700)
    if not S3_STATE.exists():
        state = {"access_key": "mlp" + secrets.token_hex(8), "secret_key": secrets.token_urlsafe(30),
                 "jwt_secret": secrets.token_urlsafe(64), "admin_password": secrets.token_urlsafe(12),
                 **LOCAL_PORTS}
        S3_STATE.write_text(json.dumps(state, indent=2))
        os.chmod(S3_STATE, 0o600)
    state = _local_config()
    if "fernet_key" not in state:
        state["fernet_key"] = new_fernet_key()
        S3_STATE.write_text(json.dumps(state, indent=2))
    server = SeaweedS3(LOCAL_DIR / "seaweedfs", state["access_key"], state["secret_key"],
                       **{k: state[k] for k in LOCAL_PORTS})
    passwords = LOCAL_DIR / "passwords.json"
    passwords.write_text(json.dumps({"admin": state["admin_password"]}))
    os.chmod(passwords, 0o600)
    env = airflow_env(airflow_home=C.PROJECT_ROOT / ".airflow", data_dir=LOCAL_DIR / "data",
                      s3_connection_json=server.connection_json(), jwt_secret=state["jwt_secret"],
                      passwords_file=passwords, api_port=API_PORT)
    if args.profile == "team":
        env.update(_team_env(args, state))
    lines = [f"# Generated by `mlplatform local init --profile {args.profile}`; holds local secrets, "
             "never commit it.", f"export MLPLATFORM_LOCAL_PROFILE='{args.profile}'"]
    lines += [f"export {k}='{v}'" for k, v in env.items()]
    ENV_FILE.write_text("\n".join(lines) + "\n")
    os.chmod(ENV_FILE, 0o600)
    print(f"local environment ({args.profile} profile): {ENV_FILE}")
    return 0


def _local_server():
    from mlplatform.localstack import SeaweedS3

    state = _local_config()
    return SeaweedS3(LOCAL_DIR / "seaweedfs", state["access_key"], state["secret_key"],
                     buckets=(os.environ.get(C.ENV_BUCKET, C.DEFAULT_BUCKET),),
                     **{k: state[k] for k in LOCAL_PORTS})


def cmd_s3_start(_: argparse.Namespace) -> int:
    server = _local_server()
    pid_file = LOCAL_DIR / "weed.pid"
    try:
        server.wait_ready(timeout=2)
        print(f"SeaweedFS S3 already running on {server.endpoint_url}")
        return 0
    except PlatformError:
        pass
    server.start(timeout=60)
    pid_file.write_text(str(server.process.pid))
    print(f"SeaweedFS S3 started on {server.endpoint_url} (pid {server.process.pid}, data in {server.data_dir})")
    return 0


def cmd_s3_stop(_: argparse.Namespace) -> int:
    """Stop the local server; return only once its process is gone and its ports are free again, so an
    immediate ``s3-start`` cannot fail with "Port allocation failed"."""
    import signal

    from mlplatform.localstack import wait_ports_free, wait_process_gone

    pid_file = LOCAL_DIR / "weed.pid"
    if not pid_file.exists():
        print("SeaweedFS S3 is not running (no pid file)")
        return 0
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        print("SeaweedFS S3 was not running")
        pid_file.unlink()
        return 0
    if not wait_process_gone(pid, 20):
        os.killpg(pid, signal.SIGKILL)
        wait_process_gone(pid, 10)
    pid_file.unlink()
    busy = wait_ports_free(_local_server().ports(), 30)
    if busy:
        print(f"SeaweedFS S3 stopped, but ports {busy} are still held after 30 s: another process uses them")
        return 1
    print("SeaweedFS S3 stopped (process gone, ports free)")
    return 0


def cmd_specs(args: argparse.Namespace) -> int:
    """Validate every spec; with --registry, also say which specs their current champion cannot serve."""
    from mlplatform.spec import load_all_specs

    specs, errors = load_all_specs()
    champions = _champions(specs) if getattr(args, "registry", False) else {}
    changed = 0
    for spec in specs:
        horizon = f", horizon {spec.horizon}" if spec.horizon else ""
        print(f"ok      {spec.name} ({spec.kind}, {spec.frequency}{horizon})")
        problems = champions.get(spec.name)
        if problems:
            changed += 1
            print(f"CHANGED {spec.name}: champion {problems[0]} cannot serve this spec: {'; '.join(problems[1:])}. "
                  "Its next run retrains (trigger spec_changed); until a new version clears the gate, "
                  "scoring refuses rather than publish what the champion was not trained for.")
    for message in errors.values():
        print(f"INVALID {message}", file=sys.stderr)
    return 1 if errors else 0


def _champions(specs: list) -> dict[str, list[str]]:
    from mlplatform.serving_contract import unservable_champions

    _, store = _store_from_env()
    return unservable_champions(specs, store)


def _store_from_env():
    from mlplatform.settings import load_settings
    from mlplatform.storage import ObjectStore, client_from_connection_uri

    settings = load_settings()
    var = "AIRFLOW_CONN_" + settings.s3_conn_id.upper()
    if var not in os.environ:
        raise PlatformError(f"{var} is not set: source .local/local.env or set the connection")
    return settings, ObjectStore(client_from_connection_uri(os.environ[var]), settings.bucket)


def _num(value, fmt: str = ".3f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _backtest_lines(bt: dict) -> list[str]:
    metric = bt.get("metric", "wape")
    model, base = bt["model"], bt["baseline"]
    names = [n for n in ("wape", "mase", "bias", "coverage", "log_loss", "brier", "roc_auc", "calibration_error",
                         "mae", "rmse") if n in model]
    return [f"backtest        gate metric {metric}: model {_num(model.get(metric))} vs baseline "
            f"{_num(base.get(metric))}",
            "                model    " + "  ".join(f"{n} {_num(model.get(n))}" for n in names),
            "                baseline " + "  ".join(f"{n} {_num(base.get(n))}" for n in names if n in base)]


def _drift_lines(drift: dict) -> list[str]:
    if drift.get("skipped"):
        return [f"drift           not checked: {drift['skipped']}"]
    return [f"drift           {'DRIFT DETECTED' if drift.get('drift_detected') else 'no drift'} vs "
            f"{drift.get('model_version')} (share of drifted columns {drift.get('drifted_share', float('nan')):.2f}"
            f"{': ' + ', '.join(drift['drifted_columns']) if drift.get('drifted_columns') else ''})",
            f"drift report    {drift.get('report_uri', '-')}"]


def _accuracy_line(acc: dict) -> str:
    serving = acc.get("serving") or {}
    realised = serving.get("realised") or {}
    metric = acc.get("metric", "wape")
    detail = ""
    if realised.get(metric) is not None:
        detail = (f"; {serving['version']}: realised {metric} {realised[metric]:.3f} on {realised['n']} rows "
                  f"vs backtest {_num(serving.get('backtest'))}")
    alert = f"; ALERT: {acc['breach_reason']}" if acc.get("breach") else ""
    return (f"accuracy        {acc.get('overall', {}).get('n', 0)} realised rows from "
            f"{len(acc.get('published_dates', []))} earlier partition(s){detail}{alert}")


def format_summary(summary: dict) -> str:
    drift = summary["drift"] or {}
    retrain = summary.get("retrain") or {}
    acc = summary.get("accuracy") or {}
    triggers = "; ".join(t["trigger"] for t in retrain.get("triggers", [])) or "none (champion kept)"
    lines = [
        f"use case        {summary['use_case']} ({summary.get('kind', 'forecast')})   run date {summary['run_date']}",
        f"published       {summary['forecasts_uri']}  ({summary['rows']} rows in {summary['files']} file(s))",
        f"model version   {summary['model_version']}"
        + (f"  ({summary['model']})" if summary.get("model") else ""),
        *_fallback_lines(summary.get("fallback")),
        *_series_lines(summary.get("series")),
        *_backtest_lines(summary["backtest"]),
        f"validation      {'passed' if summary['validation']['success'] else 'FAILED'} "
        f"({summary['validation']['result_uri']})",
        *_drift_lines(drift),
        f"retrain         {triggers}",
        _accuracy_line(acc),
        *_landing_lines(summary.get("landing")),
        *_governance_lines(summary),
    ]
    return "\n".join(lines)


def _series_lines(series: dict | None) -> list[str]:
    """Every series accounted for: how many were forecast, and each one left out with its reason."""
    if not series:
        return []
    breach = f"  BREACH: {series['breach']}" if series.get("breach") else ""
    lines = [f"series          {series['forecast']} of {series.get('expected', series['in_features'])} forecast, "
             f"{series['left_out']} left out{breach}"]
    for entry in series.get("series", [])[:10]:
        key = ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("reason", "top_n"))
        lines.append(f"  left out      {key}: {entry['reason']}{' (top series)' if entry.get('top_n') else ''}")
    if series["left_out"] > 10:
        lines.append(f"  left out      ... and {series['left_out'] - 10} more (manifest's series block)")
    return lines


def _fallback_lines(fallback: dict | None) -> list[str]:
    """A fallback publication says so first: consumers get numbers, clearly marked."""
    if not fallback:
        return []
    return [f"FALLBACK        no version has cleared the gate yet: {fallback['candidate']} serves (rows flagged "
            f"is_fallback); {fallback['reason']}"]


def _governance_lines(summary: dict) -> list[str]:
    """Source freshness as of the date (and a stale flag) and the human approval decision, when configured."""
    lines = []
    fresh = summary.get("freshness")
    if fresh:
        ages = ", ".join(f"{t} {s['age_days']} d ({s['status']})" for t, s in fresh["sources"].items())
        lines.append(f"freshness       {fresh['status']}{'  STALE: published flagged stale' if summary.get('stale') else ''}"
                     f"  [{ages}]")
    decision = summary.get("approval")
    if decision:
        who = (decision.get("approver") or {}).get("name")
        lines.append(f"approval        {decision['outcome']} {decision.get('to_version', '')}"
                     + (f" by {who} at {decision.get('responded_at')}" if who else ""))
    return lines


def _landing_lines(landing: dict | None) -> list[str]:
    """Delivered files (a files source): what landed, what was quarantined and why, the warnings."""
    if not landing:
        return []
    lines = [f"landing         {landing['files']} file(s), {landing['rows_landed']} rows landed, "
             f"{landing['rows_quarantined']} quarantined, {len(landing['warnings'])} warning(s)"]
    for q in landing["quarantine"]:
        reasons = ", ".join(f"{reason} x{n}" for reason, n in q["reasons"].items())
        lines.append(f"  quarantined   {q['rows']} row(s) of {q['file']}: {reasons} -> {q['uri']}")
    lines += [f"  warning       {w}" for w in landing["warnings"][:10]]
    return lines


def cmd_summary(args: argparse.Namespace) -> int:
    from mlplatform.pipeline import run_summary
    from mlplatform.spec import get_spec

    _, store = _store_from_env()
    summary = run_summary(get_spec(args.use_case), date.fromisoformat(args.run_date), store)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """All stages in order, in this process: the same functions the DAG's tasks call."""
    import time

    from mlplatform import pipeline as p
    from mlplatform.registry import default_actor
    from mlplatform.spec import get_spec

    settings, store = _store_from_env()
    store.ensure_bucket()
    spec, run_date = get_spec(args.use_case), date.fromisoformat(args.run_date)
    timings = {}
    for name, call in p.stage_calls(spec, run_date, settings, store, pinned=args.model_version,
                                    actor=default_actor()):
        start = time.perf_counter()
        call()
        timings[name] = round(time.perf_counter() - start, 2)
    print(json.dumps({"timings_s": timings}, indent=2))
    print(format_summary(p.run_summary(spec, run_date, store)))
    return 0


def cmd_registry(args: argparse.Namespace) -> int:
    """Inspect versions and the audit log; roll the champion back (audited)."""
    from mlplatform import registry
    from mlplatform.spec import get_spec
    from mlplatform.storage import Layout

    _, store = _store_from_env()
    layout = Layout(get_spec(args.use_case).name)
    if args.action == "versions":
        current = registry.alias_version(store, layout, registry.CHAMPION)
        challenger = registry.alias_version(store, layout, registry.CHALLENGER)
        for meta in registry.list_versions(store, layout):
            m = meta["metrics"]
            tags = [t for t, v in (("champion", current), ("challenger", challenger)) if v == meta["version"]]
            print(f"{meta['version']}  trained to {meta['training_window']['end']}  {m.get('metric', 'wape')} "
                  f"{_num(m['model'].get(m.get('metric', 'wape')))} (baseline "
                  f"{_num(m['baseline'].get(m.get('metric', 'wape')))})  "
                  f"{'eligible' if meta['decision']['eligible'] else 'not eligible'}  {' '.join(tags)}")
    elif args.action == "audit":
        for event in registry.audit_log(store, layout):
            print(json.dumps(event) if args.json else
                  f"{event['recorded_at']}  {event['alias'] or '-':<10} {event['action']:<19} "
                  f"{event['from_version'] or '-'} -> {event['to_version']}  effective {event['effective_date']}  "
                  f"by {event['actor']}: {event['reason']}")
    elif args.action == "rollback":
        event = registry.rollback(store, layout, args.to, reason=args.reason, actor=registry.default_actor(),
                                  effective_date=date.fromisoformat(args.effective) if args.effective else None)
        print(json.dumps(event, indent=2))
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    """Where did this number come from? The full trace of one published partition."""
    from mlplatform.lineage import render_trace, trace
    from mlplatform.spec import get_spec

    _, store = _store_from_env()
    result = trace(store, get_spec(args.use_case).name, date.fromisoformat(args.run_date),
                   Path(args.openlineage_file) if args.openlineage_file else None)
    print(json.dumps(result, indent=2, default=str) if args.json else render_trace(result))
    return 0


def cmd_rollup(args: argparse.Namespace) -> int:
    """Print a published roll-up (what finance reads), verified against its manifest."""
    from mlplatform.publishing import read_manifest, read_published
    from mlplatform.spec import get_spec
    from mlplatform.storage import Layout

    _, store = _store_from_env()
    prefix = Layout(get_spec(args.use_case).name).rollup(args.name, date.fromisoformat(args.run_date))
    manifest = read_manifest(store, prefix)
    frame = read_published(store, prefix).drop(columns=["use_case", "run_date", "model_version"])
    print(f"{manifest['partition_uri']}  ({manifest['row_count']} rows, model {manifest['model_version']})")
    print(frame.to_string(index=False, max_rows=args.max_rows, float_format=lambda v: f"{v:,.0f}"))
    return 0


def format_retention(report: dict) -> str:
    """The retention report for a terminal: each removal, each old item kept because referenced."""
    verb = "would remove" if report["dry_run"] else "removed"
    lines = [f"retention {report['use_case']} as of {report['today']}"
             f"{' (dry run: nothing deleted)' if report['dry_run'] else ''}: policy {report['policy']}"]
    for entry in report["removed"]:
        what = (f"{entry['category']:<13} {entry['key']}" if entry["kind"] == "object"
                else f"{'raw rows':<13} {entry['rows']} of {entry['table']} dated before {entry['before']}")
        lines.append(f"  {verb}  {what}")
    lines += [f"  kept          {k['key']}: {'; '.join(k['referenced_by'])}" for k in report["kept_referenced"]]
    lines += [f"  note          {note}" for note in report["notes"]]
    counts = report["counts"]
    lines.append(f"{verb} {counts['objects']} object(s) and {counts['raw_rows']} raw row(s); kept "
                 f"{counts['kept_referenced']} referenced item(s); report: {report.get('report_uri', '-')}")
    return "\n".join(lines)


def cmd_maintenance(args: argparse.Namespace) -> int:
    """Apply (or, with --dry-run, only plan) a use case's retention policy."""
    from datetime import UTC, datetime

    from mlplatform import retention
    from mlplatform.spec import get_spec

    settings, store = _store_from_env()
    today = date.fromisoformat(args.today) if args.today else datetime.now(UTC).date()
    report = retention.apply(get_spec(args.use_case), store, settings, today, dry_run=args.dry_run)
    print(json.dumps(report, indent=2) if args.json else format_retention(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlplatform", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    local = sub.add_parser("local", help="local development stack").add_subparsers(dest="action", required=True)
    init = local.add_parser("init", help="write .local/local.env (embedded or team profile)")
    init.add_argument("--profile", choices=("embedded", "team"), default="embedded",
                      help="embedded: SQLite + DuckDB; team: Postgres metadata + Celery/Redis + Postgres warehouse")
    init.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432",
                      help="team profile: the Postgres server (databases are created on it)")
    init.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="team profile: Celery broker")
    init.add_argument("--worker-concurrency", type=int, default=2, help="team profile: tasks per Celery worker")
    init.set_defaults(func=cmd_local_init)
    local.add_parser("s3-start").set_defaults(func=cmd_s3_start)
    local.add_parser("s3-stop").set_defaults(func=cmd_s3_stop)
    specs_cmd = sub.add_parser("specs", help="validate use-case specs")
    specs_cmd.add_argument("--registry", action="store_true",
                           help="also check each spec against its current champion (object storage)")
    specs_cmd.set_defaults(func=cmd_specs)
    for name, func in (("summary", cmd_summary), ("run", cmd_run)):
        cmd = sub.add_parser(name)
        cmd.add_argument("use_case")
        cmd.add_argument("run_date", help="logical date, YYYY-MM-DD")
        if name == "summary":
            cmd.add_argument("--json", action="store_true")
        else:
            cmd.add_argument("--model-version", default=None, help="pin a registered version (no retraining)")
        cmd.set_defaults(func=func)
    lin = sub.add_parser("lineage", help="where a published partition came from: model, data, dbt, code, "
                                         "checks, approval, Airflow run and its OpenLineage events")
    lin.add_argument("use_case")
    lin.add_argument("run_date", help="logical date of the partition, YYYY-MM-DD")
    lin.add_argument("--json", action="store_true")
    lin.add_argument("--openlineage-file", default=None,
                     help="OpenLineage JSON-lines event file (default: the file transport's, if configured)")
    lin.set_defaults(func=cmd_lineage)
    roll = sub.add_parser("rollup", help="print a published roll-up table")
    roll.add_argument("use_case")
    roll.add_argument("name", help="roll-up name from the spec's publish.rollups")
    roll.add_argument("run_date")
    roll.add_argument("--max-rows", type=int, default=40)
    roll.set_defaults(func=cmd_rollup)
    reg = sub.add_parser("registry", help="model versions, audit log, rollback")
    reg_sub = reg.add_subparsers(dest="action", required=True)
    for action in ("versions", "audit", "rollback"):
        cmd = reg_sub.add_parser(action)
        cmd.add_argument("use_case")
        if action == "audit":
            cmd.add_argument("--json", action="store_true")
        if action == "rollback":
            cmd.add_argument("--to", required=True, help="registered version to make champion")
            cmd.add_argument("--reason", required=True, help="why (goes to the audit log)")
            cmd.add_argument("--effective", default=None, help="effective logical date (default: today, UTC)")
        cmd.set_defaults(func=cmd_registry)
    maint = sub.add_parser("maintenance", help="housekeeping: the retention policy of a use case")
    maint_sub = maint.add_subparsers(dest="action", required=True)
    ret = maint_sub.add_parser("retention", help="delete what the spec's retention section lets go "
                                                 "(never what a published partition or an alias references)")
    ret.add_argument("--use-case", required=True, help="use case name (its spec's retention section applies)")
    ret.add_argument("--dry-run", action="store_true", help="report what would be removed; delete nothing")
    ret.add_argument("--today", default=None, help="date the ages count from, YYYY-MM-DD (default: today, UTC)")
    ret.add_argument("--json", action="store_true", help="print the whole report as JSON")
    ret.set_defaults(func=cmd_maintenance)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PlatformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
