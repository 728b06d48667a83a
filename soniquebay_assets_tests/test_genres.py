"""Genre normalization: splitting, synonyms, canonical casing; mood tags from scores."""

from __future__ import annotations

import pytest

from soniquebay_assets.domain.genres import (
    canonical_casing,
    match_key,
    mood_tags,
    normalize_genre,
    normalize_genres,
    split_genres,
)


@pytest.mark.parametrize("raw", ["Hip-Hop", "hip hop", "HipHop", "HIP HOP", "hip_hop", "Hip Hop/Rap"])
def test_hip_hop_spellings_are_one_genre(raw):
    assert normalize_genres(raw) == ["Hip Hop"]


@pytest.mark.parametrize("raw,expected", [
    ("Rock/Pop; hip-hop", ["Rock", "Pop", "Hip Hop"]),
    ("Electronic, electronica|EDM", ["Electronic", "EDM"]),
    ("Jazz\x00Blues", ["Jazz", "Blues"]),
    ("drum and bass", ["Drum & Bass"]),
    ("Drum & Bass / Techno", ["Drum & Bass", "Techno"]),
    ("R&B", ["R&B"]),
    ("rnb", ["R&B"]),
    ("Rhythm and Blues", ["R&B"]),
    ("Rock & Roll", ["Rock & Roll"]),
    ("singer/songwriter", ["Singer-Songwriter"]),
    ("(17)", ["Rock"]),
    ("17", ["Rock"]),
    ("(13)Pop", ["Pop"]),
    ("", []),
    ("Unknown", []),
    ("  ", []),
])
def test_split_and_normalize(raw, expected):
    assert normalize_genres(raw) == expected


def test_lists_of_values_are_merged_without_duplicates_in_order():
    assert normalize_genres(["Hip-Hop; electronica", "hip hop", "Electronic"]) == ["Hip Hop", "Electronic"]
    assert normalize_genres(None) == []


def test_unknown_genres_get_canonical_casing():
    assert normalize_genre("progressive rock") == "Progressive Rock"
    assert normalize_genre("UK garage") == "UK Garage"
    assert normalize_genre("music OF the night") == "Music of the Night"
    assert canonical_casing("edm  anthems") == "EDM Anthems"
    assert normalize_genre("  post   punk ") == "Post-Punk"


def test_match_key_ignores_spelling_noise():
    assert match_key("Hip-Hop") == match_key("hip hop") == match_key("HipHop")
    assert match_key("Drum 'n' Bass") == match_key("drum and bass") == match_key("Drum & Bass")
    assert match_key("Rock") != match_key("Pop")


def test_split_keeps_exempt_names_whole():
    assert split_genres("AC/DC-style rock") == ["AC", "DC-style rock"]  # a real separator still splits
    assert split_genres("Drum & Bass") == ["Drum & Bass"]


def test_mood_tags_from_scores():
    scores = {"energy": 0.85, "danceability": 0.7, "acousticness": 0.1, "instrumentalness": 0.9,
              "mood_happy": 0.65, "mood_sad": 0.1, "mood_aggressive": None, "mood_relaxed": 0.2, "mood_party": 0.61}
    assert mood_tags(scores) == ["energetic", "danceable", "instrumental", "happy", "party"]
    assert mood_tags({"energy": 0.2}) == ["calm"]
    assert mood_tags({}) == []
    assert mood_tags({"energy": None, "mood_sad": None}) == []


def test_online_tags_merge_through_the_whitelist_and_tree_without_dropping_own_genres():
    from soniquebay_assets.domain.genres import merge_genres, whitelisted_genres

    assert whitelisted_genres(["seen live", "Hip-Hop", "british", "alt rock", "hip hop"]) == ["Hip Hop",
                                                                                            "Alternative Rock"]
    # Own genres first and untouched (even one outside the whitelist); Metal adds nothing beside Death Metal.
    assert merge_genres(["Death Metal", "Zeuhl"], ["metal", "thrash", "female vocalists"]) == [
        "Death Metal", "Zeuhl", "Thrash Metal"]
    assert merge_genres([], ["rock", "pop", "jazz", "blues", "folk"], max_added=3) == ["Rock", "Pop", "Jazz"]
    assert merge_genres(["Rock"], []) == ["Rock"]


def test_album_scoring_threshold_separates_same_from_different_releases():
    from soniquebay_assets.domain.online_match import (
        MATCH_THRESHOLD,
        AlbumFacts,
        ReleaseCandidate,
        is_confident,
        score_candidate,
    )

    album = AlbumFacts("Abbey Road (Remastered)", "The Beatles", (259.0, 207.0, 182.0))

    def release(title="Abbey Road", artist="The Beatles", lengths=(259500, 206800, 181900)):
        return ReleaseCandidate("r", title, artist, len(lengths), track_lengths_ms=lengths)

    assert score_candidate(album, release()).score >= 0.97 and is_confident(release_scored := score_candidate(
        album, release()))
    assert release_scored.components["title"] == 1.0  # "(Remastered)" ignored
    assert not is_confident(score_candidate(album, release(artist="Beatles Revival Band")))
    assert score_candidate(album, release(lengths=(239000, 187000, 162000))).score < MATCH_THRESHOLD
    assert score_candidate(album, release(lengths=(259500, 206800, 181900, 200000, 210000))).score < MATCH_THRESHOLD
    compilation = AlbumFacts("Now 42", "Various Artists", (200.0,), compilation=True)
    assert score_candidate(compilation, ReleaseCandidate("c", "Now 42", "Various Artists", 1,
                                                         track_lengths_ms=(200000,))).score == 1.0
