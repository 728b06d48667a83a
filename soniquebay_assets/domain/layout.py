"""Where a file belongs: its album folder (disc folders collapsed) and its stable shard."""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

SHARD_COUNT = 256
SHARD_KEYS = [f"{i:02x}" for i in range(SHARD_COUNT)]

# A folder that holds one disc of a multi-disc album: "CD1", "Disc 2", "disk_03", "CD 1 - Bonus".
_DISC_FOLDER = re.compile(r"^\s*(cd|disc|disk|dvd|side)[\s_.-]*\d{1,2}\b.*$", re.IGNORECASE)
# A disc marker at the end of an album folder name: "Album (Disc 1)", "Album [CD2]", "Album - Disc 2".
_DISC_SUFFIX = re.compile(r"[\s_-]*[\(\[]?\s*(cd|disc|disk)[\s_.-]*\d{1,2}\s*[\)\]]?\s*$", re.IGNORECASE)


def album_folder_key(relative_dir: str) -> str:
    """The folder an album lives in, relative to its library root, with disc folders and suffixes collapsed."""
    parts = [p for p in PurePosixPath(relative_dir.replace("\\", "/")).parts if p not in ("", ".")]
    if parts and _DISC_FOLDER.match(parts[-1]) and len(parts) > 1:
        parts = parts[:-1]
    if parts:
        stripped = _DISC_SUFFIX.sub("", parts[-1]).strip()
        if stripped:
            parts[-1] = stripped
    return "/".join(parts)


def shard_for(album_folder: str) -> str:
    """Stable partition key for an album folder: first byte of its blake2b hash, as two hex digits."""
    digest = hashlib.blake2b(album_folder.casefold().encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return SHARD_KEYS[digest[0] % SHARD_COUNT]


def shard_ranges(shards: list[str], max_runs: int = 4) -> list[tuple[str, str]]:
    """Cover the shards with at most max_runs contiguous ranges (runs take ranges, not arbitrary sets).

    Few changed albums give one small range each (a handful of partitions instead of ~256); anything more
    scattered gets one range spanning them all.
    """
    if not shards:
        return []
    ordered = sorted(set(shards))
    index = {key: i for i, key in enumerate(SHARD_KEYS)}
    groups: list[list[str]] = [[ordered[0]]]
    for key in ordered[1:]:
        if index[key] == index[groups[-1][-1]] + 1:
            groups[-1].append(key)
        else:
            groups.append([key])
    if len(groups) > max_runs:
        return [(ordered[0], ordered[-1])]
    return [(g[0], g[-1]) for g in groups]
