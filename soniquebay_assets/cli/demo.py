"""`soniquebay demo`: the main job on the embedded default, against a given folder or a generated demo library."""

from __future__ import annotations

import argparse
from pathlib import Path

from soniquebay_assets.cli.common import add_data_dir, data_dir_from, print_json, use_dagster_home

DEMO_FILES = 60


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="scan a folder (or a generated demo library) through every stage and show the result"
    )
    parser.add_argument("--library", type=Path, default=None,
                        help=f"music folder to scan (default: generate {DEMO_FILES} tagged audio files in the data dir)")
    add_data_dir(parser)
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from soniquebay_assets.cli.common import ProgressBar
    from soniquebay_assets.cli.scan import SCAN_STAGES
    from soniquebay_assets.dagster_defs.scan_runs import scan_library
    from soniquebay_assets.library.synthetic import build_library

    data = data_dir_from(args)
    use_dagster_home(data)
    library = args.library.expanduser().resolve() if args.library else data.root / "demo-library"
    if args.library is None and not library.exists():
        sys.stderr.write(f"Generating a demo library of {DEMO_FILES} tagged audio files in {library}\n")
        build_library(library, DEMO_FILES)
    # the generated library's names are made up: asking MusicBrainz about them would only spend its rate limit
    groups = SCAN_STAGES["all"] if args.library else [g for g in SCAN_STAGES["all"] if g not in SCAN_STAGES["online"]]
    sys.stderr.write(f"Scanning {library} (stages: {', '.join(groups)}); data dir {data.root}\n")
    summary = scan_library([library], data.root, groups, progress=ProgressBar.unless(False))
    summary.pop("stage_metadata", None)
    if args.json:
        print_json(summary)
    else:
        for key in ("files_seen", "tracks", "albums", "artists", "genres", "errors", "seconds", "run_id"):
            print(f"{key:>12}: {summary.get(key)}")
        print(f"\nNext: `soniquebay tracks --data-dir {data.root}` to list the catalog, "
              f"`soniquebay dev --data-dir {data.root}` to open the Dagster UI.")
    return 1 if summary.get("run_failed") else 0
