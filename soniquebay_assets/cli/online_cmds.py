"""`soniquebay albums` (albums with their MusicBrainz match), `soniquebay match` (the user's decision) and
`soniquebay artists` (what MusicBrainz and Last.fm said about each artist)."""

from __future__ import annotations

import argparse
import sys
from contextlib import closing, nullcontext

from soniquebay_assets.catalog.db import connection
from soniquebay_assets.cli.common import (
    NO_CATALOG,
    add_data_dir,
    existing_catalog,
    fail,
    print_json,
    print_listing,
)


def register(subparsers) -> None:
    albums = subparsers.add_parser("albums", help="list albums with their MusicBrainz match status and album gain")
    add_data_dir(albums)
    albums.add_argument("--json", action="store_true",
                        help="one JSON object per line: album_id, title, album_artist, musicbrainz_release_id, "
                             "match_status, match_score, loudness_lufs, replaygain_album_gain_db, "
                             "replaygain_album_peak, candidates, ...")
    albums.add_argument("--status", choices=("tagged", "matched", "candidates", "unmatched", "pending"),
                        default=None, help="only albums with this match status")
    albums.set_defaults(handler=run_albums)

    decide = subparsers.add_parser("match", help="accept a MusicBrainz release for an album, or reject its candidates")
    add_data_dir(decide)
    decide.add_argument("--album", type=int, required=True, help="album id (from `soniquebay albums`)")
    choice = decide.add_mutually_exclusive_group(required=True)
    choice.add_argument("--accept", metavar="RELEASE_ID", help="the MusicBrainz release id to accept")
    choice.add_argument("--reject", action="store_true", help="none of the candidates is this album")
    decide.add_argument("--json", action="store_true", help="print the album's new state as one JSON object")
    decide.set_defaults(handler=run_match)

    artists = subparsers.add_parser("artists", help="list artists with their MusicBrainz id and Last.fm facts")
    add_data_dir(artists)
    artists.add_argument("--json", action="store_true",
                         help="one JSON object per line: artist_id, name, musicbrainz_artist_id, summary, "
                              "listeners, tags, similar_artists, genres, ...")
    artists.set_defaults(handler=run_artists)


def album_json(row: dict) -> dict:
    """The public shape of one album: tag values beside what MusicBrainz said, and its measured loudness."""
    status = row["match_status"]
    release_id = row["tagged_release_id"] if status == "tagged" else (row["release_id"] if status == "matched"
                                                                       else None)
    return {
        "album_id": row["album_id"],
        "title": row["title"],
        "album_artist": row["album_artist"],
        "musicbrainz_release_id": release_id,
        "match_status": status,
        "match_score": round(row["score"], 4) if row["score"] is not None and status != "tagged" else None,
        "decided_by": row["decided_by"],
        "track_count": row["track_count"],
        "loudness_lufs": row["loudness_lufs"],
        "replaygain_album_gain_db": row["replaygain_album_gain_db"],
        "replaygain_album_peak": row["replaygain_album_peak"],
        "tagged": {"musicbrainz_release_id": row["tagged_release_id"],
                   "musicbrainz_release_group_id": row["tagged_release_group_id"],
                   "label": row["tagged_label"], "date": row["tagged_date"]},
        "musicbrainz": None if status in ("tagged", "pending") else {
            "release_id": row["release_id"], "release_group_id": row["release_group_id"],
            "title": row["release_title"], "artist": row["release_artist"], "label": row["label"],
            "date": row["release_date"], "track_count": row["release_track_count"], "source": row["source"],
            "fetched_at": row["fetched_at"]},
        "candidates": row["candidates"],
    }


def run_albums(args: argparse.Namespace) -> int:
    from soniquebay_assets.catalog import external

    target = existing_catalog(args)
    if target is None:
        return fail(NO_CATALOG)
    with connection(target) as conn:
        print_listing((album_json(row) for row in external.list_albums(conn, args.status)), args.json, _album_line)
    return 0


def _album_line(item: dict) -> str:
    score = f"{item['match_score']:.2f}" if item["match_score"] is not None else "   -"
    return f"{item['album_id']:>6}  {item['match_status']:<10} {score}  {item['album_artist']} - {item['title']}"


def artist_json(row: dict) -> dict:
    """The public shape of one artist: the tagged id beside what the services said."""
    return {
        "artist_id": row["artist_id"],
        "name": row["name"],
        "musicbrainz_artist_id": row["tagged_artist_id"] or row["found_artist_id"],
        "musicbrainz_artist_id_source": "tags" if row["tagged_artist_id"] else (
            "musicbrainz" if row["found_artist_id"] else None),
        "summary": row["summary"],
        "listeners": row["listeners"],
        "tags": row["tags"],
        "similar_artists": row["similar_artists"],
        "genres": row["genres"],
        "lastfm_url": row["url"],
        "fetched_at": {"musicbrainz": row["mb_fetched_at"], "lastfm": row["lastfm_fetched_at"]},
    }


def run_artists(args: argparse.Namespace) -> int:
    from soniquebay_assets.catalog import external

    target = existing_catalog(args)
    if target is None:
        return fail(NO_CATALOG)
    with connection(target) as conn:
        print_listing((artist_json(row) for row in external.list_artist_facts(conn)), args.json, _artist_line)
    return 0


def _artist_line(item: dict) -> str:
    listeners = f"{item['listeners']:>9}" if item["listeners"] is not None else "        -"
    genres = f"  [{', '.join(item['genres'])}]" if item["genres"] else ""
    return f"{item['artist_id']:>6}  {listeners}  {item['name']}{genres}"


def run_match(args: argparse.Namespace) -> int:
    from soniquebay_assets.clients.http import HttpError
    from soniquebay_assets.clients.musicbrainz import is_mbid
    from soniquebay_assets.pipeline import online

    if args.accept and not is_mbid(args.accept):
        return fail(f"--accept {args.accept!r} is not a MusicBrainz release id (36 characters, like "
                    f"b84ee12a-09ef-421b-82de-0441a926375b)")
    target = existing_catalog(args)
    if target is None:
        return fail(NO_CATALOG)
    services = online.decision_services() if args.accept else None
    with closing(services) if services is not None else nullcontext(), connection(target) as conn:
        try:
            row = online.decide_album(conn, args.album, accept=args.accept, services=services)
        except LookupError as exc:
            return fail(str(exc).strip("'\""))
        except HttpError as exc:
            return fail(f"MusicBrainz could not be asked ({exc}); nothing was changed, try again later", code=1)
    item = album_json(row)
    if args.json:
        print_json(item)
    else:
        sys.stdout.write(f"album {item['album_id']}: {item['match_status']} "
                         f"{item['musicbrainz_release_id'] or ''}\n")
    return 0
