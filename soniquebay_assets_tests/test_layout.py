from soniquebay_assets.domain.layout import SHARD_COUNT, SHARD_KEYS, album_folder_key, shard_for, shard_ranges


def test_disc_subfolders_collapse_to_album_folder():
    assert album_folder_key("Artist/Album/CD1") == "Artist/Album"
    assert album_folder_key("Artist/Album/Disc 2") == "Artist/Album"
    assert album_folder_key("Artist/Album/disk_03") == "Artist/Album"


def test_disc_suffixes_collapse_so_sibling_disc_folders_match():
    one = album_folder_key("Various Artists - Sampler (Disc 1)")
    two = album_folder_key("Various Artists - Sampler (Disc 2)")
    assert one == two == "Various Artists - Sampler"
    assert album_folder_key("Album [CD2]") == "Album"


def test_ordinary_folders_are_kept():
    assert album_folder_key("Artist/Discovery") == "Artist/Discovery"
    assert album_folder_key("Artist/CD") == "Artist/CD"
    assert album_folder_key("") == ""


def test_shards_are_stable_bounded_and_case_insensitive():
    assert len(SHARD_KEYS) == SHARD_COUNT == 128
    assert shard_for("/music/Artist/Album") == shard_for("/music/artist/album")
    assert shard_for("/music/Artist/Album") in SHARD_KEYS
    # Fixed value: changing the hash would reshuffle every user's partitions.
    assert shard_for("/music/Artist/Album") == "50"
    spread = {shard_for(f"/music/a{i}/b") for i in range(2000)}
    assert len(spread) == SHARD_COUNT  # 2000 folders reach every shard


def test_shard_ranges_keep_runs_small_for_few_changes():
    assert shard_ranges([]) == []
    assert shard_ranges(["0a"]) == [("0a", "0a")]
    assert shard_ranges(["0a", "0b", "0c", "70"]) == [("0a", "0c"), ("70", "70")]  # a wide gap: two small runs
    assert shard_ranges(["0a", "0c", "70"]) == [("0a", "0c"), ("70", "70")]  # a narrow gap is cheaper than a run
    scattered = [f"{i:02x}" for i in range(0, 128, 16)]  # 8 shards, gaps of 15
    assert shard_ranges(scattered) == [("00", "70")]
    assert shard_ranges(scattered, max_runs=16) == [("00", "70")]  # gaps under the cost of a run still merge
    far = ["00", "20", "40", "60", "7f"]
    assert shard_ranges(far) == [(s, s) for s in far]
    assert shard_ranges(far, max_runs=2) == [("00", "40"), ("60", "7f")]
