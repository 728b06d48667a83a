"""mutagen's MP3 and MP4 readers without the copies of embedded pictures that the tag reader never looks at.

An ID3 APIC frame keeps its encoding, MIME type, picture type and description, and an MP4 "covr" item keeps its
image format, but their image bytes are left empty: the tag reader only asks whether a picture exists. Which
frames and items exist, and every other value, are what mutagen itself reads (equality tests in
test_tags_lean_readers.py). This reaches into mutagen's private layout, so `tags.py` uses these classes only on the
releases they were checked against (`LEAN_ACTIVE`); any other release reads with mutagen's own classes.
"""

from __future__ import annotations

import struct
from typing import Any

import mutagen
import mutagen.mp3
import mutagen.mp4
from mutagen.id3 import APIC, ID3
from mutagen.id3._tags import ID3Header, determine_bpi, is_valid_frame_id
from mutagen.id3._util import ID3JunkFrameError
from mutagen.mp4 import MP4Cover, MP4MetadataError, MP4Tags

# ID3Tags._read, read_frames (v2.3/v2.4 branch), MP4Tags.load and MP4Tags.__parse_cover, which the code below
# follows, are the same in both releases; the equality tests pass on both.
LEAN_VERIFIED_MUTAGEN = ((1, 47), (1, 48))
LEAN_ACTIVE = tuple(mutagen.version[:2]) in LEAN_VERIFIED_MUTAGEN

# ID3 text encoding byte -> the NUL terminator of its strings
_TERMINATORS = {0: b"\x00", 1: b"\x00\x00", 2: b"\x00\x00", 3: b"\x00"}


class _ID3WithoutPictureData(ID3):
    """ID3 whose v2.3/v2.4 frames are read by offset (mutagen re-slices the rest of the tag after every frame,
    copying a 500 KB picture once per frame before it) and whose APIC frames are parsed from their head only."""

    def _read(self, header: Any, data: bytes) -> bytes:
        if header.version < ID3Header._V23 or header.f_unsynch or header.known_frames.get("APIC") is not APIC:
            return super()._read(header, data)
        frames, unknown_frames, data = _read_frames(header, data, header.known_frames)
        for frame in frames:
            self._add(frame, False)
        self.unknown_frames = unknown_frames
        self._unknown_v2_version = header.version[1]
        return data


def _read_frames(id3: Any, data: bytes, frames: dict) -> tuple[list, list, bytes]:
    """mutagen.id3._tags.read_frames for v2.3/v2.4 tags without unsynchronisation, same frames and leftovers."""
    result: list = []
    unsupported_frames: list = []
    bpi = int if id3.version < ID3Header._V24 else determine_bpi(data, frames)
    end = len(data)
    pos = 0
    while pos < end:
        header = data[pos:pos + 10]
        try:
            name, size, flags = struct.unpack(">4sLH", header)
        except struct.error:
            break  # not enough header
        if name.strip(b"\x00") == b"":
            break
        size = bpi(size)
        start = pos + 10
        pos = start + size
        if size == 0:
            continue  # drop empty frames
        if name == b"APIC" and not flags:
            head_end = _picture_head_end(data, start, min(pos, end))
            if head_end is not None:
                try:
                    result.append(APIC._fromData(id3, flags, data[start:head_end]))
                except NotImplementedError:
                    unsupported_frames.append(header + data[start:pos])
                except ID3JunkFrameError:
                    pass
                continue
        framedata = data[start:pos]
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError:
            continue
        try:
            # someone writes 2.3 frames with 2.2 names
            if name[-1] == "\x00":
                tag = mutagen.id3._tags.Frames_2_2[name[:-1]]
                name = tag.__base__.__name__
            tag = frames[name]
        except KeyError:
            if is_valid_frame_id(name):
                unsupported_frames.append(header + framedata)
        else:
            try:
                result.append(tag._fromData(id3, flags, framedata))
            except NotImplementedError:
                unsupported_frames.append(header + framedata)
            except ID3JunkFrameError:
                pass
    return result, unsupported_frames, data[pos:]


def _picture_head_end(data: bytes, start: int, stop: int) -> int | None:
    """End of an APIC frame's description terminator (encoding, MIME\\0, type, description\\0), or None when the
    frame is anything but well formed: then mutagen parses it whole. Up to that terminator mutagen reads the
    same bytes either way, so the frame parses (or is junk) alike."""
    terminator = _TERMINATORS.get(data[start]) if start < stop else None
    if terminator is None:
        return None
    mime_end = data.find(b"\x00", start + 1, stop)
    if mime_end == -1:
        return None
    desc = mime_end + 2  # after the picture type byte (past `stop` when there is none: nothing is found)
    found = data.find(terminator, desc, stop)
    while found != -1 and (found - desc) % len(terminator):  # UTF-16 code units are aligned on the text start
        found = data.find(terminator, found + 1, stop)
    return None if found == -1 else found + len(terminator)


class MP3(mutagen.mp3.MP3):
    """mutagen's MP3 whose APIC frames carry no image bytes (named MP3: the tag reader maps formats by name)."""

    ID3 = _ID3WithoutPictureData


class _MP4TagsWithoutCoverData(MP4Tags):
    """MP4Tags whose "covr" items are read from their data-atom headers only (seeks instead of reading images)."""

    def load(self, atoms: Any, fileobj: Any) -> None:
        try:
            path = atoms.path(b"moov", b"udta", b"meta", b"ilst")
        except KeyError as key:
            raise MP4MetadataError(key) from None
        free = mutagen.mp4._find_padding(path)
        self._padding = free.datalength if free is not None else 0
        parsers = self._MP4Tags__atoms
        for atom in path[-1].children:
            if atom.name == b"covr":
                if not _payload_complete(atom, fileobj):
                    raise MP4MetadataError("Not enough data")
                try:
                    self._MP4Tags__add(mutagen.mp4._name2key(atom.name), _covers(atom, fileobj))
                except MP4MetadataError:
                    self._failed_atoms.setdefault(mutagen.mp4._name2key(atom.name), []).append(atom.read(fileobj)[1])
                continue
            ok, data = atom.read(fileobj)
            if not ok:
                raise MP4MetadataError("Not enough data")
            try:
                if atom.name in parsers:
                    parsers[atom.name][0](self, atom, data)
                else:
                    self._MP4Tags__parse_text(atom, data, implicit=False)  # unknown atom, try as text
            except MP4MetadataError:
                self._failed_atoms.setdefault(mutagen.mp4._name2key(atom.name), []).append(data)


def _payload_complete(atom: Any, fileobj: Any) -> bool:
    """What atom.read's first result says (the file holds the whole payload), without reading it."""
    fileobj.seek(0, 2)
    return fileobj.tell() >= atom._dataoffset + atom.datalength


def _covers(atom: Any, fileobj: Any) -> list[MP4Cover]:
    """MP4Tags.__parse_cover on the atom's payload read header by header: the same covers (without their bytes)
    and the same errors."""
    datalength = atom.datalength
    values = []
    pos = 0
    while pos < atom.length - 8:
        fileobj.seek(atom._dataoffset + pos)
        head = fileobj.read(min(12, datalength - pos)) if pos < datalength else b""
        length, name, imageformat = struct.unpack(">I4sI", head)
        if name != b"data":
            if name == b"name":
                pos += length
                continue
            raise MP4MetadataError(f"unexpected atom {name!r} inside 'covr'")
        if length < 1:
            raise MP4MetadataError(f"atom {atom.name!r} has a length of zero")
        if imageformat not in (MP4Cover.FORMAT_JPEG, MP4Cover.FORMAT_PNG):
            imageformat = MP4Cover.FORMAT_JPEG  # mutagen's default for implicit or wrong formats
        values.append(MP4Cover(b"", imageformat))
        pos += length
    return values


class MP4(mutagen.mp4.MP4):
    """mutagen's MP4 whose "covr" items carry no image bytes (named MP4: the tag reader maps formats by name)."""

    MP4Tags = _MP4TagsWithoutCoverData
