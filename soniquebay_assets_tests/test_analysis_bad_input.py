"""Bad input: every case yields a recorded error or a documented partial result, never an exception and never
a default value pretending to be a measurement."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soniquebay_assets.domain.analysis import evaluation, synth
from soniquebay_assets.library.audio_decode import decode_track
from soniquebay_assets.pipeline.enrich import analyze_file

BPM = 120.0


def _drums(seconds: float, sr: int) -> np.ndarray:
    return synth.drum_pattern(BPM, seconds, sr, "rock", seed=3)


def _write(path: Path, data: np.ndarray, sr: int, subtype: str | None = None) -> Path:
    sf.write(str(path), data, sr, subtype=subtype)
    return path


def test_silence_is_partial_with_nothing_invented(tmp_path):
    outcome = analyze_file(str(_write(tmp_path / "silence.wav", np.zeros(22050 * 10, dtype=np.float32), 22050)))
    values = outcome.values
    assert values["status"] == "partial" and outcome.reason == "silent"
    assert "silent" in values["error"]
    for name in ("bpm", "bpm_confidence", "beat_count", "key", "loudness_lufs", "replaygain_track_gain_db",
                 "energy", "danceability", "mood_happy"):
        assert values[name] is None, name
    assert values["duration_s"] == pytest.approx(10.0)
    assert values["replaygain_track_peak"] == 0.0  # a real measurement: the peak of silence is 0


def test_one_second_file_measures_what_it_can(tmp_path):
    values = analyze_file(str(_write(tmp_path / "short.wav", synth.song(BPM, 9, "minor", 1.0), 22050))).values
    assert values["status"] == "partial"
    assert values["bpm"] is None and values["beat_count"] is None and "too short for tempo" in values["error"]
    assert values["loudness_lufs"] is not None and values["duration_s"] == pytest.approx(1.0)
    assert values["danceability"] is None and values["music_tags"] is None  # the taggers need 3 s
    assert "too short for learned tags" in values["error"]


def test_mono_stereo_and_5_1_agree(tmp_path):
    """Tempo and key hear the same music in any layout; loudness sums the channels' powers (BS.1770), so the
    same signal in two channels is 3.01 LU louder than in one (test_loudness.py checks the weights)."""
    mono = _drums(30, 44100)
    layouts = {"mono": mono[:, None], "stereo": np.stack([mono, mono], axis=1),
               "surround": np.stack([mono] * 5 + [np.zeros_like(mono)], axis=1) * 0.9}
    results = {}
    for name, data in layouts.items():
        path = _write(tmp_path / f"{name}.wav", data, 44100)
        assert sf.info(str(path)).channels == data.shape[1]
        results[name] = analyze_file(str(path)).values
    for name, values in results.items():
        assert values["status"] == "ok", (name, values["error"])
        assert evaluation.tempo_correct(values["bpm"], BPM), (name, values["bpm"])
    assert results["mono"]["bpm"] == pytest.approx(results["stereo"]["bpm"], rel=0.005)
    assert results["stereo"]["loudness_lufs"] == pytest.approx(results["mono"]["loudness_lufs"] + 3.01, abs=0.02)


@pytest.mark.parametrize("sr", [8000, 192000])
def test_extreme_sample_rates(tmp_path, sr):
    values = analyze_file(str(_write(tmp_path / f"r{sr}.flac" if sr <= 96000 else tmp_path / f"r{sr}.wav",
                                     _drums(25, sr), sr))).values
    assert values["status"] == "ok", values["error"]
    assert evaluation.tempo_correct(values["bpm"], BPM), values["bpm"]
    assert values["duration_s"] == pytest.approx(25.0, abs=0.01)


@pytest.mark.parametrize("name,subtype", [("pcm24.wav", "PCM_24"), ("pcm24.flac", "PCM_24"),
                                          ("float.wav", "FLOAT"), ("double.wav", "DOUBLE")])
def test_24_bit_and_float(tmp_path, name, subtype):
    path = _write(tmp_path / name, _drums(20, 48000), 48000, subtype)
    assert sf.info(str(path)).subtype == subtype
    values = analyze_file(str(path)).values
    assert values["status"] == "ok" and evaluation.tempo_correct(values["bpm"], BPM)


@pytest.mark.parametrize("ext", ["flac", "wav"])
def test_file_that_decodes_halfway_then_fails_is_partial(tmp_path, ext):
    import mutagen

    path = _write(tmp_path / f"cut.{ext}", _drums(90, 44100), 44100)
    header_duration = mutagen.File(str(path)).info.length
    with open(path, "r+b") as handle:
        handle.truncate(int(path.stat().st_size * 0.45))
    outcome = analyze_file(str(path), header_duration)
    values = outcome.values
    assert values["status"] == "partial" and outcome.reason == "partial_decode"
    assert "truncated" in values["error"] or "decoding stopped" in values["error"]
    # what was decoded is still measured
    assert evaluation.tempo_correct(values["bpm"], BPM) and values["loudness_lufs"] is not None


def test_tags_parse_but_audio_does_not(tmp_path):
    import mutagen
    from mutagen import id3

    path = tmp_path / "garbage.mp3"
    path.write_bytes(os.urandom(5000))
    tags = id3.ID3()
    tags.add(id3.TIT2(encoding=3, text=["Broken Song"]))
    tags.save(str(path))
    assert str(id3.ID3(str(path))["TIT2"]) == "Broken Song"  # the tag side is fine
    with pytest.raises(mutagen.MutagenError):  # the audio side is not
        mutagen.File(str(path))
    outcome = analyze_file(str(path))
    assert outcome.values["status"] == "error"
    assert outcome.reason in ("undecodable", "no_audio")
    assert outcome.values.get("bpm") is None and outcome.values["error"]


def test_m4a_without_ffmpeg_names_what_to_install(tmp_path, monkeypatch, corpus_dir_or_none):
    """Simulates a machine without ffmpeg by emptying PATH (on this machine it may also be truly absent)."""
    source = corpus_dir_or_none / "crossformat" / "lena" / "lena.m4a" if corpus_dir_or_none else None
    path = tmp_path / "song.m4a"
    if source and source.is_file():
        shutil.copy(source, path)
    else:
        path.write_bytes(b"\x00\x00\x00\x18ftypM4A \x00\x00\x02\x00isomiso2" + bytes(1000))
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("ffmpeg") is None
    outcome = analyze_file(str(path))
    assert outcome.values["status"] == "error" and outcome.reason == "ffmpeg_missing"
    assert "apt-get install ffmpeg" in outcome.values["error"]


def test_missing_file_is_an_error_not_a_crash(tmp_path):
    outcome = analyze_file(str(tmp_path / "gone.flac"))
    assert outcome.values["status"] == "error" and outcome.reason == "missing_file"


def test_long_file_is_read_through_bounded_excerpts(tmp_path):
    path = tmp_path / "long.flac"
    with sf.SoundFile(str(path), "w", 22050, 1, format="FLAC") as out:
        block = _drums(30, 22050)
        for _ in range(12):  # 6 minutes
            out.write(block)
    decoded = decode_track(path)
    assert decoded.duration_s == pytest.approx(360.0)
    assert len(decoded.windows) == 3 and sum(s.size for s in decoded.segments) / decoded.sr == pytest.approx(60.0, abs=0.1)
    assert all(s.dtype == np.float32 and s.ndim == 1 for s in decoded.segments) and decoded.sr == 22050


@pytest.fixture()
def corpus_dir_or_none():
    from soniquebay_assets_tests.conftest import corpus_candidates

    return next((c for c in corpus_candidates() if (c / "MANIFEST.tsv").is_file()), None)


FAKE_FFMPEG = r'''#!{python}
"""Stand-in for ffmpeg: writes 200 s of mono drums at 120 BPM as a float WAV stream to stdout, or fails."""
import struct, sys
import numpy as np
sys.path.insert(0, {repo!r})
from soniquebay_assets.domain.analysis.synth import drum_pattern
args = sys.argv[1:]
source = args[args.index("-i") + 1]
if "broken" in source:
    sys.stderr.write(source + ": Invalid data found when processing input\n")
    sys.exit(1)
sr = 22050
y = drum_pattern(120.0, 200.0, sr, "rock", seed=5).astype("<f4").tobytes()
fmt = struct.pack("<HHIIHH", 3, 1, sr, sr * 4, 4, 32)
out = sys.stdout.buffer
out.write(b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt)
out.write(b"data" + struct.pack("<I", 0xFFFFFFFF) + y)
'''


def test_ffmpeg_path_decodes_excerpts_and_reports_failures(tmp_path):
    """The ffmpeg subprocess route (M4A/AAC/WebM), driven through a stand-in binary: failures on demand."""
    import sys

    fake = tmp_path / "ffmpeg"
    fake.write_text(FAKE_FFMPEG.format(python=sys.executable, repo=str(Path(__file__).resolve().parents[1])))
    fake.chmod(0o755)
    song = tmp_path / "song.m4a"
    song.write_bytes(b"\x00" * 100)
    decoded = decode_track(song, ffmpeg=str(fake), duration_hint=200.0)
    assert decoded.decoder == "ffmpeg" and decoded.partial_reason is None
    assert len(decoded.windows) == 3 and sum(s.size for s in decoded.segments) / decoded.sr == pytest.approx(60.0, abs=0.1)
    from soniquebay_assets.domain.analysis.analyze import analyze_samples

    assert decoded.loudness is not None and decoded.loudness.seconds == pytest.approx(200.0)
    result = analyze_samples(decoded.segments, decoded.sr, duration_s=decoded.duration_s, loudness=decoded.loudness)
    assert result.status == "ok" and evaluation.tempo_correct(result.bpm, BPM)

    from soniquebay_assets.library.audio_decode import DecodeError

    broken = tmp_path / "broken.m4a"
    broken.write_bytes(b"x")
    with pytest.raises(DecodeError) as failure:
        decode_track(broken, ffmpeg=str(fake), duration_hint=200.0)
    assert failure.value.reason == "undecodable" and "Invalid data" in failure.value.detail
