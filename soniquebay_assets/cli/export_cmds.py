"""`soniquebay export`: every track with its tags, analysis and match status as CSV, Parquet or JSON lines."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from soniquebay_assets.cli.common import NO_CATALOG, add_data_dir, existing_catalog, fail


def register(subparsers) -> None:
    from soniquebay_assets.pipeline.export import FORMATS

    export = subparsers.add_parser("export", help="write every track (tags, analysis, match status) as a table")
    add_data_dir(export)
    export.add_argument("--format", choices=FORMATS, default="csv", help="csv (lists joined with '; '), parquet "
                        "(lists kept; needs pyarrow) or jsonl (one JSON object per line)")
    export.add_argument("--output", "-o", type=Path, default=None, help="file to write (default: stdout)")
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from soniquebay_assets.catalog.db import connection
    from soniquebay_assets.pipeline.export import export_bytes, tracks_frame

    target = existing_catalog(args)
    if target is None:
        return fail(NO_CATALOG)
    if args.format == "parquet" and args.output is None and sys.stdout.isatty():
        return fail("Parquet is binary: give --output FILE.parquet (or redirect stdout)")
    with connection(target) as conn:
        frame = tracks_frame(conn)
    payload = export_bytes(frame, args.format)
    if args.output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()
    else:
        target = args.output.expanduser()
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(payload)
            tmp.replace(target)  # a reader never sees half a file
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            return fail(f"cannot write {target}: {exc.strerror or exc}")
        sys.stderr.write(f"soniquebay: {len(frame)} tracks, {len(frame.columns)} columns -> {target}\n")
    return 0
