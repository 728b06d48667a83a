"""Cover sources: a registry of small classes, tried in the order the config gives.

Each source has a `name`, the `entity_types` it serves, `enabled`/`disabled_reason`, `find(entity)` returning
candidates (raises SourceFailure on a transient problem, returns [] on a miss) and `fetch(candidate)` -> bytes.
"""

from __future__ import annotations

import base64
import logging
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from soniquebay_assets.clients.coverartarchive import DEFAULT_BASE_URL as CAA_BASE_URL
from soniquebay_assets.clients.coverartarchive import CoverArtArchiveClient
from soniquebay_assets.clients.http import HttpClient, HttpError
from soniquebay_assets.clients.lastfm import DEFAULT_BASE_URL as LASTFM_BASE_URL
from soniquebay_assets.clients.lastfm import LastfmClient
from soniquebay_assets.domain.cover_choice import (
    ARTIST_FOLDER_STEMS,
    ARTIST_IMAGE_STEMS,
    ARTWORK_SUBFOLDERS,
    FRONT_COVER,
    CoverCandidate,
    CoverEntity,
    is_disc_folder,
    match_album_images,
    match_folder_images,
    same_name,
)
from soniquebay_assets.domain.tag_values import is_placeholder

log = logging.getLogger(__name__)

DEFAULT_ORDER = ("embedded", "folder", "coverartarchive", "lastfm")
REMOTE_MAX_BYTES = 15 * 1024 * 1024
MAX_TRACKS_READ = 4  # embedded art: tracks of one album usually share the picture


class SourceFailure(Exception):
    """A source could not answer now (network, rate limit, unreadable file); retried after a short TTL."""

    def __init__(self, reason: str, message: str = ""):
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason


class CoverSource:
    name = "base"
    entity_types: tuple[str, ...] = ("album",)
    remote = False

    @property
    def enabled(self) -> bool:
        return self.disabled_reason is None

    @property
    def disabled_reason(self) -> str | None:
        return None

    def serves(self, entity_type: str) -> bool:
        return entity_type in self.entity_types

    def applicable(self, entity: CoverEntity) -> bool:
        """Whether asking makes sense at all (e.g. the archive needs an MBID); if not, no miss is cached."""
        return self.serves(entity.entity_type)

    def find(self, entity: CoverEntity) -> list[CoverCandidate]:
        raise NotImplementedError

    def fetch(self, candidate: CoverCandidate) -> bytes:
        if candidate.data is None:
            raise SourceFailure("no_data", candidate.origin)
        return candidate.data


# -- embedded pictures ---------------------------------------------------------------------------------------


class EmbeddedSource(CoverSource):
    """Pictures inside the audio files: ID3 APIC, FLAC PICTURE, Vorbis/Opus METADATA_BLOCK_PICTURE, MP4 covr,
    ASF WM/Picture, APEv2 cover art."""

    name = "embedded"
    entity_types = ("album",)

    def __init__(self, max_tracks: int = MAX_TRACKS_READ):
        self.max_tracks = max_tracks

    def find(self, entity: CoverEntity) -> list[CoverCandidate]:
        found: list[CoverCandidate] = []
        for path in entity.track_paths[: self.max_tracks]:
            try:
                pictures = read_embedded_pictures(path)
            except Exception as exc:  # mutagen raises many types on broken files; one file never stops a run
                log.debug("embedded art unreadable in %s: %s", path, type(exc).__name__)
                continue
            found += pictures
            if any(p.is_front for p in pictures):
                break  # tracks of an album share their front cover; don't read the rest
        return found


def read_embedded_pictures(path: str) -> list[CoverCandidate]:
    """Every picture embedded in one audio file, as candidates holding their bytes."""
    import mutagen

    audio = mutagen.File(path)
    if audio is None:
        return []
    out: list[CoverCandidate] = []

    def add(data: bytes, ptype: int | None, mime: str | None, tag: str, width=None, height=None) -> None:
        if data:
            out.append(CoverCandidate(source="embedded", origin=f"{path}#{tag}", is_front=ptype == FRONT_COVER,
                                      picture_type=ptype, mime=mime or None, data=bytes(data),
                                      width=width or None, height=height or None, preference=len(out)))

    for picture in getattr(audio, "pictures", None) or []:  # FLAC PICTURE blocks
        add(picture.data, picture.type, picture.mime, "PICTURE", picture.width, picture.height)
    tags = audio.tags
    if tags is None:
        return out
    if hasattr(tags, "getall"):  # ID3 (MP3, WAV, AIFF)
        for frame in tags.getall("APIC"):
            add(frame.data, int(frame.type), frame.mime, "APIC")
        return out
    keys = {str(k).lower(): k for k in tags.keys()}
    if "covr" in keys:  # MP4: no picture type, by convention the front cover
        for cover in tags[keys["covr"]]:
            mime = {13: "image/jpeg", 14: "image/png"}.get(getattr(cover, "imageformat", 0))
            add(bytes(cover), FRONT_COVER, mime, "covr")
    if "metadata_block_picture" in keys:  # Vorbis/Opus comments: base64 FLAC picture blocks
        from mutagen.flac import Picture

        for value in tags[keys["metadata_block_picture"]]:
            try:
                picture = Picture(base64.b64decode(value))
            except Exception:
                continue
            add(picture.data, picture.type, picture.mime, "METADATA_BLOCK_PICTURE", picture.width, picture.height)
    if "wm/picture" in keys:  # ASF / WMA
        for value in tags[keys["wm/picture"]]:
            parsed = _parse_asf_picture(getattr(value, "value", value))
            if parsed:
                add(parsed[2], parsed[0], parsed[1], "WM/Picture")
    for key, ptype in (("cover art (front)", FRONT_COVER), ("cover art (back)", 4)):  # APEv2
        if key in keys:
            value = getattr(tags[keys[key]], "value", b"")
            if isinstance(value, bytes) and b"\x00" in value:
                add(value.split(b"\x00", 1)[1], ptype, None, "APE")
    return out


def _parse_asf_picture(blob: bytes) -> tuple[int, str, bytes] | None:
    """WM/Picture: type (1 byte), data length (LE u32), MIME and description (UTF-16LE, NUL-ended), data."""
    try:
        ptype, size = blob[0], struct.unpack_from("<I", blob, 1)[0]
        pos = 5
        strings = []
        for _ in range(2):
            end = pos
            while blob[end:end + 2] != b"\x00\x00":
                end += 2
            strings.append(blob[pos:end].decode("utf-16-le", errors="replace"))
            pos = end + 2
        data = blob[pos:pos + size]
        return (ptype, strings[0], data) if len(data) == size else None
    except (IndexError, struct.error, TypeError):
        return None


# -- folder images -------------------------------------------------------------------------------------------


class FolderSource(CoverSource):
    """Album images next to the tracks (cover, folder, front, albumart..., see cover_choice.ALBUM_IMAGE_STEMS),
    one level up from a disc folder, or in an artwork subfolder ("Scans"); for artists, artist.* there and
    artist/folder/cover.* in a parent folder named after the artist."""

    name = "folder"
    entity_types = ("album", "artist")

    def __init__(self, max_bytes: int = REMOTE_MAX_BYTES):
        self.max_bytes = max_bytes

    def find(self, entity: CoverEntity) -> list[CoverCandidate]:
        found: list[CoverCandidate] = []
        seen: set[str] = set()
        for folder in entity.folders:
            base = Path(folder)
            if entity.entity_type == "album":
                places = [(base, None)]
                if is_disc_folder(base.name):
                    places.append((base.parent, None))
                places += [(sub, None) for sub in _artwork_subfolders(base)]
            else:
                places = [(base, ARTIST_IMAGE_STEMS), (base.parent, ARTIST_IMAGE_STEMS)]
                if same_name(base.parent.name, entity.name):
                    places.append((base.parent, ARTIST_FOLDER_STEMS))
                if same_name(base.name, entity.name):
                    places.append((base, ARTIST_FOLDER_STEMS))
            for place, stems in places:
                files = _list_files(place)
                if stems is None:
                    names = match_album_images(files, entity.name, entity.artist,
                                               only_image=place.name.casefold() not in ARTWORK_SUBFOLDERS)
                else:
                    names = match_folder_images(files, stems)
                for name in names:
                    path = str(place / name)
                    if path in seen:
                        continue
                    seen.add(path)
                    found.append(CoverCandidate(source=self.name, origin=path, is_front=entity.entity_type == "album",
                                                url=path, preference=len(found)))
        return found

    def fetch(self, candidate: CoverCandidate) -> bytes:
        path = Path(candidate.url or candidate.origin)
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise SourceFailure("too_large", f"{path}: {size} bytes")
            return path.read_bytes()
        except OSError as exc:
            raise SourceFailure("unreadable_file", f"{path}: {type(exc).__name__}") from None


def _artwork_subfolders(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return sorted(folder / e.name for e in entries
                          if e.is_dir(follow_symlinks=False) and e.name.casefold() in ARTWORK_SUBFOLDERS)
    except OSError:
        return []


def _list_files(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return [e.name for e in entries if e.is_file()]
    except OSError:
        return []


# -- remote sources ------------------------------------------------------------------------------------------


class CoverArtArchiveSource(CoverSource):
    """Cover Art Archive by release MBID, then release-group MBID."""

    name = "coverartarchive"
    entity_types = ("album",)
    remote = True

    def __init__(self, client: CoverArtArchiveClient, max_bytes: int = REMOTE_MAX_BYTES):
        self.client = client
        self.max_bytes = max_bytes

    def applicable(self, entity: CoverEntity) -> bool:
        return entity.entity_type == "album" and bool(entity.release_id or entity.release_group_id)

    def find(self, entity: CoverEntity) -> list[CoverCandidate]:
        if not self.applicable(entity):
            return []
        try:
            images = self.client.list_images(entity.release_id, entity.release_group_id)
        except HttpError as exc:
            raise SourceFailure(exc.reason, str(exc)) from None
        return [CoverCandidate(source=self.name, origin=self.client.http.redact(im.url), is_front=im.is_front,
                               picture_type=FRONT_COVER if im.is_front else None, url=im.url, preference=i)
                for i, im in enumerate(images)]

    def fetch(self, candidate: CoverCandidate) -> bytes:
        try:
            return self.client.download(candidate.url or "", max_bytes=self.max_bytes).content
        except HttpError as exc:
            raise SourceFailure(exc.reason, str(exc)) from None


class LastfmSource(CoverSource):
    """Last.fm album.getInfo / artist.getInfo; disabled without an API key; placeholders count as misses."""

    name = "lastfm"
    entity_types = ("album", "artist")
    remote = True

    def __init__(self, client: LastfmClient, max_bytes: int = REMOTE_MAX_BYTES):
        self.client = client
        self.max_bytes = max_bytes

    @property
    def disabled_reason(self) -> str | None:
        return None if self.client.enabled else "no API key (set SONIQUEBAY_LASTFM_API_KEY)"

    def applicable(self, entity: CoverEntity) -> bool:
        # a lookup by "Unknown Artist" (the catalog's name for untagged tracks) finds somebody else's picture
        if entity.entity_type == "album":
            return not is_placeholder(entity.name) and not is_placeholder(entity.artist)
        return not is_placeholder(entity.name)

    def find(self, entity: CoverEntity) -> list[CoverCandidate]:
        if not self.applicable(entity):
            return []
        try:
            if entity.entity_type == "album":
                # By name (with autocorrect): Last.fm knows few MusicBrainz ids, names match far more often.
                images = self.client.album_images(entity.artist, entity.name)
            else:
                images = self.client.artist_images(entity.name)
        except HttpError as exc:
            raise SourceFailure(exc.reason, str(exc)) from None
        return [CoverCandidate(source=self.name, origin=self.client.http.redact(im.url),
                               is_front=entity.entity_type == "album", url=im.url, preference=i)
                for i, im in enumerate(images[:1])]  # the largest size only: the others are the same picture

    def fetch(self, candidate: CoverCandidate) -> bytes:
        try:
            return self.client.download(candidate.url or "", max_bytes=self.max_bytes).content
        except HttpError as exc:
            raise SourceFailure(exc.reason, str(exc)) from None


# -- registry ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceOptions:
    """What a source may need: the one HttpClient, service base URLs, the Last.fm key, the image size cap."""

    http: HttpClient | None
    caa_base_url: str
    lastfm_base_url: str
    lastfm_api_key: str | None
    max_image_bytes: int

    def shared_http(self, name: str) -> HttpClient:
        if self.http is None:
            raise ValueError(f"source {name!r} needs the shared HttpClient")
        return self.http


# name -> factory: the registry. A new source is one entry here; configuration orders and selects by name.
SOURCES: dict[str, Callable[[SourceOptions], CoverSource]] = {
    "embedded": lambda o: EmbeddedSource(),
    "folder": lambda o: FolderSource(max_bytes=o.max_image_bytes),
    "coverartarchive": lambda o: CoverArtArchiveSource(
        CoverArtArchiveClient(o.shared_http("coverartarchive"), o.caa_base_url), o.max_image_bytes),
    "lastfm": lambda o: LastfmSource(
        LastfmClient(o.shared_http("lastfm"), o.lastfm_api_key, o.lastfm_base_url), o.max_image_bytes),
}
SOURCE_NAMES = tuple(SOURCES)


def build_sources(
    order: Sequence[str] = DEFAULT_ORDER,
    *,
    http: HttpClient | None = None,
    caa_base_url: str = CAA_BASE_URL,
    lastfm_base_url: str = LASTFM_BASE_URL,
    lastfm_api_key: str | None = None,
    max_image_bytes: int = REMOTE_MAX_BYTES,
) -> list[CoverSource]:
    """Sources in the configured order; remote ones share the one HttpClient. Unknown names are an error."""
    unknown = [n for n in order if n not in SOURCES]
    if unknown:
        raise ValueError(f"unknown cover source(s) {unknown}; choose from {', '.join(SOURCE_NAMES)}")
    options = SourceOptions(http, caa_base_url, lastfm_base_url, lastfm_api_key, max_image_bytes)
    return [SOURCES[name](options) for name in dict.fromkeys(order)]  # keep order, drop duplicates
