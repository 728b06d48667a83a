"""Tag reader benchmark: read_tags files/s per format on one core, next to bare mutagen.File.

Note: importing the tag reader speeds up mutagen's UTF-16 ID3 decoding (on verified mutagen releases), so the
mutagen.File figure already includes that speed-up; `read_tags_without_fast_decode_*` is read_tags with
mutagen's own decoder, the figure that decides whether the replacement is worth keeping."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

_ID3_EXTENSIONS = {".mp3", ".wav", ".aiff", ".aif", ".dsf"}
_AUDIO = {".mp3", ".flac", ".ogg", ".opus", ".m4a", ".wma", ".ape", ".wv", ".mpc", ".wav", ".aiff", ".aif", ".dsf"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", type=Path,
                        help="audio files or folders to read (default: a synthetic library of --files files)")
    parser.add_argument("--files", type=int, default=300, help="synthetic library size when no path is given")
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent per format and reader")


def run(args: argparse.Namespace) -> dict:
    import mutagen
    import mutagen.id3._specs as specs

    from soniquebay_assets.domain import tags
    from soniquebay_assets.domain.tags import apply_fallbacks, read_tags

    work = None
    paths = list(args.paths)
    if not paths:
        from soniquebay_assets.library.synthetic import build_library

        work = Path(tempfile.mkdtemp(prefix="soniquebay-bench-tags-"))
        build_library(work / "library", args.files)
        paths = [work / "library"]
    try:
        by_ext: dict[str, list[str]] = defaultdict(list)
        for root in paths:
            for path in ([root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())):
                if path.suffix.lower() in _AUDIO:
                    by_ext[path.suffix.lower()].append(str(path))
        results = {}
        for ext, files in sorted(by_ext.items()):
            for p in files:  # warm the page cache: the benchmark measures parsing, not the disk
                Path(p).read_bytes()
            ours = _rate(files, lambda p: apply_fallbacks(read_tags(p), p, None), args.seconds)
            bare = _rate(files, mutagen.File, args.seconds)
            results[ext] = {
                "files": len(files),
                "read_tags_files_per_s": ours[0],
                "read_tags_files_per_cpu_s": ours[1],
                "mutagen_file_files_per_s": bare[0],
                "mutagen_file_files_per_cpu_s": bare[1],
            }
            if tags.FAST_DECODE_ACTIVE and ext in _ID3_EXTENSIONS:
                specs.decode_terminated = tags.mutagen_decode_terminated
                try:
                    plain = _rate(files, lambda p: apply_fallbacks(read_tags(p), p, None), args.seconds)
                finally:
                    specs.decode_terminated = tags.fast_decode_terminated
                results[ext]["read_tags_without_fast_decode_files_per_s"] = plain[0]
                results[ext]["read_tags_without_fast_decode_files_per_cpu_s"] = plain[1]
        return {"benchmark": "tags", "processes": 1, "cpu_count": os.cpu_count(), "formats": results}
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def _rate(files: list[str], read, seconds: float) -> tuple[float, float]:
    """(files per wall-clock second, files per CPU second): the second is stable on a busy shared machine."""
    count = 0
    cpu_started = time.process_time()
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for path in files:
            try:
                read(path)
            except Exception:  # broken files still cost a read; the tag tests check the outcome
                pass
            count += 1
    wall = time.perf_counter() - started
    cpu = max(time.process_time() - cpu_started, 1e-9)
    return round(count / wall, 1), round(count / cpu, 1)
