"""Retention: how long each kind of data a use case accumulates is kept (``retention`` in its spec).

Applied per use case by the maintenance DAG, or by ``mlplatform maintenance retention``:

* raw: fact rows dated before ``today - raw_days`` are deleted from the raw warehouse tables, in one
  transaction under the landing's own writer lock (DuckDB or Postgres, through ``warehouse``); for a
  ``files`` source the delivered files of those days go too (a dimension's latest delivery stays: it is
  the table's current content);
* quarantine: ``<uc>/quarantine/run_date=D/`` with D before ``today - quarantine_days``;
* reports: the landing, validation, monitoring (drift), accuracy and lifecycle partitions
  (``<uc>/<kind>/run_date=D/``) and the accuracy alerts dated before ``today - reports_days``;
* model versions: complete versions nothing references, beyond the ``model_versions_keep`` newest of
  them (referenced versions do not count towards the N).

``null`` keeps a kind forever. Never deleted, whatever the policy: published partitions (forecasts and
roll-ups) and their manifests; the registry (audit log and alias files); feature snapshots (no retention
field covers them); the maintenance reports (the record of what retention removed); a report partition
any object of which a published manifest links (its validation result, drift summary and report, and
what those link in turn); a model version that a published manifest names or links (model, card,
reference statistics), that a current alias points to, that was champion as of a published run date, or
that is today's incumbent.

Raw history: dbt rebuilds every feature from raw on every run, so a ``raw_days`` shorter than what
training, the backtest, monitoring and the accuracy check read back is refused (:func:`minimum_raw_days`).
Days deleted from a generator's raw tables are recorded as retired in ``raw._landed_days`` so landing
does not regenerate them. Raw tables shared with other use cases keep the longest retention among them.

:func:`plan` decides and changes nothing; :func:`apply` plans, deletes, logs each removal and stores the
report at ``<uc>/maintenance/run_date=<today>/retention.json``. A second run removes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlplatform import constants as C
from mlplatform import registry
from mlplatform.errors import PlatformError, SpecError
from mlplatform.storage import Layout, ObjectStore

if TYPE_CHECKING:  # pragma: no cover
    from mlplatform.settings import Settings
    from mlplatform.spec import UseCaseSpec

log = logging.getLogger(__name__)

REPORT_NAME = "retention.json"
MAINTENANCE_PREFIX = "{use_case}/maintenance/run_date={run_date}"
# Reports: the run-dated report prefixes of Layout (validation, monitoring, accuracy, lifecycle, lineage) plus
# ingest's landing report. Alerts (``alerts/accuracy-D.json``) are reports too, dated by their name.
LANDING = "landing"
QUARANTINE = "quarantine"
# Top-level prefixes under a use case that retention must never delete from (checked before deleting).
NEVER_DELETED = ("forecasts", "rollups", "registry", "features", "maintenance")
NEVER_DELETED_NOTE = ("published partitions and manifests (forecasts/, rollups/), the registry's audit log "
                      "and aliases (registry/), feature snapshots (features/) and maintenance reports "
                      "(maintenance/) are never deleted")

_RUN_DATE = re.compile(r"^(.*?/run_date=(\d{4}-\d{2}-\d{2})/)")
_DAY = re.compile(r"/day=(\d{4}-\d{2}-\d{2})/[^/]+$")
_ALERT_DATE = re.compile(r"-(\d{4}-\d{2}-\d{2})\.json$")
_VERSION = re.compile(r"^v\d{8}-[0-9a-f]{10}$")
_VERSION_FIELDS = ("model_version", "version")


# ------------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Removal:
    """One object to delete, and why."""

    category: str  # report | quarantine | raw_file | model_version
    key: str
    reason: str


@dataclass(frozen=True)
class RawRemoval:
    """Rows of one raw table dated before ``before`` (ISO date)."""

    table: str
    before: str
    rows: int
    reason: str


@dataclass(frozen=True)
class Kept:
    """Something old enough to go that stays because it is referenced (``key``: a prefix or object)."""

    category: str
    key: str
    referenced_by: tuple[str, ...]


@dataclass(frozen=True)
class RawTable:
    table: str
    date_column: str


@dataclass
class RetentionPlan:
    """What a retention run removes and keeps; ``to_report`` is the JSON stored and returned."""

    use_case: str
    today: date
    policy: dict[str, int | None]
    cutoffs: dict[str, str | None]
    objects: list[Removal] = field(default_factory=list)
    raw_rows: list[RawRemoval] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw_tables: list[RawTable] = field(default_factory=list)
    raw_cutoff: date | None = None

    def to_report(self, dry_run: bool) -> dict[str, Any]:
        removed = [{"kind": "object", **asdict(r)} for r in self.objects]
        removed += [{"kind": "raw_rows", **asdict(r)} for r in self.raw_rows]
        by_category: dict[str, int] = {}
        for r in self.objects:
            by_category[r.category] = by_category.get(r.category, 0) + 1
        return {
            "use_case": self.use_case, "today": self.today.isoformat(), "dry_run": dry_run,
            "policy": self.policy, "cutoffs": self.cutoffs, "removed": removed,
            "counts": {"objects": len(self.objects), "raw_rows": sum(r.rows for r in self.raw_rows),
                       "objects_by_category": by_category, "kept_referenced": len(self.kept)},
            "kept_referenced": [{**asdict(k), "referenced_by": list(k.referenced_by)} for k in self.kept],
            "never_deleted": NEVER_DELETED_NOTE, "notes": self.notes,
        }


# ----------------------------------------------------------------------------------- raw history bound


def minimum_raw_days(spec: UseCaseSpec) -> dict[str, int]:
    """Days of raw history a run reads back from its run date, per need; their sum is the bound.

    Why a sum (conservative; the windows overlap in time): each need is a window measured back from the
    run date or from an earlier origin, and dbt rebuilds the features of all of them from raw on every
    run. Too short, and training, the backtest folds, the drift reference or the accuracy check silently
    see less history than the spec says.
    """
    from mlplatform.transform import PERIOD_DAYS, horizon_days

    per = PERIOD_DAYS[spec.frequency]
    bt, mon = spec.backtest, spec.monitoring
    if spec.kind == "forecast":
        from mlplatform.forecasting import required_history_periods

        training = spec.model.training_window * per
        backtest = (spec.horizon + (bt.folds - 1) * bt.fold_step) * per
        features = required_history_periods(spec) * per
    else:  # tabular kinds count training_window and fold_step in days
        training = spec.model.training_window
        backtest = spec.tabular.label_delay_days + bt.folds * bt.fold_step
        features = spec.tabular.score_lookback_days
    return {"model.training_window": training, "backtest look-back": backtest, "feature look-back": features,
            "monitoring.window_days + reference_days": mon.window_days + mon.reference_days,
            "accuracy.lookback_days + horizon": spec.accuracy.lookback_days + horizon_days(spec)}


def check_raw_days(spec: UseCaseSpec) -> None:
    """SpecError naming the spec file and ``retention.raw_days`` when it is shorter than the bound."""
    days = spec.retention.raw_days
    if days is None:
        return
    parts = minimum_raw_days(spec)
    need = sum(parts.values())
    if days < need:
        detail = " + ".join(f"{name} {n}" for name, n in parts.items())
        raise SpecError(
            f"{C.USE_CASES_DIR / (spec.name + '.yaml')}: field 'retention.raw_days' is {days} days, shorter than "
            f"the {need} days of raw history the pipeline reads ({detail}); dbt rebuilds every feature from "
            f"raw, so deleting that history would change what is trained and monitored. Use at least {need}, "
            "or null (keep raw data forever)")


# ----------------------------------------------------------------------------------------- references


@dataclass
class References:
    """What must stay, each with why: run_date partitions, other keys or prefixes, model versions.

    Links into a run_date=D partition are indexed by the partition (a linked object keeps its whole
    partition), so checking a candidate partition is one lookup however long the history.
    """

    partitions: dict[str, set[str]] = field(default_factory=dict)
    keys: dict[str, set[str]] = field(default_factory=dict)
    versions: dict[str, set[str]] = field(default_factory=dict)

    def add_key(self, key: str, why: str) -> None:
        match = _RUN_DATE.match(key)
        target = self.partitions if match else self.keys
        target.setdefault(match.group(1) if match else key, set()).add(why)

    def add_version(self, version: str | None, why: str) -> None:
        if version:
            self.versions.setdefault(version, set()).add(why)

    def reasons(self, prefix: str) -> set[str]:
        """Why anything at or under ``prefix`` (a partition prefix or an object key) is referenced."""
        out = set(self.partitions.get(prefix, ()))
        for key, why in self.keys.items():
            if key == prefix or key.startswith(prefix) or (key.endswith("/") and prefix.startswith(key)):
                out |= why
        return out


def _links(doc: Any, bucket_uri: str) -> tuple[set[str], set[str]]:
    """(keys in this bucket, model versions) a JSON document names anywhere, at any depth."""
    keys: set[str] = set()
    versions: set[str] = set()
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            versions |= {v for k, v in node.items() if k in _VERSION_FIELDS and isinstance(v, str)
                         and _VERSION.match(v)}
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and node.startswith(bucket_uri):
            keys.add(node[len(bucket_uri):])
    return keys, versions


def published_manifests(store: ObjectStore, layout: Layout) -> list[str]:
    """Keys of every published manifest of the use case: forecast partitions and roll-ups."""
    roots = (layout.forecasts_root(), f"{layout.use_case}/rollups/")
    return [k for root in roots for k in store.list_keys(root) if k.endswith("/" + C.MANIFEST_NAME)]


def _walk_manifests(store: ObjectStore, layout: Layout, manifests: list[str], refs: References) -> None:
    """Everything the manifests link, and what linked JSON reports link in turn (drift summary -> the
    model version whose reference it compared with)."""
    bucket_uri = store.uri("")
    queue = [(key, f"published manifest {key}") for key in manifests]
    seen: set[str] = set()
    while queue:
        key, why = queue.pop()
        if key in seen:
            continue
        seen.add(key)
        try:
            doc = store.get_json(key)
        except PlatformError:  # a dangling link: nothing to protect behind it
            continue
        keys, versions = _links(doc, bucket_uri)
        for version in versions:
            refs.add_version(version, why)
        for linked in keys:
            refs.add_key(linked, why)
            _version_of_key(layout, linked, refs, why)
            if linked.endswith(".json") and linked.startswith(f"{layout.use_case}/"):
                queue.append((linked, why))


def _version_of_key(layout: Layout, key: str, refs: References, why: str) -> None:
    """A link to any file of a model version (model, card, reference) keeps the whole version."""
    prefix = layout.models() + "/"
    if key.startswith(prefix) and "/" in key[len(prefix):]:
        refs.add_version(key[len(prefix):].split("/", 1)[0], why)


def _alias_references(store: ObjectStore, layout: Layout, published: list[date], today: date,
                      refs: References) -> None:
    """Current aliases, the champion as of every published run date, and today's incumbent."""
    events = registry.audit_log(store, layout)
    for alias in registry.ALIASES:
        refs.add_version(registry.alias_version(store, layout, alias), f"current {alias} alias")
        latest = registry._replay(events, alias, None)
        refs.add_version(latest["to_version"] if latest else None, f"current {alias} alias")
    for day in published:
        event = registry._replay(events, registry.CHAMPION, day)
        refs.add_version(event["to_version"] if event else None, f"champion as of published run date {day}")
    for day in (today - timedelta(days=1), today):
        event = registry._replay(events, registry.CHAMPION, day)
        refs.add_version(event["to_version"] if event else None, f"champion as of {day} (today's incumbent)")


def collect_references(store: ObjectStore, layout: Layout, today: date) -> References:
    """Everything a published partition or an alias references (see the module docstring)."""
    refs = References()
    manifests = published_manifests(store, layout)
    _walk_manifests(store, layout, manifests, refs)
    forecasts = layout.forecasts_root()
    published = sorted({date.fromisoformat(m.group(2)) for k in manifests if k.startswith(forecasts)
                        and (m := _RUN_DATE.match(k))})
    _alias_references(store, layout, published, today, refs)
    return refs


def _summarise(reasons: Iterable[str]) -> tuple[str, ...]:
    """Reasons grouped by kind: 'published manifest ...' x 300 reads as one line with the count."""
    groups: dict[str, list[str]] = {}
    for reason in sorted(reasons):
        kind, _, detail = reason.rpartition(" ")
        groups.setdefault(kind, []).append(detail)
    out = []
    for kind, details in groups.items():
        if len(details) <= 3:
            out += [f"{kind} {d}" for d in details]
        else:
            out.append(f"{kind} ({len(details)}: {details[0]} ... {details[-1]})")
    return tuple(out)


# ----------------------------------------------------------------------------------- object candidates


def _cutoff(today: date, days: int | None) -> date | None:
    """Objects dated before this are old enough to go; None keeps them forever."""
    return None if days is None else today - timedelta(days=days)


def _dated_partitions(store: ObjectStore, prefix: str, cutoff: date) -> dict[str, list[str]]:
    """{partition prefix: keys} of the run_date=D partitions under ``prefix`` with D before ``cutoff``."""
    out: dict[str, list[str]] = {}
    for key in store.list_keys(prefix):
        match = _RUN_DATE.match(key)
        if match and date.fromisoformat(match.group(2)) < cutoff:
            out.setdefault(match.group(1), []).append(key)
    return out


def _alert_partitions(store: ObjectStore, layout: Layout, cutoff: date) -> dict[str, list[str]]:
    out = {}
    for key in store.list_keys(layout.alerts() + "/"):
        match = _ALERT_DATE.search(key)
        if match and date.fromisoformat(match.group(1)) < cutoff:
            out[key] = [key]
    return out


def _partition_plan(plan: RetentionPlan, partitions: dict[str, list[str]], category: str, rule: str,
                    refs: References) -> None:
    """Old partitions go whole, unless something a manifest links lies in them: then they stay whole."""
    for prefix, keys in sorted(partitions.items()):
        why = refs.reasons(prefix)
        if why:
            plan.kept.append(Kept(category, prefix, _summarise(why)))
            continue
        plan.objects += [Removal(category, key, rule) for key in keys]


def report_roots(layout: Layout) -> list[str]:
    """The prefixes under which run-dated reports live (``<uc>/<kind>/``)."""
    day = date(2000, 1, 1)
    dated = (layout.validation(day), layout.monitoring(day), layout.accuracy(day), layout.lifecycle(day),
             layout.lineage(day))
    return [p.split("run_date=")[0] for p in dated] + [f"{layout.use_case}/{LANDING}/"]


def _reports_plan(plan: RetentionPlan, store: ObjectStore, layout: Layout, days: int | None,
                  refs: References) -> None:
    cutoff = _cutoff(plan.today, days)
    if cutoff is None:
        return
    rule = f"report dated before {cutoff} (retention.reports_days {days})"
    for root in report_roots(layout):
        _partition_plan(plan, _dated_partitions(store, root, cutoff), "report", rule, refs)
    _partition_plan(plan, _alert_partitions(store, layout, cutoff), "report", rule, refs)


def _quarantine_plan(plan: RetentionPlan, store: ObjectStore, layout: Layout, days: int | None,
                     refs: References) -> None:
    cutoff = _cutoff(plan.today, days)
    if cutoff is None:
        return
    rule = f"quarantined rows of a run before {cutoff} (retention.quarantine_days {days})"
    partitions = _dated_partitions(store, f"{layout.use_case}/{QUARANTINE}/", cutoff)
    _partition_plan(plan, partitions, QUARANTINE, rule, refs)


def _version_files(store: ObjectStore, layout: Layout) -> dict[str, list[str]]:
    prefix = layout.models() + "/"
    out: dict[str, list[str]] = {}
    for key in store.list_keys(prefix):
        out.setdefault(key[len(prefix):].split("/", 1)[0], []).append(key)
    return out


def _versions_plan(plan: RetentionPlan, store: ObjectStore, layout: Layout, keep: int | None,
                   refs: References) -> None:
    """Referenced versions stay; of the others, the ``keep`` newest (by training end) stay."""
    files = _version_files(store, layout)
    metas = registry.list_versions(store, layout)  # complete versions, oldest first
    complete = {m["version"] for m in metas}
    for version in sorted(set(files) - complete):
        plan.notes.append(f"model version {version} has no {registry.METADATA} (incomplete, or being "
                          "registered right now): left alone")
    if keep is None:
        return
    for meta in metas:
        if meta["version"] in refs.versions:
            plan.kept.append(Kept("model_version", f"{layout.model(meta['version'])}/",
                                  _summarise(refs.versions[meta["version"]])))
    unreferenced = [m for m in metas if m["version"] not in refs.versions]
    for meta in unreferenced[: max(0, len(unreferenced) - keep)]:
        rule = (f"model version {meta['version']} (trained to {meta['training_window']['end']}): referenced by "
                f"nothing, older than the {keep} newest unreferenced version(s) (retention.model_versions_keep)")
        plan.objects += [Removal("model_version", key, rule) for key in files[meta["version"]]]


# ----------------------------------------------------------------------------------------------- raw


def raw_tables(spec: UseCaseSpec) -> list[RawTable]:
    """The raw fact tables the platform lands for ``spec`` (none for an externally loaded source)."""
    if spec.source.type == "generator":
        from mlplatform import datagen

        return [RawTable(t, c) for t, c in datagen.get_source(spec.source.generator).facts.items()]
    if spec.source.type == "files":
        return [RawTable(t, c.date_column) for t, c in spec.source.files.tables.items() if c.kind == "fact"]
    return []


def _peer_specs() -> list[UseCaseSpec]:
    """The valid specs of the use-case folder (the use cases that may share raw tables)."""
    from mlplatform.spec import load_all_specs

    specs, _ = load_all_specs()
    return specs


def _tables_of(spec: UseCaseSpec) -> set[str]:
    try:
        return {t.table for t in raw_tables(spec)}
    except SpecError:  # an unregistered generator: it lands nothing, so it shares nothing
        return set()


def effective_raw_days(spec: UseCaseSpec, peers: list[UseCaseSpec]) -> tuple[int | None, list[str]]:
    """Days of raw data kept, given the use cases sharing a raw table (None: kept forever), and notes.

    Why: specs naming the same generator (or raw table) share its tables, so one use case's retention
    must not delete history another still keeps or needs; the longest retention among them wins.
    """
    days = spec.retention.raw_days
    mine = {t.table for t in raw_tables(spec)}
    notes: list[str] = []
    if days is None or not mine:
        return None, notes
    for peer in peers:
        shared = sorted(mine & _tables_of(peer)) if peer.name != spec.name else []
        if not shared:
            continue
        if peer.retention.raw_days is None:
            return None, [f"raw tables {shared} are shared with use case {peer.name!r}, which keeps raw data "
                          "forever (retention.raw_days: null): no raw data is deleted"]
        need = max(peer.retention.raw_days, sum(minimum_raw_days(peer).values()))
        if need > days:
            notes.append(f"raw tables {shared} are shared with use case {peer.name!r}: {need} days are kept")
            days = need
    return days, notes


def _landing_lock(spec: UseCaseSpec) -> str:
    """The writer lock landing takes for this source (retention serialises with it)."""
    if spec.source.type == "files":
        return f"land.files.{spec.source.files.inbox}"
    return f"land.{spec.source.generator}"


def _count_raw(db: Any, tables: list[RawTable], cutoff: date) -> dict[str, int]:
    from mlplatform.warehouse import table_exists

    out = {}
    for t in tables:
        if table_exists(db, C.RAW_SCHEMA, t.table):
            (n,) = db.fetchall(f"select count(*) from {C.RAW_SCHEMA}.{t.table} "
                               f"where cast({t.date_column} as date) < ?", [cutoff])[0]
            if n:
                out[t.table] = int(n)
    return out


def _planned_raw_rows(settings: Settings, tables: list[RawTable], cutoff: date) -> dict[str, int]:
    from mlplatform.warehouse import open_warehouse

    if settings.profile == C.PROFILE_EMBEDDED and not settings.duckdb_path.is_file():
        return {}  # nothing landed yet
    with open_warehouse(settings, read_only=True) as db:
        return _count_raw(db, tables, cutoff)


def _raw_rule(cutoff: date, days: int) -> str:
    return f"raw data dated before {cutoff} (retention.raw_days, effective {days} days)"


def _deliveries_plan(plan: RetentionPlan, spec: UseCaseSpec, store: ObjectStore, cutoff: date, rule: str) -> None:
    """Delivered files of days before the cutoff; a dimension's latest delivery is its current content."""
    files = spec.source.files
    for table, contract in files.tables.items():
        dated = sorted((date.fromisoformat(m.group(1)), key) for key in store.list_keys(f"{files.inbox}/{table}/")
                       if (m := _DAY.search(key)))
        latest = dated[-1:] if contract.kind == "dimension" else []
        plan.objects += [Removal("raw_file", key, f"delivered file: {rule}") for day, key in dated
                         if day < cutoff and (day, key) not in latest]


def _raw_plan(plan: RetentionPlan, spec: UseCaseSpec, store: ObjectStore, settings: Settings) -> None:
    check_raw_days(spec)
    if spec.retention.raw_days is None:
        return
    if spec.source.type == "warehouse":
        plan.notes.append(f"source.table {spec.source.table} is loaded by an external tool: its retention is "
                          "that tool's (retention.raw_days does not apply)")
    days, notes = effective_raw_days(spec, _peer_specs())
    plan.notes += notes
    if days is None:
        return
    cutoff = plan.today - timedelta(days=days)
    plan.raw_cutoff, plan.raw_tables, plan.cutoffs["raw"] = cutoff, raw_tables(spec), cutoff.isoformat()
    rule = _raw_rule(cutoff, days)
    for table, rows in _planned_raw_rows(settings, plan.raw_tables, cutoff).items():
        plan.raw_rows.append(RawRemoval(f"{C.RAW_SCHEMA}.{table}", cutoff.isoformat(), rows, rule))
    if spec.source.type == "files":
        _deliveries_plan(plan, spec, store, cutoff, rule)


def _retire_landed_days(db: Any, spec: UseCaseSpec, cutoff: date) -> int:
    """Record a generator's days before ``cutoff`` as landed-empty, so landing does not regenerate them.

    Why: ``warehouse.land_source`` makes history complete from ``source.history_start`` and lands any
    day without rows again; a day recorded with 0 rows counts as landed (see ``warehouse._landed_days``).
    """
    from mlplatform.warehouse import LANDED_TABLE, _as_date

    source = spec.source.generator
    first = db.fetchall(f"select min(day) from {LANDED_TABLE} where source = ?", [source])[0][0]
    start = min(spec.source.history_start, _as_date(first) if first is not None else spec.source.history_start)
    retired = {_as_date(d) for (d,) in db.fetchall(
        f"select day from {LANDED_TABLE} where source = ? and day < ? and rows = 0", [source, cutoff])}
    db.execute(f"delete from {LANDED_TABLE} where source = ? and day < ? and rows <> 0", [source, cutoff])
    todo = [start + timedelta(days=i) for i in range((cutoff - start).days)]
    todo = [d for d in todo if d not in retired]
    for day in todo:
        db.execute(f"insert into {LANDED_TABLE} values (?, ?, ?)", [source, day, 0])
    return len(todo)


def _delete_raw(plan: RetentionPlan, spec: UseCaseSpec, settings: Settings) -> list[RawRemoval]:
    """Delete the raw rows before the cutoff in one transaction (counted again inside it)."""
    from mlplatform.warehouse import landing_transaction

    cutoff, out = plan.raw_cutoff, []
    rule = next(iter(plan.raw_rows)).reason
    with landing_transaction(settings, _landing_lock(spec)) as db:
        for table, rows in _count_raw(db, plan.raw_tables, cutoff).items():
            t = next(t for t in plan.raw_tables if t.table == table)
            db.execute(f"delete from {C.RAW_SCHEMA}.{table} where cast({t.date_column} as date) < ?", [cutoff])
            out.append(RawRemoval(f"{C.RAW_SCHEMA}.{table}", cutoff.isoformat(), rows, rule))
        if spec.source.type == "generator":
            retired = _retire_landed_days(db, spec, cutoff)
            if retired:
                plan.notes.append(f"{retired} day(s) before {cutoff} recorded as retired in {C.RAW_SCHEMA}."
                                  "_landed_days, so landing does not generate them again")
    return out


# -------------------------------------------------------------------------------------- plan and apply


def plan(spec: UseCaseSpec, store: ObjectStore, settings: Settings, today: date) -> RetentionPlan:
    """What a retention run for ``today`` would remove and keep; reads only, changes nothing.

    Raises SpecError (naming the spec file and ``retention.raw_days``) for too short a raw history.
    """
    r, layout = spec.retention, Layout(spec.name)
    policy = r.model_dump()
    cutoffs = {"quarantine": _iso(_cutoff(today, r.quarantine_days)), "reports": _iso(_cutoff(today, r.reports_days)),
               "raw": None}
    result = RetentionPlan(spec.name, today, policy, cutoffs)
    _raw_plan(result, spec, store, settings)
    if (r.quarantine_days, r.reports_days, r.model_versions_keep) == (None, None, None):
        return result
    refs = collect_references(store, layout, today)
    _reports_plan(result, store, layout, r.reports_days, refs)
    _quarantine_plan(result, store, layout, r.quarantine_days, refs)
    _versions_plan(result, store, layout, r.model_versions_keep, refs)
    return result


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _check_deletable(spec: UseCaseSpec, removal: Removal) -> None:
    """Last line of defence: a bug in planning must never reach a protected prefix."""
    inbox = spec.source.files.inbox + "/" if spec.source.files else None
    if removal.category == "raw_file":
        ok = bool(inbox) and removal.key.startswith(inbox)
    else:
        parts = removal.key.split("/")
        ok = parts[0] == spec.name and len(parts) > 2 and parts[1] not in NEVER_DELETED
    if not ok:
        raise PlatformError(f"retention for {spec.name}: refusing to delete {removal.key!r} ({removal.category}); "
                            "it is outside what retention may delete (this is a bug in the retention plan)")


def _delete_objects(spec: UseCaseSpec, store: ObjectStore, removals: list[Removal]) -> None:
    """Delete; a model version's metadata.json goes last, so a version is complete until it is gone
    (an interrupted run leaves a complete-looking version, which the next run deletes again)."""
    for removal in removals:
        _check_deletable(spec, removal)
    last = f"/{registry.METADATA}"
    store.delete_keys([r.key for r in removals if not (r.category == "model_version" and r.key.endswith(last))])
    store.delete_keys([r.key for r in removals if r.category == "model_version" and r.key.endswith(last)])


def report_key(use_case: str, today: date) -> str:
    return f"{MAINTENANCE_PREFIX.format(use_case=use_case, run_date=today.isoformat())}/{REPORT_NAME}"


def _store_report(store: ObjectStore, report: dict[str, Any]) -> str:
    """Write the day's report; a rerun that removed nothing leaves it as it was, one that removed more
    keeps the earlier removals of the day under ``removed_earlier_today``."""
    key = report_key(report["use_case"], date.fromisoformat(report["today"]))
    if store.exists(key):
        earlier = store.get_json(key)
        if not report["removed"]:
            return store.uri(key)
        report = {**report, "removed_earlier_today": earlier.get("removed_earlier_today", []) + earlier["removed"]}
    return store.put_json(key, report)


def _log_report(report: dict[str, Any]) -> None:
    """One line per removal and a summary (keys, tables and counts only: never row values)."""
    uc, verb = report["use_case"], "would remove" if report["dry_run"] else "removed"
    for entry in report["removed"]:
        if entry["kind"] == "object":
            log.info("retention %s: %s %s %s: %s", uc, verb, entry["category"], entry["key"], entry["reason"])
        else:
            log.info("retention %s: %s %d row(s) of %s dated before %s: %s", uc, verb, entry["rows"],
                     entry["table"], entry["before"], entry["reason"])
    for note in report["notes"]:
        log.info("retention %s: %s", uc, note)
    counts = report["counts"]
    log.info("retention %s (today %s): %s %d object(s) and %d raw row(s); kept %d old item(s) that are "
             "referenced", uc, report["today"], verb, counts["objects"], counts["raw_rows"], counts["kept_referenced"])


def apply(spec: UseCaseSpec, store: ObjectStore, settings: Settings, today: date,
          dry_run: bool = False) -> dict[str, Any]:
    """Apply the spec's retention policy as of ``today``; return the report (also stored and logged).

    ``dry_run``: plan and report only (nothing deleted, no report stored). The report lists every
    removed object key and raw row count with its reason, and every old item kept because something
    references it; ``report_uri`` says where it was stored.
    """
    result = plan(spec, store, settings, today)
    if not dry_run:
        result.raw_rows = _delete_raw(result, spec, settings) if result.raw_rows else []
        _delete_objects(spec, store, result.objects)
    report = result.to_report(dry_run)
    if not dry_run:
        report["report_uri"] = _store_report(store, report)
    _log_report(report)
    return report
