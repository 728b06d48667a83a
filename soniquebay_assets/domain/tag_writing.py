"""What tag write-back writes, and where: per-format field tables, value formats, and the change plan for one file.

Pure: the library layer hands in a file's current values (native key -> text values) and writes the plan back.
Tag names follow what players read and what Picard and beets write (docs/write-back.md has the tables).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from soniquebay_assets.domain import tag_mappings as tm
from soniquebay_assets.domain import tag_values as tv
from soniquebay_assets.domain.cover_choice import VARIOUS_ARTISTS_MBID, is_disc_folder, is_various_artists
from soniquebay_assets.domain.embedding_text import camelot_code, parse_key

# What a user asks for on the command line (and in SONIQUEBAY_WRITE_TAGS) -> the fields written.
FIELD_GROUPS: dict[str, tuple[str, ...]] = {
    "replaygain": ("replaygain_track_gain", "replaygain_track_peak", "replaygain_album_gain", "replaygain_album_peak"),
    "bpm": ("bpm",),
    "key": ("initial_key",),
    "musicbrainz_ids": ("musicbrainz_recording_id", "musicbrainz_release_id", "musicbrainz_release_group_id",
                        "musicbrainz_artist_ids", "musicbrainz_album_artist_ids"),
}
COVERS = "covers"  # a cover.jpg file beside the tracks, not a tag
GROUPS = (*FIELD_GROUPS, COVERS)
GROUP_ALIASES = {"rg": "replaygain", "replay_gain": "replaygain", "tempo": "bpm", "initial_key": "key",
                 "mbid": "musicbrainz_ids", "mbids": "musicbrainz_ids", "musicbrainz": "musicbrainz_ids",
                 "cover": "covers"}

# Measurements: the file's value is replaced (a ReplayGain from another scanner or reference level would mix
# with ours). Human or tool choices (BPM, key) are only filled in unless the user asks to overwrite them;
# identifiers are only filled in (a tagged id is what the tagger matched; ours may be a guess).
REPLACED_FIELDS = frozenset(FIELD_GROUPS["replaygain"])
OVERWRITABLE_FIELDS = frozenset({"bpm", "initial_key"})
LIST_FIELDS = frozenset({"musicbrainz_artist_ids", "musicbrainz_album_artist_ids"})

KEY_NOTATIONS = ("standard", "camelot", "openkey")

_TXXX = "TXXX:"
_ITUNES = "----:com.apple.iTunes:"

# Native key written for each field, per container kind. "opus" is the Vorbis comment of an Ogg Opus stream,
# which carries R128 gains instead of ReplayGain (RFC 7845 section 5.2.1).
WRITE_TABLES: dict[str, dict[str, str]] = {
    "id3": {
        "replaygain_track_gain": _TXXX + "REPLAYGAIN_TRACK_GAIN",
        "replaygain_track_peak": _TXXX + "REPLAYGAIN_TRACK_PEAK",
        "replaygain_album_gain": _TXXX + "REPLAYGAIN_ALBUM_GAIN",
        "replaygain_album_peak": _TXXX + "REPLAYGAIN_ALBUM_PEAK",
        "bpm": "TBPM",
        "initial_key": "TKEY",
        "musicbrainz_recording_id": "UFID:http://musicbrainz.org",
        "musicbrainz_release_id": _TXXX + "MusicBrainz Album Id",
        "musicbrainz_release_group_id": _TXXX + "MusicBrainz Release Group Id",
        "musicbrainz_artist_ids": _TXXX + "MusicBrainz Artist Id",
        "musicbrainz_album_artist_ids": _TXXX + "MusicBrainz Album Artist Id",
    },
    "vorbis": {
        "replaygain_track_gain": "REPLAYGAIN_TRACK_GAIN",
        "replaygain_track_peak": "REPLAYGAIN_TRACK_PEAK",
        "replaygain_album_gain": "REPLAYGAIN_ALBUM_GAIN",
        "replaygain_album_peak": "REPLAYGAIN_ALBUM_PEAK",
        "bpm": "BPM",
        "initial_key": "INITIALKEY",
        "musicbrainz_recording_id": "MUSICBRAINZ_TRACKID",
        "musicbrainz_release_id": "MUSICBRAINZ_ALBUMID",
        "musicbrainz_release_group_id": "MUSICBRAINZ_RELEASEGROUPID",
        "musicbrainz_artist_ids": "MUSICBRAINZ_ARTISTID",
        "musicbrainz_album_artist_ids": "MUSICBRAINZ_ALBUMARTISTID",
    },
    "mp4": {
        "replaygain_track_gain": _ITUNES + "replaygain_track_gain",
        "replaygain_track_peak": _ITUNES + "replaygain_track_peak",
        "replaygain_album_gain": _ITUNES + "replaygain_album_gain",
        "replaygain_album_peak": _ITUNES + "replaygain_album_peak",
        "bpm": "tmpo",
        "initial_key": _ITUNES + "initialkey",
        "musicbrainz_recording_id": _ITUNES + "MusicBrainz Track Id",
        "musicbrainz_release_id": _ITUNES + "MusicBrainz Album Id",
        "musicbrainz_release_group_id": _ITUNES + "MusicBrainz Release Group Id",
        "musicbrainz_artist_ids": _ITUNES + "MusicBrainz Artist Id",
        "musicbrainz_album_artist_ids": _ITUNES + "MusicBrainz Album Artist Id",
    },
    "asf": {
        "replaygain_track_gain": "REPLAYGAIN_TRACK_GAIN",
        "replaygain_track_peak": "REPLAYGAIN_TRACK_PEAK",
        "replaygain_album_gain": "REPLAYGAIN_ALBUM_GAIN",
        "replaygain_album_peak": "REPLAYGAIN_ALBUM_PEAK",
        "bpm": "WM/BeatsPerMinute",
        "initial_key": "WM/InitialKey",
        "musicbrainz_recording_id": "MusicBrainz/Track Id",
        "musicbrainz_release_id": "MusicBrainz/Album Id",
        "musicbrainz_release_group_id": "MusicBrainz/Release Group Id",
        "musicbrainz_artist_ids": "MusicBrainz/Artist Id",
        "musicbrainz_album_artist_ids": "MusicBrainz/Album Artist Id",
    },
}
WRITE_TABLES["ape"] = dict(WRITE_TABLES["vorbis"])  # APEv2 items carry the Vorbis comment names (Picard, beets)
_OPUS = dict(WRITE_TABLES["vorbis"])
for _name in FIELD_GROUPS["replaygain"]:
    del _OPUS[_name]
_OPUS["replaygain_track_gain"] = "R128_TRACK_GAIN"
_OPUS["replaygain_album_gain"] = "R128_ALBUM_GAIN"
WRITE_TABLES["opus"] = _OPUS
# Opus carries no peak tag: R128 gains leave clipping prevention to the decoder.
# Tags that must go when an Opus file gets its R128 gains (RFC 7845: "SHOULD NOT contain" them).
OPUS_OBSOLETE = ("REPLAYGAIN_TRACK_GAIN", "REPLAYGAIN_TRACK_PEAK", "REPLAYGAIN_ALBUM_GAIN", "REPLAYGAIN_ALBUM_PEAK")
WRITABLE_KINDS = tuple(WRITE_TABLES)

REPLAYGAIN_REFERENCE_LUFS = -18.0
R128_REFERENCE_LUFS = -23.0  # Opus R128_*_GAIN: Q7.8 dB relative to -23 LUFS
_R128_OFFSET_DB = R128_REFERENCE_LUFS - REPLAYGAIN_REFERENCE_LUFS  # -5 dB

# The ID3 TKEY notation ("The ground keys ... "A" to "G", half keys "b" and "#", minor "m"), spelled with the
# usual key signature (fewest accidentals; F# major and Eb minor for the six-accidental keys).
_MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_NAMES = ("Cm", "C#m", "Dm", "Ebm", "Em", "Fm", "F#m", "Gm", "G#m", "Am", "Bbm", "Bm")


# ---------------------------------------------------------------------------------------------- values


def format_gain(gain_db: float) -> str:
    """ReplayGain 2.0 gain text: "-7.03 dB"."""
    return f"{gain_db:.2f} dB"


def format_peak(peak: float) -> str:
    """ReplayGain peak text, linear (1.0 = full scale): "0.988553"."""
    return f"{peak:.6f}"


def r128_gain(replaygain_db: float) -> str:
    """Opus R128 gain from a ReplayGain 2.0 gain (-18 LUFS reference): Q7.8 integer text relative to -23 LUFS."""
    q78 = round((replaygain_db + _R128_OFFSET_DB) * 256)
    return str(max(-32768, min(32767, q78)))


def format_bpm(bpm: float) -> str:
    """Whole beats per minute: the ID3 TBPM frame and the MP4 tmpo atom hold integers, and players show them so."""
    return str(int(round(bpm)))


def key_text(tonic: str, mode: str, notation: str = "standard") -> str | None:
    """A key in the chosen notation: standard "Am" / "F#" (ID3 TKEY), Camelot "8A" or Open Key "1m"."""
    parsed = parse_key(tonic, mode)
    if parsed is None:
        return None
    pitch, found_mode = parsed
    if notation == "standard":
        return (_MINOR_NAMES if found_mode == "minor" else _MAJOR_NAMES)[pitch]
    code = camelot_code(tonic, found_mode)
    if code is None:
        return None
    if notation == "camelot":
        return code
    if notation == "openkey":
        number, letter = int(code[:-1]), code[-1]
        return f"{(number - 8) % 12 + 1}{'m' if letter == 'A' else 'd'}"
    raise ValueError(f"unknown key notation {notation!r}; known: {', '.join(KEY_NOTATIONS)}")


def _key_identity(text: str) -> str | None:
    """The key a tag names, whatever its notation ("Am", "A minor", "8A", "1m"): its Camelot code."""
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[-1] in "dm" and stripped[:-1].isdigit():  # Open Key
        number = int(stripped[:-1])
        if 1 <= number <= 12:
            return f"{(number + 6) % 12 + 1}{'A' if stripped[-1] == 'm' else 'B'}"
    return camelot_code(stripped, None, stripped)


def same_value(name: str, current: Sequence[str], wanted: Sequence[str], kind: str = "") -> bool:
    """Whether a file's text values already say what we would write (number formats and id spellings aside)."""
    if not current:
        return not wanted
    if not wanted:
        return False
    if name in LIST_FIELDS:
        return tv.normalize_mbid_list(current)[0] == tv.normalize_mbid_list(wanted)[0]
    first, target = str(current[0]), str(wanted[0])
    if name.startswith("musicbrainz_"):
        return tv.normalize_mbid(first) is not None and tv.normalize_mbid(first) == tv.normalize_mbid(target)
    if name == "initial_key":
        return _key_identity(first) is not None and _key_identity(first) == _key_identity(target)
    if name == "bpm":
        have, want = tv.parse_bpm(first), tv.parse_bpm(target)
        return have is not None and want is not None and abs(have - want) < 0.5
    if name.endswith("_gain") and kind == "opus":
        return first.strip() == target.strip()
    if name.endswith("_gain") or name.endswith("_peak"):
        have, want = tv.parse_float(first), tv.parse_float(target)
        tolerance = 0.005 if name.endswith("_gain") else 5e-7
        return have is not None and want is not None and abs(have - want) < tolerance
    return first == target


# ---------------------------------------------------------------------------------------------- what to write


@dataclass(frozen=True)
class TrackFacts:
    """What the catalog knows about one track that write-back may put into its file."""

    track_id: int
    replaygain_track_gain: float | None = None
    replaygain_track_peak: float | None = None
    replaygain_album_gain: float | None = None
    replaygain_album_peak: float | None = None
    bpm: float | None = None
    bpm_confidence: float | None = None
    key: str | None = None
    mode: str | None = None
    key_confidence: float | None = None
    musicbrainz_recording_id: str | None = None
    musicbrainz_release_id: str | None = None
    musicbrainz_release_group_id: str | None = None
    musicbrainz_artist_ids: tuple[str, ...] | None = None  # None unless every credited artist has an id
    musicbrainz_album_artist_ids: tuple[str, ...] | None = None
    replaygain_note: str | None = None  # why there is no ReplayGain to write, when there is none


@dataclass(frozen=True)
class WriteOptions:
    """What the user asked for: field groups, key notation, fields whose existing values may be replaced, and
    the least analysis confidence worth writing."""

    groups: frozenset[str]
    key_notation: str = "standard"
    overwrite: frozenset[str] = frozenset()
    min_bpm_confidence: float = 0.0
    min_key_confidence: float = 0.0


def credited_ids(credits: Sequence[tuple[str, str | None]]) -> tuple[str, ...] | None:
    """The MusicBrainz ids of a credit list (name, id or None), in credit order; None unless every artist has one.
    "Various Artists" without an id gets MusicBrainz's special artist, as Picard writes it."""
    ids = []
    for name, mbid in credits:
        found = tv.normalize_mbid(mbid) or (VARIOUS_ARTISTS_MBID if is_various_artists(name) else None)
        if found is None:
            return None
        ids.append(found)
    return tuple(ids) or None


def parse_groups(text: str | Iterable[str]) -> frozenset[str]:
    """"replaygain,bpm,key" (or a list) -> the groups; raises ValueError naming the unknown ones."""
    names = text.split(",") if isinstance(text, str) else list(text)
    found, unknown = set(), []
    for raw in names:
        name = raw.strip().lower().replace("-", "_")
        if not name:
            continue
        if name == "all":
            found.update(GROUPS)
            continue
        name = GROUP_ALIASES.get(name, name)
        if name in GROUPS:
            found.add(name)
        else:
            unknown.append(raw.strip())
    if unknown:
        raise ValueError(f"unknown write-back field(s): {', '.join(unknown)}; known: {', '.join(GROUPS)}, all")
    return frozenset(found)


def wanted_values(facts: TrackFacts, options: WriteOptions) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(field -> text values to write, field -> why it is not written) for one track: only what the catalog
    knows with enough confidence; formatting is per field, the container's own form comes later."""
    wanted: dict[str, list[str]] = {}
    missing: dict[str, str] = {}
    if "replaygain" in options.groups:
        for name in FIELD_GROUPS["replaygain"]:
            value = getattr(facts, name)
            if value is None or not math.isfinite(value):
                missing[name] = facts.replaygain_note or "not measured"
            elif name.endswith("_gain"):
                wanted[name] = [format_gain(value)]
            else:
                wanted[name] = [format_peak(value)]
    if "bpm" in options.groups:
        if facts.bpm is None or not 0 < facts.bpm < 1000:
            missing["bpm"] = "not measured"
        elif (facts.bpm_confidence or 0.0) < options.min_bpm_confidence:
            missing["bpm"] = "low confidence"
        else:
            wanted["bpm"] = [format_bpm(facts.bpm)]
    if "key" in options.groups:
        text = key_text(facts.key, facts.mode or "", options.key_notation) if facts.key else None
        if text is None:
            missing["initial_key"] = "not measured"
        elif (facts.key_confidence or 0.0) < options.min_key_confidence:
            missing["initial_key"] = "low confidence"
        else:
            wanted["initial_key"] = [text]
    if "musicbrainz_ids" in options.groups:
        for name in FIELD_GROUPS["musicbrainz_ids"]:
            value = getattr(facts, name)
            if isinstance(value, tuple):
                ids = [v for v in (tv.normalize_mbid(x) for x in value) if v]
                if ids and len(ids) == len(value):
                    wanted[name] = ids
                else:
                    missing[name] = "not every credited artist has an id"
            elif value and tv.normalize_mbid(value):
                wanted[name] = [tv.normalize_mbid(value)]
            else:
                missing[name] = "not known"
    return wanted, missing


# ---------------------------------------------------------------------------------------------- the plan


def normalize_key(kind: str, key: str) -> str:
    """A native key as the reading tables spell it (tag_mappings): case differences are the same tag."""
    if kind == "id3":
        if key.startswith(_TXXX):
            return _TXXX + key[len(_TXXX):].lower()
        if key.startswith("UFID:"):
            return key[:5] + key[5:].lower()
        return key
    if kind in ("vorbis", "opus"):
        return key.upper()
    if kind == "mp4":
        return key.lower() if key.startswith("----") else key
    return key.lower()


def _read_family(kind: str) -> str:
    return "vorbis" if kind == "opus" else kind


def _aliases(kind: str, name: str) -> tuple[str, ...]:
    """Every native key the catalog reads this field from in this kind of tag, plus the one we write."""
    written = normalize_key(kind, WRITE_TABLES[kind][name])
    read = tm.TABLES[_read_family(kind)].get(name, ())
    return tuple(dict.fromkeys((written, *read)))


@dataclass(frozen=True)
class KeyChange:
    """One native key of a file: its text values before (None: absent) and after (None: removed)."""

    field: str
    key: str
    before: tuple[str, ...] | None
    after: tuple[str, ...] | None


@dataclass
class FilePlan:
    """The changes for one file, and the fields left as they are with the reason."""

    kind: str
    changes: list[KeyChange] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # field -> why not written

    @property
    def changed_fields(self) -> list[str]:
        return list(dict.fromkeys(c.field for c in self.changes if c.after is not None))


def _opus_wanted(wanted: Mapping[str, list[str]]) -> dict[str, list[str]]:
    out = {k: v for k, v in wanted.items() if not k.startswith("replaygain_")}
    for name in ("replaygain_track_gain", "replaygain_album_gain"):
        if name in wanted:
            gain = tv.parse_float(wanted[name][0])
            if gain is not None:
                out[name] = [r128_gain(gain)]
    return out


def plan_file(kind: str, current: Mapping[str, Sequence[str]], wanted: Mapping[str, list[str]],
              overwrite: Iterable[str] = ()) -> FilePlan:
    """Which native keys of a file to set or remove so that it carries `wanted` (field -> text values).

    `current` maps each native key the file holds (exactly as stored) to its text values. ReplayGain is
    replaced (variants of the key in another case are removed); BPM and key only fill a gap unless the field is
    in `overwrite`; ids only fill a gap. A value the file already holds is never rewritten."""
    if kind not in WRITE_TABLES:
        raise ValueError(f"no write table for tag kind {kind!r}")
    table = WRITE_TABLES[kind]
    replace_ok = REPLACED_FIELDS | (OVERWRITABLE_FIELDS & set(overwrite))
    plan = FilePlan(kind)
    by_normal: dict[str, list[str]] = {}
    for key in current:
        by_normal.setdefault(normalize_key(kind, key), []).append(key)
    targets = _opus_wanted(wanted) if kind == "opus" else dict(wanted)
    if kind == "opus":
        for name in ("replaygain_track_peak", "replaygain_album_peak"):
            if name in wanted:
                plan.kept[name] = "Opus has no peak tag (R128 gains only)"
    for name, values in targets.items():
        slot = table.get(name)
        if slot is None:
            plan.kept[name] = f"no {name} tag in {kind}"
            continue
        exact = by_normal.get(normalize_key(kind, slot), [])
        present = [(key, list(current[key])) for alias in _aliases(kind, name) for key in by_normal.get(alias, ())
                   if _has_text(current[key])]
        after = tuple(values)
        if name not in replace_ok and present:
            holding = present[0][1]
            if not same_value(name, holding, values, kind):
                plan.kept[name] = f"the file already has {', '.join(holding)[:80]!r}"
            continue
        if len(exact) == 1 and exact[0] == slot and same_value(name, current[slot], values, kind) \
                and (name not in OVERWRITABLE_FIELDS or list(current[slot]) == list(values)):
            continue
        for key in exact:
            if key != slot:
                plan.changes.append(KeyChange(name, key, tuple(current[key]), None))
        before = tuple(current[slot]) if slot in current else None
        plan.changes.append(KeyChange(name, slot, before, after))
    if kind == "opus" and any(n in targets for n in ("replaygain_track_gain", "replaygain_album_gain")):
        obsolete = {normalize_key(kind, k) for k in OPUS_OBSOLETE}
        for key in current:
            if normalize_key(kind, key) in obsolete:
                plan.changes.append(KeyChange("replaygain_" + key.lower().split("_", 1)[1], key,
                                              tuple(current[key]), None))
    return plan


def _has_text(values: Sequence[str]) -> bool:
    return any(str(v).strip() for v in values)


def ascii_only(values: Iterable[str]) -> bool:
    """Every value we write is ASCII (numbers, key names, UUIDs): any ID3 text encoding holds it."""
    return all(str(v).isascii() for v in values)


# ---------------------------------------------------------------------------------------------- folder covers

COVER_FILE_NAME = "cover.jpg"  # what Navidrome, Jellyfin and most players look for first


def cover_folders(track_paths: Iterable[str], root: str) -> list[str]:
    """The folders an album's cover file goes into: each folder holding its tracks, or the folder above a disc
    folder ("CD1", "Disc 2"); never the library root itself (it holds other albums)."""
    top = os.path.normpath(root)
    found: dict[str, None] = {}
    for path in track_paths:
        folder = os.path.dirname(os.path.normpath(path))
        parent = os.path.dirname(folder)
        if is_disc_folder(os.path.basename(folder)) and parent != top and parent.startswith(top + os.sep):
            folder = parent
        if folder != top and folder.startswith(top + os.sep):
            found[folder] = None
    return list(found)
