"""Tag reader against the shared corpus: tag fidelity (converted/EXPECTED.json), edge files, a 1-hour file."""

from __future__ import annotations

import json
import os
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from soniquebay_assets.domain.tags import REASONS, TagReadError, apply_fallbacks, read_tags


def _as_list(value) -> list[str]:
    # EXPECTED.json keeps a value as the native single string when the file stores one string: the corpus
    # README names two such multi-artist strings to be split, the ID3v2.3 slash form "A/B" and "A; B".
    # No other expected value contains ";" or "/", so splitting on both is exact here.
    values = value if isinstance(value, list) else [value]
    return [part.strip() for v in values for part in re.split(r"[;/]", v) if part.strip()]


def _gain(value: str) -> float:
    return float(re.match(r"\s*([-+]?\d+(?:\.\d+)?)", value).group(1))


_TEXT = {"title": "title", "album": "album", "date": "date", "musicbrainz_albumid": "musicbrainz_release_id",
         "musicbrainz_releasegroupid": "musicbrainz_release_group_id",
         "musicbrainz_releasetrackid": "musicbrainz_track_id", "musicbrainz_recordingid": "musicbrainz_recording_id"}
_LISTS = {"artist": "artists", "albumartist": "album_artists", "genre": "genres",
          "musicbrainz_artistid": "musicbrainz_artist_ids", "musicbrainz_albumartistid": "musicbrainz_album_artist_ids"}
_INTS = {"tracknumber": "track_number", "tracktotal": "track_total", "discnumber": "disc_number",
         "disctotal": "disc_total"}


def _check_field(record, key: str, expected) -> str | None:
    """None when the record matches the expected value of `key`, else a description of the mismatch."""
    if key in _TEXT:
        got, want = getattr(record, _TEXT[key]), expected
    elif key in _LISTS:
        got, want = getattr(record, _LISTS[key]), _as_list(expected)
    elif key in _INTS:
        got, want = getattr(record, _INTS[key]), int(expected)
    elif key == "bpm":
        got, want = record.bpm, float(expected)
    elif key == "compilation":
        got, want = record.compilation, expected.strip() in ("1", "true")
    elif key in ("replaygain_track_gain", "replaygain_track_peak"):
        got, want = getattr(record, key), _gain(expected)
        if got is not None and abs(got - want) <= 0.01:
            return None
    else:
        return f"no comparison defined for expected field {key!r}"  # a new field must not be skipped silently
    return None if got == want else f"{key}: got {got!r}, want {want!r}"


@pytest.mark.corpus
def test_tag_fidelity_converted(corpus_dir: Path):
    expected_all = json.loads((corpus_dir / "converted" / "EXPECTED.json").read_text())
    details = json.loads((corpus_dir / "converted" / "EXPECTED_DETAILS.json").read_text())
    assert len(expected_all) >= 15
    problems: list[str] = []
    checked = 0
    for rel, expected in expected_all.items():
        path = corpus_dir / rel
        record = apply_fallbacks(read_tags(path), path, corpus_dir / "converted")
        assert record.fallbacks == [], rel  # everything came from tags
        assert record.audio_ok, rel
        for key, value in expected.items():
            mismatch = _check_field(record, key, value)
            checked += 1
            if mismatch:
                problems.append(f"{rel}: {mismatch}")
        facts = details[rel]
        audio = record.audio
        if (audio.sample_rate, audio.channels) != (facts["sample_rate"], facts["channels"]):
            problems.append(f"{rel}: stream {audio.sample_rate}/{audio.channels}")
        if abs(audio.duration_s - facts["duration_s"]) > 0.15:
            problems.append(f"{rel}: duration {audio.duration_s} vs {facts['duration_s']}")
        if audio.codec != facts["codec"]:
            problems.append(f"{rel}: codec {audio.codec} vs {facts['codec']}")
        if record.has_embedded_picture != (facts["embedded_art"] is not None):
            problems.append(f"{rel}: embedded picture {record.has_embedded_picture}")
    assert not problems, "\n".join(problems)
    assert checked == sum(len(v) for v in expected_all.values()) >= 200  # every field of every file compared


@pytest.mark.corpus
def test_converted_multi_artist_forms(corpus_dir: Path):
    base = corpus_dir / "converted"
    v23 = read_tags(base / "LupusMechanicus - Legacy Soundtrack (2020)" / "03 - New Dawn.mp3")
    assert v23.artists == ["LupusMechanicus", "Martin Severn"] and len(v23.musicbrainz_artist_ids) == 2
    mp4 = read_tags(base / "Wesnoth Project - The Battle for Wesnoth OST (2008)" / "03 - Nunc Dimittis.m4a")
    assert mp4.artists == ["Jeremy Nicoll", "Mattias Westlund"]
    v24 = read_tags(base / "Various Artists - Free Game Music Sampler (Disc 2)" / "01 - Muldjord - Armygeddon.mp3")
    assert v24.artists == ["Muldjord", "El Senator"] and v24.compilation is True


_AUDIO_EXTENSIONS = {
    ".mp3", ".flac", ".m4a", ".ogg", ".wma", ".mpc", ".dsf", ".ape", ".wv", ".opus", ".wav", ".aif", ".aac",
    ".dff", ".aiff", ".spx", ".mp4", ".tta", ".tak", ".ofs", ".ofr", ".m4b", ".ac3", ".eac3", ".oga", ".3g2",
    ".oggflac", ".m4v",
}


@pytest.mark.corpus
def test_edge_corpus_never_crashes(corpus_dir: Path):
    files = sorted(p for p in (corpus_dir / "edge").rglob("*") if p.is_file())
    assert len(files) >= 250
    audio_total = audio_ok = 0
    reasons: dict[str, int] = {}
    for path in files:
        is_audio = path.suffix.lower() in _AUDIO_EXTENSIONS
        audio_total += is_audio
        try:
            record = read_tags(path)  # anything but TagReadError escaping fails the test
        except TagReadError as exc:
            assert exc.reason in REASONS and exc.detail, path
            reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
            if path.suffix.lower() in (".json", ".jpg", ".png", ".ini"):
                assert exc.reason == "not an audio file", path
            continue
        assert path.suffix.lower() not in (".json", ".jpg", ".png"), f"{path} read as audio"
        json.dumps(record.to_dict())  # the pipeline stores it as JSON
        audio_ok += is_audio and record.audio_ok
    assert audio_ok >= 0.85 * audio_total, (audio_ok, audio_total, reasons)
    assert reasons.get("empty file") == 1  # edge/mutagen/emptyfile.mp3


def _sparse_wav(path: Path, seconds: int, rate: int = 8000) -> Path:
    data_bytes = seconds * rate * 2  # mono 16-bit silence
    header = (b"RIFF" + (36 + data_bytes).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
              + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + rate.to_bytes(4, "little")
              + (rate * 2).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
              + b"data" + data_bytes.to_bytes(4, "little"))
    with open(path, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + data_bytes)  # sparse: a full-size file without writing 57 MB
    return path


def _long_flac(path: Path, seconds: int, rate: int = 8000) -> Path:
    import soundfile as sf

    chunk = np.zeros(rate * 60, dtype=np.int16)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16", format="FLAC") as out:
        for _ in range(seconds // 60):
            out.write(chunk)
    return path


def test_one_hour_files_cost_no_memory(tmp_path: Path):
    files = [_sparse_wav(tmp_path / "hour.wav", 3600), _long_flac(tmp_path / "hour.flac", 3600)]
    assert os.path.getsize(files[0]) > 50_000_000
    for path in files:
        read_tags(_sparse_wav(tmp_path / "warm.wav", 1) if path.suffix == ".wav" else _long_flac(
            tmp_path / "warm.flac", 60))  # first reads import mutagen submodules: keep them out of the peak
        tracemalloc.start()
        try:
            record = read_tags(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert record.audio_ok and record.audio.duration_s == pytest.approx(3600, abs=1), path
        assert peak < 1_000_000, f"{path.name}: tag read peaked at {peak} bytes"
