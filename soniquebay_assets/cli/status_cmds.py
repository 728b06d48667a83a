"""`soniquebay status [--json]`: recent runs by status, per queue and asset (and the deferred retry op) success
rate counting run-level failures, mean duration, queue depth, errors by type, and the deferred queue per kind
(pending / in progress / failed / dead, oldest pending wait)."""

from __future__ import annotations

import argparse
from typing import Any

from soniquebay_assets.cli.common import add_data_dir, data_dir_from, fail, instance_home, print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("status", help="queues, per-asset success rates and durations, deferred work")
    add_data_dir(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--runs", type=int, default=200, help="how many recent runs the rates cover (default 200)")
    parser.add_argument("--no-inspect", action="store_true",
                        help="do not ask the Celery workers which queues they consume (saves ~1 s)")
    parser.set_defaults(handler=run)


def collect(data_root, *, runs: int = 200, inspect: bool = True) -> dict[str, Any]:
    """The whole status report as a dict (also used by tests)."""
    from dagster import DagsterInstance

    from soniquebay_assets import settings
    from soniquebay_assets.catalog import deferred, queries
    from soniquebay_assets.catalog.db import connection
    from soniquebay_assets.dagster_defs import monitoring
    from soniquebay_assets.dagster_defs.definitions import all_assets, defs
    from soniquebay_assets.dagster_defs.schedules import deferred_retry_job
    from soniquebay_assets.settings import DataDir

    data = DataDir(data_root).ensure()
    broker = settings.broker_url()
    depths, depth_problem = monitoring.queue_depths(broker)
    consumers, consumer_problem = None, ""
    if inspect and not depth_problem:
        from soniquebay_assets.dagster_defs.celery_config import make_celery_app
        from soniquebay_assets.dagster_defs.executor import NoQueueConsumerError, live_consumers

        try:
            consumers = live_consumers(make_celery_app(broker), timeout_s=1.0)
        except NoQueueConsumerError as exc:
            consumer_problem = str(exc)
    routes = {**monitoring.op_routes([deferred_retry_job]), **monitoring.asset_routes(all_assets())}
    with DagsterInstance.get() as instance:
        stats = monitoring.step_stats(instance, limit_runs=runs, planned_steps=monitoring.planned_steps_of(defs))
        run_counts = monitoring.run_counts(instance, limit_runs=runs)
    with connection(data.catalog_url) as conn:
        deferred_metrics = deferred.metrics(conn)
        catalog_errors = queries.errors_by_reason(conn) if hasattr(queries, "errors_by_reason") else {}
    assets = {
        key: {**route, **{k: v for k, v in stats.get(key, {}).items()}} for key, route in sorted(routes.items())
    }
    for entry in assets.values():
        entry.setdefault("runs", 0)
        entry.setdefault("success_rate", None)
        entry.setdefault("mean_duration_s", None)
        entry.setdefault("errors_by_type", {})
    return {
        "data_dir": str(data.root),
        "executor": settings.executor_choice(),
        "broker": monitoring.redact(broker),
        "broker_problem": depth_problem or consumer_problem or None,
        "recent_runs_considered": runs,
        "runs": run_counts,
        "queues": monitoring.per_queue(routes, stats, depths, consumers),
        "assets": assets,
        "deferred": deferred_metrics,
        "catalog_errors_by_reason": catalog_errors,
    }


def run(args: argparse.Namespace) -> int:
    data = data_dir_from(args)
    try:
        home = instance_home(data)
    except ValueError as exc:
        return fail(str(exc))
    report = collect(data.root, runs=args.runs, inspect=not args.no_inspect)
    report["dagster_home"] = str(home)
    if args.json:
        print_json(report)
    else:
        _print(report)
    return 0


def _fmt(value, suffix: str = "") -> str:
    return "-" if value is None else f"{value}{suffix}"


def _print(report: dict[str, Any]) -> None:
    lines = [f"executor: {report['executor']}   broker: {report['broker']}   instance: {report.get('dagster_home')}"]
    if report["broker_problem"]:
        lines.append(f"  ({report['broker_problem']})")
    lines.append("recent runs: " + (", ".join(f"{n} {status}" for status, n in sorted(report["runs"].items()))
                                    or "none"))
    lines.append(f"{'queue':<20}{'depth':>7}{'workers':>9}{'ok rate':>9}{'mean s':>9}  errors")
    for queue, q in report["queues"].items():
        workers = "-" if q["consumers"] is None else str(len(q["consumers"]))
        rate = None if q["success_rate"] is None else f"{q['success_rate']:.0%}"
        lines.append(f"{queue:<20}{_fmt(q['depth']):>7}{workers:>9}{_fmt(rate):>9}{_fmt(q['mean_duration_s']):>9}  "
                     + (", ".join(f"{k} x{v}" for k, v in q["errors_by_type"].items()) or "-"))
    lines.append(f"{'deferred':<12}{'pending':>8}{'due':>6}{'running':>9}{'failed':>8}{'dead':>6}  oldest pending")
    for kind, m in report["deferred"].items():
        lines.append(f"{kind:<12}{m['pending']:>8}{m['due']:>6}{m['in_progress']:>9}{m['failed']:>8}{m['dead']:>6}  "
                     f"{_fmt(m['oldest_pending_age_s'], ' s')}")
    print("\n".join(lines))
