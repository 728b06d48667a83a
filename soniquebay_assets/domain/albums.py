"""Album identity and credits: which album a track belongs to, and who is credited how."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from soniquebay_assets.domain.tag_model import TagRecord

VARIOUS_ARTISTS = "Various Artists"
VARIOUS_ARTISTS_MBID = "89ad4ac3-39f7-470e-963a-56509c546377"
UNKNOWN_ARTIST = "Unknown Artist"
_VARIOUS_NAMES = {"various artists", "various", "va", "v.a.", "v/a", "compilation"}
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=65536)
def name_key(name: str) -> str:
    """Case- and spacing-insensitive identity of a name ("The  Beatles" == "the beatles")."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", name)).strip().casefold()


def is_various(name: str | None) -> bool:
    return bool(name) and name_key(name) in _VARIOUS_NAMES


@dataclass(frozen=True)
class AlbumIdentity:
    key: str
    title: str
    album_artists: tuple[str, ...]  # empty: not tagged, derived later from the tracks
    is_compilation: bool
    title_from_fallback: bool


def album_identity(tags: TagRecord, root: str, album_folder: str) -> AlbumIdentity:
    """MusicBrainz release id when present; else album artist (Various Artists for compilations), title, folder.

    Disc folders are already collapsed in album_folder, so a two-disc set in two folders is one album.
    """
    title = (tags.album or "").strip() or (album_folder.rsplit("/", 1)[-1] if album_folder else "") or "Unknown Album"
    tagged_artists = tuple(a for a in tags.album_artists if a.strip())
    compilation = bool(tags.compilation) or any(is_various(a) for a in tagged_artists) or (
        tags.musicbrainz_album_artist_ids == [VARIOUS_ARTISTS_MBID]
    )
    album_artists = (VARIOUS_ARTISTS,) if compilation else tagged_artists
    if tags.musicbrainz_release_id:
        key = "mb:" + tags.musicbrainz_release_id.strip().lower()
    else:
        artist_part = "|".join(name_key(a) for a in album_artists)
        key = f"tag:{artist_part}{_place(title, root, album_folder)}"
    return AlbumIdentity(key, title, album_artists, compilation, "album" in tags.fallbacks or not tags.album)


def album_identity_key(tags: TagRecord, root: str, album_folder: str) -> tuple:
    """Everything album_identity reads: equal keys, equal identities (keep the two in step)."""
    return (tags.album, tuple(tags.album_artists), bool(tags.compilation),
            tags.musicbrainz_album_artist_ids == [VARIOUS_ARTISTS_MBID], tags.musicbrainz_release_id,
            "album" in tags.fallbacks, root, album_folder)


def _place(title: str, root: str, album_folder: str) -> str:
    return f"|{name_key(title)}|{root}/{album_folder.casefold()}"


def is_untagged_album_key(key: str) -> bool:
    """A key built without album artist and without release id: its tracks carry no album-artist tag."""
    return key.startswith("tag:|")


def home_for_untagged(untagged_key: str, candidates: list[tuple[str, frozenset[str]]],
                      main_artist: str | None) -> str | None:
    """The album a track without album-artist tag belongs to, among the albums of its folder.

    candidates: (album key, name keys of its album artists). Only albums with the same title in the same place
    count. One such album: that one (a file that lost its album-artist tag is still on its album). Several
    (genuinely different album artists): the one crediting the track's main artist, else None (stay apart).
    """
    place = untagged_key[len("tag:"):]
    twins = [(key, artists) for key, artists in candidates
             if key != untagged_key and key.startswith("tag:") and key.endswith(place)]
    if len(twins) == 1:
        return twins[0][0]
    main = name_key(main_artist) if main_artist else None
    crediting = [key for key, artists in twins if main and main in artists]
    return crediting[0] if len(crediting) == 1 else None


def track_credits(tags: TagRecord, split_featured) -> list[tuple[str, str]]:
    """(name, role) pairs, main artists first, then featured ones; UNKNOWN_ARTIST when nothing is tagged.
    Reads only tags.artists (callers memoize on it)."""
    mains: list[str] = []
    featured: list[str] = []
    for value in tags.artists:
        main, feat = split_featured(value)
        mains.extend(main)
        featured.extend(feat)
    credits: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for name, role in [(m, "main") for m in mains] + [(f, "featured") for f in featured]:
        name = name.strip()
        if name and (name_key(name), role) not in seen:
            seen.add((name_key(name), role))
            credits.append((name, role))
    if not any(role == "main" for _, role in credits):
        credits.insert(0, (UNKNOWN_ARTIST, "main"))
    return credits


def display_artist(credits: list[tuple[str, str]]) -> str:
    mains = [n for n, r in credits if r == "main"]
    featured = [n for n, r in credits if r == "featured"]
    text = ", ".join(mains)
    return f"{text} feat. {', '.join(featured)}" if featured else text
