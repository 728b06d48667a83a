"""`soniquebay scan PATH...`: its arguments and its summary; the runs are dagster_defs/scan_runs.py's."""

from __future__ import annotations

import argparse
from pathlib import Path

from soniquebay_assets.cli.common import (
    ProgressBar,
    add_data_dir,
    data_dir_from,
    fail,
    print_json,
    use_dagster_home,
)
from soniquebay_assets.dagster_defs.scan_runs import scan_library
from soniquebay_assets.stages import cli_stages

# `--stages` name -> asset groups it materializes (from the stage registry), and "all" of them.
SCAN_STAGES: dict[str, list[str]] = cli_stages()
SCAN_STAGES["all"] = [group for groups in list(SCAN_STAGES.values()) for group in groups]


def register(subparsers) -> None:
    parser = subparsers.add_parser("scan", help="scan music folders into the catalog (in-process Dagster run)")
    parser.add_argument("paths", nargs="+", type=Path, help="library root folder(s)")
    add_data_dir(parser)
    parser.add_argument("--stages", default="all",
                        help=f"comma list of stages: {', '.join(SCAN_STAGES)} (default: all)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--run", action="store_true",
                        help="make a catalog-only scan a Dagster run (step logs in the UI) instead of recording "
                             "its shards' materializations without a run")
    parser.set_defaults(handler=run)


def selected_groups(stages_arg: str) -> list[str]:
    groups: list[str] = []
    for stage in (s.strip() for s in stages_arg.split(",") if s.strip()):
        if stage not in SCAN_STAGES:
            raise ValueError(f"unknown stage {stage!r}; choose from {', '.join(SCAN_STAGES)}")
        groups += [g for g in SCAN_STAGES[stage] if g not in groups]
    return groups


def run(args: argparse.Namespace) -> int:
    roots = [p.expanduser().resolve() for p in args.paths]
    missing = [str(p) for p in roots if not p.is_dir()]
    if missing:
        return fail(f"not a folder: {', '.join(missing)} (give the folder(s) holding your music)")
    try:
        groups = selected_groups(args.stages)
    except ValueError as exc:
        return fail(str(exc))
    data = data_dir_from(args)
    use_dagster_home(data)
    summary = scan_library(roots, data.root, groups, progress=ProgressBar.unless(args.no_progress), as_run=args.run)
    if args.json:
        print_json(summary)
    else:
        _print_summary(summary)
    return 1 if summary.get("run_failed") else 0


def _print_summary(s: dict) -> None:
    lines = [
        f"Scanned {s['files_seen']} files in {s['seconds']:.1f}s "
        f"({s['new']} new, {s['changed']} changed, {s['moved']} moved, {s['deleted']} deleted, "
        f"{s['skipped_unchanged']} unchanged)",
        *([f"Finished {s['resumed']} files an interrupted scan had left unfinished"] if s.get("resumed") else []),
        *([f"Read the tags of {s['tags_read']} files, wrote {s['tracks_written']} tracks"]
          if s.get("tags_read") or s.get("tracks_written") else []),
        f"Catalog: {s['tracks']} tracks, {s['albums']} albums, {s['artists']} artists, {s['genres']} genres",
    ]
    if s.get("shards_remeasured"):
        lines.append(f"Re-measured the tracks an older analysis version measured in {s['shards_remeasured']} "
                     "unchanged shards (only the parts whose code changed; tempo and key kept otherwise)")
    if s["errors"]:
        lines.append(f"{s['errors']} files could not be read: `soniquebay errors` lists them with the reason")
    if s.get("run_failed"):
        lines.append(f"The Dagster run {s['run_id']} failed: open `soniquebay dev` to see the step logs")
    print("\n".join(lines))
