"""`soniquebay write-tags`: opt-in write-back of ReplayGain, BPM, key, MusicBrainz ids and folder covers into the
files (or --dry-run, --undo, --history)."""

from __future__ import annotations

import argparse
import os
import sys

from soniquebay_assets.cli.common import (
    NO_CATALOG,
    ProgressBar,
    add_data_dir,
    data_dir_from,
    fail,
    print_json,
)

_FLAGS = (("replaygain", "ReplayGain 2.0 track and album gain and peak (Opus: R128 gains)"),
          ("bpm", "tempo (TBPM, BPM, tmpo)"),
          ("key", "musical key (TKEY, INITIALKEY)"),
          ("musicbrainz_ids", "MusicBrainz recording, release, release group and artist ids, as Picard writes them"),
          ("covers", "cover.jpg into album folders that have no cover file (from the covers store)"))


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "write-tags", help="write ReplayGain, BPM, key, MusicBrainz ids and folder covers into the files (opt-in)",
        description="Write what the catalog measured and found into the audio files, where players read it. "
                    "Nothing is written unless asked; every change is journaled and `--undo` restores it.")
    add_data_dir(parser)
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="files or folders inside the library (default: every cataloged track)")
    parser.add_argument("--album", type=int, action="append", default=[], metavar="ID",
                        help="an album id (from `soniquebay albums`); repeat for several")
    for name, text in _FLAGS:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, action="store_true", help=text)
    parser.add_argument("--all-fields", action="store_true", help="all of the above")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace BPM and key values the files already have (by default only missing ones are "
                             "added; ReplayGain is always replaced, ids are only added)")
    parser.add_argument("--key-notation", choices=("standard", "camelot", "openkey"), default="standard",
                        help="standard: Am, F#, Ebm (the ID3 TKEY form, default); camelot: 8A; openkey: 1m")
    parser.add_argument("--break-hard-links", action="store_true",
                        help="also write files that share their data with other names (e.g. a download client's "
                             "hard link): the library file gets its own copy, the other name keeps the old one")
    parser.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    parser.add_argument("--undo", action="store_true",
                        help="restore what write-tags replaced: the latest run, or --run ID, or the given PATHs/albums")
    parser.add_argument("--run", type=int, default=None, metavar="ID", help="with --undo: the run to undo")
    parser.add_argument("--history", action="store_true", help="list the latest write-back runs")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object: the run's counts and, under `files`, every file changed or failed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from soniquebay_assets.catalog.db import connection
    from soniquebay_assets.domain.tag_writing import GROUPS

    groups = frozenset(GROUPS) if args.all_fields else frozenset(n for n, _ in _FLAGS if getattr(args, n))
    if args.run is not None and not args.undo:
        return fail("--run goes with --undo (`soniquebay write-tags --undo --run ID`)")
    if args.undo and groups:
        return fail("--undo restores every field the run wrote; leave out the field options")
    if not (args.undo or args.history) and not groups:
        return fail("name what to write: --replaygain, --bpm, --key, --musicbrainz-ids, --covers (or --all-fields); "
                    "nothing is written by default")
    data = data_dir_from(args)
    if not data.catalog_exists():
        return fail(NO_CATALOG)
    with connection(data.catalog_url) as conn:
        if args.history:
            return _history(conn, args)
        scope = _scope(conn, args)
        if isinstance(scope, str):
            return fail(scope)
        return _undo(conn, args, scope) if args.undo else _write(conn, args, groups, scope, data.covers)


def _scope(conn, args: argparse.Namespace) -> tuple[list[int] | None, list[int] | None, list[int] | None] | str:
    """(track ids, file ids, album ids) the PATHs and --album name (None: no selection), or an error message."""
    from soniquebay_assets.catalog import write_back as repo

    if not args.paths and not args.album:
        return None, None, None
    roots = repo.library_roots(conn)
    catalog_paths = []
    for given in args.paths:
        candidates = [os.path.abspath(os.path.expanduser(given)), os.path.realpath(os.path.expanduser(given))]
        inside = [c for c in candidates if any(c == r or c.startswith(r.rstrip(os.sep) + os.sep) for r in roots)]
        if not inside:
            return (f"{given} is outside the library roots ({', '.join(roots) or 'none yet'}); only cataloged files "
                    "are written")
        catalog_paths.append(inside[0])
    missing = repo.missing_albums(conn, args.album)
    if missing:
        return f"no album with id {', '.join(map(str, missing))} (see `soniquebay albums`)"
    track_ids = sorted(set(repo.track_ids_under(conn, catalog_paths)) | set(repo.track_ids_of_albums(conn, args.album)))
    if not track_ids and not args.undo:
        return "no cataloged track under the given paths or albums; scan them first (`soniquebay scan`)"
    file_ids = repo.file_ids_of_tracks(conn, track_ids)
    album_ids = sorted(set(args.album) | set(repo.album_ids_of_tracks(conn, track_ids)))
    return track_ids, file_ids, album_ids


def _reporter(args: argparse.Namespace, outcomes: list):
    """Per file: a line on stdout (or kept for --json)."""
    def on_file(outcome) -> None:
        if outcome.status == "unchanged" or (outcome.status == "skipped" and not args.json and not args.dry_run):
            return
        if args.json:
            outcomes.append({k: v for k, v in vars(outcome).items() if v not in (None, "", [], {})})
            return
        sys.stdout.write(_line(outcome) + "\n")
    return on_file


def _line(outcome) -> str:
    if outcome.status == "failed":
        return f"FAILED  {outcome.path}: {outcome.reason} ({outcome.detail})"
    changes = "; ".join(f"{c['key']}: {_values(c['before'])} -> {_values(c['after'])}" for c in outcome.changes)
    label = {"written": "wrote", "would_write": "would write", "restored": "restored", "would_restore":
             "would restore", "cover_written": "wrote", "would_write_cover": "would write", "cover_removed":
             "removed", "would_remove_cover": "would remove", "skipped": "skipped"}.get(outcome.status, outcome.status)
    return f"{label:<13} {outcome.path}" + (f"  [{changes}]" if changes else f"  ({outcome.reason})")


def _values(values) -> str:
    return "-" if values is None else ", ".join(values)


def _finish(args: argparse.Namespace, stats, outcomes: list) -> int:
    summary = stats.as_dict()
    if args.json:
        print_json({**summary, "files": outcomes})
    else:
        verb = "would be " if stats.dry_run else ""
        if stats.action == "undo":
            sys.stderr.write(f"{stats.entries_restored} journaled writes {verb}restored, {stats.files_failed} failed"
                             + (f" (undo run {stats.run_id})" if stats.run_id else "") + "\n")
        else:
            fields = ", ".join(f"{k} {v}" for k, v in sorted(stats.fields_written.items())) or "none"
            sys.stderr.write(
                f"{stats.tracks_selected} tracks: {stats.files_written} files {verb}written ({fields}), "
                f"{stats.files_unchanged} unchanged, {stats.files_skipped} skipped, {stats.files_failed} failed; "
                f"covers {verb}written {stats.covers_written}\n")
            if stats.tracks_not_written_by_reason:
                why = ", ".join(f"{n} {reason}" for reason, n in stats.tracks_not_written_by_reason.items())
                sys.stderr.write(f"tracks with a field not written: {why}\n")
            if stats.fields_kept:
                kept = ", ".join(f"{k} {v}" for k, v in sorted(stats.fields_kept.items()))
                sys.stderr.write(f"kept the files' own values ({kept}); --overwrite replaces BPM and key\n")
            if stats.run_id is not None and stats.files_written + stats.covers_written:
                sys.stderr.write(f"run {stats.run_id}; undo it with `soniquebay write-tags --undo --run "
                                 f"{stats.run_id}`\n")
        if stats.files_failed:
            sys.stderr.write("see `soniquebay errors` (stage write_back) for what to do about the failed files\n")
    return 1 if stats.files_failed else 0


def _write(conn, args: argparse.Namespace, groups: frozenset[str], scope, covers_dir) -> int:
    from soniquebay_assets.pipeline.progress import shown_on
    from soniquebay_assets.pipeline.write_back import WriteBackRequest, default_options, write_back

    overwrite = frozenset({"bpm", "initial_key"}) if args.overwrite else frozenset()
    request = WriteBackRequest(default_options(groups, key_notation=args.key_notation, overwrite=overwrite),
                               track_ids=scope[0], dry_run=args.dry_run, origin="cli", covers_dir=covers_dir,
                               break_hard_links=args.break_hard_links)
    outcomes: list = []
    with shown_on(ProgressBar.unless(args.no_progress)):
        stats = write_back(conn, request, on_file=_reporter(args, outcomes))
    return _finish(args, stats, outcomes)


def _undo(conn, args: argparse.Namespace, scope) -> int:
    from soniquebay_assets.pipeline.progress import shown_on
    from soniquebay_assets.pipeline.write_back import undo_write_back

    _, file_ids, album_ids = scope
    outcomes: list = []
    with shown_on(ProgressBar.unless(args.no_progress)):
        stats = undo_write_back(conn, run_id=args.run, file_ids=file_ids, album_ids=album_ids, dry_run=args.dry_run,
                                break_hard_links=args.break_hard_links, on_file=_reporter(args, outcomes))
    if stats.entries_restored == 0 and not stats.files_failed and not args.json:
        sys.stderr.write("nothing to undo\n")
    return _finish(args, stats, outcomes)


def _history(conn, args: argparse.Namespace) -> int:
    from soniquebay_assets.catalog import write_back as repo

    for item in repo.list_runs(conn):
        if args.json:
            print_json(item)
        else:
            stats = item["stats"]
            sys.stdout.write(f"run {item['run_id']:>5}  {item['action']:<5} {item['started_at']}  "
                             f"{','.join(item['groups']) or '-':<30} files {stats.get('files_written', 0)}, "
                             f"covers {stats.get('covers_written', 0)}, still in files {item['entries_in_files']}\n")
    return 0
