"""Files written so that a reader never sees half of one: a temp file in the same folder, then a rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(target: Path, data: bytes, *, temp_suffix: str | None = None) -> None:
    """Write `data` to `target` via a hidden temp file beside it (suffix `temp_suffix`, default the target's)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix if temp_suffix is None else temp_suffix
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
