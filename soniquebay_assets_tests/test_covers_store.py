"""Image validation and content-addressed storage, cover ranking and folder-image name matching."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from soniquebay_assets.artwork.image_store import ImageRejected, ImageStore
from soniquebay_assets.domain.cover_choice import (
    ALBUM_IMAGE_STEMS,
    ARTIST_FOLDER_STEMS,
    CoverCandidate,
    album_priority,
    artist_priority,
    aspect_penalty,
    is_disc_folder,
    is_various_artists,
    match_folder_images,
    rank_artist_candidates,
    rank_candidates,
)
from soniquebay_assets_tests.fake_artwork_server import image_bytes, png_bomb


@pytest.fixture()
def store(tmp_path):
    return ImageStore(tmp_path / "covers", max_bytes=2 * 1024 * 1024, max_pixels=10_000_000)


def stored_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_store_is_content_addressed_and_deduplicates(store, tmp_path):
    data = image_bytes(1000, 800, "JPEG")
    first = store.store(data)
    second = store.store(data)
    assert first.sha256 == second.sha256 and first.path == second.path
    assert first.path == f"{first.sha256[:2]}/{first.sha256[2:4]}/{first.sha256}.jpg"
    assert not first.already_stored and second.already_stored
    originals = [f for f in stored_files(store.root) if not f.startswith("thumbs/")]
    assert originals == [first.path]
    assert (first.mime, first.width, first.height) == ("image/jpeg", 1000, 800)


def test_thumbnails_fit_their_box_and_small_originals_are_not_upscaled(store):
    big = store.store(image_bytes(1000, 800, "PNG"))
    assert set(big.thumbnails) == {"150", "300", "600"}
    for size, relative in big.thumbnails.items():
        with Image.open(store.absolute(relative)) as thumb:
            assert max(thumb.size) == int(size)
            assert thumb.format == "JPEG"
    small = store.store(image_bytes(200, 200, "PNG", color=(1, 2, 3)))
    assert small.thumbnails["300"] == small.path and small.thumbnails["600"] == small.path
    with Image.open(store.absolute(small.thumbnails["150"])) as thumb:
        assert thumb.size == (150, 150)


def test_transparent_png_thumbnail_is_flattened(store):
    buffer = io.BytesIO()
    Image.new("RGBA", (400, 400), (0, 0, 0, 0)).save(buffer, format="PNG")
    stored = store.store(buffer.getvalue())
    with Image.open(store.absolute(stored.thumbnails["150"])) as thumb:
        assert thumb.mode == "RGB" and thumb.getpixel((5, 5)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"<html>not an image</html>", "not_an_image"),
        (b"", "empty"),
        (png_bomb(), "too_many_pixels"),
        (image_bytes(64, 64, "GIF"), "format_not_allowed"),
        (image_bytes(64, 64, "BMP"), "format_not_allowed"),
        (image_bytes(300, 300, "JPEG")[:400], "not_an_image"),  # truncated: header fine, data missing
    ],
    ids=["html", "empty", "bomb", "gif", "bmp", "truncated"],
)
def test_rejects_what_is_not_a_safe_allowed_image(store, data, reason):
    with pytest.raises(ImageRejected) as info:
        store.store(data)
    assert info.value.reason == reason
    assert stored_files(store.root) == []


def test_bomb_is_refused_even_under_pillows_own_limit(tmp_path):
    # 9000x9000 = 81 Mpx: below Pillow's MAX_IMAGE_PIXELS warning level, above our cap.
    store = ImageStore(tmp_path / "c", max_pixels=40_000_000)
    with pytest.raises(ImageRejected) as info:
        store.validate(png_bomb(9000, 9000))
    assert info.value.reason == "too_many_pixels"


def test_byte_cap(tmp_path):
    store = ImageStore(tmp_path / "c", max_bytes=1000)
    with pytest.raises(ImageRejected) as info:
        store.store(_noise_png())
    assert info.value.reason == "too_large"


def _noise_png() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((300, 300), 80).save(buffer, format="PNG")
    assert len(buffer.getvalue()) > 1000
    return buffer.getvalue()


def test_webp_is_allowed(store):
    stored = store.store(image_bytes(320, 320, "WEBP"))
    assert stored.mime == "image/webp" and stored.path.endswith(".webp")


# -- ranking -------------------------------------------------------------------------------------------------


def cand(name, **kw):
    return CoverCandidate(source="t", origin=name, **kw)


def test_front_cover_beats_a_bigger_back_cover():
    back = cand("back", picture_type=4, width=1200, height=1200)
    front = cand("front", picture_type=3, width=300, height=300)
    assert [c.origin for c in rank_candidates([back, front])] == ["front", "back"]


def test_near_square_beats_panorama_then_bigger_wins():
    wide = cand("wide", is_front=True, width=2000, height=600)
    small = cand("small", is_front=True, width=300, height=300)
    big = cand("big", is_front=True, width=900, height=880)
    assert [c.origin for c in rank_candidates([wide, small, big])] == ["big", "small", "wide"]
    assert aspect_penalty(500, 500) == 0 and aspect_penalty(None, 5) == 0.5


def test_unknown_sizes_keep_the_sources_own_order():
    items = [cand(f"c{i}", is_front=True, preference=i) for i in range(3)]
    assert [c.origin for c in rank_candidates(reversed(items))] == ["c0", "c1", "c2"]


def test_artist_ranking_prefers_artist_picture_types():
    cover = cand("cover", picture_type=3, width=600, height=600)
    artist = cand("artist", picture_type=8, width=300, height=300)
    assert rank_artist_candidates([cover, artist])[0].origin == "artist"


def test_folder_image_matching_is_case_insensitive_and_ordered():
    names = ["Folder.JPG", "back.jpg", "cover.png", "FRONT.jpeg", "album.webp", "cover.gif", "covers.jpg",
             "notes.txt", "Cover.bmp"]
    assert match_folder_images(names) == ["cover.png", "Folder.JPG", "FRONT.jpeg", "album.webp"]
    assert match_folder_images(["Artist.jpg", "folder.jpg"], ("artist",)) == ["Artist.jpg"]
    assert match_folder_images(["folder.png", "artist.webp"], ARTIST_FOLDER_STEMS) == ["artist.webp", "folder.png"]
    assert ALBUM_IMAGE_STEMS[:4] == ("cover", "folder", "front", "front cover")


def test_disc_folders_and_various_artists():
    assert is_disc_folder("CD1") and is_disc_folder("Disc 2") and is_disc_folder("disk_03")
    assert not is_disc_folder("Discovery")
    assert is_various_artists("Various Artists") and is_various_artists("X", "89ad4ac3-39f7-470e-963a-56509c546377")
    assert not is_various_artists("Muldjord")


def test_priority_levels():
    assert album_priority(12, 100, title_from_fallback=False, retried=False) == "high"
    assert album_priority(5, 1, title_from_fallback=False, retried=False) == "high"  # recently added
    assert album_priority(5, 100, title_from_fallback=False, retried=False) == "normal"
    assert album_priority(1, 100, title_from_fallback=False, retried=False) == "low"
    assert album_priority(5, 100, title_from_fallback=True, retried=False) == "low"
    assert album_priority(12, 1, title_from_fallback=False, retried=True) == "low"
    assert artist_priority(25, None, retried=False) == "high"
    assert artist_priority(5, 30, retried=False) == "normal"
    assert artist_priority(1, 30, retried=False) == "low"
