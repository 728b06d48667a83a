"""`soniquebay playlist KIND ...` (generate), `playlist save NAME KIND ...`, `list`, `show`, `delete`, `push`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from soniquebay_assets.cli.common import (
    NO_CATALOG,
    add_data_dir,
    data_dir_from,
    existing_catalog,
    fail,
    print_json,
    print_listing,
)

KIND_HELP = {
    "similar": "tracks like one seed track (text + audio vectors)",
    "radio": "tracks around several seeds: an artist's or an album's tracks",
    "text": 'tracks matching a description, e.g. "calm piano, slow"',
    "filter": "tracks passing the filters only",
    "path": "a smooth walk from one track to another, each step nearer the end",
    "clusters": "the library split into N coherent playlists named from their genres, moods and tempo",
}


def _float_pair(parser: argparse.ArgumentParser, name: str, unit: str) -> None:
    parser.add_argument(f"--{name}-min", type=float, default=None, help=f"lowest {name.replace('-', ' ')}{unit}")
    parser.add_argument(f"--{name}-max", type=float, default=None, help=f"highest {name.replace('-', ' ')}{unit}")


def _mood(text: str) -> tuple[str, float]:
    name, _, threshold = text.partition("=")
    try:
        return name.strip().lower(), float(threshold) if threshold else 0.5
    except ValueError:
        raise argparse.ArgumentTypeError(f"--mood {text!r}: write NAME or NAME=MIN, e.g. relaxed=0.6") from None


def add_request_arguments(parser: argparse.ArgumentParser, kind: str) -> None:
    """The kind's seeds, then the filters, length and rules every kind takes."""
    if kind == "similar":
        parser.add_argument("--track", required=True, help="seed track: its path or its track id")
    elif kind == "radio":
        seed = parser.add_mutually_exclusive_group(required=True)
        seed.add_argument("--artist", help="seed artist name (its tracks are the seeds)")
        seed.add_argument("--album", type=int, dest="album_id", help="seed album id (see `soniquebay albums --json`)")
    elif kind == "text":
        parser.add_argument("text", help='what to listen to, e.g. "calm piano, slow"')
    elif kind == "path":
        parser.add_argument("--from", dest="from_track", required=True, help="first track: path or id")
        parser.add_argument("--to", dest="to_track", required=True, help="last track: path or id")
    elif kind == "clusters":
        parser.add_argument("--k", type=int, required=True, dest="clusters", help="how many playlists")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("-n", type=int, default=None, dest="length",
                        help="entries per playlist (default 25" + ("; 0 = whole clusters)" if kind == "clusters" else ")"))
    length.add_argument("--minutes", type=float, default=None, help="target duration instead of a number of entries")
    parser.add_argument("--artist-window", type=int, default=3,
                        help="an artist appears at most once in any N consecutive entries (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: same catalog and seed, same playlist")
    parser.add_argument("--name", default=None, help="the playlist's name (default: from what it is)")
    filters = parser.add_argument_group("filters (every kind)")
    _float_pair(filters, "bpm", "")
    filters.add_argument("--key", default=None, help="tracks in this key: 'A minor', 'F#m', 'Bb' or Camelot '8A'")
    filters.add_argument("--compatible-keys", action="store_true",
                         help="tracks whose key mixes with --key (or the seed's): same, +-1 on the Camelot wheel, "
                              "relative major/minor")
    _float_pair(filters, "energy", " (0-1)")
    _float_pair(filters, "danceability", " (0-1)")
    filters.add_argument("--mood", action="append", type=_mood, default=[], metavar="NAME[=MIN]",
                         help="happy, sad, aggressive, relaxed or party scoring at least MIN (default 0.5); repeatable")
    filters.add_argument("--genre", action="append", default=[], help="keep tracks with any of these genres")
    filters.add_argument("--exclude-genre", action="append", default=[], help="drop tracks with this genre")
    filters.add_argument("--year-min", type=int, default=None)
    filters.add_argument("--year-max", type=int, default=None)
    _float_pair(filters, "duration", " in seconds")
    _float_pair(filters, "loudness", " in LUFS")
    filters.add_argument("--match-status", action="append", default=[],
                         help="album MusicBrainz match: tagged, matched, candidates, unmatched or pending; repeatable")


def request_from(args: argparse.Namespace, kind: str):
    from soniquebay_assets.domain.playlists import PlaylistFilters, PlaylistRequest

    filters = PlaylistFilters(
        bpm_min=args.bpm_min, bpm_max=args.bpm_max, key=args.key, compatible_keys=args.compatible_keys,
        energy_min=args.energy_min, energy_max=args.energy_max, danceability_min=args.danceability_min,
        danceability_max=args.danceability_max, moods=tuple(args.mood), genres=tuple(args.genre),
        exclude_genres=tuple(args.exclude_genre), year_min=args.year_min, year_max=args.year_max,
        duration_min=args.duration_min, duration_max=args.duration_max, loudness_min=args.loudness_min,
        loudness_max=args.loudness_max, match_status=tuple(args.match_status),
    )  # fmt: skip
    return PlaylistRequest(
        kind=kind, track=getattr(args, "track", None), artist=getattr(args, "artist", None),
        album_id=getattr(args, "album_id", None), text=getattr(args, "text", None),
        from_track=getattr(args, "from_track", None), to_track=getattr(args, "to_track", None),
        clusters=getattr(args, "clusters", None), length=args.length, minutes=args.minutes,
        artist_window=args.artist_window, seed=args.seed, name=args.name, filters=filters,
    )  # fmt: skip


def register(subparsers) -> None:
    playlist = subparsers.add_parser("playlist", help="generate playlists (M3U8, JSON), save them, push them to "
                                                      "Subsonic servers")
    actions = playlist.add_subparsers(dest="playlist_action", metavar="KIND|ACTION", required=True)
    for kind, help_text in KIND_HELP.items():
        sub = actions.add_parser(kind, help=help_text)
        add_request_arguments(sub, kind)
        sub.add_argument("--json", action="store_true", help="one JSON object per entry")
        sub.add_argument("--m3u8", default=None, metavar="FILE|DIR",
                         help="also write extended M3U (UTF-8): a file, or a folder (one file per playlist)")
        sub.add_argument("--path-prefix", default=None, metavar="FROM=TO",
                         help="rewrite absolute paths for a server that mounts the music elsewhere, e.g. "
                              "/srv/music=/music")
        add_data_dir(sub)
        sub.set_defaults(handler=run_generate, kind=kind)
    save = actions.add_parser("save", help="save a playlist definition: kept fresh by the `playlists` asset")
    save.add_argument("playlist_name", metavar="NAME",
                      help="the playlist's name (also its file name and its name on the servers)")
    kinds = save.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, help_text in KIND_HELP.items():
        sub = kinds.add_parser(kind, help=help_text)
        add_request_arguments(sub, kind)
        sub.add_argument("--json", action="store_true", help="print the saved definition as JSON")
        add_data_dir(sub)
        sub.set_defaults(handler=run_save)
    listing = actions.add_parser("list", help="saved playlists with their last materialization")
    show = actions.add_parser("show", help="a saved playlist: definition, entries, pushes")
    show.add_argument("name")
    delete = actions.add_parser("delete", help="delete a saved playlist, its M3U8 files and its server copies")
    delete.add_argument("name")
    push = actions.add_parser("push", help="write and push saved playlists now (what the asset does)")
    which = push.add_mutually_exclusive_group(required=True)
    which.add_argument("name", nargs="?", help="one saved playlist")
    which.add_argument("--all", action="store_true", help="every saved playlist")
    for sub, handler in ((listing, run_list), (show, run_show), (delete, run_delete), (push, run_push)):
        sub.add_argument("--json", action="store_true", help="print JSON")
        add_data_dir(sub)
        sub.set_defaults(handler=handler)


class _Refused(Exception):
    """A request, a path prefix or a setting the command cannot use: exit 2 with its message."""


def _on_catalog(work):
    """The handler running `work(args, conn)` on the data dir's catalog; what it refuses exits 2 with the reason."""

    def handler(args: argparse.Namespace) -> int:
        from soniquebay_assets.catalog import db
        from soniquebay_assets.domain.m3u8 import PathPrefixError
        from soniquebay_assets.domain.playlists import PlaylistRequestError

        url = existing_catalog(args)
        if url is None:
            return fail(NO_CATALOG)
        try:
            with db.connection(url) as conn:
                return work(args, conn)
        except (_Refused, PlaylistRequestError, PathPrefixError) as exc:
            return fail(str(exc))

    return handler


def _settings() -> tuple[list, str | None, str | None]:
    """(Subsonic servers, path prefix, contact) from the environment; a malformed one is refused."""
    from soniquebay_assets import settings
    from soniquebay_assets.domain import m3u8

    try:
        prefix = settings.playlists_path_prefix()
        m3u8.PathPrefix.parse(prefix)
        return settings.subsonic_servers(), prefix, settings.http_contact()
    except ValueError as exc:
        raise _Refused(str(exc)) from None


@_on_catalog
def run_generate(args: argparse.Namespace, conn) -> int:
    from soniquebay_assets.domain import m3u8
    from soniquebay_assets.pipeline import playlists as pipeline

    prefix = m3u8.PathPrefix.parse(args.path_prefix)
    library = pipeline.library_of(conn)
    found = pipeline.generate(library, request_from(args, args.kind).validate())
    several = len(found) > 1
    output = None if args.m3u8 is None else pipeline.m3u8_output(args.m3u8, several=several)
    if output is not None and several and not output[1]:
        return fail(f"--m3u8 {args.m3u8}: {len(found)} playlists need a folder, not a file")
    for playlist in found:
        print_listing(playlist.entries, args.json, _entry_line,
                      lambda e, p=playlist: {**e.to_json(), **({"playlist": p.name} if several else {})})
        written = ""
        if output is not None:
            target = output[0] / m3u8.file_name(playlist.name) if output[1] else output[0]
            pipeline.write_m3u8(playlist, target, roots=pipeline.library_roots(library), prefix=prefix)
            written = f", written to {target}"
        sys.stderr.write(f"{playlist.name}: {len(playlist.entries)} entries, {playlist.minutes} min{written}\n")
        for note in playlist.notes:
            sys.stderr.write(f"  note: {note}\n")
    return 0


def _entry_line(entry) -> str:
    minutes, seconds = divmod(int(round(entry.duration or 0)), 60)
    return f"{entry.position:3d}. {entry.artist} - {entry.title} ({minutes}:{seconds:02d})  [{entry.reason}]"


@_on_catalog
def run_save(args: argparse.Namespace, conn) -> int:
    from soniquebay_assets.pipeline import playlists as pipeline

    saved = pipeline.save_playlist(conn, args.playlist_name, request_from(args, args.kind))
    print_listing([saved], args.json, lambda s: f"saved {s.name!r} ({s.kind}): written and pushed by the `playlists` "
                  f"asset, or now with `soniquebay playlist push {s.name!r}`", asdict)
    return 0


@_on_catalog
def run_list(args: argparse.Namespace, conn) -> int:
    from soniquebay_assets.catalog import playlists as repo

    rows = []
    for saved in repo.list_definitions(conn):
        parts = repo.stored_parts(conn, saved.playlist_id)
        pushes = {f"{p.target}#{p.part}" if len(parts) > 1 else p.target: p.status
                  for p in repo.push_states(conn, saved.playlist_id)}
        rows.append({"name": saved.name, "kind": saved.kind, "materialized_at": saved.materialized_at,
                     "parts": len(parts), "entries": sum(len(p.entries) for p in parts), "pushes": pushes,
                     "request": saved.request})
    print_listing(rows, args.json, lambda r: f"{r['name']}  ({r['kind']}, {r['entries']} entries, "
                  f"{r['materialized_at'] or 'never written'}; "
                  f"{', '.join(f'{k}: {v}' for k, v in r['pushes'].items()) or 'not pushed'})")
    return 0


@_on_catalog
def run_show(args: argparse.Namespace, conn) -> int:
    from soniquebay_assets.catalog import playlists as repo

    saved = repo.get_definition(conn, args.name)
    if saved is None:
        return fail(f"no saved playlist named {args.name!r} (see `soniquebay playlist list`)")
    parts = repo.stored_parts(conn, saved.playlist_id)
    pushes = repo.push_states(conn, saved.playlist_id)
    if args.json:
        print_json({**asdict(saved), "pushes": [asdict(p) for p in pushes],
                    "parts": [{"title": p.title, "description": p.description, "file": p.file,
                               "entries": list(p.entries)} for p in parts]})
        return 0
    sys.stdout.write(f"{saved.name} ({saved.kind}) {saved.request}\n")
    for part in parts:
        sys.stdout.write(f"  {part.title}: {part.description} -> {part.file}\n")
        for entry in part.entries:
            sys.stdout.write(f"    {entry['position']:3d}. {entry['artist']} - {entry['title']}  [{entry['reason']}]\n")
    for push in pushes:
        sys.stdout.write(f"  pushed to {push.target}: {push.status} ({push.pushed} songs) {push.message}\n")
    return 0


@_on_catalog
def run_delete(args: argparse.Namespace, conn) -> int:
    from soniquebay_assets.pipeline import playlists as pipeline

    servers, _, contact = _settings()
    outcome = pipeline.delete_playlist(conn, args.name, servers=servers, contact=contact)
    print_listing([outcome], args.json, lambda o: f"deleted {o['name']!r}; files removed: {len(o['files_removed'])}; "
                  f"servers: {o['servers'] or 'none'}")
    return 0


@_on_catalog
def run_push(args: argparse.Namespace, conn) -> int:
    from soniquebay_assets.pipeline import playlists as pipeline

    servers, prefix, contact = _settings()
    stats = pipeline.refresh_playlists(conn, playlists_dir=data_dir_from(args).playlists,
                                       names=None if args.all else [args.name], path_prefix=prefix,
                                       servers=servers, contact=contact)
    if args.json:
        print_json(asdict(stats))
    else:
        for parts in stats.per_playlist.values():
            for part in parts:
                targets = ", ".join(f"{label}: {t['status']}" for label, t in part.targets.items()) or "no server"
                sys.stdout.write(f"{part.title}: {part.entries} entries, {part.minutes} min, {part.entries_changed} "
                                 f"changed -> {part.file}; {targets}\n")
        if stats.deferred:
            sys.stdout.write(f"{stats.deferred} pushes wait in the deferred queue: a server did not answer\n")
    for problem in stats.problems:
        sys.stderr.write(f"soniquebay: {problem}\n")
    if stats.setup_errors:
        for message in stats.setup_errors:
            sys.stderr.write(f"soniquebay: {message}\n")
        return 2
    return 1 if stats.failed or stats.pushes.get("error") else 0
