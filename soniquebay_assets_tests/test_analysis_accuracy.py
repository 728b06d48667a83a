"""Tempo and key accuracy on synthetic audio with exact truth, through the evaluation functions."""

from __future__ import annotations

import numpy as np
import pytest

from soniquebay_assets.domain.analysis import evaluation, synth
from soniquebay_assets.domain.analysis.analyze import analyze_samples
from soniquebay_assets.domain.analysis.key import camelot, open_key, pitch_class
from soniquebay_assets.domain.analysis.spectrum import compute_spectrum
from soniquebay_assets.domain.analysis.tempo import backbeat_level, estimate_tempo, kick_snare_correlation
from soniquebay_assets_tests.audio_factory import click_track

SR = 22050


@pytest.mark.slow  # a sweep of rendered patterns
def test_tempo_accuracy1_on_click_and_drum_patterns_60_to_200_bpm():
    pairs = []
    for bpm in range(60, 201, 10):
        for style in ("click", "rock", "four_on_floor", "halftime_hats"):
            y = click_track(bpm, 12, SR) if style == "click" else synth.drum_pattern(bpm, 12, SR, style, seed=bpm)
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


@pytest.mark.slow  # 24 keys x several timbres
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
    # square waves (odd partials only, a strong 3rd partial = the dominant) are the weak timbre: 0.33-0.67
    assert scores.exact >= 0.85, scores.relations
    assert scores.weighted >= 0.88
    assert scores.weighted >= scores.exact


@pytest.mark.parametrize("timbre", ["saw", "piano", "square"])
@pytest.mark.parametrize("tonic", [0, 5, 9])
def test_harmonic_suppression_counts_notes_not_partials(timbre, tonic):
    """One sustained note with rich partials: its 3rd partial (a twelfth up: the dominant pitch class) weighs
    clearly less against the tonic once upper partials are suppressed, and the note itself stays on top."""
    from soniquebay_assets.domain.analysis.key import pitch_class_profile

    y = synth.key_excerpt(tonic, "major", 4, SR, timbre, "scale")[: SR // 2]  # the first scale note only
    spectrum = compute_spectrum([np.tile(y, 8)], SR)
    raw, suppressed = pitch_class_profile(spectrum, decay=0.0), pitch_class_profile(spectrum)
    dominant = (tonic + 7) % 12
    assert suppressed[dominant] / suppressed[tonic] < 0.8 * raw[dominant] / raw[tonic]
    if timbre != "square":  # a square wave's 3rd partial is 1/3 of the note: more than the assumed decay removes
        assert int(np.argmax(suppressed)) == tonic


def test_peak_view_puts_a_partial_on_its_semitone_and_splits_one_between_two():
    from soniquebay_assets.domain.analysis.key import LOWEST_MIDI, peak_semitones

    t = np.arange(3 * SR) / SR
    c4 = 440.0 * 2 ** ((60 - 69) / 12)
    on_pitch = peak_semitones(compute_spectrum([np.sin(2 * np.pi * c4 * t).astype(np.float32)], SR))
    assert int(np.argmax(on_pitch)) == 60 - LOWEST_MIDI
    assert on_pitch[60 - LOWEST_MIDI] > 0.8 * on_pitch.sum()  # the window's side lobes are not notes
    between = peak_semitones(compute_spectrum([np.sin(2 * np.pi * c4 * 2 ** (0.5 / 12) * t).astype(np.float32)], SR))
    c, c_sharp = between[60 - LOWEST_MIDI], between[61 - LOWEST_MIDI]
    assert c > 0 and c_sharp > 0 and 0.8 < c / c_sharp < 1.25  # a quarter tone sharp: half to each neighbour
    assert not np.any(peak_semitones(compute_spectrum([np.zeros(SR, dtype=np.float32)], SR)))


def _triads(*chords: tuple[int, int, float]) -> np.ndarray:
    """Pitch-class profile of (root, third in semitones, weight) triads sounding together over a piece."""
    profile = np.zeros(12)
    for root, third, weight in chords:
        for interval in (0, third, 7):
            profile[(root + interval) % 12] += weight
    return profile


def test_three_chord_profiles_hold_the_tonic_subdominant_and_dominant_triads():
    from soniquebay_assets.domain.analysis.key import THREE_CHORD_PROFILES, key_scores

    major, minor = (np.asarray(p) for p in THREE_CHORD_PROFILES)
    assert set(np.flatnonzero(major)) == {0, 2, 4, 5, 7, 9, 11}  # C major's scale: C-E-G, F-A-C, G-B-D
    assert set(np.flatnonzero(minor)) == {0, 2, 3, 5, 7, 8, 11}  # A harmonic minor's, rotated to C: a major V
    assert int(np.argmax(major)) == 7 and major[0] > major[4]  # the dominant note is in two triads, the tonic too

    # part-writing that dwells on its dominant (half cadences, a dominant pedal): the note profiles alone
    # read these as the key a fifth up (G major) and as the dominant's own key (E major)
    assert int(np.argmax(key_scores(_triads((0, 4, 1.5), (5, 4, 0.5), (7, 4, 2.0))))) == 0  # C major
    assert int(np.argmax(key_scores(_triads((9, 3, 1.5), (2, 3, 0.5), (4, 4, 2.5))))) == 12 + 9  # A minor


def test_key_strength_and_confidence_are_reported_and_lower_for_an_ambiguous_profile():
    clear = analyze_samples(synth.key_excerpt(9, "minor", 8, SR, "piano", "progression"), SR)
    assert (clear.key, clear.mode) == ("A", "minor")
    assert 0.5 < clear.key_strength <= 1.0 and clear.key_confidence > 0
    chromatic = np.concatenate([synth.key_excerpt(t, "major", 1.0, SR, "piano", "scale")[: SR // 4]
                                for t in range(12)] * 4)
    vague = analyze_samples(chromatic, SR)
    assert vague.key_strength is None or vague.key_strength < clear.key_strength
    assert (vague.key_confidence or 0.0) < clear.key_confidence


def test_tempo_prior_and_meter_check_on_compound_and_slow_pulses():
    """Accented compound meter (6/8 at a dotted quarter of 100) and a slow tonal pulse: neither is reported at
    3/2 or 2x of the beat."""
    beat = 60.0 / 100.0
    seconds = 20.0
    y = np.zeros(int(seconds * SR), dtype=np.float32)
    note = synth.key_excerpt(0, "major", 0.25, SR, "piano", "scale")[: int(0.2 * SR)]
    for i, start in enumerate(np.arange(0, seconds - 0.3, beat / 3)):  # eighths, first of each three accented
        at = int(start * SR)
        y[at : at + note.size] += (1.0 if i % 3 == 0 else 0.35) * note
    estimate = estimate_tempo(compute_spectrum([y], SR))
    assert evaluation.tempo_confusion(estimate.bpm, 100.0) == "x1", estimate
    assert not estimate.percussive
    slow = np.zeros(int(seconds * SR), dtype=np.float32)
    chord = synth.key_excerpt(0, "major", 0.6, SR, "piano", "progression")
    for start in np.arange(0, seconds - 0.7, 60.0 / 72.0):
        at = int(start * SR)
        slow[at : at + chord.size] += chord[: slow.size - at]
    estimate = estimate_tempo(compute_spectrum([slow], SR))
    assert evaluation.tempo_confusion(estimate.bpm, 72.0) == "x1", estimate


def _pulses(frames: int, period: float, phase: float) -> np.ndarray:
    envelope = np.zeros(frames, dtype=np.float32)
    envelope[np.round(np.arange(phase, frames - 1, period)).astype(int)] = 1.0
    return envelope


def test_backbeat_turns_a_subdivision_into_the_beat():
    """Kick on beats 1 and 3, snare on 2 and 4 (with snare-band eighths on top): the eighth-note level the
    fastest-level rule may pick is halved, a triplet level is divided by three, the beat itself is kept."""
    fps, bpm, frames = 86.0, 90.0, 2600
    beat = 60.0 * fps / bpm
    kick = [_pulses(frames, 2 * beat, 0.0)]
    snare = [_pulses(frames, 2 * beat, beat) + 0.3 * _pulses(frames, beat / 2, 0.0)]
    assert backbeat_level(kick, snare, fps, bpm) == bpm
    assert backbeat_level(kick, snare, fps, 2 * bpm) == bpm
    assert backbeat_level(kick, snare, fps, 3 * bpm) == pytest.approx(bpm)
    assert kick_snare_correlation(kick, snare, beat) > kick_snare_correlation(kick, snare, beat / 2) + 0.5


def test_tempo_and_key_confusion_classes():
    assert evaluation.tempo_confusion(150.0, 100.0) == "x3/2"
    assert evaluation.tempo_confusion(200.0, 100.0) == "x2"
    assert evaluation.tempo_confusion(50.0, 100.0) == "x1/2"
    assert evaluation.tempo_confusion(66.0, 100.0) == "x2/3"
    assert evaluation.tempo_confusion(101.0, 100.0) == "x1"
    assert evaluation.tempo_confusion(117.0, 100.0) == "other"
    assert evaluation.tempo_confusion(None, 100.0) == "not_measured"
    assert evaluation.key_confusion((7, "major"), (0, "major")) == "fifth_up"
    assert evaluation.key_confusion((5, "major"), (0, "major")) == "fifth_down"
    assert evaluation.key_confusion((9, "minor"), (0, "major")) == "relative"
    assert evaluation.key_confusion(None, (0, "major")) == "not_measured"
    report = evaluation.key_report([((7, "major"), (0, "major")), ((0, "major"), (0, "major"))])
    assert report["exact"] == 0.5 and report["mirex_weighted"] == 0.75
    assert report["confusions"] == {"fifth_up": 1, "exact": 1}


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
