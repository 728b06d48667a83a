"""The picture-skipping MP3/MP4 readers (domain/mutagen_lean.py) against mutagen's own classes.

Every frame, item, leftover and error must be what mutagen reads, except the image bytes of APIC frames and
"covr" items; and read_tags must give the same record through either reader.
"""

from __future__ import annotations

import io
import random
import shutil
import struct
from pathlib import Path

import mutagen
import mutagen.mp3
import mutagen.mp4
import pytest
from mutagen import id3
from mutagen.mp4 import MP4Cover

from soniquebay_assets.domain import mutagen_lean
from soniquebay_assets.domain import tags as tags_module
from soniquebay_assets_tests.audio_factory import write_audio

lean_only = pytest.mark.skipif(not mutagen_lean.LEAN_ACTIVE,
                               reason=f"mutagen {mutagen.version_string} not verified: mutagen's own classes in use")
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40


def _syncsafe(n: int) -> bytes:
    return bytes(((n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F))


def _id3_tag(frames: list[tuple[bytes, bytes, int]], version: int = 4, tag_flags: int = 0,
             padding: int = 0) -> bytes:
    body = b"".join(name + (_syncsafe(len(data)) if version == 4 else struct.pack(">L", len(data)))
                    + struct.pack(">H", flags) + data for name, data, flags in frames) + b"\x00" * padding
    return b"ID3" + bytes((version, 0, tag_flags)) + _syncsafe(len(body)) + body


def _text(name: bytes, text: str) -> tuple[bytes, bytes, int]:
    return name, b"\x03" + text.encode(), 0


def _id3_view(tags: id3.ID3) -> tuple:
    frames = []
    for key, frame in tags.items():
        if frame.FrameID == "APIC":
            frames.append((key, int(frame.encoding), frame.mime, int(frame.type), frame.desc))
        else:
            frames.append((key, repr(frame)))
    return frames, tags.unknown_frames, tags._padding, tags.version


def _outcome(read, *args):
    try:
        return "ok", read(*args)
    except Exception as exc:
        return "error", type(exc).__name__, str(exc)


def _random_picture_body(rng: random.Random) -> bytes:
    pieces = [b"\x00", b"\x00\x00", b"\xff\xfe", b"\xfe\xff", b"A", b"\xd8", b"\xdc", b"\xe9", b"\xc3\xa9", b"x\x00"]
    body = bytes([rng.choice([0, 1, 2, 3, 3, 5])])
    body += rng.choice([b"image/jpeg\x00", b"image/png\x00", b"PNG\x00", b"\x00", b"image/jpeg"])
    body += bytes([rng.randrange(0, 25)]) if rng.random() < 0.9 else b""
    body += b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 8)))
    return body + rng.choice([b"", JPEG[:rng.randrange(1, 64)], b"\x00" * 8, JPEG])


@lean_only
def test_id3_picture_frames_match_mutagen():
    """Fuzzed APIC frames (every encoding, missing terminators, odd-aligned UTF-16 NULs, bad encodings,
    frame flags) beside text frames, in v2.3 and v2.4 tags: same frames as mutagen, pictures without bytes."""
    rng = random.Random(11)
    cases = []
    for _ in range(3000):
        frames = [_text(b"TIT2", "Title"), (b"APIC", _random_picture_body(rng), rng.choice([0, 0, 0, 1, 0x40])),
                  _text(b"TALB", "Album")]
        rng.shuffle(frames)
        if rng.random() < 0.3:
            frames.append((b"APIC", _random_picture_body(rng), 0))
        cases.append(_id3_tag(frames, version=rng.choice([3, 4]), padding=rng.choice([0, 0, 16])))
    # fixed edge cases: a truncated last frame, a frame named with NULs, a v2.3 frame with a v2.2 name, garbage
    cases += [_id3_tag([_text(b"TIT2", "T")])[:-2], _id3_tag([(b"\x00\x00\x00\x00", b"abc", 0)]),
              _id3_tag([(b"PIC\x00", b"\x00JPG\x03d\x00" + JPEG, 0)], version=3),
              _id3_tag([(b"ZZZZ", b"raw", 0), (b"APIC", b"\x03image/png\x00\x03\x00" + JPEG, 0)]),
              _id3_tag([(b"APIC", b"\x00image/png\x00\x03same\x00" + JPEG, 0)] * 3)]
    lean_pictures = 0
    for data in cases:
        mine = _outcome(lambda b: _id3_view(mutagen_lean._ID3WithoutPictureData(io.BytesIO(b))), data)
        theirs = _outcome(lambda b: _id3_view(id3.ID3(io.BytesIO(b))), data)
        assert mine == theirs, data[:80]
        if mine[0] == "ok":
            tags = mutagen_lean._ID3WithoutPictureData(io.BytesIO(data))
            lean_pictures += sum(1 for f in tags.getall("APIC") if f.data == b"")
    assert lean_pictures > 1000  # the fuzz reaches the head-only path, not only mutagen's fallback


def _mp3_with_tag(tmp_path: Path, name: str, tag: bytes) -> Path:
    path = write_audio(tmp_path / name)
    path.write_bytes(tag + path.read_bytes())
    return path


def _records(path: Path, monkeypatch) -> tuple[tuple, tuple]:
    """read_tags' record (or error) through the lean readers and through mutagen's own classes."""
    lean = _outcome(lambda p: tags_module.read_tags(p).to_dict(), path)
    with monkeypatch.context() as patch:
        patch.setattr(tags_module, "MP3", mutagen.mp3.MP3)
        patch.setattr(tags_module, "MP4", mutagen.mp4.MP4)
        plain = _outcome(lambda p: tags_module.read_tags(p).to_dict(), path)
    return lean, plain


def test_mp3_records_match_mutagen(tmp_path, monkeypatch):
    """The tag reader uses the lean MP3 reader and reads the same record as through mutagen's."""
    assert tags_module.MP3 is mutagen_lean.MP3 and tags_module.MP4 is mutagen_lean.MP4
    path = write_audio(tmp_path / "a.mp3")
    tag = id3.ID3()
    tag.add(id3.TIT2(encoding=3, text=["Song"]))
    tag.add(id3.APIC(encoding=1, mime="image/jpeg", type=3, desc="Cov\u00e9r", data=JPEG))
    tag.add(id3.TPE1(encoding=1, text=["Artist"]))
    tag.save(str(path), v2_version=3)
    paths = [path, _mp3_with_tag(tmp_path, "b.mp3", _id3_tag([(b"APIC", b"\x05junk\x00\x03x\x00" + JPEG, 0)])),
             _mp3_with_tag(tmp_path, "c.mp3", _id3_tag([_text(b"TIT2", "T"), (b"APIC", b"\x00image/png", 0)]))]
    seen = []
    for p in paths:
        lean, plain = _records(p, monkeypatch)
        assert lean == plain
        seen.append(lean[1]["has_embedded_picture"])
    assert seen == [True, False, False]  # a junk APIC frame is no picture, as in mutagen


def _m4a_with_covers(corpus_dir: Path, tmp_path: Path, name: str, covers: list[MP4Cover]) -> Path:
    path = tmp_path / name
    shutil.copyfile(corpus_dir / "edge" / "picard" / "test.m4a", path)
    audio = mutagen.mp4.MP4(str(path))
    audio["\xa9nam"] = ["Song"]
    audio["covr"] = covers
    audio.save()
    return path


def _patch_covr(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    at = data.index(b"covr")
    at = data.index(old, at)
    path.write_bytes(data[:at] + new + data[at + len(new):])


def _mp4_view(audio) -> tuple:
    items = [(k, [c.imageformat for c in v] if k == "covr" else v) for k, v in audio.tags.items()]
    return items, audio.tags._failed_atoms, audio.tags._padding, audio.info.pprint()


@lean_only
def test_mp4_covers_match_mutagen(tmp_path, corpus_dir, monkeypatch):
    """JPEG/PNG/several covers, a "name" atom, an unexpected atom, an unknown image format and a truncated
    file: same items, failed atoms, errors and records as mutagen; covers without bytes."""
    two = [MP4Cover(JPEG, MP4Cover.FORMAT_JPEG), MP4Cover(JPEG[:100], MP4Cover.FORMAT_PNG)]
    paths = [_m4a_with_covers(corpus_dir, tmp_path, f"{i}.m4a", covers)
             for i, covers in enumerate([[MP4Cover(JPEG)], two, two, two, two, []])]
    _patch_covr(paths[2], b"data", b"name")  # first cover becomes a skipped "name" atom
    _patch_covr(paths[3], b"data", b"xxxx")  # unexpected atom: the item fails, mutagen keeps its raw data
    _patch_covr(paths[4], b"data\x00\x00\x00\x0d", b"data\x00\x00\x00\x99")  # unknown format: read as JPEG
    truncated = tmp_path / "truncated.m4a"
    data = paths[1].read_bytes()
    truncated.write_bytes(data[:data.index(b"covr") + 200])
    overlong = tmp_path / "overlong.m4a"  # covr's length runs past the end of the file: "Not enough data"
    at = data.index(b"covr")
    overlong.write_bytes(data[:at - 4] + struct.pack(">I", struct.unpack(">I", data[at - 4:at])[0] + 5000)
                         + data[at:])
    assert "Not enough data" in str(_outcome(mutagen.mp4.MP4, overlong))
    for path in [*paths, truncated, overlong]:
        mine = _outcome(lambda p: _mp4_view(mutagen_lean.MP4(p)), path)
        theirs = _outcome(lambda p: _mp4_view(mutagen.mp4.MP4(p)), path)
        assert mine == theirs, path.name
        lean, plain = _records(path, monkeypatch)
        assert lean == plain, path.name
    assert _mp4_view(mutagen_lean.MP4(paths[1]))[0][-1] == ("covr", [13, 14])
    assert _mp4_view(mutagen_lean.MP4(paths[3]))[1] != {}
    assert all(c == b"" for c in mutagen_lean.MP4(paths[1]).tags["covr"])


def test_lean_readers_only_on_verified_mutagen():
    """tags.py reads with the lean classes exactly when mutagen's release is one they were checked against."""
    verified = tuple(mutagen.version[:2]) in mutagen_lean.LEAN_VERIFIED_MUTAGEN
    assert mutagen_lean.LEAN_ACTIVE == verified
    assert (tags_module.MP3 is mutagen_lean.MP3) == verified and (tags_module.MP4 is mutagen_lean.MP4) == verified
    assert tags_module.MP3.__name__ == "MP3" and tags_module.MP4.__name__ == "MP4"  # formats are mapped by name
