"""Synthetic music libraries of real, tagged audio files, for the demo and the benchmarks."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np

from soniquebay_assets.library.process_pool import default_workers, process_pool

GENRES = ["Rock", "Jazz", "Electronic", "Hip Hop", "Classical", "Folk", "Ambient", "Metal", "Pop", "Soul"]
WORDS = ("river night echo glass summer engine static velvet north paper signal golden quiet neon harbor "
         "winter ember lantern orbit dust").split()
TEMPLATE_FORMATS = (".mp3", ".flac", ".ogg")
# Realistic libraries: the formats people keep, songs of 3 to 5 minutes, a third of the albums with a ~500 KB
# picture embedded in every track (what makes real tag blocks large).
REALISTIC_FORMATS = (".mp3", ".flac", ".ogg", ".opus", ".m4a")
REALISTIC_SECONDS = (180.0, 240.0, 300.0)
PICTURE_BYTES = 500_000
_SOUNDFILE_FORMATS = {".mp3": ("MP3", "MPEG_LAYER_III", 44100), ".flac": ("FLAC", "PCM_16", 44100),
                      ".ogg": ("OGG", "VORBIS", 44100), ".opus": ("OGG", "OPUS", 48000)}


def _signal(seconds: float, sr: int, sparse: bool) -> np.ndarray:
    """A chord with a pulse; `sparse` leaves digital silence between 120 BPM hits, so long files stay small."""
    t = np.arange(int(seconds * sr)) / sr
    tone = sum(0.15 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63))
    if sparse:
        phase = t % 0.5
        hits = tone * np.where(phase < 0.08, np.exp(-phase * 40), 0.0)
        return np.stack([hits, 0.9 * hits], axis=1).astype(np.float32)
    pulse = (np.sin(2 * np.pi * 2.0 * t) > 0.95).astype(float) * 0.3
    return np.stack([tone + pulse, tone - pulse], axis=1).astype(np.float32)


# Bit rates of a small but ordinary encode, so that 20k songs of 3-5 minutes fit on a developer's disk.
_FFMPEG_CODECS = {".mp3": ["-c:a", "libmp3lame", "-q:a", "9"], ".ogg": ["-c:a", "libvorbis", "-q:a", "0"],
                  ".opus": ["-c:a", "libopus", "-b:a", "32k"], ".m4a": ["-c:a", "aac", "-b:a", "48k"],
                  ".flac": ["-c:a", "flac"]}


def _write_audio(path: Path, seconds: float, sparse: bool) -> None:
    """Untagged audio: ffmpeg when present (bit rate control), else soundfile in blocks (its Vorbis encoder
    crashes on one long write)."""
    import soundfile as sf

    if shutil.which("ffmpeg"):
        wav = path.with_name(path.name + ".wav")
        sf.write(str(wav), _signal(seconds, 44100, sparse), 44100, subtype="PCM_16")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), *_FFMPEG_CODECS[path.suffix], str(path)],
                       check=True)
        wav.unlink()
        return
    fmt, subtype, sr = _SOUNDFILE_FORMATS[path.suffix]
    signal = _signal(seconds, sr, sparse)
    with sf.SoundFile(str(path), "w", sr, 2, format=fmt, subtype=subtype) as out:
        for start in range(0, len(signal), sr):
            out.write(signal[start:start + sr])


def write_templates(folder: Path, seconds: float = 2.0) -> dict[str, Path]:
    """One short untagged file per format (a chord with a pulse), written by soundfile."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for ext in TEMPLATE_FORMATS:
        out[ext] = folder / f"template{ext}"
        _write_audio(out[ext], seconds, sparse=False)
    return out


def write_realistic_templates(folder: Path) -> dict[str, Path]:
    """Untagged 3-5 minute files, one per format and length (keys like '.flac@240'); M4A only with ffmpeg."""
    folder.mkdir(parents=True, exist_ok=True)
    formats = [f for f in REALISTIC_FORMATS if f != ".m4a" or shutil.which("ffmpeg")]
    jobs = [(folder / f"template{int(s)}{ext}", s) for ext in formats for s in REALISTIC_SECONDS]
    with process_pool(default_workers()) as pool:
        list(pool.map(_write_template_job, jobs))
    return {f"{path.suffix}@{int(seconds)}": path for path, seconds in jobs}


def _write_template_job(job: tuple[Path, float]) -> None:
    _write_audio(job[0], job[1], sparse=True)


def cover_picture(seed: int, size_bytes: int = PICTURE_BYTES) -> bytes:
    """A JPEG of about size_bytes (noise compresses badly, like a detailed photo)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    side = int((size_bytes / 1.4) ** 0.5)  # ~1.4 bytes per noisy pixel at quality 90
    image = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def plan_library(n_files: int, seed: int = 7, tracks_per_album: int = 10, *,
                 formats: tuple[str, ...] = TEMPLATE_FORMATS, albums_per_artist: int = 7) -> list[dict]:
    """Track specs laid out Artist/Album (Year)/NN Title.ext, with ~5% compilations split over two disc folders."""
    rng = random.Random(seed)
    specs = []
    album_index = 0
    while len(specs) < n_files:
        album_index += 1
        artist = f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {album_index // albums_per_artist}"
        album = f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {album_index}"
        year = rng.randint(1960, 2025)
        genre = rng.choice(GENRES)
        ext = formats[album_index % len(formats)]
        compilation = album_index % 20 == 0
        picture, length = album_index % 3 == 0, int(REALISTIC_SECONDS[(album_index // 3) % len(REALISTIC_SECONDS)])
        count = min(tracks_per_album, n_files - len(specs))
        for number in range(1, count + 1):
            disc = 1 if not compilation or number <= count // 2 else 2
            track_artist = f"Guest {rng.choice(WORDS).title()}" if compilation else artist
            folder = (f"Various Artists/{album} (Disc {disc})" if compilation else f"{artist}/{album} ({year})")
            title = f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} {number}"
            specs.append({
                "relpath": f"{folder}/{number:02d} {title}{ext}", "ext": ext, "title": title,
                "artist": track_artist, "album": album, "albumartist": "Various Artists" if compilation else artist,
                "tracknumber": number, "tracktotal": count, "discnumber": disc, "date": str(year),
                "genre": genre, "compilation": compilation, "album_index": album_index,
                "picture": picture, "template": f"{ext}@{length}",
            })
    return specs


def build_library(root: Path, n_files: int, *, workers: int | None = None, seed: int = 7,
                  realistic: bool = False) -> Path:
    """Write n_files tagged audio files under root (copies of templates with rewritten tags).

    realistic: 3-5 minute songs in five formats, a third of the albums with a ~500 KB embedded picture."""
    root.mkdir(parents=True, exist_ok=True)
    template_dir = root.parent / (root.name + ".templates")
    if realistic:
        templates = write_realistic_templates(template_dir)
        formats = tuple(dict.fromkeys(key.split("@")[0] for key in templates))
        specs = plan_library(n_files, seed, formats=formats)
    else:
        templates = write_templates(template_dir)
        specs = [{**spec, "template": spec["ext"], "picture": False} for spec in plan_library(n_files, seed)]
    _write_specs(root, templates, specs, 500, workers)
    return root


# Scale libraries: tiny real files in a real library's proportions of formats (by album), a small picture
# embedded in a third of the albums, ~10 tracks per album and ~4 albums per artist.
SCALE_FORMATS = (".mp3",) * 9 + (".flac",) * 5 + (".ogg",) * 3 + (".m4a",) * 3
SCALE_SECONDS = 0.6
SCALE_PICTURE_BYTES = 20_000


def build_scale_library(root: Path, n_files: int, *, workers: int | None = None, seed: int = 7) -> Path:
    """n_files tiny tagged files (0.6 s; 45 % MP3, 25 % FLAC, 15 % Ogg, 15 % M4A) under root, for scale benchmarks."""
    root.mkdir(parents=True, exist_ok=True)
    template_dir = root.parent / (root.name + ".templates")
    template_dir.mkdir(parents=True, exist_ok=True)
    formats = tuple(f for f in SCALE_FORMATS if f != ".m4a" or shutil.which("ffmpeg"))
    templates = {}
    for ext in dict.fromkeys(formats):
        templates[ext] = template_dir / f"template{ext}"
        _write_audio(templates[ext], SCALE_SECONDS, sparse=False)
    specs = [{**spec, "template": spec["ext"], "picture_bytes": SCALE_PICTURE_BYTES}
             for spec in plan_library(n_files, seed, formats=formats, albums_per_artist=4)]
    _write_specs(root, templates, specs, 2000, workers)
    return root


def _write_specs(root: Path, templates: dict, specs: list[dict], chunk_size: int, workers: int | None) -> None:
    """Write the planned files in chunks, in a process pool when there is more than one chunk and core."""
    chunks = [specs[i:i + chunk_size] for i in range(0, len(specs), chunk_size)]
    jobs = [(str(root), {k: str(v) for k, v in templates.items()}, chunk) for chunk in chunks]
    if len(chunks) > 1 and (workers or os.cpu_count() or 1) > 1:
        with process_pool(workers or default_workers()) as pool:
            list(pool.map(_write_chunk, jobs))
    else:
        for job in jobs:
            _write_chunk(job)


def _write_chunk(job: tuple[str, dict[str, str], list[dict]]) -> int:
    root, templates, specs = job
    pictures: dict[int, bytes] = {}
    for spec in specs:
        path = Path(root) / spec["relpath"]
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(templates[spec["template"]], path)
        picture = None
        if spec["picture"]:
            picture = pictures.get(spec["album_index"]) or pictures.setdefault(
                spec["album_index"], cover_picture(spec["album_index"], spec.get("picture_bytes", PICTURE_BYTES)))
        tag_file(path, spec, picture)
    return len(specs)


def tag_file(path: Path, spec: dict, picture: bytes | None = None) -> None:
    """Write the spec's tags (and a front-cover JPEG) in the file's native tag format."""
    if path.suffix == ".m4a":
        from mutagen.mp4 import MP4, MP4Cover

        audio = MP4(str(path))
        if audio.tags is None:
            audio.add_tags()
        audio.tags.update({"\xa9nam": [spec["title"]], "\xa9ART": [spec["artist"]], "\xa9alb": [spec["album"]],
                           "aART": [spec["albumartist"]], "trkn": [(spec["tracknumber"], spec["tracktotal"])],
                           "disk": [(spec["discnumber"], 0)], "\xa9day": [spec["date"]], "\xa9gen": [spec["genre"]]})
        if spec["compilation"]:
            audio.tags["cpil"] = True
        if picture:
            audio.tags["covr"] = [MP4Cover(picture, imageformat=MP4Cover.FORMAT_JPEG)]
        audio.save()
        return
    if path.suffix == ".mp3":
        from mutagen import id3

        tags = id3.ID3()
        tags.add(id3.TIT2(encoding=3, text=spec["title"]))
        tags.add(id3.TPE1(encoding=3, text=spec["artist"]))
        tags.add(id3.TALB(encoding=3, text=spec["album"]))
        tags.add(id3.TPE2(encoding=3, text=spec["albumartist"]))
        tags.add(id3.TRCK(encoding=3, text=f"{spec['tracknumber']}/{spec['tracktotal']}"))
        tags.add(id3.TPOS(encoding=3, text=str(spec["discnumber"])))
        tags.add(id3.TDRC(encoding=3, text=spec["date"]))
        tags.add(id3.TCON(encoding=3, text=spec["genre"]))
        if spec["compilation"]:
            tags.add(id3.TCMP(encoding=3, text="1"))
        if picture:
            tags.add(id3.APIC(encoding=3, mime="image/jpeg", type=3, desc="Cover", data=picture))
        tags.save(str(path), v2_version=4)
    else:
        import mutagen

        audio = mutagen.File(str(path))
        if audio.tags is None:
            audio.add_tags()
        audio.tags.update({
            "TITLE": spec["title"], "ARTIST": spec["artist"], "ALBUM": spec["album"],
            "ALBUMARTIST": spec["albumartist"], "TRACKNUMBER": str(spec["tracknumber"]),
            "TRACKTOTAL": str(spec["tracktotal"]), "DISCNUMBER": str(spec["discnumber"]), "DATE": spec["date"],
            "GENRE": spec["genre"],
        })
        if spec["compilation"]:
            audio.tags["COMPILATION"] = "1"
        if picture:
            _add_vorbis_picture(audio, picture)
        audio.save()


def _add_vorbis_picture(audio, data: bytes) -> None:
    """A front cover as a FLAC PICTURE block, or base64 in METADATA_BLOCK_PICTURE for Ogg Vorbis/Opus."""
    import base64

    from mutagen.flac import FLAC, Picture

    picture = Picture()
    picture.type, picture.mime, picture.desc, picture.data = 3, "image/jpeg", "Cover", data
    if isinstance(audio, FLAC):
        audio.add_picture(picture)
    else:
        audio.tags["METADATA_BLOCK_PICTURE"] = [base64.b64encode(picture.write()).decode("ascii")]
