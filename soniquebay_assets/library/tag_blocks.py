"""The tag block of one audio file, per format (ID3, Vorbis comments, MP4 atoms, APEv2, ASF), as write-back sees
it: native key -> text values plus the exact form needed to put a value back, a full dump to compare two reads,
and edits. Opened through mutagen without translation, so what is not edited is saved back as it was.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mutagen import apev2, id3
from mutagen.asf import ASF, ASFValue
from mutagen.id3._id3v1 import find_id3v1  # the trailer lookup ID3.save itself uses
from mutagen.mp4 import MP4, AtomDataType, MP4FreeForm


class WriteError(Exception):
    """A file that could not be written: `reason` is short and stable (counted by the UI), `detail` says what
    to do."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class NativeValue:
    """One native key of a file: its values as text, and the exact form needed to put them back."""

    texts: tuple[str, ...]
    raw: dict[str, Any]


@dataclass(frozen=True)
class KeyEdit:
    """Set a native key to text values (None: remove it); `raw` (a NativeValue.raw) restores an exact old form."""

    key: str
    texts: tuple[str, ...] | None
    raw: dict[str, Any] | None = None


def _hash(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}:{len(data)}"


def _plain(value: Any) -> Any:
    """A JSON-able, comparable form of a mutagen value (bytes are hashed: pictures stay small)."""
    if isinstance(value, bytes | bytearray):
        extra = vars(value) if type(value) not in (bytes, bytearray) and hasattr(value, "__dict__") else {}
        return {"data": _hash(bytes(value)), **{k: _plain(v) for k, v in sorted(extra.items())}} if extra \
            else _hash(bytes(value))
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return {"_": type(value).__name__, **{k: _plain(v) for k, v in sorted(vars(value).items())}}
    return str(value)


class TagBlock:
    """One file's tag block opened for reading or editing."""

    kind = ""

    def native(self) -> dict[str, NativeValue]:
        raise NotImplementedError

    def dump(self) -> dict[str, Any]:
        """Everything in the tag block (and pictures), comparable between two reads."""
        raise NotImplementedError

    def dump_without(self, keys: set[str]) -> dict[str, Any]:
        """The dump minus the given native keys (what an edit of those keys must leave as it was)."""
        return {k: v for k, v in self.dump().items() if k not in keys}

    def apply(self, edits: Sequence[KeyEdit]) -> None:
        raise NotImplementedError

    def save(self, path: str) -> None:
        raise NotImplementedError


class _Id3Tags(TagBlock):
    """ID3v2.3/2.4 in MP3 (at the head; an ID3v1 trailer is kept byte for byte), WAV, AIFF and DSF (a chunk).
    Loaded without translation and saved in its own version, so v2.3 frames stay v2.3 frames."""

    kind = "id3"

    def __init__(self, path: str, fmt: str) -> None:
        self.fmt = fmt
        self.container = None
        if fmt == "mp3":
            try:
                self.tags = id3.ID3(path, translate=False, load_v1=False)
            except id3.ID3NoHeaderError:
                if _has_apev2(path):  # readers prefer an ID3 tag: a new one would hide the APEv2 tag's values
                    raise WriteError("tag not writable", "this MP3 keeps its tags in APEv2 only; an ID3 tag with "
                                                         "a few fields would hide them from players: convert its tags "
                                                         "to ID3v2.4 with a tagger (Picard, Mp3tag), then write again"
                                     ) from None
                self.tags = id3.ID3()
        else:
            self.container = _format_class(fmt)(path, translate=False)
            if self.container.tags is None:
                self.container.add_tags()
            self.tags = self.container.tags
        major = tuple(self.tags.version[:2]) if self.tags.version else (2, 4)
        if major not in ((2, 3), (2, 4)):
            raise WriteError("tag not writable", f"ID3v{major[0]}.{major[1]} tag: save it once as ID3v2.4 or "
                                                 "v2.3 with a tagger (Picard, Kid3), then write again")
        self.version = 3 if major == (2, 3) else 4

    def native(self) -> dict[str, NativeValue]:
        out: dict[str, NativeValue] = {}
        for key, frame in self.tags.items():
            frame_id = frame.FrameID
            if frame_id == "UFID":
                data = frame.data if isinstance(frame.data, bytes) else str(frame.data).encode()
                out[key] = NativeValue((data.decode("ascii", "replace"),),
                                       {"frame": "UFID", "owner": frame.owner, "data": data.hex()})
            elif frame_id.startswith("T") and hasattr(frame, "text") and not hasattr(frame, "people"):
                raw = {"frame": frame_id, "encoding": int(frame.encoding), "text": [str(t) for t in frame.text]}
                if frame_id == "TXXX":
                    raw["desc"] = frame.desc
                out[key] = NativeValue(tuple(str(t) for t in frame.text), raw)
        return out

    def dump(self) -> dict[str, Any]:
        # a text frame holding only empty strings says nothing, and mutagen drops it when saving
        frames = {key: _plain(frame) for key, frame in self.tags.items()
                  if not (isinstance(frame, id3.TextFrame) and not any(str(t) for t in frame.text))}
        return {"version": self.version, "frames": frames,
                "unknown": sorted(_hash(bytes(d)) for d in getattr(self.tags, "unknown_frames", []))}

    def dump_without(self, keys: set[str]) -> dict[str, Any]:
        dump = self.dump()
        return {**dump, "frames": {k: v for k, v in dump["frames"].items() if k not in keys}}

    def apply(self, edits: Sequence[KeyEdit]) -> None:
        for edit in edits:
            self.tags.delall(edit.key)
            if edit.raw is not None:
                self.tags.add(_id3_frame_from_raw(edit.raw))
            elif edit.texts is not None:
                self.tags.add(self._frame(edit.key, list(edit.texts)))

    def _frame(self, key: str, texts: list[str]) -> Any:
        encoding = id3.Encoding.LATIN1 if all(t.isascii() for t in texts) else (
            id3.Encoding.UTF8 if self.version == 4 else id3.Encoding.UTF16)
        if self.version == 3 and len(texts) > 1:
            texts = ["/".join(texts)]  # ID3v2.3 multi-values as Picard writes them
        if key.startswith("TXXX:"):
            return id3.TXXX(encoding=encoding, desc=key[5:], text=texts)
        if key.startswith("UFID:"):
            return id3.UFID(owner=key[5:], data=texts[0].encode("ascii"))
        frame_class = getattr(id3, key, None)
        if frame_class is None or not key.startswith("T"):
            raise WriteError("tag not writable", f"no ID3 frame {key}")
        return frame_class(encoding=encoding, text=texts)

    def save(self, path: str) -> None:
        if self.container is not None:
            self.tags.save(path, v2_version=self.version, v23_sep=None)
            return
        with open(path, "rb") as handle:
            trailer_tag, offset = find_id3v1(handle)
            handle.seek(offset, os.SEEK_END)
            trailer = handle.read() if trailer_tag is not None and offset < 0 else b""
        # v1=0 drops the ID3v1 trailer (mutagen would rebuild it from the v2 frames); the old bytes go back on
        self.tags.save(path, v1=0, v2_version=self.version, v23_sep=None)
        if trailer:
            with open(path, "ab") as handle:
                handle.write(trailer)


def _has_apev2(path: str) -> bool:
    try:
        apev2.APEv2(path)
    except apev2.APENoHeaderError:
        return False
    return True


def _id3_frame_from_raw(raw: Mapping[str, Any]) -> Any:
    frame_id = raw["frame"]
    if frame_id == "UFID":
        return id3.UFID(owner=raw["owner"], data=bytes.fromhex(raw["data"]))
    if frame_id == "TXXX":
        return id3.TXXX(encoding=raw["encoding"], desc=raw["desc"], text=list(raw["text"]))
    return getattr(id3, frame_id)(encoding=raw["encoding"], text=list(raw["text"]))


class _VorbisTags(TagBlock):
    """Vorbis comments of FLAC, Ogg Vorbis, Ogg FLAC, Speex and Opus; keys kept in their own case."""

    kind = "vorbis"

    def __init__(self, path: str, fmt: str) -> None:
        self.file = _format_class(fmt)(path)
        if self.file.tags is None:
            self.file.add_tags()
        self.tags = self.file.tags

    def _pairs(self) -> list[tuple[str, str]]:
        return list(list.__iter__(self.tags))

    def native(self) -> dict[str, NativeValue]:
        grouped: dict[str, list[str]] = {}
        for key, value in self._pairs():
            grouped.setdefault(key, []).append(value)
        return {key: NativeValue(tuple(values), {"values": values}) for key, values in grouped.items()}

    def dump(self) -> dict[str, Any]:
        grouped: dict[str, list[str]] = {}
        for key, value in self._pairs():
            grouped.setdefault(key, []).append(_hash(value.encode("utf-8", "surrogatepass")) if len(value) > 512 else value)
        pictures = [_plain(p) for p in getattr(self.file, "pictures", [])]
        return {"comments": grouped, "vendor": getattr(self.tags, "vendor", None), "pictures": pictures}

    def dump_without(self, keys: set[str]) -> dict[str, Any]:
        dump = self.dump()
        return {**dump, "comments": {k: v for k, v in dump["comments"].items() if k not in keys}}

    def apply(self, edits: Sequence[KeyEdit]) -> None:
        for edit in edits:
            kept = [(k, v) for k, v in self._pairs() if k != edit.key]
            values = edit.raw["values"] if edit.raw is not None else (edit.texts or ())
            list.__setitem__(self.tags, slice(None), kept + [(edit.key, v) for v in values])

    def save(self, path: str) -> None:
        self.file.save(path)


class _Mp4Tags(TagBlock):
    """MP4/M4A ilst atoms: freeform "----:mean:name" values as UTF-8 data, "tmpo" as an integer."""

    kind = "mp4"

    def __init__(self, path: str, fmt: str) -> None:
        self.file = MP4(path)
        if self.file.tags is None:
            self.file.add_tags()
        self.tags = self.file.tags

    def native(self) -> dict[str, NativeValue]:
        out: dict[str, NativeValue] = {}
        for key, values in self.tags.items():
            if key.startswith("----"):
                items = [bytes(v) for v in values]
                texts = tuple(v.decode("utf-8", "replace") for v in items)
                formats = [int(getattr(v, "dataformat", AtomDataType.UTF8)) for v in values]
                out[key] = NativeValue(texts, {"freeform": [[v.hex(), f] for v, f in zip(items, formats, strict=True)]})
            elif key == "tmpo":
                out[key] = NativeValue(tuple(str(v) for v in values), {"ints": [int(v) for v in values]})
        return out

    def dump(self) -> dict[str, Any]:
        return {key: _plain(list(values) if isinstance(values, list) else values) for key, values in self.tags.items()}

    def apply(self, edits: Sequence[KeyEdit]) -> None:
        for edit in edits:
            self.tags.pop(edit.key, None)
            if edit.raw is not None:
                if "ints" in edit.raw:
                    self.tags[edit.key] = list(edit.raw["ints"])
                else:
                    self.tags[edit.key] = [MP4FreeForm(bytes.fromhex(h), dataformat=f) for h, f in edit.raw["freeform"]]
            elif edit.texts is not None:
                if edit.key == "tmpo":
                    self.tags[edit.key] = [int(round(float(t))) for t in edit.texts]
                else:
                    self.tags[edit.key] = [MP4FreeForm(t.encode("utf-8"), dataformat=AtomDataType.UTF8)
                                           for t in edit.texts]

    def save(self, path: str) -> None:
        self.file.save(path)


class _ApeTags(TagBlock):
    """APEv2 of Monkey's Audio, WavPack, Musepack, TAK and OptimFROG (keys are case-insensitive)."""

    kind = "ape"

    def __init__(self, path: str, fmt: str) -> None:
        try:
            self.tags = apev2.APEv2(path)
        except apev2.APENoHeaderError:
            self.tags = apev2.APEv2()

    def native(self) -> dict[str, NativeValue]:
        out: dict[str, NativeValue] = {}
        for key in self.tags.keys():
            value = self.tags[key]
            if value.kind == apev2.TEXT:
                texts = tuple(value)
                out[key] = NativeValue(texts, {"kind": apev2.TEXT, "values": list(texts)})
            else:
                data = value.value.encode("utf-8") if isinstance(value.value, str) else bytes(value.value)
                out[key] = NativeValue((), {"kind": value.kind, "data": data.hex()})
        return out

    def dump(self) -> dict[str, Any]:
        return {key: [self.tags[key].kind, _plain(self.tags[key].value)] for key in self.tags.keys()}

    def dump_without(self, keys: set[str]) -> dict[str, Any]:
        lowered = {k.lower() for k in keys}  # APEv2 keys are case-insensitive
        return {k: v for k, v in self.dump().items() if k.lower() not in lowered}

    def apply(self, edits: Sequence[KeyEdit]) -> None:
        for edit in edits:
            if edit.key in self.tags:
                del self.tags[edit.key]
            if edit.raw is not None:
                if edit.raw["kind"] == apev2.TEXT:
                    self.tags[edit.key] = apev2.APEValue("\0".join(edit.raw["values"]), apev2.TEXT)
                else:
                    data = bytes.fromhex(edit.raw["data"])
                    self.tags[edit.key] = apev2.APEValue(
                        data.decode("utf-8") if edit.raw["kind"] == apev2.EXTERNAL else data, edit.raw["kind"])
            elif edit.texts is not None:
                self.tags[edit.key] = apev2.APEValue("\0".join(edit.texts), apev2.TEXT)

    def save(self, path: str) -> None:
        self.tags.save(path)


class _AsfTags(TagBlock):
    """ASF (WMA) attributes; every value we write is a Unicode attribute."""

    kind = "asf"

    def __init__(self, path: str, fmt: str) -> None:
        self.file = ASF(path)
        self.tags = self.file.tags

    def native(self) -> dict[str, NativeValue]:
        grouped: dict[str, list[Any]] = {}
        for key, attr in list.__iter__(self.tags):
            grouped.setdefault(key, []).append(attr)
        out: dict[str, NativeValue] = {}
        for key, attrs in grouped.items():
            texts = tuple(str(a.value) for a in attrs if not isinstance(a.value, bytes))
            raw = [{"type": a.TYPE, "hex": isinstance(a.value, bytes),
                    "value": a.value.hex() if isinstance(a.value, bytes) else a.value,
                    "language": a.language, "stream": a.stream} for a in attrs]
            out[key] = NativeValue(texts, {"attributes": raw})
        return out

    def dump(self) -> dict[str, Any]:
        grouped: dict[str, list[Any]] = {}  # the order of different attributes means nothing
        for key, attr in list.__iter__(self.tags):
            grouped.setdefault(key, []).append([attr.TYPE, _plain(attr.value), attr.language, attr.stream])
        return grouped

    def apply(self, edits: Sequence[KeyEdit]) -> None:
        for edit in edits:
            if edit.key in self.tags:
                del self.tags[edit.key]
            if edit.raw is not None:
                self.tags[edit.key] = [
                    ASFValue(bytes.fromhex(a["value"]) if a["hex"] else a["value"], a["type"],
                             language=a["language"], stream=a["stream"]) for a in edit.raw["attributes"]]
            elif edit.texts is not None:
                self.tags[edit.key] = list(edit.texts)

    def save(self, path: str) -> None:
        self.file.save(path)


# catalog format (tracks.format) -> the tag block write-back edits; formats absent here are not written
KIND_BY_FORMAT: dict[str, str] = {
    "mp3": "id3", "wav": "id3", "aiff": "id3", "dsf": "id3",
    "flac": "vorbis", "ogg_vorbis": "vorbis", "ogg_flac": "vorbis", "speex": "vorbis", "opus": "opus",
    "mp4": "mp4", "asf": "asf",
    "ape": "ape", "wavpack": "ape", "musepack": "ape", "tak": "ape", "optimfrog": "ape",
}
_ADAPTERS: dict[str, type[TagBlock]] = {"id3": _Id3Tags, "vorbis": _VorbisTags, "opus": _VorbisTags,
                                     "mp4": _Mp4Tags, "ape": _ApeTags, "asf": _AsfTags}


def writable_kind(fmt: str | None) -> str | None:
    """The tag kind write-back edits for a catalog format, or None when the format is not written."""
    return KIND_BY_FORMAT.get(fmt or "")


def open_tag_block(path: str, fmt: str) -> TagBlock:
    """The tag block of a file in a writable format; raises WriteError."""
    kind = writable_kind(fmt)
    if kind is None:
        raise WriteError("format not writable", f"{fmt or 'unknown'} files are not written (docs/write-back.md)")
    try:
        return _ADAPTERS[kind](path, fmt)
    except WriteError:
        raise
    except FileNotFoundError:
        raise WriteError("file vanished", "the file was moved or deleted; rescan, then write again") from None
    except PermissionError:
        raise WriteError("permission denied", "this user cannot read the file; fix its permissions") from None
    except Exception as exc:  # mutagen raises many types for malformed files
        raise WriteError("tag not readable", f"{type(exc).__name__}: {str(exc)[:120]}; check the file plays, "
                                             "re-tag it with another tagger, then write again") from exc


_FORMAT_CLASSES = {
    "mp3": "mutagen.mp3:MP3", "wav": "mutagen.wave:WAVE", "aiff": "mutagen.aiff:AIFF", "dsf": "mutagen.dsf:DSF",
    "flac": "mutagen.flac:FLAC", "ogg_vorbis": "mutagen.oggvorbis:OggVorbis", "ogg_flac": "mutagen.oggflac:OggFLAC",
    "speex": "mutagen.oggspeex:OggSpeex", "opus": "mutagen.oggopus:OggOpus", "mp4": "mutagen.mp4:MP4",
    "asf": "mutagen.asf:ASF", "ape": "mutagen.monkeysaudio:MonkeysAudio", "wavpack": "mutagen.wavpack:WavPack",
    "musepack": "mutagen.musepack:Musepack", "tak": "mutagen.tak:TAK", "optimfrog": "mutagen.optimfrog:OptimFROG",
}


def _format_class(fmt: str) -> Callable:
    """mutagen's class for a catalog format (imported on first use)."""
    module, name = _FORMAT_CLASSES[fmt].split(":")
    return getattr(importlib.import_module(module), name)


def stream_facts(path: str, fmt: str) -> tuple:
    """Duration, rate and channels as the container states them (the copy's name does not end in the format's
    extension, so the format's own class reads it)."""
    try:
        info = _format_class(fmt)(path).info
    except Exception:
        return ()
    return (round(float(getattr(info, "length", 0) or 0), 3), getattr(info, "sample_rate", None),
            getattr(info, "channels", None))
