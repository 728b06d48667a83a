"""Which picture to use as a cover: candidate ranking and folder-image name matching (pure, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

FRONT_COVER = 3  # ID3 / FLAC picture type "Cover (front)"
OTHER_PICTURE = 0
ARTIST_PICTURE_TYPES = frozenset({7, 8})  # lead artist / performer, artist

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
# Album folder image names by preference (compared case-folded, with "_", "-", "." and spaces alike): the first
# listed wins when several exist in one folder. After them come, in this order: Windows Media Player's
# AlbumArt_{GUID}_Large, an image named after the album ("<title>" or "<artist> - <title>"), any name holding the
# word "cover" or "front" ("Scan - Front", "00-cover"), the small thumbnails (AlbumArtSmall, AlbumArt_{GUID}_Small, thumb),
# and last the folder's only image. Names saying another side of the package (back, inlay, cd...) never count.
ALBUM_IMAGE_STEMS = ("cover", "folder", "front", "front cover", "cover front", "album", "albumart", "album art",
                     "albumcover", "album cover", "art", "artwork")
# Subfolders where rippers and scanners put the artwork ("Album/Scans/Front.jpg"); searched after the folder.
ARTWORK_SUBFOLDERS = frozenset({"scans", "scan", "artwork", "art", "covers", "cover", "images", "pictures"})
ARTIST_IMAGE_STEMS = ("artist",)
# In a folder named after the artist, these stems also describe the artist.
ARTIST_FOLDER_STEMS = ("artist", "folder", "cover")

# A folder holding one disc of a multi-disc album ("CD1", "Disc 2"): its parent may hold the cover.
_DISC_FOLDER = re.compile(r"^\s*(cd|disc|disk|dvd|side)[\s_.-]*\d{1,2}\b.*$", re.IGNORECASE)


@dataclass(frozen=True)
class CoverEntity:
    """An album or artist that wants a picture, with everything the sources may look at."""

    entity_type: str  # "album" | "artist"
    entity_id: int
    name: str  # album title or artist name
    artist: str = ""  # album artist (albums only)
    release_id: str | None = None
    release_group_id: str | None = None
    musicbrainz_artist_id: str | None = None
    track_paths: tuple[str, ...] = ()  # absolute, tracks with an embedded picture first
    folders: tuple[str, ...] = ()  # absolute folders that hold the entity's tracks
    priority: str = "normal"


@dataclass(frozen=True)
class CoverCandidate:
    """A possible picture; `data` when already in hand (embedded, folder), else `url` to download."""

    source: str
    origin: str  # file path, "path#APIC" or redacted URL: shown to people, never secret
    is_front: bool = False
    picture_type: int | None = None
    width: int | None = None
    height: int | None = None
    mime: str | None = None
    data: bytes | None = field(default=None, repr=False)
    url: str | None = None
    preference: int = 0  # source-specific order (e.g. folder stem rank): lower is better


def aspect_penalty(width: int | None, height: int | None) -> float:
    """0 for a square picture, growing with how far the aspect ratio is from 1; 0.5 when unknown."""
    if not width or not height:
        return 0.5
    ratio = max(width, height) / min(width, height)
    return ratio - 1.0


def candidate_sort_key(candidate: CoverCandidate) -> tuple:
    """Front cover first, then a known cover picture type, near-square, larger, then the source's own order."""
    front = 0 if (candidate.is_front or candidate.picture_type == FRONT_COVER) else 1
    typed = 0 if candidate.picture_type in (FRONT_COVER, OTHER_PICTURE, None) else 1
    squareish = 0 if aspect_penalty(candidate.width, candidate.height) <= 0.15 else 1
    area = (candidate.width or 0) * (candidate.height or 0)
    return (front, typed, squareish, candidate.preference, -area, aspect_penalty(candidate.width, candidate.height))


def rank_candidates(candidates: Iterable[CoverCandidate]) -> list[CoverCandidate]:
    """Best first; stable for equal keys so a source's own order breaks ties."""
    return sorted(candidates, key=candidate_sort_key)


def rank_artist_candidates(candidates: Iterable[CoverCandidate]) -> list[CoverCandidate]:
    """Artist pictures: artist picture types first, then the album ranking rules."""
    def key(c: CoverCandidate) -> tuple:
        artist_typed = 0 if c.picture_type in ARTIST_PICTURE_TYPES else 1
        return (artist_typed, *candidate_sort_key(c)[2:])

    return sorted(candidates, key=key)


def image_stem_rank(filename: str, stems: Sequence[str]) -> int | None:
    """Rank of a file name among the wanted stems (case-insensitive, allowed extensions), None if not one."""
    lowered = filename.lower()
    for ext in IMAGE_EXTENSIONS:
        if lowered.endswith(ext):
            stem = lowered[: -len(ext)].strip()
            break
    else:
        return None
    for rank, wanted in enumerate(stems):
        if stem == wanted:
            return rank
    return None


def match_folder_images(filenames: Iterable[str], stems: Sequence[str] = ALBUM_IMAGE_STEMS) -> list[str]:
    """The file names that are folder images, best first (cover before folder before front before album)."""
    ranked = [(rank, name.lower(), name) for name in filenames
              if (rank := image_stem_rank(name, stems)) is not None]
    return [name for _, _, name in sorted(ranked)]


_SEPARATORS = re.compile(r"[\s_.\-]+")
_WMP_ART = re.compile(r"^albumart_?\{[0-9a-f-]{36}\}_(large|small)$")
_NOT_FRONT = frozenset({"back", "rear", "inlay", "inside", "tray", "booklet", "spine", "matrix", "label", "insert",
                        "cd", "disc", "disk", "artist"})
_FRONT_WORDS = frozenset({"cover", "front"})


def _image_stem(filename: str) -> str | None:
    lowered = filename.casefold()
    for ext in IMAGE_EXTENSIONS:
        if lowered.endswith(ext):
            return lowered[: -len(ext)].strip()
    return None


def _words(text: str) -> str:
    return " ".join(_SEPARATORS.sub(" ", text.casefold()).split())


def album_image_rank(filename: str, album_title: str = "", artist: str = "") -> int | None:
    """Preference of a file as an album's folder image (lower is better; see ALBUM_IMAGE_STEMS), None if not one.

    The folder's-only-image rule needs the whole listing: see match_album_images.
    """
    stem = _image_stem(filename)
    if stem is None:
        return None
    words = _words(stem)
    named = len(ALBUM_IMAGE_STEMS)
    if words in ALBUM_IMAGE_STEMS:
        return ALBUM_IMAGE_STEMS.index(words)
    wmp = _WMP_ART.match(stem)
    if wmp:
        return named if wmp.group(1) == "large" else named + 3
    split = set(words.split())
    if split & _NOT_FRONT:
        return None
    title = _words(album_title)
    if title and (words == title or (artist and words == _words(f"{artist} - {album_title}"))):
        return named + 1
    if split & _FRONT_WORDS:
        return named + 2
    if words == "albumartsmall" or words == "thumb":
        return named + 3
    return None


def match_album_images(filenames: Iterable[str], album_title: str = "", artist: str = "",
                       only_image: bool = True) -> list[str]:
    """The album images among a folder's file names, best first; with `only_image`, a folder's single image
    counts too (last) unless its name says it is not the front (back, inlay, cd...)."""
    names = list(filenames)
    ranked = [(rank, name.casefold(), name) for name in names
              if (rank := album_image_rank(name, album_title, artist)) is not None]
    images = [name for name in names if _image_stem(name) is not None]
    if only_image and not ranked and len(images) == 1:
        stem_words = set(_words(_image_stem(images[0]) or "").split())
        if not stem_words & _NOT_FRONT:
            ranked.append((len(ALBUM_IMAGE_STEMS) + 4, images[0].casefold(), images[0]))
    return [name for _, _, name in sorted(ranked)]


def is_disc_folder(name: str) -> bool:
    """True for "CD1", "Disc 2", "disk_03": the album's cover may sit one level up."""
    return bool(_DISC_FOLDER.match(name))


def same_name(folder_name: str, artist: str) -> bool:
    """Whether a folder is named after the artist (casefolded, whitespace collapsed)."""
    def norm(text: str) -> str:
        return " ".join(text.casefold().split())

    return bool(artist.strip()) and norm(folder_name) == norm(artist)


# -- refresh priority ----------------------------------------------------------------------------------------
# high: added in the last RECENT_DAYS (the user just added it and is looking at it) or a big entity (a full
#       album of >= HIGH_TRACKS tracks, an artist with >= HIGH_ARTIST_TRACKS tracks);
# low:  a retry after an expired negative result, a 1-2 track fragment, or an album whose title came from
#       its file names (remote lookups by name are unreliable);
# normal: everything else. Within a level, more tracks first.
PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}
RECENT_DAYS = 7
HIGH_TRACKS = 10
HIGH_ARTIST_TRACKS = 20
LOW_TRACKS = 2


def album_priority(track_count: int, age_days: float | None, *, title_from_fallback: bool, retried: bool) -> str:
    if retried:
        return "low"
    if (age_days is not None and age_days <= RECENT_DAYS) or track_count >= HIGH_TRACKS:
        return "high"
    if track_count <= LOW_TRACKS or title_from_fallback:
        return "low"
    return "normal"


def artist_priority(track_count: int, age_days: float | None, *, retried: bool) -> str:
    if retried:
        return "low"
    if (age_days is not None and age_days <= RECENT_DAYS) or track_count >= HIGH_ARTIST_TRACKS:
        return "high"
    if track_count <= LOW_TRACKS:
        return "low"
    return "normal"


VARIOUS_ARTISTS_MBID = "89ad4ac3-39f7-470e-963a-56509c546377"  # MusicBrainz's special-purpose artist
_VARIOUS_NAMES = frozenset({"various artists", "various", "va", "multiple artists"})


def is_various_artists(name: str, mbid: str | None = None) -> bool:
    """A compilation credit, not a person: there is no picture to look for."""
    return (mbid or "").strip().lower() == VARIOUS_ARTISTS_MBID or " ".join(name.casefold().split()) in _VARIOUS_NAMES
