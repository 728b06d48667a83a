"""Tempo and key accuracy on synthetic audio with exact truth, through the evaluation functions."""

from __future__ import annotations

import numpy as np
import pytest

from soniquebay_assets.domain.analysis import evaluation, synth
from soniquebay_assets.domain.analysis.analyze import analyze_samples
from soniquebay_assets.domain.analysis.key import camelot, open_key, pitch_class
from soniquebay_assets.domain.analysis.spectrum import compute_spectrum
from soniquebay_assets.domain.analysis.tempo import estimate_tempo

SR = 22050


def test_tempo_accuracy1_on_click_and_drum_patterns_60_to_200_bpm():
    pairs = []
    for bpm in range(60, 201, 10):
        for style in ("click", "rock", "four_on_floor", "halftime_hats"):
            y = synth.click_track(bpm, 12, SR) if style == "click" else synth.drum_pattern(bpm, 12, SR, style, seed=bpm)
            pairs.append((estimate_tempo(compute_spectrum([y], SR)).bpm, float(bpm)))
    scores = evaluation.tempo_accuracy(pairs)
    assert scores.n == 60
    assert scores.accuracy1 >= 0.95, [p for p in pairs if not evaluation.tempo_correct(*p)]
    assert scores.accuracy2 == 1.0


@pytest.mark.parametrize("bpm", [61.0, 97.5, 133.3, 174.0, 199.0])
def test_tempo_is_not_on_a_coarse_grid(bpm):
    """librosa reports 117.5 for a true 120; the comb refinement must land within 1 %."""
    estimate = estimate_tempo(compute_spectrum([synth.drum_pattern(bpm, 15, SR, "rock")], SR))
    assert abs(estimate.bpm - bpm) / bpm < 0.01
    assert estimate.confidence > 0.3


def test_key_exact_rate_all_24_keys_several_timbres():
    pairs = []
    for tonic in range(12):
        for mode in ("major", "minor"):
            for i, timbre in enumerate(synth.TIMBRES[(tonic + (mode == "minor")) % 2 :: 2]):
                kind = "scale" if (tonic + i) % 2 else "progression"
                result = analyze_samples(synth.key_excerpt(tonic, mode, 5, SR, timbre, kind), SR)
                estimate = (pitch_class(result.key), result.mode) if result.key else None
                pairs.append((estimate, (tonic, mode)))
    scores = evaluation.key_accuracy(pairs)
    assert scores.n >= 48
    assert scores.exact >= 0.90, scores.relations
    assert scores.weighted >= scores.exact


def test_camelot_and_open_key_notation():
    assert camelot(0, "major") == "8B" and open_key(0, "major") == "1d"
    assert camelot(9, "minor") == "8A" and open_key(9, "minor") == "1m"
    assert camelot(7, "major") == "9B" and camelot(11, "major") == "1B"
    assert camelot(8, "minor") == "1A" and camelot(4, "minor") == "9A"
    assert open_key(4, "minor") == "2m" and open_key(5, "major") == "12d"
    # every key gets a distinct code
    assert len({camelot(t, m) for t in range(12) for m in ("major", "minor")}) == 24


def test_tempo_evaluation_measures():
    assert evaluation.tempo_correct(124.0, 120.0) is True  # 3.3 %
    assert evaluation.tempo_correct(125.0, 120.0) is False  # 4.2 %
    assert evaluation.tempo_correct(60.0, 120.0) is False
    assert evaluation.tempo_correct(60.0, 120.0, octave_errors=True) is True
    assert evaluation.tempo_correct(40.5, 120.0, octave_errors=True) is True  # x1/3
    assert evaluation.tempo_correct(90.0, 120.0, octave_errors=True) is False
    assert evaluation.tempo_correct(None, 120.0, octave_errors=True) is False
    scores = evaluation.tempo_accuracy([(120, 120), (60, 120), (None, 100), (300, 100)])
    assert (scores.accuracy1, scores.accuracy2) == (0.25, 0.75)


def test_key_evaluation_mirex_weights():
    c_major = (0, "major")
    assert evaluation.key_relation((0, "major"), c_major) == "exact"
    assert evaluation.key_relation((7, "major"), c_major) == "fifth"
    assert evaluation.key_relation((5, "major"), c_major) == "fifth"
    assert evaluation.key_relation((9, "minor"), c_major) == "relative"
    assert evaluation.key_relation((0, "minor"), c_major) == "parallel"
    assert evaluation.key_relation((3, "major"), (0, "minor")) == "relative"
    assert evaluation.key_relation((2, "major"), c_major) == "other"
    pairs = [((0, "major"), c_major), ((7, "major"), c_major), ((9, "minor"), c_major), ((0, "minor"), c_major),
             (None, c_major)]
    scores = evaluation.key_accuracy(pairs)
    assert scores.exact == pytest.approx(0.2)
    assert scores.weighted == pytest.approx((1.0 + 0.5 + 0.3 + 0.2) / 5)


@pytest.mark.parametrize("text,expected", [("A minor", (9, "minor")), ("Am", (9, "minor")), ("F#", (6, "major")),
                                           ("Ebm", (3, "minor")), ("C# major", (1, "major")), ("bb min", (10, "minor"))])
def test_parse_key(text, expected):
    assert evaluation.parse_key(text) == expected


def test_loudness_matches_pyloudnorm_and_replaygain_reference():
    import pyloudnorm

    from soniquebay_assets.domain.analysis.loudness import measure_loudness

    for sr in (22050, 48000):
        y = synth.song(100, 2, "major", 12, sr=sr)
        reference = pyloudnorm.Meter(sr).integrated_loudness(y.astype(np.float64))
        measured = measure_loudness([y], sr)
        assert measured.integrated_lufs == pytest.approx(reference, abs=0.1)
        assert measured.track_gain_db == pytest.approx(-18.0 - measured.integrated_lufs, abs=0.01)
        assert measured.peak == pytest.approx(float(np.abs(y).max()), rel=1e-4)
    quiet = measure_loudness([synth.song(100, 2, "major", 12) * 0.1], SR)
    loud = measure_loudness([synth.song(100, 2, "major", 12)], SR)
    assert quiet.integrated_lufs == pytest.approx(loud.integrated_lufs - 20.0, abs=0.1)
    assert loud.range_lu is not None and loud.range_lu >= 0


def test_moods_are_bounded_and_respond_to_the_music():
    calm = analyze_samples(synth.key_excerpt(0, "major", 12, SR, "sine") * 0.1, SR)
    busy = analyze_samples(synth.song(128, 0, "major", 12), SR)
    for result in (calm, busy):
        for name in ("energy", "danceability", "acousticness", "instrumentalness", "mood_happy", "mood_sad",
                     "mood_aggressive", "mood_relaxed", "mood_party"):
            value = getattr(result, name)
            assert value is None or 0.0 <= value <= 1.0, (name, value)
    assert busy.energy > calm.energy
    assert busy.danceability > (calm.danceability or 0.0)
    assert calm.mood_relaxed > busy.mood_relaxed
    assert busy.spectral_centroid > 0 and busy.spectral_rolloff >= busy.spectral_centroid
