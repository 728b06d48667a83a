"""`soniquebay eval loudness`: the project's whole-track loudness against independent references on the same
files: ffmpeg's ebur128 filter (integrated loudness, loudness range, true peak) and loudgain (ReplayGain 2.0 on
libebur128: track loudness and true peak, album loudness of each folder with `-a`), run when installed, or
readings given as a JSON-lines file. The album of a file is its folder, as `loudgain -a` is run per folder.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from soniquebay_assets.library.loudness_reference import ReferenceLoudness

# The goals the analysis is held to on real songs (|ours - reference|, LU or dB).
GOALS: dict[str, dict[str, float]] = {
    "integrated_vs_ffmpeg": {"median": 0.1, "max": 0.3},
    "true_peak_vs_ffmpeg": {"max": 0.3},
    "album_gain_vs_loudgain": {"max": 0.2},
}
REFERENCE_TOOLS = ("ffmpeg", "loudgain")


@dataclass
class Comparison:
    """|ours - reference| over the files (or albums) both measured; `bias` is the mean signed difference."""

    n: int
    median_abs: float | None
    p95_abs: float | None
    max_abs: float | None
    bias: float | None
    goal: dict[str, float] | None = None
    met: bool | None = None
    worst: str | None = None


@dataclass
class LoudnessEval:
    """What `eval loudness` measured, one typed result like every stage's."""

    metric: str = "loudness"
    files: int = 0
    measured: int = 0  # files with an integrated loudness (the rest: silent, under 0.4 s, or not decodable)
    not_decoded: int = 0
    albums: int = 0
    references: dict[str, str] = field(default_factory=dict)
    comparisons: dict[str, Comparison] = field(default_factory=dict)
    goals_met: bool | None = None
    rows: list[dict[str, Any]] | None = None


def measure_file(path: str) -> dict[str, Any]:
    """The project's loudness of one file (the analysis' own decode and meter); runs in pool workers."""
    from soniquebay_assets.library.audio_decode import DecodeError, decode_track

    try:
        loud = decode_track(path).loudness
    except DecodeError as exc:
        return {"path": path, "error": f"{exc.reason}: {exc.detail}"}
    return {"path": path, "integrated_lufs": loud.integrated_lufs, "range_lu": loud.range_lu,
            "true_peak_dbtp": None if not loud.true_peak else 20 * math.log10(loud.true_peak),
            "sample_peak_dbfs": None if not loud.sample_peak else 20 * math.log10(loud.sample_peak),
            "histogram": loud.histogram.to_bytes(), "seconds": loud.seconds}


def audio_files(paths: Sequence[Path]) -> list[Path]:
    """The audio files named or found under the given folders, sorted."""
    from soniquebay_assets.library.audio_decode import FFMPEG_ONLY_SUFFIXES, SOUNDFILE_SUFFIXES

    suffixes = FFMPEG_ONLY_SUFFIXES | SOUNDFILE_SUFFIXES
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        elif path.is_file():
            found.add(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return sorted(found)


def read_reference_file(path: Path) -> tuple[dict[str, ReferenceLoudness], dict[str, ReferenceLoudness]]:
    """JSON lines: {"path", "integrated_lufs", "true_peak_dbtp", "range_lu"} per file, {"album": folder,
    "integrated_lufs"} per album; keyed by resolved path and by file (or folder) name."""
    files: dict[str, ReferenceLoudness] = {}
    albums: dict[str, ReferenceLoudness] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        key = row.get("path") or row.get("album")
        if not key:
            raise ValueError(f"{path}:{number}: a row needs 'path' or 'album'")
        reading = ReferenceLoudness(key, row.get("integrated_lufs"), row.get("range_lu"), row.get("true_peak_dbtp"),
                                    row.get("sample_peak_dbfs"))
        target = albums if "album" in row else files
        target[str(Path(key).resolve())] = reading
        target.setdefault(Path(key).name, reading)
    return files, albums


def _compare(pairs: list[tuple[str, float | None, float | None]], goal: dict[str, float] | None) -> Comparison:
    diffs = [(name, ours - ref) for name, ours, ref in pairs if ours is not None and ref is not None]
    if not diffs:
        return Comparison(0, None, None, None, None, goal, None)
    absolute = sorted(abs(d) for _, d in diffs)
    worst = max(diffs, key=lambda item: abs(item[1]))[0]
    p95 = absolute[min(len(absolute) - 1, int(math.ceil(0.95 * len(absolute))) - 1)]
    result = Comparison(len(diffs), round(statistics.median(absolute), 3), round(p95, 3), round(absolute[-1], 3),
                        round(statistics.fmean(d for _, d in diffs), 3), goal, None, worst)
    if goal:
        result.met = all(getattr(result, f"{k}_abs") <= v for k, v in goal.items())
    return result


def evaluate_loudness(paths: Sequence[Path], *, tools: Sequence[str] = REFERENCE_TOOLS,
                      reference_file: Path | None = None, workers: int | None = None,
                      verbose: bool = False) -> LoudnessEval:
    """Measure every audio file under `paths` and compare with each reference available."""
    from soniquebay_assets.domain.analysis.loudness import BlockHistogram, gated_loudness
    from soniquebay_assets.library import loudness_reference as refs
    from soniquebay_assets.library.process_pool import WorkerFailure, pool_map

    files = audio_files(paths)
    report = LoudnessEval(files=len(files))
    ours: dict[str, dict[str, Any]] = {}
    for index, outcome in pool_map(measure_file, [str(f) for f in files], workers=workers, min_items=4):
        ours[str(files[index])] = (outcome if not isinstance(outcome, WorkerFailure)
                                   else {"path": str(files[index]), "error": outcome.detail})
    report.not_decoded = sum(1 for o in ours.values() if "error" in o)
    report.measured = sum(1 for o in ours.values() if o.get("integrated_lufs") is not None)
    folders: dict[Path, list[Path]] = {}
    for f in files:
        if "error" not in ours[str(f)]:
            folders.setdefault(f.parent, []).append(f)
    albums = {folder: members for folder, members in folders.items() if len(members) >= 2}
    report.albums = len(albums)
    album_ours = {str(folder): gated_loudness([BlockHistogram.from_bytes(ours[str(m)]["histogram"])
                                               for m in members]) for folder, members in albums.items()}

    readings: dict[str, dict[str, ReferenceLoudness]] = {}
    album_readings: dict[str, dict[str, ReferenceLoudness]] = {}
    threads = max(1, workers or 2)
    if "ffmpeg" in tools and (version := refs.tool_version("ffmpeg")):
        report.references["ffmpeg"] = version
        with ThreadPoolExecutor(threads) as pool:
            readings["ffmpeg"] = dict(zip(map(str, files), pool.map(refs.ffmpeg_ebur128, files), strict=True))
    if "loudgain" in tools and (version := refs.tool_version("loudgain")):
        report.references["loudgain"] = version
        readings["loudgain"], album_readings["loudgain"] = {}, {}
        groups = list(folders.items())
        with ThreadPoolExecutor(threads) as pool:
            outcomes = pool.map(lambda group: refs.loudgain(group[1], album=len(group[1]) >= 2), groups)
            for (folder, members), (tracks, album) in zip(groups, outcomes, strict=True):
                readings["loudgain"].update((str(m), t) for m, t in zip(members, tracks, strict=True))
                if album is not None:
                    album_readings["loudgain"][str(folder)] = album
    if reference_file is not None:
        by_file, by_album = read_reference_file(reference_file)
        report.references["file"] = str(reference_file)
        readings["file"] = {str(f): by_file.get(str(f.resolve())) or by_file.get(f.name) or ReferenceLoudness(str(f))
                            for f in files}
        album_readings["file"] = {str(folder): by_album.get(str(folder.resolve())) or by_album.get(folder.name)
                                  or ReferenceLoudness(str(folder)) for folder in albums}

    for tool, by_path in readings.items():
        for name, field_name in (("integrated", "integrated_lufs"), ("true_peak", "true_peak_dbtp"),
                                 ("range", "range_lu")):
            key = f"{name}_vs_{tool}"
            pairs = [(p, ours[p].get(field_name), getattr(by_path[p], field_name)) for p in by_path]
            report.comparisons[key] = _compare(pairs, GOALS.get(key))
    for tool, by_album in album_readings.items():
        key = f"album_gain_vs_{tool}"
        # gains share the -18 LUFS reference, so their difference is the loudness difference reversed
        pairs = [(a, None if album_ours.get(a) is None else -album_ours[a],
                  None if r.integrated_lufs is None else -r.integrated_lufs) for a, r in by_album.items()]
        report.comparisons[key] = _compare(pairs, GOALS.get(key))
    verdicts = [c.met for c in report.comparisons.values() if c.met is not None]
    report.goals_met = all(verdicts) if verdicts else None
    if verbose:
        report.rows = []
        for f in files:
            row = {k: v for k, v in ours[str(f)].items() if k != "histogram"}
            for tool, by_path in readings.items():
                reading = asdict(by_path[str(f)])
                row[tool] = {k: v for k, v in reading.items() if k != "path" and v is not None}
            report.rows.append(row)
        for folder in albums:
            row = {"album": str(folder), "integrated_lufs": album_ours[str(folder)]}
            for tool, by_album in album_readings.items():
                if str(folder) in by_album:
                    row[tool] = {k: v for k, v in asdict(by_album[str(folder)]).items() if k != "path" and v is not None}
            report.rows.append(row)
    return report
