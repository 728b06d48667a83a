"""The format-neutral record a tag reader returns for one audio file."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any


class TagReadError(Exception):
    """A file whose tags or audio stream cannot be read; `reason` is a short user-facing cause."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason if not detail else f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class AudioInfo:
    """Facts about the audio stream as the container reports them (no decoding)."""

    format: str | None = None  # mp3, flac, ogg_vorbis, opus, mp4, wav, aiff, asf, ape, wavpack, musepack, dsf, ...
    codec: str | None = None  # mp3, flac, vorbis, opus, aac, alac, pcm, wma, ...
    duration_s: float | None = None
    bitrate: int | None = None  # bits per second
    sample_rate: int | None = None
    channels: int | None = None
    bit_depth: int | None = None


@dataclass
class TagRecord:
    """Every tag the catalog cares about, with multi-valued fields as lists."""

    title: str | None = None
    artists: list[str] = field(default_factory=list)
    album: str | None = None
    album_artists: list[str] = field(default_factory=list)
    track_number: int | None = None
    track_total: int | None = None
    disc_number: int | None = None
    disc_total: int | None = None
    date: str | None = None  # as normalized: YYYY, YYYY-MM or YYYY-MM-DD
    original_date: str | None = None
    genres: list[str] = field(default_factory=list)
    composers: list[str] = field(default_factory=list)
    musicbrainz_recording_id: str | None = None
    musicbrainz_track_id: str | None = None
    musicbrainz_release_id: str | None = None
    musicbrainz_release_group_id: str | None = None
    musicbrainz_artist_ids: list[str] = field(default_factory=list)
    musicbrainz_album_artist_ids: list[str] = field(default_factory=list)
    replaygain_track_gain: float | None = None  # dB
    replaygain_track_peak: float | None = None  # linear
    replaygain_album_gain: float | None = None
    replaygain_album_peak: float | None = None
    bpm: float | None = None
    initial_key: str | None = None
    compilation: bool | None = None
    label: str | None = None
    isrc: str | None = None
    comment: str | None = None
    has_embedded_picture: bool = False
    tag_formats: list[str] = field(default_factory=list)  # e.g. ["id3v2.3", "id3v1"], ["vorbis"], ["mp4"]
    audio: AudioInfo = field(default_factory=AudioInfo)
    audio_ok: bool = False  # the container's audio stream header parsed
    fallbacks: list[str] = field(default_factory=list)  # fields filled from the path, not from tags
    warnings: list[str] = field(default_factory=list)
    quality_score: float = 0.0  # 0..1, see tags.quality_score
    found_fields: list[str] = field(default_factory=list)

    @property
    def year(self) -> int | None:
        for value in (self.date, self.original_date):
            if value and len(value) >= 4 and value[:4].isdigit():
                return int(value[:4])
        return None

    def to_dict(self, *, compact: bool = False) -> dict[str, Any]:
        """Plain dict for JSON (shallow: dataclasses.asdict deep-copies and cost 30% of tag reading).

        compact leaves out unset fields (None, empty); from_dict restores them as defaults.
        """
        data = {name: getattr(self, name) for name in _RECORD_FIELDS}
        data["audio"] = {name: getattr(self.audio, name) for name in _AUDIO_FIELDS}
        if compact:
            data = {k: v for k, v in data.items() if v is not None and v != [] and v != ""}
            data["audio"] = {k: v for k, v in data["audio"].items() if v is not None}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TagRecord:
        """The record of a to_dict() payload (unknown keys ignored). Filled like __init__ would, without its
        keyword binding of every field: half the cost, and the catalog stage builds one per file."""
        audio = AudioInfo(**data.get("audio") or {})
        record = object.__new__(cls)
        values = record.__dict__
        values.update(_DEFAULTS)
        for name, factory in _FACTORIES:
            values[name] = factory()
        values.update({k: v for k, v in data.items() if k in _RECORD_FIELD_SET})
        values["audio"] = audio
        return record


_RECORD_FIELDS = tuple(f.name for f in fields(TagRecord) if f.name != "audio")
_RECORD_FIELD_SET = frozenset(_RECORD_FIELDS)
_DEFAULTS = {f.name: f.default for f in fields(TagRecord) if f.default is not MISSING}
_FACTORIES = tuple((f.name, f.default_factory) for f in fields(TagRecord)
                   if f.default_factory is not MISSING and f.name != "audio")
_AUDIO_FIELDS = tuple(f.name for f in fields(AudioInfo))
