"""Tracks as a table (pandas): tags, analysis and whatever later stages register in the track listing, written as
CSV, Parquet (pyarrow) or JSON lines."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

FORMATS = ("csv", "parquet", "jsonl")
# List-valued columns: kept as lists in Parquet and JSON lines, joined with LIST_SEPARATOR in CSV.
LIST_SEPARATOR = "; "


def tracks_frame(conn: Any, shards: Sequence[str] | None = None) -> Any:
    """One row per track; nested values (moods) become one column per key, lists stay lists."""
    import pandas as pd

    from soniquebay_assets.catalog.queries import EXPORT_TAG_COLUMNS, list_tracks

    frame = pd.DataFrame.from_records(list(list_tracks(conn, shards, more_columns=EXPORT_TAG_COLUMNS)))
    if frame.empty:
        return frame
    for name in [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, dict)).any()]:
        nested = pd.json_normalize([v if isinstance(v, dict) else {} for v in frame[name]]).add_prefix(f"{name}_")
        nested.index = frame.index
        frame = pd.concat([frame.drop(columns=[name]), nested], axis=1)
    if "audio_ok" in frame:
        frame["audio_ok"] = frame["audio_ok"].astype(bool)
    return frame.convert_dtypes()  # nullable integers: a bit depth missing on one track stays an integer column


def list_columns(frame: Any) -> list[str]:
    return [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, list)).any()]


def export_bytes(frame: Any, fmt: str) -> bytes:
    """The table in one of FORMATS."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, engine="pyarrow", index=False)
        return buffer.getvalue()
    if fmt == "csv":
        flat = frame.copy()
        for name in list_columns(flat):
            flat[name] = flat[name].map(lambda v: LIST_SEPARATOR.join(map(str, v)) if isinstance(v, list) else v)
        return flat.to_csv(index=False).encode("utf-8")
    lines = (json.dumps({k: _plain(v) for k, v in row.items()}, ensure_ascii=False)
             for row in frame.to_dict(orient="records"))
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _plain(value: Any) -> Any:
    """pandas' missing values (NA, NaN) -> null; numpy scalars -> Python numbers."""
    import pandas as pd

    if isinstance(value, (list, dict, str)):
        return value
    if value is None or pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value
