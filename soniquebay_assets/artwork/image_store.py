"""Validated, content-addressed image storage on disk, with thumbnails. The database only holds paths."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from soniquebay_assets.library.atomic_files import atomic_write

THUMBNAIL_SIZES = (150, 300, 600)
DEFAULT_MAX_BYTES = 15 * 1024 * 1024
# 40 megapixels: larger than any real cover scan we know of, far below what would exhaust memory.
DEFAULT_MAX_PIXELS = 40_000_000
ALLOWED_FORMATS = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png"), "WEBP": ("image/webp", ".webp")}


class ImageRejected(Exception):
    """Bytes that must not be stored; `reason` is short and stable."""

    def __init__(self, reason: str, message: str = ""):
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    format: str
    mime: str
    width: int
    height: int


@dataclass(frozen=True)
class StoredImage:
    """Where a validated image lives, relative to the store root (so a data dir can move)."""

    sha256: str
    path: str
    mime: str
    width: int
    height: int
    byte_size: int
    thumbnails: dict[str, str] = field(default_factory=dict)  # "150" -> relative path
    already_stored: bool = False


class ImageStore:
    """covers/<aa>/<bb>/<sha256>.<ext>, thumbnails under covers/thumbs/<aa>/<bb>/<sha256>_<px>.jpg."""

    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS,
                 thumbnail_sizes: tuple[int, ...] = THUMBNAIL_SIZES):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.thumbnail_sizes = thumbnail_sizes

    def validate(self, data: bytes) -> ImageInfo:
        """Really an image, of an allowed format, under the byte and pixel caps, fully decodable."""
        if not data:
            raise ImageRejected("empty")
        if len(data) > self.max_bytes:
            raise ImageRejected("too_large", f"{len(data)} bytes > {self.max_bytes}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as probe:  # reads the header only
                    fmt, (width, height) = probe.format, probe.size
                    if fmt not in ALLOWED_FORMATS:
                        raise ImageRejected("format_not_allowed", str(fmt))
                    if width <= 0 or height <= 0:
                        raise ImageRejected("not_an_image", "zero-sized")
                    # Checked before decoding: a tiny file may claim billions of pixels.
                    if width * height > self.max_pixels:
                        raise ImageRejected("too_many_pixels", f"{width}x{height} > {self.max_pixels} pixels")
                    probe.verify()
                with Image.open(io.BytesIO(data)) as full:
                    full.load()
        except ImageRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected("too_many_pixels", type(exc).__name__) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageRejected("not_an_image", type(exc).__name__) from None
        mime, _ = ALLOWED_FORMATS[fmt]
        return ImageInfo(format=fmt, mime=mime, width=width, height=height)

    def store(self, data: bytes) -> StoredImage:
        """Validate then write once per content hash; thumbnails made the first time only."""
        info = self.validate(data)
        digest = hashlib.sha256(data).hexdigest()
        _, ext = ALLOWED_FORMATS[info.format]
        relative = f"{digest[:2]}/{digest[2:4]}/{digest}{ext}"
        target = self.root / relative
        already = target.is_file() and target.stat().st_size == len(data)
        if not already:
            atomic_write(target, data)
        thumbs = self._thumbnails(data, digest, info)
        return StoredImage(sha256=digest, path=relative, mime=info.mime, width=info.width, height=info.height,
                           byte_size=len(data), thumbnails=thumbs, already_stored=already)

    def _thumbnails(self, data: bytes, digest: str, info: ImageInfo) -> dict[str, str]:
        """JPEG thumbnails that fit in a size x size box; sizes at or above the original point to the original."""
        _, ext = ALLOWED_FORMATS[info.format]
        original = f"{digest[:2]}/{digest[2:4]}/{digest}{ext}"
        result: dict[str, str] = {}
        todo: list[tuple[int, str]] = []
        for size in self.thumbnail_sizes:
            if size >= max(info.width, info.height):
                result[str(size)] = original
                continue
            relative = f"thumbs/{digest[:2]}/{digest[2:4]}/{digest}_{size}.jpg"
            result[str(size)] = relative
            if not (self.root / relative).is_file():
                todo.append((size, relative))
        if not todo:
            return result
        # Largest first, each made from the previous one: far cheaper than resampling the original each time.
        todo.sort(reverse=True)
        with Image.open(io.BytesIO(data)) as opened:
            if opened.format == "JPEG":
                opened.draft("RGB", (todo[0][0] * 2, todo[0][0] * 2))  # decode at a reduced scale directly
            current = _flatten(opened)
        for size, relative in todo:
            current.thumbnail((size, size), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            current.save(buffer, format="JPEG", quality=85)
            atomic_write(self.root / relative, buffer.getvalue())
        current.close()
        return result

    def absolute(self, relative: str) -> Path:
        return self.root / relative


def _flatten(image: Image.Image) -> Image.Image:
    """RGB for JPEG thumbnails: transparency composited on white."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def as_jpeg(data: bytes, quality: int = 92) -> bytes:
    """The image as JPEG bytes: a JPEG is returned as it is, other formats are converted (transparency on white)."""
    if data[:3] == b"\xff\xd8\xff":
        return data
    with Image.open(io.BytesIO(data)) as image:
        buffer = io.BytesIO()
        _flatten(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def contact_sheet(thumbnails: list[Path], target: Path, *, cell: int = 150, columns: int = 6,
                  gap: int = 4) -> Path | None:
    """A PNG grid of thumbnails (for the Dagster UI); None when there is nothing to show."""
    images = []
    for path in thumbnails:
        try:
            with Image.open(path) as thumb:
                images.append(_flatten(thumb))
        except (OSError, ValueError):
            continue
    if not images:
        return None
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * (cell + gap) + gap, rows * (cell + gap) + gap), (24, 24, 24))
    for index, image in enumerate(images):
        image.thumbnail((cell, cell))
        x = gap + (index % columns) * (cell + gap) + (cell - image.width) // 2
        y = gap + (index // columns) * (cell + gap) + (cell - image.height) // 2
        sheet.paste(image, (x, y))
        image.close()
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=True)
    atomic_write(target, buffer.getvalue())
    return target


def prune_unreferenced(root: Path, referenced: set[str]) -> int:
    """Delete stored originals and thumbnails whose sha256 no cover row uses any more; returns files removed."""
    removed = 0
    for path in Path(root).rglob("*"):
        if not path.is_file() or "contact_sheets" in path.parts or path.name.startswith(".tmp-"):
            continue
        digest = path.stem.split("_", 1)[0]
        if len(digest) == 64 and digest not in referenced:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
