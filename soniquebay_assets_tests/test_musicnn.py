"""The torch port of the MusiCNN taggers against the original models (TensorFlow graph, librosa front end) run by
scripts/musicnn_reference.py on corpus excerpts: same input samples, every tag probability within 0.01."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from soniquebay_assets.domain.analysis import musicnn

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = json.loads((ROOT / "soniquebay_assets_tests" / "data" / "musicnn_reference.json").read_text())


def _reference_script():
    spec = importlib.util.spec_from_file_location("musicnn_reference", ROOT / "scripts" / "musicnn_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_converted_weights_are_the_full_models_with_their_licence():
    licence = (ROOT / "soniquebay_assets" / "models" / "musicnn" / "LICENSE.md").read_text()
    assert "Music Technology Group, Universitat Pompeu Fabra" in licence and "Permission to use" in licence
    for model in musicnn.MODELS:
        weights = musicnn._weights(model)
        assert sum(w.size for w in weights.values()) == 792_079  # the paper's ~790k parameters, no Adam slots
        assert not any("Adam" in name for name in weights)
        assert weights["dense_1/kernel"].shape == (200, len(musicnn.LABELS[model]))


@pytest.mark.slow  # five corpus excerpts through both models (about 40 patches)
@pytest.mark.parametrize("excerpt", FIXTURE["excerpts"], ids=lambda e: Path(e["path"]).parent.name)
def test_port_matches_the_original_models_on_the_same_audio(corpus_dir, excerpt):
    script = _reference_script()
    audio = script.reference_audio(corpus_dir / excerpt["path"], excerpt["start_s"], excerpt["length_s"])
    assert script.audio_digest(audio) == excerpt["audio_sha256"], "not the samples the reference was run on"
    batch = musicnn.patches(musicnn.log_mel(audio))
    for model, reference in excerpt["models"].items():
        taggram = musicnn.run(model, batch)
        assert list(taggram.labels) == reference["labels"]
        expected = np.array(reference["probabilities"])
        assert taggram.probabilities.shape == expected.shape
        assert np.abs(taggram.probabilities - expected).max() < 0.01
        assert np.allclose(taggram.penultimate[0], reference["penultimate_first_patch"], atol=1e-3)
        # the averaged tags (what the catalog keeps) rank the same top tags as the original
        top = np.argsort(-expected.mean(axis=0))[:5]
        assert set(np.argsort(-taggram.probabilities.mean(axis=0))[:5]) == set(top)


def test_patches_cut_like_musicnn():
    mel = np.arange(500 * 96, dtype=np.float32).reshape(500, 96)
    batch = musicnn.patches(mel)
    assert batch.shape == (2, musicnn.PATCH_FRAMES, 96)  # the 126 frames left over make no patch
    assert np.array_equal(batch[1], mel[187:374])
    assert musicnn.patches(mel[:100]).shape == (0, musicnn.PATCH_FRAMES, 96)


def test_moods_follow_the_tags_that_say_them():
    from soniquebay_assets.domain.analysis.moods import mood_scores

    silent_tags = {"msd": dict.fromkeys(musicnn.MSD_LABELS, 0.0), "mtt": dict.fromkeys(musicnn.MTT_LABELS, 0.0)}
    metal = {"msd": {**silent_tags["msd"], "metal": 0.9, "heavy metal": 0.4},
             "mtt": {**silent_tags["mtt"], "loud": 0.7, "fast": 0.5}}
    ambient = {"msd": {**silent_tags["msd"], "ambient": 0.6, "chillout": 0.3},
               "mtt": {**silent_tags["mtt"], "quiet": 0.5, "soft": 0.4, "no vocals": 0.6}}
    loud, calm, none = mood_scores(metal), mood_scores(ambient), mood_scores(silent_tags)
    assert loud.aggressive > 0.9 and calm.aggressive == 0.0
    assert calm.relaxed > 0.8 > loud.relaxed
    assert loud.energy > 0.9 and calm.energy < 0.2 and none.energy == 0.5  # no evidence either way: the middle
    assert calm.instrumentalness > 0.7 and none.instrumentalness == 0.5
    assert all(0.0 <= v <= 1.0 for s in (loud, calm, none) for v in s.as_dict().values())


@pytest.mark.slow  # two corpus songs through the whole analysis
def test_analysis_hears_metal_and_orchestra(corpus_dir):
    from soniquebay_assets.pipeline.enrich import analyze_file

    metal = analyze_file(str(corpus_dir / "music/fretsonfire-muldjord/muldjord/chaos_god/song.ogg")).values
    tags = json.loads(metal["music_tags"])
    assert max(tags["msd"], key=tags["msd"].get) == "metal"
    assert metal["mood_aggressive"] > metal["mood_relaxed"] and metal["mood_aggressive"] > metal["mood_happy"]
    orchestra = analyze_file(str(corpus_dir / "music/wesnoth/elf-land.ogg")).values
    assert orchestra["mood_relaxed"] > orchestra["mood_aggressive"]
    assert orchestra["energy"] < metal["energy"]
    assert len(np.frombuffer(metal["audio_embedding"], dtype="<f4")) == 400
