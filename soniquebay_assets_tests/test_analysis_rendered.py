"""Tempo and key on General MIDI renders (FluidSynth), the way the dev set is built; skipped without fluidsynth."""

from __future__ import annotations

import importlib.util
import random
import shutil
from pathlib import Path

import pytest

from soniquebay_assets.domain.analysis import evaluation
from soniquebay_assets.pipeline.enrich import analyze_file

BUILDER = Path(__file__).resolve().parents[1] / "scripts" / "build_dev_set.py"


def _builder():
    spec = importlib.util.spec_from_file_location("build_dev_set", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if shutil.which("fluidsynth") is None or not Path(module.SOUNDFONT).exists():
        pytest.skip("fluidsynth or the General MIDI soundfont is not installed (scripts/install.sh installs them)")
    return module


A_MINOR_CHORDS = ((57, 60, 64), (62, 65, 69), (64, 68, 71), (57, 60, 64))  # i iv V i, harmonic minor
C_MAJOR_CHORDS = ((48, 52, 55), (53, 57, 60), (55, 59, 62), (48, 52, 55))  # I IV V I


def _tune(chords, meter: str, beat_ql: float, bar_ql: float) -> dict:
    """Block chords (one per bar, in three parts) under a melody of chord tones moving every half beat."""
    events, offset = [], 0.0
    for _ in range(2):
        for chord in chords:
            for part, pitch in enumerate(chord, start=1):
                events.append((part, offset, bar_ql, pitch - 12 * (part == 3)))
            step = beat_ql / (3 if beat_ql == 1.5 else 2)
            for i in range(int(bar_ql / step)):
                events.append((0, offset + i * step, step, chord[i % 3] + 12))
            offset += bar_ql
    return {"meter": meter, "beat_ql": beat_ql, "bar_ql": bar_ql, "parts": 4, "length_ql": offset,
            "events": events, "chords": [], "anacrusis_ql": 0.0}


def _render(builder, tmp_path, desc, setup, bpm, key) -> dict:
    job = {"desc": desc, "setup": setup, "bpm": bpm, "seconds": 24.0, "key": key, "meter": desc["meter"],
           "source": "test", "seed": 7, "path": str(tmp_path / f"{setup}_{desc['meter'].replace('/', '-')}.flac")}
    builder.render(job)
    return analyze_file(job["path"]).values


@pytest.mark.parametrize("setup", ["organ", "strings", "piano"])
def test_rendered_harmonic_minor_and_major_keys(tmp_path, setup):
    builder = _builder()
    minor = _render(builder, tmp_path, _tune(A_MINOR_CHORDS, "4/4", 1.0, 4.0), setup, 96.0, "A minor")
    assert (minor["key"], minor["mode"]) == ("A", "minor"), minor
    assert minor["key_strength"] > 0.5
    major = _render(builder, tmp_path, _tune(C_MAJOR_CHORDS, "3/4", 1.0, 3.0), setup, 120.0, "C major")
    assert (major["key"], major["mode"]) == ("C", "major"), major


@pytest.mark.parametrize("meter,beat_ql,bar_ql,bpm", [("6/8", 1.5, 3.0, 100.0), ("9/8", 1.5, 4.5, 80.0),
                                                      ("4/4", 1.0, 4.0, 72.0), ("3/4", 1.0, 3.0, 150.0)])
def test_rendered_band_tempo_at_the_beat_of_the_meter(tmp_path, meter, beat_ql, bar_ql, bpm):
    """Drums + bass + chords: the beat of the meter (the dotted quarter in 6/8 and 9/8), not 3/2 or 2x of it."""
    builder = _builder()
    random.seed(0)
    values = _render(builder, tmp_path, _tune(C_MAJOR_CHORDS, meter, beat_ql, bar_ql), "band", bpm, "C major")
    assert evaluation.tempo_confusion(values["bpm"], bpm) == "x1", values
    assert 0.0 < values["bpm_confidence"] <= 1.0


@pytest.mark.parametrize("setup", ["piano", "organ", "strings"])
@pytest.mark.parametrize("meter,beat_ql,bar_ql,bpm", [("9/8", 1.5, 4.5, 80.0), ("4/4", 1.0, 4.0, 72.0),
                                                      ("2/2", 2.0, 4.0, 70.0),
                                                      # slow: three renders per case; the fast tier keeps the cases
                                                      # above
                                                      pytest.param("2/2", 2.0, 4.0, 90.0, marks=pytest.mark.slow),
                                                      pytest.param("6/8", 1.5, 3.0, 55.0, marks=pytest.mark.slow),
                                                      pytest.param("6/8", 1.5, 3.0, 80.0, marks=pytest.mark.slow)])
def test_rendered_tonal_tempo_is_not_doubled_or_taken_at_three_halves(tmp_path, setup, meter, beat_ql, bar_ql, bpm):
    """Without drums: a slow 4/4 beat, the half note of 2/2 and the dotted quarter of 6/8 and 9/8 (the old octave
    rule gave x2, x2 and x3/2 here)."""
    builder = _builder()
    values = _render(builder, tmp_path, _tune(C_MAJOR_CHORDS, meter, beat_ql, bar_ql), setup, bpm, "C major")
    assert evaluation.tempo_confusion(values["bpm"], bpm) == "x1", values


@pytest.mark.slow
def test_drum_detector_tells_a_kit_from_bright_instruments(tmp_path):
    """The drum rule needs noise-like highs: a band with a kit is percussive; guitar, organ and strings playing
    the same tune are not, however much of their onset flux lies above 5 kHz."""
    import soundfile as sf

    from soniquebay_assets.domain.analysis.spectrum import compute_spectrum
    from soniquebay_assets.domain.analysis.tempo import estimate_tempo, high_flatness

    builder = _builder()
    random.seed(0)
    found = {}
    for setup in ("band", "guitar", "organ", "strings"):
        desc = _tune(C_MAJOR_CHORDS, "4/4", 1.0, 4.0)
        job = {"desc": desc, "setup": setup, "bpm": 110.0, "seconds": 20.0, "key": "C major", "meter": "4/4",
               "source": "test", "seed": 3, "path": str(tmp_path / f"{setup}.flac")}
        builder.render(job)
        y, sr = sf.read(job["path"], dtype="float32")
        spectrum = compute_spectrum([y], sr)
        found[setup] = (estimate_tempo(spectrum).percussive, round(high_flatness(spectrum), 3))
    assert found["band"][0], found
    assert not any(found[s][0] for s in ("guitar", "organ", "strings")), found
    assert found["band"][1] > max(found[s][1] for s in ("guitar", "organ", "strings")), found


def test_dev_sets_leave_out_every_score_of_the_held_out_check():
    """The held-out check renders these collections and single scores: the builder never selects them (its
    own Bach prelude BWV 846 is not a chorale and stays allowed)."""
    spec = importlib.util.spec_from_file_location("build_dev_set", BUILDER)
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    held_out = ["bach/bwv269.mxl", "essenFolksong/altdeu10.abc", "oneills1850/0001-0050.abc",
                "ryansMammoth/ryansMammothCollection.abc", "haydn/opus74no1/movement1.mxl",
                "mozart/k458/movement1.mxl", "beethoven/opus18no1/movement1.mxl", "chopin/mazurka06-2.krn",
                "schumann_robert/opus41no1/movement5.mxl", "beach/prayer_of_a_tired_child.musicxml",
                "cpebach/h186.mxl", "schubert/Lindenbaum.xml", "joplin/maple_leaf_rag.mxl"]
    assert all(builder.is_reserved(path) for path in held_out)
    assert len(builder.RESERVED_SCORES) == 13
    allowed = ["bach/bwv846.xml", "chopin/mazurka06-1.krn", "schumann_robert/opus41no1/movement3.mxl",
               "airdsAirs/book1.abc", "palestrina/agnus_0.krn"]
    assert not any(builder.is_reserved(path) for path in allowed)
    for truth in ("truth.tsv", "validation/truth.tsv", "polyphonic/truth.tsv", "third/truth.tsv"):
        lines = (BUILDER.parent / "devset" / truth).read_text(encoding="utf-8").splitlines()
        column = lines[0].split("\t").index("source")
        sources = [line.split("\t")[column].split("#")[0] for line in lines[1:] if line.strip()]
        assert sources and not [s for s in sources if builder.is_reserved(s)], truth
