"""Runs in worker processes: read one file's tags; kept import-light for fast process start."""

from __future__ import annotations

import json
import os
from typing import NamedTuple

from soniquebay_assets.domain.tag_model import TagReadError
from soniquebay_assets.domain.tags import apply_fallbacks, read_tags
from soniquebay_assets.library.walker import announce_reads, content_fingerprint, fingerprint_regions


class TagRead(NamedTuple):
    """One file's tag reading: the record as JSON with its facts, or why it could not be read."""

    file_id: int
    payload: str | None = None  # the tag record, compact JSON
    quality: float | None = None
    fingerprint: str | None = None
    audio_format: str | None = None
    reason: str | None = None  # set when the file could not be read
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def read_file(item: tuple[int, str, bytes | None, str, int]) -> TagRead:
    """Read the tags of (file_id, display path, raw path, root, size); a failure is a reason, never an exception."""
    file_id, path, raw_path, root, size = item
    open_path = os.fsdecode(raw_path) if raw_path else path
    try:
        record = read_tags(open_path)
        record = apply_fallbacks(record, path, root)
        fingerprint = content_fingerprint(open_path, size)
        return TagRead(file_id, json.dumps(record.to_dict(compact=True), ensure_ascii=False), record.quality_score,
                       fingerprint, record.audio.format or "unknown")
    except TagReadError as exc:
        return TagRead(file_id, reason=exc.reason, detail=exc.detail)
    except FileNotFoundError:
        return TagRead(file_id, reason="file vanished", detail="deleted or moved after the folder walk")
    except PermissionError:
        return TagRead(file_id, reason="permission denied", detail="give the scanner read access to this file")
    except Exception as exc:  # one bad file never costs the others
        return TagRead(file_id, reason="unexpected read failure", detail=f"{type(exc).__name__}: {exc}")


TAG_HEAD_BYTES = 1 << 16  # the tag blocks at a file's head, unless a large picture sits in them


def announce_chunk(items: list[tuple[int, str, bytes | None, str, int]]) -> None:
    """Before a chunk of read_file items: announce the reads their files will get (the tags at the head, the
    fingerprint's regions, whose tail holds ID3v1, APEv2 and the last Ogg page), so a cold disk serves them
    together."""
    announce_reads([(raw_path or path, [(0, TAG_HEAD_BYTES), *fingerprint_regions(size)])
                    for _file_id, path, raw_path, _root, size in items])
