"""Synthetic music libraries of real, tagged audio files, for the demo and the benchmarks."""

from __future__ import annotations

import os
import random
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

GENRES = ["Rock", "Jazz", "Electronic", "Hip Hop", "Classical", "Folk", "Ambient", "Metal", "Pop", "Soul"]
WORDS = ("river night echo glass summer engine static velvet north paper signal golden quiet neon harbor "
         "winter ember lantern orbit dust").split()
TEMPLATE_FORMATS = (".mp3", ".flac", ".ogg")


def write_templates(folder: Path, seconds: float = 2.0) -> dict[str, Path]:
    """One short untagged file per format (a chord with a pulse), written by soundfile."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    sr = 22050
    t = np.arange(int(seconds * sr)) / sr
    tone = sum(0.15 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63))
    pulse = (np.sin(2 * np.pi * 2.0 * t) > 0.95).astype(float) * 0.3
    signal = np.stack([tone + pulse, tone - pulse], axis=1).astype(np.float32)
    formats = {".mp3": ("MP3", "MPEG_LAYER_III"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}
    out = {}
    for ext, (fmt, subtype) in formats.items():
        path = folder / f"template{ext}"
        sf.write(str(path), signal, sr, format=fmt, subtype=subtype)
        out[ext] = path
    return out


def plan_library(n_files: int, seed: int = 7, tracks_per_album: int = 10) -> list[dict]:
    """Track specs laid out Artist/Album (Year)/NN Title.ext, with ~5% compilations split over two disc folders."""
    rng = random.Random(seed)
    specs = []
    album_index = 0
    while len(specs) < n_files:
        album_index += 1
        artist = f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {album_index // 7}"
        album = f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {album_index}"
        year = rng.randint(1960, 2025)
        genre = rng.choice(GENRES)
        ext = TEMPLATE_FORMATS[album_index % len(TEMPLATE_FORMATS)]
        compilation = album_index % 20 == 0
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
                "genre": genre, "compilation": compilation,
            })
    return specs


def build_library(root: Path, n_files: int, *, workers: int | None = None, seed: int = 7) -> Path:
    """Write n_files tagged audio files under root (copies of templates with rewritten tags)."""
    root.mkdir(parents=True, exist_ok=True)
    templates = write_templates(root.parent / (root.name + ".templates"))
    specs = plan_library(n_files, seed)
    chunks = [specs[i:i + 500] for i in range(0, len(specs), 500)]
    jobs = [(str(root), {k: str(v) for k, v in templates.items()}, chunk) for chunk in chunks]
    if len(chunks) > 1 and (workers or os.cpu_count() or 1) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_write_chunk, jobs))
    else:
        for job in jobs:
            _write_chunk(job)
    return root


def _write_chunk(job: tuple[str, dict[str, str], list[dict]]) -> int:
    root, templates, specs = job
    for spec in specs:
        path = Path(root) / spec["relpath"]
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(templates[spec["ext"]], path)
        tag_file(path, spec)
    return len(specs)


def tag_file(path: Path, spec: dict) -> None:
    """Write the spec's tags in the file's native tag format."""
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
        audio.save()
