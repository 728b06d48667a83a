"""Whole-track loudness (BS.1770-4 / EBU R128), true peak and album gain: expected values on signals whose
loudness is known by construction, and agreement with independent references (pyloudnorm on the same samples,
ffmpeg's ebur128 filter and loudgain on the same real corpus files)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soniquebay_assets.domain.analysis import synth
from soniquebay_assets.domain.analysis.loudness import (
    BlockHistogram,
    KFilter,
    LoudnessMeter,
    album_replaygain,
    gated_loudness,
    interpolator_phases,
    k_weighting_sos,
    measure_loudness,
)
from soniquebay_assets.library.audio_decode import decode_track

FFMPEG = shutil.which("ffmpeg")
LOUDGAIN = shutil.which("loudgain")


def _sine(freq: float, seconds: float, sr: int, amplitude: float = 0.5, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def _expected_lufs(weighted_amplitudes: list[tuple[float, float]]) -> float:
    """A 997 Hz sine reads its mean square (the K filter's gain there is what the -0.691 offsets)."""
    return 10 * math.log10(sum(w * a * a / 2 for w, a in weighted_amplitudes))


@pytest.mark.parametrize("sr", [44100, 48000, 96000])
def test_sines_read_their_level_in_every_layout(sr):
    tone = _sine(997, 5, sr)
    assert measure_loudness(tone, sr).integrated_lufs == pytest.approx(_expected_lufs([(1, 0.5)]), abs=0.03)
    stereo = np.stack([tone, tone], axis=1)  # powers add: 3.01 LU above one channel
    assert measure_loudness(stereo, sr).integrated_lufs == pytest.approx(_expected_lufs([(1, 0.5), (1, 0.5)]),
                                                                         abs=0.03)
    # 5.1 in WAV order FL FR FC LFE BL BR: surrounds weigh 1.41, the LFE nothing
    surround = np.zeros((tone.size, 6), dtype=np.float32)
    surround[:, 2], surround[:, 3], surround[:, 4] = tone, tone * 1.9, tone * 0.5
    expected = _expected_lufs([(1.0, 0.5), (1.41, 0.25)])
    # the K filter is defined at 48 kHz; at other rates its bilinear design moves 997 Hz by up to 0.02 dB
    assert measure_loudness(surround, sr).integrated_lufs == pytest.approx(expected, abs=0.03)
    lfe_only = np.zeros_like(surround)
    lfe_only[:, 3] = tone
    assert measure_loudness(lfe_only, sr).integrated_lufs is None
    # 7.1 (FL FR FC LFE BL BR SL SR): the sides are the surrounds, the rear pair weighs 1.0
    seven = np.zeros((tone.size, 8), dtype=np.float32)
    seven[:, 4], seven[:, 6] = tone, tone
    assert measure_loudness(seven, sr).integrated_lufs == pytest.approx(
        _expected_lufs([(1.0, 0.5), (1.41, 0.5)]), abs=0.03)


def test_multichannel_files_weigh_channels_in_their_container_order(tmp_path):
    """The same six columns are 5.1 in WAV order in a FLAC and Vorbis order in an Ogg: the last column is a
    surround (1.41) in the first and the LFE (not counted) in the second."""
    sr = 48000
    columns = np.zeros((sr * 3, 6), dtype=np.float32)
    columns[:, 0], columns[:, 5] = _sine(997, 3, sr), _sine(997, 3, sr)
    sf.write(str(tmp_path / "six.flac"), columns, sr, subtype="PCM_24")
    sf.write(str(tmp_path / "six.ogg"), columns, sr, format="OGG", subtype="VORBIS")
    flac = decode_track(tmp_path / "six.flac").loudness
    vorbis = decode_track(tmp_path / "six.ogg").loudness
    assert flac.integrated_lufs == pytest.approx(_expected_lufs([(1, 0.5), (1.41, 0.5)]), abs=0.02)
    assert vorbis.integrated_lufs == pytest.approx(_expected_lufs([(1, 0.5)]), abs=0.1)  # lossy: 0.06 off


def test_8_bit_96_khz_short_silent_and_dc_offset_files(tmp_path):
    sr = 44100
    tone = _sine(997, 6, sr, amplitude=0.4)
    sf.write(str(tmp_path / "u8.wav"), tone, sr, subtype="PCM_U8")
    eight_bit = decode_track(tmp_path / "u8.wav").loudness
    assert eight_bit.integrated_lufs == pytest.approx(_expected_lufs([(1, 0.4)]), abs=0.05)
    assert eight_bit.sample_peak == pytest.approx(0.4, abs=1 / 128)

    hi = _sine(997, 4, 96000, amplitude=0.7)
    sf.write(str(tmp_path / "hi.flac"), np.stack([hi, hi], axis=1), 96000, subtype="PCM_24")
    high_rate = decode_track(tmp_path / "hi.flac").loudness
    assert high_rate.integrated_lufs == pytest.approx(_expected_lufs([(1, 0.7), (1, 0.7)]), abs=0.03)
    assert high_rate.true_peak_dbtp == pytest.approx(20 * math.log10(0.7), abs=0.01)

    short = measure_loudness(_sine(997, 0.3, sr), sr)  # under one 400 ms gating block
    assert short.integrated_lufs is None and short.range_lu is None and short.histogram.blocks == 0
    assert short.sample_peak == pytest.approx(0.5, abs=1e-3) and short.true_peak >= short.sample_peak

    silent = measure_loudness(np.zeros((sr * 5, 2), dtype=np.float32), sr)
    assert silent.integrated_lufs is None and silent.range_lu is None and silent.track_gain_db is None
    assert silent.sample_peak == 0.0 and silent.true_peak == 0.0 and silent.true_peak_dbtp is None
    assert album_replaygain([silent.histogram], [silent.true_peak]).gain_db is None

    damaged = tone.copy()
    damaged[1000:1010], damaged[5000] = np.nan, np.inf  # float PCM can hold them; they must not poison the rest
    sf.write(str(tmp_path / "nan.wav"), damaged, sr, subtype="FLOAT")
    assert decode_track(tmp_path / "nan.wav").loudness.integrated_lufs == pytest.approx(
        eight_bit.integrated_lufs, abs=0.05)

    # the K filter's high-pass removes a DC offset from loudness; the peaks keep it
    offset = measure_loudness(tone + np.float32(0.3), sr)
    assert offset.integrated_lufs == pytest.approx(measure_loudness(tone, sr).integrated_lufs, abs=0.05)
    assert offset.sample_peak == pytest.approx(0.7, abs=1e-3)


def test_analysis_reports_short_and_silent_files_without_inventing_loudness(tmp_path):
    from soniquebay_assets.pipeline.enrich import analyze_file

    sf.write(str(tmp_path / "blip.wav"), _sine(997, 0.3, 44100), 44100)
    blip = analyze_file(str(tmp_path / "blip.wav")).values
    assert blip["status"] == "partial" and "too short for loudness" in blip["error"]
    assert blip["loudness_lufs"] is None and blip["replaygain_track_gain_db"] is None
    assert blip["replaygain_track_peak"] == pytest.approx(0.5, abs=0.01)
    sf.write(str(tmp_path / "quiet.flac"), np.zeros((44100 * 3, 2), dtype=np.float32), 44100)
    quiet = analyze_file(str(tmp_path / "quiet.flac")).values
    assert quiet["loudness_lufs"] is None and quiet["true_peak_dbtp"] is None and "silent" in quiet["error"]


def _oversampled_by_brute_force(x: np.ndarray, factor: int) -> float:
    """Every phase of every channel, whole signal: what the pruned search must equal."""
    best = float(np.abs(x).max())
    for phase in interpolator_phases(factor):
        for channel in x.T:
            best = max(best, float(np.abs(np.convolve(channel, phase)[: channel.size]).max()))
    return best


def test_pruned_true_peak_equals_oversampling_everything_in_any_block_size():
    rng = np.random.default_rng(7)
    sr = 44100
    music = synth.song(128, 4, "minor", 8, sr=sr, seed=2)
    loud = np.clip(np.stack([music, np.roll(music, 37)], axis=1) * 4.0, -1, 1)  # a brickwalled master
    noise = (rng.standard_normal((sr * 3, 2)) * 0.2).astype(np.float32)
    noise[sr : sr + 5] = [[0.9, -0.9], [-0.9, 0.9], [0.9, -0.9], [-0.9, 0.9], [0.9, -0.9]]  # one burst near fs/2
    for signal, rate in ((loud.astype(np.float32), sr), (noise, sr), (noise, 96000)):  # 4x, then 2x
        expected = _oversampled_by_brute_force(signal, 4 if rate < 96000 else 2)
        whole = measure_loudness(signal, rate)
        assert whole.true_peak == pytest.approx(expected, rel=1e-5)
        meter = LoudnessMeter(rate, 2)
        for start, size in enumerate_blocks(signal.shape[0], rng):
            meter.add(signal[start : start + size])
        streamed = meter.result()
        assert streamed.true_peak == pytest.approx(expected, rel=1e-5)
        assert streamed.integrated_lufs == whole.integrated_lufs and streamed.range_lu == whole.range_lu
        assert streamed.histogram == whole.histogram


def enumerate_blocks(total: int, rng) -> list[tuple[int, int]]:
    blocks, start = [], 0
    while start < total:
        size = int(rng.integers(1, 20000))
        blocks.append((start, size))
        start += size
    return blocks


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 96000, 192000, 384000])
def test_k_filter_blocks_equal_the_sections_run_sample_by_sample_in_any_block_sizes(sr):
    from scipy.signal import sosfilt

    rng = np.random.default_rng(sr)
    x = (rng.standard_normal((2, 60_000)) * 0.2).astype(np.float32)
    x[0] += 0.5  # a DC offset: the high-pass's slow state carries it from block to block
    x[1, 30_000:] = 0.0  # then silence: the state decays to nothing
    reference = sosfilt(k_weighting_sos(sr), x.astype(np.float64), axis=-1)
    k_filter = KFilter(sr)
    state, pieces, start = k_filter.initial_state(2), [], 0
    for size in [1, 31, 32, 33, 0, 511, 5_000] + [int(n) for n in rng.integers(1, 9_000, 20)]:
        out, state = k_filter.run(x[:, start : start + size], state)
        pieces.append(out.copy())  # the outputs are a view the next call overwrites
        start += size
    pieces.append(k_filter.run(x[:, start:], state)[0].copy())
    streamed = np.concatenate(pieces, axis=1)
    assert streamed.shape == x.shape and streamed.dtype == np.float32
    assert np.abs(streamed - reference).max() < 2e-5
    whole, _ = k_filter.run(x, k_filter.initial_state(2))
    assert np.abs(whole - reference).max() < 2e-5


def test_inter_sample_peaks_match_a_finer_independent_oversampler():
    from scipy.signal import resample_poly

    sr = 48000
    quarter = _sine(sr / 4, 2, sr, amplitude=1.0, phase=math.pi / 4)  # samples at +-0.707, peaks at 1.0
    clipped = np.clip(_sine(5000, 2, sr, amplitude=1.6), -1, 1)
    for signal, floor in ((quarter, 1.0), (clipped, 1.0)):
        measured = measure_loudness(signal, sr)
        reference = float(np.abs(resample_poly(signal.astype(np.float64), 16, 1)).max())
        assert 20 * math.log10(measured.true_peak / reference) == pytest.approx(0.0, abs=0.2)
        assert measured.true_peak >= floor * 0.98 and measured.true_peak >= measured.sample_peak


def _pyloudnorm(samples: np.ndarray, sr: int) -> float:
    """pyloudnorm with the BS.1770 filter as De Man derived it for any rate (its default RBJ shelf is
    0.05-0.1 LU off the standard's coefficients)."""
    import pyloudnorm

    return pyloudnorm.Meter(sr, filter_class="DeMan").integrated_loudness(samples.astype(np.float64))


def test_matches_pyloudnorm_on_synthetic_programmes():
    for sr in (22050, 44100, 48000):
        mono = synth.song(100, 2, "major", 12, sr=sr)
        stereo = np.stack([mono, np.roll(mono, 400) * 0.6], axis=1)
        for signal in (mono, stereo):
            assert measure_loudness(signal, sr).integrated_lufs == pytest.approx(_pyloudnorm(signal, sr), abs=0.02)
    quiet, loud = (measure_loudness(synth.song(100, 2, "major", 12) * g, 22050) for g in (0.1, 1.0))
    assert quiet.integrated_lufs == pytest.approx(loud.integrated_lufs - 20.0, abs=0.02)


def test_album_loudness_gates_the_union_of_its_tracks_blocks():
    sr = 22050
    a = synth.song(110, 0, "major", 20, sr=sr, seed=1)
    b = synth.song(90, 7, "minor", 30, sr=sr, seed=2) * 0.3
    tracks = [measure_loudness(t, sr) for t in (a, b)]
    together = measure_loudness(np.concatenate([a, b]), sr)
    album = album_replaygain([t.histogram for t in tracks], [t.true_peak for t in tracks])
    assert album.loudness_lufs == pytest.approx(together.integrated_lufs, abs=0.05)
    assert album.gain_db == pytest.approx(-18.0 - album.loudness_lufs, abs=0.01)
    assert album.peak == max(t.true_peak for t in tracks)
    assert gated_loudness([tracks[0].histogram]) == pytest.approx(tracks[0].integrated_lufs, abs=0.02)
    silent = measure_loudness(np.zeros(sr * 10, dtype=np.float32), sr)  # silence adds no block
    assert gated_loudness([*(t.histogram for t in tracks), silent.histogram]) == pytest.approx(
        gated_loudness([t.histogram for t in tracks]), abs=1e-9)
    for histogram in (tracks[0].histogram, BlockHistogram(12, (70000, 0, 3)), BlockHistogram(0, ())):
        assert BlockHistogram.from_bytes(histogram.to_bytes()) == histogram
    assert len(tracks[0].histogram.to_bytes()) < 1000


# Short real stereo songs of the corpus in several formats (44.1 kHz): FLAC, MP3, AAC, Vorbis, Opus.
CORPUS_SONGS = (
    "converted/Jens Erler - Musix 4 XMoto (2008)/01 - Madeira Stew.flac",
    "converted/LupusMechanicus - Legacy Soundtrack (2020)/02 - Awakened.mp3",
    "converted/Wesnoth Project - The Battle for Wesnoth OST (2008)/01 - Heroes Rite.m4a",
    "music/wesnoth/elf-land.ogg",
    "clips/immich-ai/calm/calm_acoustic_1.opus",
)


@pytest.mark.corpus
@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed (apt-get install ffmpeg)")
@pytest.mark.slow
def test_real_stereo_songs_match_ffmpeg_ebur128_and_pyloudnorm(corpus_dir):
    from soniquebay_assets.library.loudness_reference import ffmpeg_ebur128

    for relative in CORPUS_SONGS:
        path = corpus_dir / relative
        decoded = decode_track(path)
        ours, reference = decoded.loudness, ffmpeg_ebur128(path)
        assert decoded.channels == 2, path
        assert reference.error is None, reference.error
        assert ours.integrated_lufs == pytest.approx(reference.integrated_lufs, abs=0.1), path
        assert 20 * math.log10(ours.true_peak) == pytest.approx(reference.true_peak_dbtp, abs=0.3), path
        if path.suffix in (".flac", ".mp3", ".ogg"):  # the same samples through another implementation
            samples, sr = sf.read(str(path), dtype="float64", always_2d=True)
            assert ours.integrated_lufs == pytest.approx(_pyloudnorm(samples, sr), abs=0.02), path


@pytest.mark.corpus
@pytest.mark.skipif(LOUDGAIN is None, reason="loudgain is not installed (apt-get install loudgain)")
def test_album_gain_matches_loudgain_album_mode(corpus_dir):
    from soniquebay_assets.library.loudness_reference import loudgain

    folder = corpus_dir / "converted" / "LupusMechanicus - Legacy Soundtrack (2020)"
    files = sorted(folder.glob("*.mp3"))
    assert len(files) >= 2
    measured = [decode_track(f).loudness for f in files]
    album = album_replaygain([m.histogram for m in measured], [m.true_peak for m in measured])
    tracks, reference = loudgain(files, album=True)
    assert reference.error is None, reference.error
    assert album.gain_db == pytest.approx(-18.0 - reference.integrated_lufs, abs=0.2)
    for ours, theirs in zip(measured, tracks, strict=True):
        assert ours.integrated_lufs == pytest.approx(theirs.integrated_lufs, abs=0.1)


def _tagged_flac(path: Path, samples: np.ndarray, sr: int, **tags: str) -> None:
    import mutagen

    sf.write(str(path), samples, sr)
    audio = mutagen.File(str(path))
    for key, value in tags.items():
        audio[key.upper()] = [value]
    audio.save()


def test_album_gain_in_the_catalog_follows_its_tracks_and_a_part_bump_rewrites_only_its_part(tmp_path):
    """Two albums; the album gain is the union of its tracks' blocks, comes back when a track is deleted or
    re-analysed, and a loudness version bump rewrites loudness (and the moods made from it) but keeps tempo."""
    from soniquebay_assets.catalog import analysis as repo
    from soniquebay_assets.catalog.db import open_catalog
    from soniquebay_assets.catalog.queries import list_tracks
    from soniquebay_assets.library.walker import walk_library
    from soniquebay_assets.pipeline import enrich
    from soniquebay_assets.pipeline.scan import run_catalog_chain

    sr = 22050
    root = tmp_path / "music"
    folder = root / "Band" / "Record"
    folder.mkdir(parents=True)
    songs = {"01.flac": synth.song(120, 0, "major", 12, sr=sr, seed=1),
             "02.flac": synth.song(100, 9, "minor", 12, sr=sr, seed=2) * 0.25}
    for number, (name, samples) in enumerate(songs.items(), 1):
        _tagged_flac(folder / name, np.stack([samples, samples], axis=1), sr, title=f"Song {number}",
                     artist="Band", album="Record", tracknumber=str(number))
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        walk = walk_library([root])
        shards = sorted({f.shard for f in walk.files})
        run_catalog_chain(conn, ("scan", "extract", "insert"), shards, walk)
        stats = enrich.enrich_shards(conn, shards, data_dir=tmp_path / "data", workers=1)
        assert stats.analyzed == 2 and stats.albums_gated == 1 and stats.parts_recomputed["loudness"] == 2
        tracks = {t["title"]: t for t in list_tracks(conn)}
        expected = measure_loudness(np.concatenate([np.stack([s, s], axis=1) for s in songs.values()]), sr)
        first = tracks["Song 1"]
        assert first["replaygain_album_gain_db"] == pytest.approx(-18.0 - expected.integrated_lufs, abs=0.05)
        assert first["replaygain_album_peak"] == pytest.approx(max(t["replaygain_track_peak"] for t in tracks.values()))
        assert first["replaygain_track_gain_db"] == pytest.approx(-18.0 - first["loudness_lufs"], abs=0.01)
        gains = repo.replaygain_for_tracks(conn, [t["track_id"] for t in tracks.values()] + [999999])
        assert set(gains) == {t["track_id"] for t in tracks.values()}
        assert gains[first["track_id"]] == repo.ReplayGain(first["replaygain_track_gain_db"],
                                                           first["replaygain_track_peak"],
                                                           first["replaygain_album_gain_db"],
                                                           first["replaygain_album_peak"])
        assert enrich.enrich_shards(conn, shards, data_dir=tmp_path / "data").albums_gated == 0  # up to date

        # a track leaves the album: the album is gated again over what is left
        conn.execute("DELETE FROM tracks WHERE track_id = ?", (tracks["Song 2"]["track_id"],))
        assert enrich.enrich_shards(conn, shards, data_dir=tmp_path / "data").albums_gated == 1
        alone = next(t for t in list_tracks(conn) if t["title"] == "Song 1")
        assert alone["replaygain_album_gain_db"] == pytest.approx(alone["replaygain_track_gain_db"], abs=0.02)

        # rows written before loudness 8 (their tempo still current): the next run rewrites loudness, the
        # learned tags (version 9) and the moods made from them, keeps the stored tempo and key (edited here to see that they are not recomputed)
        conn.execute("UPDATE track_analysis SET analysis_version = 7, bpm = 1.5, key = 'F#', "
                     "loudness_lufs = 99.0, energy = -1.0, loudness_histogram = NULL")
        forced = enrich.enrich_shards(conn, shards, data_dir=tmp_path / "data", workers=1)
        assert forced.analyzed == 1 and forced.parts_recomputed == {"loudness": 1, "moods": 1, "tags": 1}
        row = next(t for t in list_tracks(conn) if t["title"] == "Song 1")
        assert (row["bpm_analyzed"], row["key"]) == (1.5, "F#")
        assert row["loudness_lufs"] == pytest.approx(alone["loudness_lufs"]) and 0 <= row["energy"] <= 1
        assert row["analysis_version"] == enrich.ANALYSIS_VERSION and forced.albums_gated == 1
    finally:
        conn.close()


def test_eval_loudness_scores_a_reference_file_and_refuses_bad_arguments(tmp_path, capsys):
    import json

    from soniquebay_assets.cli.main import main

    sr = 44100
    album = tmp_path / "album"
    album.mkdir()
    rows = []
    for number, gain in enumerate((1.0, 0.3), 1):
        samples = synth.song(100 + 10 * number, number, "major", 8, sr=sr, seed=number) * gain
        sf.write(str(album / f"{number:02d}.flac"), np.stack([samples, samples], axis=1), sr)
        truth = measure_loudness(np.stack([samples, samples], axis=1), sr)
        rows.append({"path": f"{number:02d}.flac", "integrated_lufs": truth.integrated_lufs + 0.05,
                     "true_peak_dbtp": truth.true_peak_dbtp})
    rows.append({"album": "album", "integrated_lufs": -30.0})  # far off on purpose: the album goal fails
    reference = tmp_path / "reference.jsonl"
    reference.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["eval", "loudness", str(album), "--reference", "none", "--reference-file", str(reference),
                 "--workers", "1", "--verbose"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["files"], report["measured"], report["albums"]) == (2, 2, 1)
    integrated = report["comparisons"]["integrated_vs_file"]
    assert integrated["n"] == 2 and integrated["median_abs"] == pytest.approx(0.05, abs=0.011)
    assert report["comparisons"]["true_peak_vs_file"]["max_abs"] <= 0.011
    assert report["comparisons"]["album_gain_vs_file"]["n"] == 1 and len(report["rows"]) == 3
    assert main(["eval", "loudness", str(tmp_path / "nowhere"), "--reference", "none",
                 "--reference-file", str(reference)]) == 2
    assert main(["eval", "loudness", str(album), "--reference", "sox"]) == 2
    assert "unknown tool sox" in capsys.readouterr().err
