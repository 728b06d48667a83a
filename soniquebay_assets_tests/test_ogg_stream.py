"""The quick Ogg Vorbis/Opus reader gives exactly what mutagen gives, or hands the file back to mutagen."""

from __future__ import annotations

import base64
import os
import random
from pathlib import Path

import mutagen
import pytest
from mutagen.flac import Picture

from soniquebay_assets.domain import ogg_stream
from soniquebay_assets.domain import tags as tag_reader


def _outcome(path: Path, *, quick: bool, monkeypatch: pytest.MonkeyPatch) -> object:
    """read_tags' result (or its error) with the quick reader on, or off so that mutagen reads every file."""
    with monkeypatch.context() as patch:
        if not quick:
            patch.setattr(ogg_stream, "read_plain_stream", lambda fileobj, size: None)
        try:
            return tag_reader.read_tags(path).to_dict()
        except tag_reader.TagReadError as exc:
            return ("error", exc.reason, exc.detail)


def _is_quick(path: Path) -> bool:
    with open(path, "rb") as handle:
        return ogg_stream.read_plain_stream(handle, os.path.getsize(path)) is not None


def _ogg_files(folder: Path) -> list[Path]:
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                if handle.read(4) == b"OggS":
                    found.append(path)
    return found


@pytest.fixture()
def covered_ogg(tmp_path: Path, make_audio) -> list[Path]:
    """A Vorbis and an Opus file, tagged, each with a 500 KB cover spread over ~100 Ogg pages."""
    cover = Picture()
    cover.type, cover.mime, cover.desc = 3, "image/jpeg", "Cover"
    cover.data = random.Random(3).randbytes(500_000)
    made = []
    for name in ("song.ogg", "song.opus"):
        path = make_audio(tmp_path / name, seconds=3.0, title="Été", artist=["A", "B"], album="Disc",
                          tracknumber="3/9", genre="Jazz", date="1999")
        audio = mutagen.File(path)
        audio.tags["METADATA_BLOCK_PICTURE"] = [base64.b64encode(cover.write()).decode("ascii")]
        audio.tags["COMMENT"] = ["after the picture"]
        audio.save()
        made.append(path)
    return made


def test_a_covered_file_reads_as_mutagen_reads_it(covered_ogg, monkeypatch):
    for path in covered_ogg:
        assert _is_quick(path), path
        quick = _outcome(path, quick=True, monkeypatch=monkeypatch)
        assert quick == _outcome(path, quick=False, monkeypatch=monkeypatch)
        assert quick["has_embedded_picture"] and quick["title"] == "Été" and quick["artists"] == ["A", "B"]
        assert quick["audio"]["duration_s"] == pytest.approx(3.0, abs=0.05)


def test_every_corpus_ogg_file_reads_as_mutagen_reads_it(corpus_dir, monkeypatch):
    files = _ogg_files(corpus_dir)
    quick_count = 0
    for path in files:
        quick_count += _is_quick(path)
        assert _outcome(path, quick=True, monkeypatch=monkeypatch) == \
            _outcome(path, quick=False, monkeypatch=monkeypatch), path
    assert quick_count >= 10, "the corpus's plain Vorbis and Opus files should take the quick path"


def test_damaged_chained_and_cut_files_read_as_mutagen_reads_them(covered_ogg, tmp_path, monkeypatch):
    rng = random.Random(11)
    results = {"error": 0, "quick": 0, "handed back": 0}
    for source in covered_ogg:
        data = source.read_bytes()
        for index in range(60):
            kind = index % 4
            if kind == 0:  # cut anywhere, inside the comment's pages included
                damaged = data[:rng.randrange(1, len(data))]
            elif kind == 1:  # bytes changed in the headers or in the final page
                damaged = bytearray(data)
                for _ in range(rng.randrange(1, 4)):
                    spot = rng.choice([rng.randrange(300), rng.randrange(len(data) - 300, len(data))])
                    damaged[spot] = rng.randrange(256)
                damaged = bytes(damaged)
            elif kind == 2:  # a run of bytes missing
                spot = rng.randrange(len(data))
                damaged = data[:spot] + data[spot + rng.randrange(1, 300):]
            else:  # two streams one after the other
                damaged = data + data
            path = tmp_path / f"damaged{source.suffix}"
            path.write_bytes(damaged)
            quick = _outcome(path, quick=True, monkeypatch=monkeypatch)
            assert quick == _outcome(path, quick=False, monkeypatch=monkeypatch), (source.name, index)
            results["error" if isinstance(quick, tuple) else "quick" if _is_quick(path) else "handed back"] += 1
    assert all(results.values()), results  # the cases really covered errors, quick reads and hand-backs


def test_junk_after_the_last_page_reads_as_mutagen_reads_it(covered_ogg, tmp_path, monkeypatch):
    for source in covered_ogg:
        # the final page is looked for in the last 64 KB: here 20 KB from the end, then not at all
        for junk, quick_expected in ((bytes(20_000), True), (b"x" * 70_000, False)):
            path = tmp_path / f"junk{source.suffix}"
            path.write_bytes(source.read_bytes() + junk)
            assert _is_quick(path) is quick_expected
            assert _outcome(path, quick=True, monkeypatch=monkeypatch) == \
                _outcome(path, quick=False, monkeypatch=monkeypatch)


def test_odd_comment_keys_are_kept_or_dropped_as_mutagen_does(covered_ogg, tmp_path, monkeypatch):
    for source in covered_ogg:
        data = source.read_bytes()
        # same lengths, so the pages stay whole: a control character in a key, a key with no "=", a non-ASCII key
        odd = data.replace(b"DATE=", b"DA\x7fE=", 1).replace(b"ALBUM=", b"ALBUMX", 1)
        odd = odd.replace(b"GENRE=", b"G\xc3\xa9RE=", 1)
        assert odd.count(b"DA\x7fE=") == odd.count(b"ALBUMX") == odd.count(b"G\xc3\xa9RE=") == 1
        path = tmp_path / f"odd{source.suffix}"
        path.write_bytes(odd)
        assert _is_quick(path)
        quick = _outcome(path, quick=True, monkeypatch=monkeypatch)
        assert quick == _outcome(path, quick=False, monkeypatch=monkeypatch)
        assert quick["date"] is None and quick["genres"] == [] and quick["album"] != "Disc"
