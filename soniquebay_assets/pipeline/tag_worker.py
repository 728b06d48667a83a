"""Runs in worker processes: read one file's tags; kept import-light for fast process start."""

from __future__ import annotations

import json
import os

from soniquebay_assets.domain.tag_model import TagReadError
from soniquebay_assets.domain.tags import apply_fallbacks, read_tags
from soniquebay_assets.library.walker import content_fingerprint


def read_file(item: tuple[int, str, bytes | None, str, int]) -> tuple:
    """(file_id, display path, raw path, root, size) -> (file_id, ok, payload|reason, score|detail, fp, format)."""
    file_id, path, raw_path, root, size = item
    open_path = os.fsdecode(raw_path) if raw_path else path
    try:
        record = read_tags(open_path)
        record = apply_fallbacks(record, path, root)
        fingerprint = content_fingerprint(open_path, size)
        return (file_id, True, json.dumps(record.to_dict(compact=True), ensure_ascii=False), record.quality_score,
                fingerprint, record.audio.format or "unknown")
    except TagReadError as exc:
        return (file_id, False, exc.reason, exc.detail, None, None)
    except FileNotFoundError:
        return (file_id, False, "file vanished", "deleted or moved after the folder walk", None, None)
    except PermissionError:
        return (file_id, False, "permission denied", "give the scanner read access to this file", None, None)
    except Exception as exc:  # one bad file never costs the others
        return (file_id, False, "unexpected read failure", f"{type(exc).__name__}: {exc}", None, None)
