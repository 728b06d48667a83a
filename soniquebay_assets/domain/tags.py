"""Read one audio file's tags and stream facts through mutagen, with path fallbacks and a quality score.

Public API: `read_tags(path)`, `apply_fallbacks(record, path, library_root)`, `quality_score(record)`,
`split_featured(artist)`. `read_tags` raises only `TagReadError(reason, detail)`; see docs/tags.md.
"""

from __future__ import annotations

import codecs
import errno
import os
import re
import stat
from typing import Any

import mutagen
import mutagen._util
import mutagen.id3._specs
import mutagen.mp3
import mutagen.mp4
from mutagen.apev2 import APEv2
from mutagen.asf import ASFTags
from mutagen.flac import FLAC
from mutagen.id3 import ID3
from mutagen.mp4 import MP4Tags
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis

from soniquebay_assets.domain import mutagen_lean, ogg_stream
from soniquebay_assets.domain import tag_mappings as tm
from soniquebay_assets.domain.file_hints import advise_scattered_reads
from soniquebay_assets.domain.tag_model import AudioInfo, TagReadError, TagRecord
from soniquebay_assets.domain.tag_values import split_featured

__all__ = [
    "read_tags", "apply_fallbacks", "quality_score", "split_featured", "TagReadError", "TagRecord",
    "QUALITY_WEIGHTS", "REASONS",
]

# Stable reasons the UI counts by (errors by reason); each TagReadError uses exactly one of these.
REASONS = (
    "empty file", "not an audio file", "unsupported format", "corrupt or truncated", "permission denied",
    "file vanished", "is a directory", "not a regular file", "broken symlink", "symlink loop", "read error",
)

# mutagen class name -> (format, codec). Codec None means "ask the stream info" (MP4, AC-3).
_FORMATS: dict[str, tuple[str, str | None]] = {
    "MP3": ("mp3", "mp3"), "FLAC": ("flac", "flac"), "OggVorbis": ("ogg_vorbis", "vorbis"),
    "OggOpus": ("opus", "opus"), "OggFLAC": ("ogg_flac", "flac"), "OggSpeex": ("speex", "speex"),
    "OggTheora": ("ogg_theora", "theora"), "MP4": ("mp4", None), "WAVE": ("wav", "pcm"),
    "AIFF": ("aiff", "pcm"), "ASF": ("asf", "wma"), "MonkeysAudio": ("ape", "ape"),
    "WavPack": ("wavpack", "wavpack"), "Musepack": ("musepack", "musepack"), "DSF": ("dsf", "dsd"),
    "DSDIFF": ("dff", "dsd"), "TAK": ("tak", "tak"), "TrueAudio": ("tta", "tta"),
    "OptimFROG": ("optimfrog", "optimfrog"), "AC3": ("ac3", None), "AAC": ("aac", "aac"),
    "APEv2File": ("apev2", None),
}
# mutagen recognizes these but they hold no recorded audio a music catalog can play.
_NOT_MUSIC = {"SMF": "a MIDI score (notes, not recorded audio)"}
_MP4_CODECS = {"mp4a.40.2": "aac", "mp4a.40.5": "aac", "mp4a.40.29": "aac", "mp4a.40.34": "mp3",
               "mp4a.69": "mp3", "mp4a.6b": "mp3", "alac": "alac", "ac-3": "ac3", "ec-3": "eac3",
               "flac": "flac", "opus": "opus"}

# Magic numbers of common non-audio files found in music folders (covers, booklets, playlists, archives).
_NON_AUDIO_MAGIC = (
    (b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"), (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"), (b"BM", "a bitmap image"),
    (b"RIFF", None), (b"\x7fELF", "a program"),
)

# quality_score weights (sum 1.0): identity fields weigh most, MusicBrainz ids give a bonus, and a file
# whose audio stream did not parse loses a fifth of the score. Documented in docs/tags.md.
QUALITY_WEIGHTS: dict[str, float] = {
    "audio": 0.20,
    "title": 0.15,
    "artists": 0.15,
    "album": 0.10,
    "album_artists": 0.05,
    "track_number": 0.08,
    "date": 0.07,
    "genres": 0.05,
    "musicbrainz_recording_id": 0.05,
    "musicbrainz_release_id": 0.05,
    "musicbrainz_artist_ids": 0.05,
}


def fast_decode_terminated(data: bytes, encoding: str, strict: bool = True) -> tuple[str, bytes]:
    """Drop-in for mutagen's decode_terminated: UTF-16 text (every ID3v2.3 frame iTunes or Windows writes)
    is found by searching for an aligned NUL code unit instead of decoding byte by byte (4-5x faster reads
    of such tags). Other encodings use mutagen's own function; results and errors are the same."""
    name = codecs.lookup(encoding).name
    if name not in ("utf-16", "utf-16-be") or (name == "utf-16" and data[:2] not in (b"\xff\xfe", b"\xfe\xff")):
        return mutagen_decode_terminated(data, encoding, strict)
    index = data.find(b"\x00\x00")
    while index != -1 and index % 2:
        index = data.find(b"\x00\x00", index + 1)
    if index == -1:
        text = data.decode(name)
        if strict:
            raise ValueError("not null terminated")
        return text, b""
    return data[:index].decode(name), data[index + 2:]


mutagen_decode_terminated = mutagen._util.decode_terminated
# The replacement reaches into mutagen's private module layout, so it is installed only for the releases whose
# decode_terminated it was checked against (equality test in test_tags_mapping.py; `bench tags` measured 1.5x
# read_tags on UTF-16 ID3v2.3 MP3s). Any other release keeps mutagen's own function.
FAST_DECODE_VERIFIED_MUTAGEN = ((1, 47), (1, 48))
FAST_DECODE_ACTIVE = (
    tuple(mutagen.version[:2]) in FAST_DECODE_VERIFIED_MUTAGEN
    and getattr(mutagen.id3._specs, "decode_terminated", None) is mutagen_decode_terminated
)
if FAST_DECODE_ACTIVE:
    mutagen.id3._specs.decode_terminated = fast_decode_terminated  # the one call site that matters (ID3 text)

# MP3 and MP4 readers that skip embedded pictures' bytes (about 3x faster reads of files with a 500 KB cover:
# a picture cost more than all the rest of the file); mutagen's own classes on unverified releases.
MP3, MP4 = (mutagen_lean.MP3, mutagen_lean.MP4) if mutagen_lean.LEAN_ACTIVE else (mutagen.mp3.MP3, mutagen.mp4.MP4)


def read_tags(path: str | bytes | os.PathLike) -> TagRecord:
    """Tags and stream facts of one file; raises only TagReadError (reason from REASONS)."""
    try:
        return _read_tags(path)
    except TagReadError:
        raise
    except Exception as exc:  # last line of defence: a mutagen bug must not stop a scan
        raise TagReadError("corrupt or truncated", f"unexpected {type(exc).__name__}: {str(exc)[:120]}; "
                           "check the file plays, or re-encode/re-tag it") from exc


def _read_tags(path: str | bytes | os.PathLike) -> TagRecord:
    fileobj = _open(path)
    with fileobj:
        size = os.fstat(fileobj.fileno()).st_size
        if size == 0:
            raise TagReadError("empty file", "the file has 0 bytes; re-copy it from its source")
        try:
            audio = _parse(fileobj, size)
        except Exception as exc:  # mutagen raises many unrelated types for malformed files
            return _tags_without_audio(fileobj, exc)
        if audio is None or type(audio).__name__ == "APEv2File":
            retried = _by_extension(fileobj)  # (a FileType without tags is falsy: compare with None)
            audio = retried if retried is not None else audio
        if audio is None:
            try:
                apev2 = APEv2(fileobj)
            except Exception:
                raise _unrecognized(fileobj) from None
            record = TagRecord(audio=AudioInfo(format="apev2"))
            tm.apply_mapping(tm.flatten_ape(apev2), record)
            record.warnings.append("audio format not recognized; only the APEv2 tag was read")
            return record
        kind = audio.kind if isinstance(audio, ogg_stream.OggStream) else type(audio).__name__
        if kind in _NOT_MUSIC:
            raise TagReadError("unsupported format", f"{_NOT_MUSIC[kind]}; it is not cataloged")
        record = TagRecord(audio=_audio_info(audio, kind, size))
        record.audio_ok = bool(record.audio.sample_rate or record.audio.duration_s)
        if not record.audio_ok:
            record.warnings.append("audio stream header not parsed; tags only")
        tags = audio.tags
        if tags is not None:
            _apply_tags(record, tags, audio, fileobj)
        else:
            _try_ape_only(record, fileobj)
        if kind == "FLAC" and getattr(audio, "pictures", None):
            record.has_embedded_picture = True
        return record


def _parse(fileobj: Any, size: int) -> Any:
    """One parse. Common containers are recognized from their magic bytes and handed to their class directly,
    which skips mutagen.File's scoring of ~20 formats (15-40% of a small file's read time); a plain Ogg Vorbis or
    Opus stream is read by ogg_stream; anything else, or anything ambiguous, goes through mutagen.File."""
    header = fileobj.read(64)
    fileobj.seek(0)
    cls = None
    if header.startswith(b"fLaC"):
        cls = FLAC
    elif header[4:8] == b"ftyp":
        cls = MP4
    elif header.startswith(b"OggS"):
        plain = ogg_stream.read_plain_stream(fileobj, size)
        if plain is not None:
            return plain
        fileobj.seek(0)
        # the first Ogg page holds the codec's identification packet right after the segment table
        cls = OggVorbis if b"\x01vorbis" in header else OggOpus if b"OpusHead" in header else None
    elif header.startswith(b"ID3") or (header[:1] == b"\xff" and len(header) > 1 and header[1] & 0xE0 == 0xE0):
        cls = MP3 if fileobj.name.lower().endswith(".mp3") else None
    return cls(fileobj) if cls is not None else mutagen.File(fileobj)


def _by_extension(fileobj: Any) -> Any:
    """mutagen.File's header scoring misses some valid files (ADTS AAC with an APE tag, MP4 without "ftyp"):
    retry with the container class the extension names."""
    ext = os.path.splitext(fileobj.name)[1].lower()
    if ext in (".mp4", ".m4a", ".m4b", ".m4v", ".m4p", ".3gp", ".3g2"):
        from mutagen.mp4 import MP4 as cls
    elif ext == ".aac":
        from mutagen.aac import AAC as cls
    elif ext in (".ac3", ".eac3"):
        from mutagen.ac3 import AC3 as cls
    else:
        return None
    try:
        fileobj.seek(0)
        return cls(fileobj)
    except Exception:
        return None


def _open(path: str | bytes | os.PathLike) -> Any:
    """Open for reading without ever blocking: a FIFO or device in a music folder would hang open()."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            raise TagReadError("broken symlink", "the link points to a missing file; fix or delete the link") \
                from None
        raise TagReadError("file vanished", "the file was moved or deleted during the scan; rescan to pick "
                           "up its new place") from None
    except PermissionError:
        raise TagReadError("permission denied", "the scanner's user cannot read this file; fix its "
                           "permissions (chmod a+r) or the folder's") from None
    except IsADirectoryError:
        raise TagReadError("is a directory", "a folder was handed to the tag reader; nothing to read") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise TagReadError("symlink loop", "the path is a symbolic link loop; remove the link") from None
        raise TagReadError("read error", f"{exc.strerror or exc}; check the disk or network share") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise TagReadError("is a directory", "a folder was handed to the tag reader; nothing to read")
        raise TagReadError("not a regular file", "a pipe, socket or device sits in the music folder; move it")
    advise_scattered_reads(fd)
    fileobj = os.fdopen(fd, "rb")
    name = os.fspath(path)
    fileobj.raw.name = name if isinstance(name, str) else os.fsdecode(name)  # mutagen scores by extension
    return fileobj


def _apply_tags(record: TagRecord, tags: Any, audio: Any, fileobj: Any) -> None:
    if isinstance(tags, ID3):
        raw = tm.flatten_id3(tags)
        if tags.version[0] == 2 and _has_id3v1_trailer(fileobj):
            raw.formats.append("id3v1")
    elif isinstance(tags, MP4Tags):
        raw = tm.flatten_mp4(tags)
    elif isinstance(tags, APEv2):
        raw = tm.flatten_ape(tags)
    elif isinstance(tags, ASFTags):
        raw = tm.flatten_asf(tags)
    elif isinstance(tags, list):  # every mutagen Vorbis comment block is a list of (key, value) pairs
        raw = tm.flatten_vorbis(tags, getattr(audio, "pictures", None))
    else:
        record.warnings.append(f"tag block {type(tags).__name__} has no mapping table; tags ignored")
        return
    tm.apply_mapping(raw, record)


def _has_id3v1_trailer(fileobj: Any) -> bool:
    try:
        fileobj.seek(-128, os.SEEK_END)
        return fileobj.read(3) == b"TAG"
    except OSError:
        return False


def _try_ape_only(record: TagRecord, fileobj: Any) -> None:
    # AAC, AC-3, TTA and untagged-by-ID3 MP3s sometimes carry an APEv2 tag that mutagen's class does not load.
    try:
        tm.apply_mapping(tm.flatten_ape(APEv2(fileobj)), record)
    except Exception:
        return


def _tags_without_audio(fileobj: Any, exc: Exception) -> TagRecord:
    """The container did not parse: keep any ID3/APEv2 tag found, else raise a classified TagReadError."""
    record = TagRecord()
    for reader, flatten in ((ID3, tm.flatten_id3), (APEv2, tm.flatten_ape)):
        try:
            fileobj.seek(0)
            tags = reader(fileobj)
        except Exception:
            continue
        tm.apply_mapping(flatten(tags), record)
        break
    if record.tag_formats and not _looks_like_non_audio(_header(fileobj)):
        record.warnings.append(f"audio stream not readable ({type(exc).__name__}: {str(exc)[:80]}); tags only")
        return record
    raise _classify_failure(fileobj, exc)


def _header(fileobj: Any, size: int = 64) -> bytes:
    try:
        fileobj.seek(0)
        return fileobj.read(size)
    except OSError:
        return b""


def _looks_like_non_audio(header: bytes) -> str | None:
    for magic, what in _NON_AUDIO_MAGIC:
        if header.startswith(magic):
            if what is None:  # RIFF holds WAV audio but also AVI/WebP
                return None if header[8:12] in (b"WAVE", b"RMP3") else "a RIFF file that is not WAV audio"
            return what
    if header.startswith(b"ID3"):  # a damaged ID3 tag, however printable
        return None
    stripped = header.lstrip(b"\xef\xbb\xbf")  # UTF-8 BOM
    if stripped and b"\x00" not in stripped:
        try:
            stripped.decode("utf-8")
        except UnicodeDecodeError as err:
            if err.start < len(stripped) - 3:  # a multi-byte char cut at the end is still text
                return None
        if all(c >= 32 or c in (9, 10, 13) for c in stripped):
            return "a text file"
    return None


def _unrecognized(fileobj: Any) -> TagReadError:
    what = _looks_like_non_audio(_header(fileobj))
    if what:
        return TagReadError("not an audio file", f"this is {what} with an audio-like name; move or rename it")
    return TagReadError("unsupported format", "mutagen recognizes no audio container here; convert it to a "
                        "common format (FLAC, MP3, Ogg, M4A)")


def _classify_failure(fileobj: Any, exc: Exception) -> TagReadError:
    what = _looks_like_non_audio(_header(fileobj))
    if what:
        return TagReadError("not an audio file", f"this is {what} with an audio-like name; move or rename it")
    message = f"{type(exc).__name__}: {str(exc)[:100]}"
    return TagReadError("corrupt or truncated", f"{message}; re-copy or re-encode the file")


def _audio_info(audio: Any, kind: str, size: int = 0) -> AudioInfo:
    info = getattr(audio, "info", None)
    fmt, codec = _FORMATS.get(kind, (kind.lower(), None))
    if info is None:
        return AudioInfo(format=fmt, codec=codec)
    if fmt == "mp4":
        raw_codec = str(getattr(info, "codec", "") or "").lower()
        codec = _MP4_CODECS.get(raw_codec, raw_codec.split(".")[0] or None)
    elif fmt == "ac3":
        codec = "eac3" if str(getattr(info, "codec", "")).lower() == "ec-3" else "ac3"
        fmt = codec
    elif fmt == "mp3" and getattr(info, "layer", 3) != 3:
        codec = f"mp{info.layer}"
    elif fmt == "aiff" and str(getattr(info, "compression", "NONE") or "NONE").upper() not in ("NONE", "SOWT"):
        codec = str(info.compression).lower()
    sample_rate = getattr(info, "sample_rate", None)
    duration = _number(getattr(info, "length", None), float)
    bitrate = _number(getattr(info, "bitrate", None), int)
    if bitrate is None and duration and size:
        bitrate = int(size * 8 / duration)  # lossless formats report none: the file's average (tags included)
    if fmt == "opus" and not sample_rate:
        sample_rate = 48000  # Opus always decodes at 48 kHz; mutagen reports no rate for it
    return AudioInfo(
        format=fmt,
        codec=codec,
        duration_s=duration,
        bitrate=bitrate,
        sample_rate=_number(sample_rate, int),
        channels=_number(getattr(info, "channels", None), int),
        bit_depth=_number(getattr(info, "bits_per_sample", None) or getattr(info, "sample_size", None), int),
    )


def _number(value: Any, kind: type) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number > 0 and number == number else None  # drop 0, negatives and NaN


# ---------------------------------------------------------------------------------------------- fallbacks

# "03 - ", "03. ", "03_", "1-03 ", "(03) ", "03) ": a number followed by a separator is always a track prefix.
# "4.5 Stars" and "1-2-3" are not prefixed: a "." or "-" directly between digits is part of the title.
_TRACK_PREFIX = re.compile(r"^\s*[\[(]?(?:\d{1,2}[-.])?(\d{1,3})[\])]?\s*[-._)\]]\s*(?=\S)(?!(?<=[-.])\d)")
# "1-03 Song", "2.07 - Song": disc-track prefixes (zero-padded track) with any separator, space included.
_DISC_TRACK_PREFIX = re.compile(r"^\s*\d{1,2}[-.]\d{2,3}(?:\s*[-._)]\s*|\s+)(?=\S)")
# "03 Song": a number followed only by a space is a prefix when zero-padded or equal to the tagged track
# number; otherwise it is part of the title ("99 Luftballons").
_SPACED_PREFIX = re.compile(r"^\s*(\d{1,3})\s+(?=\S)")
_DISC_FOLDER = re.compile(
    r"^\s*[\[(]?(?:(?:cd|disc|disk|dvd)\s*[-_ ]?\s*\d{1,3}|side\s*[-_ ]?\s*[a-z0-9])[\])]?\s*$", re.IGNORECASE
)


def _text_path(path: str | bytes | os.PathLike) -> str:
    value = os.fspath(path)
    return os.fsdecode(value) if isinstance(value, bytes) else value


def title_from_filename(path: str | bytes | os.PathLike, track_number: int | None = None) -> str | None:
    """"03 - Song Name.mp3" -> "Song Name"; "1-03. Song" -> "Song"; the extension always goes."""
    stem = os.path.splitext(os.path.basename(_text_path(path)))[0]
    stem = stem.encode("utf-8", "replace").decode("utf-8")  # non-UTF-8 names: surrogates become U+FFFD
    cleaned = _DISC_TRACK_PREFIX.sub("", stem, count=1).strip()
    if cleaned == stem.strip():
        cleaned = _TRACK_PREFIX.sub("", stem, count=1).strip()
    spaced = _SPACED_PREFIX.match(cleaned) if cleaned == stem.strip() else None
    if spaced and (spaced.group(1).startswith("0") or int(spaced.group(1)) == track_number):
        cleaned = cleaned[spaced.end():].strip()
    cleaned = cleaned.replace("_", " ").strip() if " " not in cleaned else cleaned
    return cleaned or stem.strip() or None


def album_from_folder(path: str | bytes | os.PathLike, library_root: str | bytes | os.PathLike | None) -> str | None:
    """The containing folder's name; disc folders ("CD1", "Disc 2") give their parent's name instead.

    Never returns the library root itself (a file at the top of the library has no album folder).
    """
    folder = os.path.dirname(os.path.abspath(_text_path(path)))
    root = os.path.abspath(_text_path(library_root)) if library_root else None
    if _DISC_FOLDER.match(os.path.basename(folder)):
        folder = os.path.dirname(folder)
    if root is not None and (folder == root or not (folder + os.sep).startswith(root.rstrip(os.sep) + os.sep)):
        return None
    name = os.path.basename(folder).strip()
    return name.encode("utf-8", "replace").decode("utf-8") or None


def apply_fallbacks(
    record: TagRecord, path: str | bytes | os.PathLike, library_root: str | bytes | os.PathLike | None = None
) -> TagRecord:
    """Fill a missing title (file name) and album (folder); list them in record.fallbacks; score the record."""
    if not record.title:
        record.title = title_from_filename(path, record.track_number)
        if record.title and "title" not in record.fallbacks:
            record.fallbacks.append("title")
    if not record.album:
        record.album = album_from_folder(path, library_root)
        if record.album and "album" not in record.fallbacks:
            record.fallbacks.append("album")
    record.quality_score, record.found_fields = quality_score(record)
    return record


def quality_score(record: TagRecord) -> tuple[float, list[str]]:
    """(score 0..1, fields found in tags): weighted by QUALITY_WEIGHTS; fallback-filled fields do not count."""
    found: list[str] = []
    score = 0.0
    for name, weight in QUALITY_WEIGHTS.items():
        if name == "audio":
            present = record.audio_ok
        else:
            present = bool(getattr(record, name)) and name not in record.fallbacks
        if present:
            found.append(name)
            score += weight
    return round(min(score, 1.0), 4), found
