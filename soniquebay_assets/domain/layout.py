"""Where a file belongs: its album folder (disc folders collapsed) and its stable shard."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import PurePosixPath

SHARD_COUNT = 128
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


def contiguous_groups(shards: Iterable[str]) -> list[list[str]]:
    """The shards as runs of neighbouring keys, in key order: one run's partition range each, so a run
    materializes exactly the shards it was asked for (a range spanning a gap would also materialize the
    unchanged shards in it, and only those, making their partitions look unlike the other unchanged ones)."""
    index = {key: i for i, key in enumerate(SHARD_KEYS)}
    groups: list[list[str]] = []
    for shard in sorted(set(shards), key=index.__getitem__):
        if groups and index[shard] == index[groups[-1][-1]] + 1:
            groups[-1].append(shard)
        else:
            groups.append([shard])
    return groups
