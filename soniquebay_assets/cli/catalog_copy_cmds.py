"""`soniquebay catalog copy --to postgresql://...`: move an embedded SQLite catalog to a server, verified."""

from __future__ import annotations

import argparse
import sys
from contextlib import closing

from soniquebay_assets.cli.common import add_data_dir, data_dir_from, fail, print_json


def register(subparsers) -> None:
    catalog = subparsers.add_parser("catalog", help="catalog database upkeep (copy to PostgreSQL)")
    actions = catalog.add_subparsers(dest="catalog_action", metavar="ACTION", required=True)
    copy = actions.add_parser("copy", help="copy this data dir's SQLite catalog to another catalog URL, verified")
    add_data_dir(copy)
    copy.add_argument("--to", required=True, metavar="URL",
                      help="target catalog: postgresql://USER@HOST:PORT/DB (or sqlite:///PATH)")
    copy.add_argument("--force", action="store_true", help="replace the contents of a target that holds rows")
    copy.add_argument("--json", action="store_true", help="print the verification report as JSON")
    copy.set_defaults(handler=run_copy)


def run_copy(args: argparse.Namespace) -> int:
    from soniquebay_assets.catalog import db
    from soniquebay_assets.catalog.copy import TargetNotEmpty, copy_catalog

    data = data_dir_from(args)
    source_backend, _ = db.backend_of(data.catalog_url)
    if source_backend != db.SQLITE:
        return fail(f"the catalog to copy must be a SQLite catalog, not {db.display_target(data.catalog_url)}: "
                    "give --catalog-url sqlite:///PATH or --data-dir")
    if not data.catalog_exists():
        return fail(f"no catalog at {db.display_target(data.catalog_url)}: nothing to copy")
    db.backend_of(args.to)  # a malformed URL is refused before anything is opened
    if db.backend_of(args.to) == db.backend_of(data.catalog_url):
        return fail("the target is the source catalog itself")
    # unreachable or wrong: CatalogUnavailable, exit 2, nothing written
    with closing(db.connect(args.to)) as target, db.connection(data.catalog_url) as source:
        db.migrate(target)
        try:
            report = copy_catalog(source, target, force=args.force)
        except TargetNotEmpty as exc:
            return fail(f"{db.display_target(args.to)}: {exc}")
    report["source"] = db.display_target(data.catalog_url)
    report["target"] = db.display_target(args.to)
    if args.json:
        print_json(report)
    else:
        print(f"Copied {report['rows']} rows in {len(report['tables'])} tables to {report['target']}: "
              + ("row counts and checksums match" if report["ok"] else f"MISMATCH in {report['mismatches']}"))
    if not report["ok"]:
        sys.stderr.write("soniquebay: the copy does not match its source; the target holds a partial copy\n")
        return 1
    return 0
