"""Read the catalog: `soniquebay tracks`, `soniquebay errors`, `soniquebay stats`; open the UI: `soniquebay dev`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from soniquebay_assets.catalog.db import connection
from soniquebay_assets.cli.common import (
    NO_CATALOG,
    add_data_dir,
    data_dir_from,
    existing_catalog,
    fail,
    print_listing,
    print_report,
    use_dagster_home,
)
from soniquebay_assets.stages import error_labels


def register(subparsers) -> None:
    tracks = subparsers.add_parser("tracks", help="list cataloged tracks")
    add_data_dir(tracks)
    tracks.add_argument("--json", action="store_true", help="one JSON object per line per track")
    tracks.set_defaults(handler=run_tracks)

    errors = subparsers.add_parser("errors", help="list files that could not be cataloged, with the reason")
    add_data_dir(errors)
    errors.add_argument("--json", action="store_true", help="one JSON object per line")
    errors.add_argument("--stage", default=None, help=f"only this stage ({', '.join(error_labels())})")
    errors.set_defaults(handler=run_errors)

    stats = subparsers.add_parser("stats", help="catalog counts")
    add_data_dir(stats)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(handler=run_stats)

    dev = subparsers.add_parser("dev", help="open the Dagster UI on this data dir (runs `dagster dev`)")
    add_data_dir(dev)
    dev.add_argument("--port", type=int, default=3000)
    dev.add_argument("--library", type=Path, nargs="*", default=None, help="library root(s) for UI-launched runs")
    dev.set_defaults(handler=run_dev)


def run_tracks(args: argparse.Namespace) -> int:
    from soniquebay_assets.catalog import queries

    target = existing_catalog(args)
    if target is None:
        return fail(NO_CATALOG)
    with connection(target) as conn:
        print_listing(queries.list_tracks(conn), args.json, _track_line)
    return 0


def _track_line(track: dict) -> str:
    number = f"{track['disc_number'] or 1}-{track['track_number'] or 0:02d}"
    return f"{number}  {', '.join(track['artists'])} - {track['title']}  [{track['album']}]"


def run_errors(args: argparse.Namespace) -> int:
    from soniquebay_assets.catalog import queries

    target = existing_catalog(args)
    if target is None:
        return fail(NO_CATALOG)
    with connection(target) as conn:
        print_listing(queries.list_errors(conn, args.stage), args.json,
                      lambda error: f"{error['stage']:9} {error['reason']:32} {error['path']}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from soniquebay_assets.catalog import queries
    from soniquebay_assets.catalog.db import detect_driver, dialect_of, display_target

    target = existing_catalog(args)
    if target is None:
        return fail(NO_CATALOG)
    with connection(target) as conn:
        counts = queries.catalog_counts(conn)
        counts["formats"] = queries.formats_breakdown(conn)
        counts["errors_by_reason"] = queries.errors_by_reason(conn)
        counts["sqlite_driver"] = detect_driver().name
        counts["catalog"] = display_target(data_dir_from(args).catalog_url)
        counts["catalog_backend"] = dialect_of(conn)
    print_report(counts, args.json)
    return 0


def run_dev(args: argparse.Namespace) -> int:
    data = data_dir_from(args)
    use_dagster_home(data)
    if args.library:
        os.environ["SONIQUEBAY_LIBRARY"] = os.pathsep.join(str(p.resolve()) for p in args.library)
    cmd = ["dagster", "dev", "-m", "soniquebay_assets.dagster_defs.definitions", "-p", str(args.port)]
    sys.stderr.write(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']}\n$ {' '.join(cmd)}\n")
    os.execvp(cmd[0], cmd)
    return 0
