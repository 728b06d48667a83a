"""One mapping table per tag format, and the flatteners that turn a mutagen tag object into plain values.

A flattener returns `RawTags`: native key (normalized as the table spells it) -> list of raw values, plus whether
a picture is embedded. `apply_mapping` then walks the format's table (field -> native keys in priority order;
the first key with a non-empty value wins) and normalizes values with `tag_values`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from soniquebay_assets.domain import tag_values as tv
from soniquebay_assets.domain.tag_model import TagRecord

# Field names are TagRecord attributes; "track" and "disc" read "n/N" pairs into *_number and *_total.
FIELDS = (
    "title", "artists", "album", "album_artists", "track", "track_total", "disc", "disc_total", "date",
    "original_date", "genres", "composers", "musicbrainz_recording_id", "musicbrainz_track_id",
    "musicbrainz_release_id", "musicbrainz_release_group_id", "musicbrainz_artist_ids",
    "musicbrainz_album_artist_ids", "replaygain_track_gain", "replaygain_track_peak", "replaygain_album_gain",
    "replaygain_album_peak", "bpm", "initial_key", "compilation", "label", "isrc", "comment",
)

# ID3 (v2.2 and v2.3 frames arrive translated to v2.4 names by mutagen; ID3v1 arrives as v2.4 frames too).
# TXXX keys are "TXXX:" + the description in lower case; RVA2 keys are "RVA2:<id>:gain|peak".
ID3_MAP: dict[str, tuple[str, ...]] = {
    "title": ("TIT2",),
    "artists": ("TPE1", "TXXX:artists"),
    "album": ("TALB",),
    "album_artists": ("TPE2", "TXXX:album artist", "TXXX:albumartist"),
    "track": ("TRCK",),
    "track_total": ("TXXX:tracktotal", "TXXX:totaltracks"),
    "disc": ("TPOS",),
    "disc_total": ("TXXX:disctotal", "TXXX:totaldiscs"),
    "date": ("TDRC", "TXXX:date", "TXXX:year"),
    "original_date": ("TDOR", "TXXX:originaldate", "TXXX:originalyear"),
    "genres": ("TCON",),
    "composers": ("TCOM",),
    "musicbrainz_recording_id": ("UFID:http://musicbrainz.org", "TXXX:musicbrainz_trackid",
                                 "TXXX:musicbrainz track id"),
    "musicbrainz_track_id": ("TXXX:musicbrainz release track id", "TXXX:musicbrainz_releasetrackid"),
    "musicbrainz_release_id": ("TXXX:musicbrainz album id", "TXXX:musicbrainz_albumid"),
    "musicbrainz_release_group_id": ("TXXX:musicbrainz release group id", "TXXX:musicbrainz_releasegroupid"),
    "musicbrainz_artist_ids": ("TXXX:musicbrainz artist id", "TXXX:musicbrainz_artistid"),
    "musicbrainz_album_artist_ids": ("TXXX:musicbrainz album artist id", "TXXX:musicbrainz_albumartistid"),
    "replaygain_track_gain": ("TXXX:replaygain_track_gain", "RVA2:track:gain"),
    "replaygain_track_peak": ("TXXX:replaygain_track_peak", "RVA2:track:peak"),
    "replaygain_album_gain": ("TXXX:replaygain_album_gain", "RVA2:album:gain"),
    "replaygain_album_peak": ("TXXX:replaygain_album_peak", "RVA2:album:peak"),
    "bpm": ("TBPM", "TXXX:bpm"),
    "initial_key": ("TKEY", "TXXX:initialkey", "TXXX:key"),
    "compilation": ("TCMP", "TXXX:compilation", "TXXX:itunescompilation"),
    "label": ("TPUB", "TXXX:label", "TXXX:organization", "TXXX:publisher"),
    "isrc": ("TSRC", "TXXX:isrc"),
    "comment": ("COMM",),
}

# Vorbis comments (FLAC, Ogg Vorbis, Opus, Ogg FLAC, Speex): keys upper-cased; repeated fields are multi-values.
VORBIS_MAP: dict[str, tuple[str, ...]] = {
    "title": ("TITLE",),
    "artists": ("ARTIST", "ARTISTS"),
    "album": ("ALBUM",),
    "album_artists": ("ALBUMARTIST", "ALBUM ARTIST", "ALBUM_ARTIST"),
    "track": ("TRACKNUMBER",),
    "track_total": ("TRACKTOTAL", "TOTALTRACKS"),
    "disc": ("DISCNUMBER",),
    "disc_total": ("DISCTOTAL", "TOTALDISCS"),
    "date": ("DATE", "YEAR"),
    "original_date": ("ORIGINALDATE", "ORIGINALYEAR"),
    "genres": ("GENRE",),
    "composers": ("COMPOSER",),
    "musicbrainz_recording_id": ("MUSICBRAINZ_TRACKID",),
    "musicbrainz_track_id": ("MUSICBRAINZ_RELEASETRACKID",),
    "musicbrainz_release_id": ("MUSICBRAINZ_ALBUMID",),
    "musicbrainz_release_group_id": ("MUSICBRAINZ_RELEASEGROUPID",),
    "musicbrainz_artist_ids": ("MUSICBRAINZ_ARTISTID",),
    "musicbrainz_album_artist_ids": ("MUSICBRAINZ_ALBUMARTISTID",),
    "replaygain_track_gain": ("REPLAYGAIN_TRACK_GAIN", "R128_TRACK_GAIN"),
    "replaygain_track_peak": ("REPLAYGAIN_TRACK_PEAK",),
    "replaygain_album_gain": ("REPLAYGAIN_ALBUM_GAIN", "R128_ALBUM_GAIN"),
    "replaygain_album_peak": ("REPLAYGAIN_ALBUM_PEAK",),
    "bpm": ("BPM", "TEMPO"),
    "initial_key": ("INITIALKEY", "KEY"),
    "compilation": ("COMPILATION",),
    "label": ("LABEL", "ORGANIZATION", "PUBLISHER"),
    "isrc": ("ISRC",),
    "comment": ("COMMENT", "DESCRIPTION"),
}

_ITUNES = "----:com.apple.itunes:"  # freeform atoms, looked up in lower case

MP4_MAP: dict[str, tuple[str, ...]] = {
    "title": ("\xa9nam",),
    "artists": ("\xa9ART", _ITUNES + "artists"),
    "album": ("\xa9alb",),
    "album_artists": ("aART",),
    "track": ("trkn",),
    "track_total": (),
    "disc": ("disk",),
    "disc_total": (),
    "date": ("\xa9day",),
    "original_date": (_ITUNES + "originaldate", _ITUNES + "originalyear"),
    "genres": ("\xa9gen",),  # mutagen turns numeric "gnre" into "\xa9gen" names
    "composers": ("\xa9wrt",),
    "musicbrainz_recording_id": (_ITUNES + "musicbrainz track id",),
    "musicbrainz_track_id": (_ITUNES + "musicbrainz release track id",),
    "musicbrainz_release_id": (_ITUNES + "musicbrainz album id",),
    "musicbrainz_release_group_id": (_ITUNES + "musicbrainz release group id",),
    "musicbrainz_artist_ids": (_ITUNES + "musicbrainz artist id",),
    "musicbrainz_album_artist_ids": (_ITUNES + "musicbrainz album artist id",),
    "replaygain_track_gain": (_ITUNES + "replaygain_track_gain",),
    "replaygain_track_peak": (_ITUNES + "replaygain_track_peak",),
    "replaygain_album_gain": (_ITUNES + "replaygain_album_gain",),
    "replaygain_album_peak": (_ITUNES + "replaygain_album_peak",),
    "bpm": ("tmpo", _ITUNES + "bpm"),
    "initial_key": (_ITUNES + "initialkey", _ITUNES + "key"),
    "compilation": ("cpil",),
    "label": (_ITUNES + "label", _ITUNES + "publisher"),
    "isrc": (_ITUNES + "isrc",),
    "comment": ("\xa9cmt",),
}

# APEv2 (Monkey's Audio, WavPack, Musepack, OptimFROG, TAK, TTA, and APE-tagged MP3/AAC): keys in lower case.
APE_MAP: dict[str, tuple[str, ...]] = {
    "title": ("title",),
    "artists": ("artist", "artists"),
    "album": ("album",),
    "album_artists": ("album artist", "albumartist"),
    "track": ("track", "tracknumber"),
    "track_total": ("tracktotal", "totaltracks"),
    "disc": ("disc", "discnumber"),
    "disc_total": ("disctotal", "totaldiscs"),
    "date": ("year", "date"),
    "original_date": ("original date", "originaldate", "originalyear"),
    "genres": ("genre",),
    "composers": ("composer",),
    "musicbrainz_recording_id": ("musicbrainz_trackid",),
    "musicbrainz_track_id": ("musicbrainz_releasetrackid",),
    "musicbrainz_release_id": ("musicbrainz_albumid",),
    "musicbrainz_release_group_id": ("musicbrainz_releasegroupid",),
    "musicbrainz_artist_ids": ("musicbrainz_artistid",),
    "musicbrainz_album_artist_ids": ("musicbrainz_albumartistid",),
    "replaygain_track_gain": ("replaygain_track_gain",),
    "replaygain_track_peak": ("replaygain_track_peak",),
    "replaygain_album_gain": ("replaygain_album_gain",),
    "replaygain_album_peak": ("replaygain_album_peak",),
    "bpm": ("bpm",),
    "initial_key": ("initialkey", "key"),
    "compilation": ("compilation",),
    "label": ("label", "publisher"),
    "isrc": ("isrc",),
    "comment": ("comment",),
}

# ASF/WMA: attribute names in lower case. (WM/Track is zero-based and deprecated: WM/TrackNumber only.)
ASF_MAP: dict[str, tuple[str, ...]] = {
    "title": ("title",),
    "artists": ("author", "wm/artists"),
    "album": ("wm/albumtitle",),
    "album_artists": ("wm/albumartist",),
    "track": ("wm/tracknumber",),
    "track_total": ("totaltracks", "wm/tracktotal"),
    "disc": ("wm/partofset",),
    "disc_total": ("totaldiscs",),
    "date": ("wm/year",),
    "original_date": ("wm/originalreleasetime", "wm/originalreleaseyear"),
    "genres": ("wm/genre",),
    "composers": ("wm/composer",),
    "musicbrainz_recording_id": ("musicbrainz/track id",),
    "musicbrainz_track_id": ("musicbrainz/release track id",),
    "musicbrainz_release_id": ("musicbrainz/album id",),
    "musicbrainz_release_group_id": ("musicbrainz/release group id",),
    "musicbrainz_artist_ids": ("musicbrainz/artist id",),
    "musicbrainz_album_artist_ids": ("musicbrainz/album artist id",),
    "replaygain_track_gain": ("replaygain_track_gain",),
    "replaygain_track_peak": ("replaygain_track_peak",),
    "replaygain_album_gain": ("replaygain_album_gain",),
    "replaygain_album_peak": ("replaygain_album_peak",),
    "bpm": ("wm/beatsperminute",),
    "initial_key": ("wm/initialkey",),
    "compilation": ("wm/iscompilation",),
    "label": ("wm/publisher",),
    "isrc": ("wm/isrc",),
    "comment": ("description",),
}

TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    "id3": ID3_MAP, "vorbis": VORBIS_MAP, "mp4": MP4_MAP, "ape": APE_MAP, "asf": ASF_MAP,
}


@dataclass
class RawTags:
    """Plain values of one tag block: family ("id3", "vorbis", "mp4", "ape", "asf") and native key -> values."""

    family: str
    values: dict[str, list[Any]] = field(default_factory=dict)
    picture: bool = False
    slash_joined: bool = False  # ID3v2.2/v2.3: several artists may be one "A/B" string
    formats: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- flatteners


def flatten_id3(tags: Any) -> RawTags:
    """ID3 frames -> RawTags; TCON resolved through mutagen's genre list ("(17)" and "17" -> "Rock")."""
    version = tuple(getattr(tags, "version", (2, 4, 0)) or (2, 4, 0))
    raw = RawTags("id3", slash_joined=version[:2] in ((2, 2), (2, 3)))
    raw.formats.append("id3v1" if version[0] == 1 else f"id3v2.{version[1]}")
    values = raw.values
    comments: list[str] = []
    for key, frame in tags.items():
        frame_id = key[:4]
        if frame_id == "APIC" or frame_id == "PIC:":
            raw.picture = True
        elif frame_id == "TXXX":
            values.setdefault("TXXX:" + frame.desc.lower(), []).extend(str(t) for t in frame.text)
        elif frame_id == "TCON":
            values["TCON"] = list(frame.genres)
        elif frame_id == "UFID":
            data = frame.data.decode("ascii", "replace") if isinstance(frame.data, bytes) else str(frame.data)
            values["UFID:" + frame.owner.lower()] = [data]
        elif frame_id == "COMM":
            # iTunes stores machine data (iTunNORM, iTunSMPB, iTunPGAP...) in COMM frames: skip those.
            if not str(frame.desc).startswith("iTun"):
                comments.extend(str(t) for t in frame.text)
        elif frame_id == "RVA2":
            if getattr(frame, "channel", None) == 1:  # master volume only
                ident = str(frame.desc).lower()
                values[f"RVA2:{ident}:gain"] = [frame.gain]
                values[f"RVA2:{ident}:peak"] = [frame.peak]
        elif frame_id[0] == "T" and hasattr(frame, "text"):
            values[key] = [str(t) for t in frame.text]
    if comments:
        values["COMM"] = comments
    return raw


def flatten_vorbis(tags: Any, flac_pictures: list | None = None) -> RawTags:
    """Vorbis comment pairs -> RawTags (keys upper-cased, repeated keys kept as several values). Opus R128 gains
    (Q7.8 dB relative to -23 LUFS) read as ReplayGain gains (-18 LUFS reference)."""
    raw = RawTags("vorbis", formats=["vorbis"])
    values = raw.values
    for key, value in list.__iter__(tags):
        values.setdefault(key.upper(), []).append(value)
    for key in ("R128_TRACK_GAIN", "R128_ALBUM_GAIN"):
        if key in values:
            text = str(values[key][0]).strip()
            values[key] = [f"{int(text) / 256 + 5:.2f} dB"] if text.lstrip("+-").isdigit() else []
    raw.picture = bool(flac_pictures) or "METADATA_BLOCK_PICTURE" in values or "COVERART" in values
    return raw


def flatten_mp4(tags: Any) -> RawTags:
    """MP4 atoms -> RawTags; freeform atoms are decoded as UTF-8 and looked up in lower case."""
    raw = RawTags("mp4", formats=["mp4"])
    values = raw.values
    for key, value in tags.items():
        if key == "covr":
            raw.picture = bool(value)
            continue
        items = value if isinstance(value, list) else [value]
        if key.startswith("----"):
            values[key.lower()] = [
                bytes(v).decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v) for v in items
            ]
        else:
            values[key] = list(items)
    return raw


def flatten_ape(tags: Any) -> RawTags:
    """APEv2 items -> RawTags; text items split into their NUL-separated values, binary items skipped."""
    raw = RawTags("ape", formats=["apev2"])
    values = raw.values
    for key, value in tags.items():
        lowered = key.lower()
        if lowered.startswith("cover art"):
            raw.picture = True
            continue
        kind = type(value).__name__
        if kind == "APETextValue":
            values[lowered] = list(value)
        elif kind == "APEExtValue":
            values[lowered] = [str(value)]
    return raw


def flatten_asf(tags: Any) -> RawTags:
    """ASF attributes -> RawTags (names in lower case); byte-array attributes skipped except WM/Picture."""
    raw = RawTags("asf", formats=["asf"])
    values = raw.values
    for key, attrs in tags.items():
        lowered = key.lower()
        if lowered == "wm/picture":
            raw.picture = bool(attrs)
            continue
        items = [getattr(a, "value", a) for a in attrs]
        items = [v for v in items if not isinstance(v, (bytes, bytearray))]
        if items:
            values.setdefault(lowered, []).extend(items)
    return raw


# ---------------------------------------------------------------------------------------------- mapping

_SINGLE_TEXT = {"title", "album", "initial_key", "label", "isrc", "comment"}
_PEOPLE = {"artists", "album_artists", "composers"}
_MBID = {"musicbrainz_recording_id", "musicbrainz_track_id", "musicbrainz_release_id",
         "musicbrainz_release_group_id"}
_MBID_LISTS = {"musicbrainz_artist_ids", "musicbrainz_album_artist_ids"}
_PEOPLE_IDS = {"artists": "musicbrainz_artist_ids", "album_artists": "musicbrainz_album_artist_ids"}


def _reverse(table: dict[str, tuple[str, ...]]) -> dict[str, list[tuple[str, int]]]:
    reverse: dict[str, list[tuple[str, int]]] = {}
    for name, keys in table.items():
        for priority, key in enumerate(keys):
            reverse.setdefault(key, []).append((name, priority))
    return reverse


# native key -> [(field, priority)]: a file is mapped by walking the few keys it has, not every table entry.
_REVERSE = {family: _reverse(table) for family, table in TABLES.items()}


def _non_empty(values: list[Any]) -> bool:
    return any(str(v).strip() for v in values)


def _select(raw: RawTags) -> dict[str, list[Any]]:
    """field -> values of its highest-priority native key present in `raw` with a non-empty value."""
    reverse = _REVERSE[raw.family]
    best: dict[str, tuple[int, list[Any]]] = {}
    for key, values in raw.values.items():
        hits = reverse.get(key)
        if not hits or not values or not _non_empty(values):
            continue
        for name, priority in hits:
            current = best.get(name)
            if current is None or priority < current[0]:
                # a placeholder ("<Unknown>", "(None)") is no value: a lower-priority key may still give one
                kept = tv.drop_placeholders(values, name)
                if kept:
                    best[name] = (priority, kept)
    return {name: values for name, (_, values) in best.items()}


def apply_mapping(raw: RawTags, record: TagRecord) -> TagRecord:
    """Fill `record` from `raw` through its format's table; only empty record fields are filled."""
    selected = _select(raw)
    # MBID lists first: their count guides how a v2.3 "A/B" artist string is split.
    for name in ("musicbrainz_artist_ids", "musicbrainz_album_artist_ids"):
        if not getattr(record, name) and name in selected:
            ids, rejected = tv.normalize_mbid_list(selected[name])
            setattr(record, name, ids)
            if rejected:
                record.warnings.append(f"{name}: not MusicBrainz ids: {', '.join(rejected)[:120]}")
    for name in FIELDS:
        if name in selected and name not in _MBID_LISTS and name not in ("track_total", "disc_total"):
            _set_field(record, name, selected[name], raw)
    # A separate TRACKTOTAL/DISCTOTAL field only fills the total when the "n/N" form did not carry one.
    for name in ("track_total", "disc_total"):
        if getattr(record, name) is None and name in selected:
            setattr(record, name, tv.parse_int(selected[name][0]))
    if raw.picture:
        record.has_embedded_picture = True
    for fmt in raw.formats:
        if fmt not in record.tag_formats:
            record.tag_formats.append(fmt)
    return record


def _set_field(record: TagRecord, name: str, values: list[Any], raw: RawTags) -> None:
    if name in _SINGLE_TEXT:
        if getattr(record, name) is None:
            setattr(record, name, tv.first_value(values))
    elif name in _PEOPLE:
        if not getattr(record, name):
            ids = getattr(record, _PEOPLE_IDS[name], None) if name in _PEOPLE_IDS else None
            setattr(record, name, tv.split_people(values, raw.slash_joined, len(ids) if ids else None))
    elif name == "genres":
        if not record.genres:
            record.genres = tv.split_genres(values)
    elif name in ("track", "disc"):
        number, total = tv.parse_number_pair(values[0])
        if getattr(record, f"{name}_number") is None:
            setattr(record, f"{name}_number", number)
        if total is not None and getattr(record, f"{name}_total") is None:
            setattr(record, f"{name}_total", total)
    elif name in ("date", "original_date"):
        if getattr(record, name) is None:
            value, warning = tv.normalize_date(tv.first_value(values))
            setattr(record, name, value)
            if warning:
                record.warnings.append(f"{name}: {warning}")
    elif name in _MBID:
        if getattr(record, name) is None:
            text = tv.first_value(values)
            mbid = tv.normalize_mbid(text)
            setattr(record, name, mbid)
            if mbid is None and text:
                record.warnings.append(f"{name}: {text[:60]!r} is not a MusicBrainz id")
    elif name.endswith("_gain"):
        if getattr(record, name) is None:
            setattr(record, name, tv.parse_replaygain_gain(values[0]))
    elif name.endswith("_peak"):
        if getattr(record, name) is None:
            setattr(record, name, tv.parse_replaygain_peak(values[0]))
    elif name == "bpm":
        if record.bpm is None:
            record.bpm = tv.parse_bpm(values[0])
    elif name == "compilation":
        if record.compilation is None:
            record.compilation = tv.parse_bool(values[0])
