"""Independent loudness references, run as the user would run them: ffmpeg's `ebur128` filter (integrated
loudness, loudness range, sample and true peak of one file) and `loudgain` (ReplayGain 2.0 on libebur128; track
and album values of a folder's files). Used by `soniquebay eval loudness` and the tests; never by the pipeline.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REFERENCE_TIMEOUT_S = 600


@dataclass(frozen=True)
class ReferenceLoudness:
    """One tool's reading of one file (or of an album: `path` is then the album's key). Peaks in dBTP / dBFS;
    None where the tool gave no value (silence, too short)."""

    path: str
    integrated_lufs: float | None = None
    range_lu: float | None = None
    true_peak_dbtp: float | None = None
    sample_peak_dbfs: float | None = None
    error: str | None = None


def tool_version(tool: str) -> str | None:
    """First line of `tool -version` / `tool -v`, or None when the tool is not installed."""
    binary = shutil.which(tool)
    if binary is None:
        return None
    flag = "-version" if tool == "ffmpeg" else "-v"
    try:
        out = subprocess.run([binary, flag], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else tool


def _db(linear: float | None) -> float | None:
    return None if linear is None or linear <= 0 else round(20 * math.log10(linear), 3)


def ffmpeg_ebur128(path: str | Path, ffmpeg: str = "ffmpeg") -> ReferenceLoudness:
    """`ffmpeg -af ebur128=peak=true+sample:metadata=1`: the filter's running values with three decimals, read
    at the last 100 ms frame (the whole programme). Integrated loudness is None when ffmpeg found no block
    above the gates (it prints -70 LUFS then)."""
    with tempfile.NamedTemporaryFile(suffix=".txt") as frames:
        cmd = [ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-v", "error", "-i", str(path), "-map", "0:a:0",
               "-af", f"ebur128=peak=true+sample:metadata=1,ametadata=mode=print:file={_filter_path(frames.name)}",
               "-f", "null", "-"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=REFERENCE_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return ReferenceLoudness(str(path), error=f"ffmpeg: {exc}")
        if proc.returncode != 0:
            message = proc.stderr.strip().splitlines()
            return ReferenceLoudness(str(path), error=f"ffmpeg exited {proc.returncode}: "
                                                      f"{message[-1] if message else ''}")
        last: dict[str, float] = {}
        with open(frames.name, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.strip().partition("=")
                if key.startswith("lavfi.r128."):
                    try:
                        last[key[len("lavfi.r128."):]] = float(value)
                    except ValueError:
                        pass
    if not last:
        return ReferenceLoudness(str(path), error="ffmpeg printed no loudness (under 100 ms of audio?)")
    integrated = last.get("I")
    return ReferenceLoudness(
        str(path),
        integrated_lufs=None if integrated is None or integrated <= -70.0 else integrated,
        range_lu=last.get("LRA") if integrated is not None and integrated > -70.0 else None,
        true_peak_dbtp=_db(last.get("true_peak")), sample_peak_dbfs=_db(last.get("sample_peak")))


def _filter_path(path: str) -> str:
    """A path as a filter option value (':' and '\\' escaped)."""
    return path.replace("\\", "\\\\").replace(":", "\\:")


_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|inf)")


def _number(text: str) -> float | None:
    match = _NUMBER.search(text)
    if not match or "inf" in match.group(0):
        return None
    return float(match.group(0))


def loudgain(paths: Sequence[str | Path], *, album: bool, binary: str = "loudgain"
             ) -> tuple[list[ReferenceLoudness], ReferenceLoudness | None]:
    """`loudgain [-a] -O` on the files (never writing tags: its default tag mode is 'skip'): per-file loudness,
    range and true peak, and with album=True the album row (all files as one programme). Its printed gain is
    relative to -23 LUFS for Opus and -18 for the rest, so the loudness itself is what is compared."""
    cmd = [binary, "-O", "-q", *(["-a"] if album else []), *map(str, paths)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=REFERENCE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        failure = ReferenceLoudness("", error=f"loudgain: {exc}")
        return [ReferenceLoudness(str(p), error=failure.error) for p in paths], failure if album else None
    rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    header = rows[0] if rows and rows[0][0] == "File" else None
    body = rows[1:] if header else rows
    by_name: dict[str, ReferenceLoudness] = {}
    album_row = None
    for fields in body:
        if len(fields) < 5:
            continue
        reading = ReferenceLoudness(fields[0], integrated_lufs=_number(fields[1]), range_lu=_number(fields[2]),
                                    true_peak_dbtp=_number(fields[4]))
        if fields[0] == "Album":
            album_row = reading
        else:
            by_name[fields[0]] = reading
    error = None if proc.returncode == 0 else f"loudgain exited {proc.returncode}: {proc.stderr.strip()[-200:]}"
    tracks = []
    for p in paths:
        found = by_name.get(str(p)) or by_name.get(Path(p).name)
        tracks.append(ReferenceLoudness(str(p), found.integrated_lufs, found.range_lu, found.true_peak_dbtp)
                      if found else ReferenceLoudness(str(p), error=error or "loudgain printed no row for it"))
    if album and album_row is None:
        album_row = ReferenceLoudness("", error=error or "loudgain printed no album row")
    return tracks, album_row
