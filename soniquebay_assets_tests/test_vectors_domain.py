"""Embedding text, Camelot keys, scaler and vector maths (pure, no model, no database)."""

from __future__ import annotations

import math
import unicodedata

import numpy as np
import pytest

from soniquebay_assets.domain import embedding_text as et


def test_text_holds_every_field_and_analysis_words():
    track = et.TrackText(
        title="Clair de lune", artists=("Claude Debussy", "Claude Debussy"), album="Suite bergamasque",
        album_artist="Various Artists", genres=("Classical", "classical", "Piano"), year=1905,
        analysis={"bpm": 66.0, "key": "Db", "mode": "major", "mood_relaxed": 0.9, "acousticness": 0.8, "energy": 0.1},
    )  # fmt: skip
    text = et.embedding_text(track)
    assert text.startswith("Title: Clair de lune. Artist: Claude Debussy. Album: Suite bergamasque by Various Artists.")
    assert "Genre: Classical, Piano." in text  # case-insensitive duplicates dropped
    assert "1900s music" in text
    assert "relaxed calm" in text and "acoustic" in text and "mellow" in text
    assert "slow tempo" in text and "C# major key" in text
    fields = et.text_fields(track)
    assert set(fields) == {"title", "artist", "album", "genre", "decade", "mood", "tempo", "key"}


def test_empty_metadata_still_gives_a_text():
    assert et.embedding_text(et.TrackText()) == f"Title: {et.EMPTY_TRACK_TEXT}."
    assert et.text_fields(et.TrackText(title="   ", artists=("", None), genres=())) == {"title": et.EMPTY_TRACK_TEXT}


def test_non_latin_text_is_kept_verbatim():
    track = et.TrackText(title="夜に駆ける", artists=("YOASOBI",), album="Кино — Группа крови", genres=("J-Pop",))
    text = et.embedding_text(track)
    assert "夜に駆ける" in text and "Кино — Группа крови" in text
    arabic = et.clean_field("أم كلثوم\u200b")
    assert arabic == "أم كلثوم"


def test_ten_kilobyte_title_is_bounded_without_breaking_characters():
    title = ("q\u0301" * 6000)[:10_000]  # base letter + combining accent (no precomposed form), 10 kB
    text = et.clean_field(title)
    assert len(text) <= et.MAX_FIELD_CHARS + 1
    body = text.rstrip("…")
    assert not unicodedata.combining(body[0])
    assert body.endswith("\u0301")  # the cut never leaves a base letter without its accent
    full = et.embedding_text(et.TrackText(title="x" * 10_000, album="y" * 10_000, genres=("z" * 10_000,) * 50))
    assert len(full) <= et.MAX_TEXT_CHARS + 1


def test_control_characters_and_lone_surrogates_are_cleaned():
    assert et.clean_field("a\x00b\tc\nd") == "a b c d"
    assert et.clean_field("bad\udcff") == "bad?"


@pytest.mark.parametrize(
    ("key", "mode", "camelot", "expected"),
    [
        ("C", "major", None, "8B"), ("A", "minor", None, "8A"), ("Am", None, None, "8A"), ("F#", "minor", None, "11A"),
        ("Bb", "major", None, "6B"), ("Ebm", None, None, "2A"), (None, None, "12b", "12B"), ("H", None, None, None),
    ],
)  # fmt: skip
def test_camelot_codes(key, mode, camelot, expected):
    assert et.camelot_code(key, mode, camelot) == expected


def test_camelot_neighbours_wrap_around_the_wheel():
    assert et.compatible_camelot("8A") == ["8A", "9A", "7A", "8B"]
    assert et.compatible_camelot("12B") == ["12B", "1B", "11B", "12A"]
    assert et.compatible_camelot("1A") == ["1A", "2A", "12A", "1B"]
    assert et.compatible_camelot("nonsense") == []


def test_scaler_is_fit_over_all_rows_not_one():
    rows = [et.raw_features({"bpm": b, "energy": e}) for b, e in ((80, 0.2), (120, 0.5), (160, 0.8))]
    scaler = et.fit_scaler(rows + [None], version=3)
    assert scaler.version == 3 and scaler.n_samples == 3
    bpm = et.FEATURE_NAMES.index("bpm")
    assert scaler.mean[bpm] == pytest.approx(120.0)
    assert scaler.std[bpm] == pytest.approx(math.sqrt(3200 / 3))
    z = et.standardize(rows[2], scaler)
    assert z[bpm] == pytest.approx(40 / math.sqrt(3200 / 3))
    assert z[et.FEATURE_NAMES.index("mood_sad")] == 0.0  # unknown feature -> the catalog mean
    # A feature seen with one constant value gets std 1, not a division by zero.
    assert scaler.std[et.FEATURE_NAMES.index("mood_sad")] == 1.0


def test_standardized_outliers_are_clipped():
    rows = [et.raw_features({"bpm": 100 + i}) for i in range(20)]
    scaler = et.fit_scaler(rows, version=1)
    z = et.standardize(et.raw_features({"bpm": 10_000}), scaler)
    assert z[et.FEATURE_NAMES.index("bpm")] == et.Z_CLIP


def test_key_angle_is_circular():
    near = et.raw_features({"camelot": "12A"})
    far = et.raw_features({"camelot": "6A"})
    one = et.raw_features({"camelot": "1A"})
    s, c = et.FEATURE_NAMES.index("key_sin"), et.FEATURE_NAMES.index("key_cos")

    def angle_distance(a, b):
        return math.hypot(a[s] - b[s], a[c] - b[c])

    assert angle_distance(near, one) < angle_distance(far, one)


def test_combine_is_unit_length_and_weighted():
    rng = np.random.default_rng(1)
    text = rng.standard_normal(16)
    audio = rng.standard_normal(len(et.FEATURE_NAMES))
    vector = et.combine(text, audio, et.Weights(text=1.0, audio=0.5))
    assert vector.dtype == np.float32 and vector.shape == (16 + len(et.FEATURE_NAMES),)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
    text_only = et.combine(text, None, et.Weights())
    assert np.all(text_only[16:] == 0)
    heavier = et.combine(text, audio, et.Weights(text=1.0, audio=2.0))
    assert np.linalg.norm(heavier[16:]) > np.linalg.norm(vector[16:])


def test_nan_inputs_are_rejected_or_imputed():
    with pytest.raises(ValueError, match="NaN"):
        et.combine(np.array([1.0, np.nan]), None, et.Weights())
    with pytest.raises(ValueError, match="zeros"):
        et.combine(np.zeros(4), None, et.Weights())
    raw = et.raw_features({"bpm": float("nan"), "energy": 0.4})
    assert raw[et.FEATURE_NAMES.index("bpm")] is None
    assert et.raw_features({"bpm": float("inf")}) is None


def test_weights_are_validated():
    with pytest.raises(ValueError):
        et.Weights(text=0.0)
    with pytest.raises(ValueError):
        et.Weights(audio=float("nan"))


def test_input_hash_tracks_every_input():
    base = et.input_hash("t", [1.0, None], "cfg", 1)
    assert base == et.input_hash("t", [1.0, None], "cfg", 1)
    assert base != et.input_hash("u", [1.0, None], "cfg", 1)
    assert base != et.input_hash("t", [2.0, None], "cfg", 1)
    assert base != et.input_hash("t", [1.0, None], "cfg2", 1)
    assert base != et.input_hash("t", [1.0, None], "cfg", 2)
    # A text-only vector does not depend on the scaler.
    assert et.input_hash("t", None, "cfg", 1) == et.input_hash("t", None, "cfg", 2)


def test_config_key_changes_with_model_dimension_and_weights():
    key = et.config_key("m", 384, et.Weights())
    assert key != et.config_key("other", 384, et.Weights())
    assert key != et.config_key("m", 768, et.Weights())
    assert key != et.config_key("m", 384, et.Weights(audio=0.9))


def test_compose_text_vector_weights_fields():
    a, b = np.eye(4, dtype=np.float32)[0], np.eye(4, dtype=np.float32)[1]
    composed = et.compose_text_vector({"title": a, "decade": b})
    assert np.linalg.norm(composed) == pytest.approx(1.0)
    assert composed[0] > composed[1] > 0  # title weighs more than the decade
    with pytest.raises(ValueError):
        et.compose_text_vector({})
