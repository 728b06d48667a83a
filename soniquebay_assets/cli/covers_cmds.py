"""`soniquebay covers`: list the stored album covers and artist images."""

from __future__ import annotations

import argparse
import json
import sys

from soniquebay_assets.cli.common import (
    NO_CATALOG,
    add_data_dir,
    data_dir_from,
    fail,
    print_json,
    print_listing,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("covers", help="list stored album covers and artist images")
    add_data_dir(parser)
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line: entity_type, entity_id, name, source, path, width, height")
    parser.add_argument("--type", choices=("album", "artist"), default=None, help="only albums or only artists")
    parser.add_argument("--summary", action="store_true", help="coverage and counts by source instead of a list")
    parser.add_argument("--prune", action="store_true",
                        help="delete stored image files no album or artist uses any more")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from soniquebay_assets.catalog import covers as repo
    from soniquebay_assets.catalog.db import connection
    from soniquebay_assets.pipeline.covers import coverage_summary

    data = data_dir_from(args)
    if not data.catalog_exists():
        return fail(NO_CATALOG)
    with connection(data.catalog_url) as conn:
        if args.prune:
            from soniquebay_assets.artwork.image_store import prune_unreferenced

            removed = prune_unreferenced(data.covers, repo.referenced_hashes(conn))
            if args.json:
                print_json({"removed_files": removed})
            else:
                sys.stdout.write(f"removed {removed} unused image files\n")
            return 0
        if args.summary:
            types = [args.type] if args.type else ["album", "artist"]
            summary = {t: coverage_summary(conn, t) for t in types}
            if args.json:
                print_json(summary)
            else:
                for entity_type, s in summary.items():
                    sources = ", ".join(f"{k} {v}" for k, v in sorted(s["by_source"].items())) or "none"
                    sys.stdout.write(f"{entity_type}s: {s['covered']}/{s['total']} ({s['coverage_pct']}%) "
                                     f"by source: {sources}\n")
            return 0
        print_listing((_cover_json(row, data.covers) for row in repo.list_covers(conn, args.type)), args.json,
                      lambda item: f"{item['entity_type']:<6} {item['entity_id']:>6}  "
                                   f"{item['width']}x{item['height']:<5} {item['source']:<16} {item['name']}")
    return 0


def _cover_json(row, covers_dir) -> dict:
    """The public shape of one stored picture, its files as absolute paths."""
    return {
        "entity_type": row["entity_type"],
        "entity_id": row["entity_id"],
        "name": row["name"],
        "source": row["source"],
        "path": str(covers_dir / row["path"]),
        "width": row["width"],
        "height": row["height"],
        "mime": row["mime"],
        "sha256": row["sha256"],
        "thumbnails": {k: str(covers_dir / v) for k, v in json.loads(row["thumbnails"]).items()},
    }
