"""Stage `write_back` (opt-in): put what the catalog measured and found into the files, where players read it
(ReplayGain, BPM, key, MusicBrainz ids) and a cover.jpg into album folders without one; undo it from the journal.

Each file is rewritten through a verified copy (library/tag_writer.py); the journal row is recorded before the
copy is renamed into place and confirmed after, so a killed run is settled by the next one. The file's new size
and fingerprint go to the catalog: the next scan re-reads its tags, and keeps its analysis and vectors.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from soniquebay_assets.catalog import write_back as repo
from soniquebay_assets.catalog.analysis import (
    BPM_CONFIDENCE_THRESHOLD,
    KEY_CONFIDENCE_THRESHOLD,
    replaygain_for_tracks,
)
from soniquebay_assets.catalog.db import transaction
from soniquebay_assets.catalog.inventory import ErrorRecord, clear_errors, record_errors
from soniquebay_assets.domain import tag_writing as tw
from soniquebay_assets.domain.cover_choice import is_disc_folder, match_album_images
from soniquebay_assets.library.tag_blocks import KeyEdit, WriteError, writable_kind
from soniquebay_assets.library.tag_writer import check_writable, read_native, write_file, write_new_file
from soniquebay_assets.library.walker import content_fingerprint
from soniquebay_assets.pipeline import progress


@dataclass
class FileOutcome:
    """What happened to one file (or cover file): for the CLI's lines and --json."""

    path: str
    status: str  # written, would_write, unchanged, skipped, failed, restored, would_restore, cover_written, ...
    track_id: int | None = None
    album_id: int | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)  # {field, key, before, after}
    kept: dict[str, str] = field(default_factory=dict)  # field -> why it was not written
    reason: str = ""
    detail: str = ""


@dataclass
class WriteBackStats:
    """What one write-back (or undo) run did."""

    action: str = "write"  # write | undo
    dry_run: bool = False
    run_id: int | None = None
    groups: list[str] = field(default_factory=list)
    tracks_selected: int = 0
    files_written: int = 0  # in a dry run: files that would be written
    files_unchanged: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    fields_written: dict[str, int] = field(default_factory=dict)
    fields_kept: dict[str, int] = field(default_factory=dict)  # the file holds another value
    fields_unknown: dict[str, int] = field(default_factory=dict)  # the catalog has no value worth writing
    tracks_not_written_by_reason: dict[str, int] = field(default_factory=dict)  # why a field asked for was not
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    errors_by_reason: dict[str, int] = field(default_factory=dict)
    formats_written: dict[str, int] = field(default_factory=dict)
    covers_written: int = 0
    covers_present: int = 0  # the folder already has a cover file
    covers_unavailable: int = 0  # no stored cover for the album, or its folder is shared with other albums
    entries_restored: int = 0
    pending_settled: int = 0
    replaygain_source: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WriteBackRequest:
    """Which tracks (ids, or every track of some shards, or all) and what to write."""

    options: tw.WriteOptions
    track_ids: list[int] | None = None
    shards: list[str] | None = None
    dry_run: bool = False
    origin: str = "cli"
    covers_dir: Path | None = None
    break_hard_links: bool = False  # write files that share their data with other names (they get their own copy)


OnFile = Callable[[FileOutcome], None]
TARGET_BATCH = 2000  # tracks read from the catalog at a time
REPLAYGAIN_SOURCE = "whole-track loudness (BS.1770-4), track and album"


def default_options(groups: frozenset[str], *, key_notation: str = "standard",
                    overwrite: frozenset[str] = frozenset()) -> tw.WriteOptions:
    """Options with the catalog's confidence thresholds (the same that decide which BPM and key it shows)."""
    return tw.WriteOptions(groups=groups, key_notation=key_notation, overwrite=overwrite,
                           min_bpm_confidence=BPM_CONFIDENCE_THRESHOLD, min_key_confidence=KEY_CONFIDENCE_THRESHOLD)


def _open_path(path: str, raw_path: bytes | None) -> str:
    return os.fsdecode(raw_path) if raw_path else path


def _inside_root(path: str, root: str | None) -> bool:
    """The file, symlinks followed, lies inside its library root."""
    if not root:
        return False
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real.startswith(top.rstrip(os.sep) + os.sep)


class _Run:
    """One run's connection, counts and per-file reporting (a dry run records no error in the catalog)."""

    def __init__(self, conn: Any, stats: WriteBackStats, on_file: OnFile | None) -> None:
        self.conn, self.stats, self.on_file = conn, stats, on_file
        self.skipped: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.written: Counter[str] = Counter()
        self.kept: Counter[str] = Counter()
        self.unknown: Counter[str] = Counter()
        self.unknown_reasons: Counter[str] = Counter()
        self.formats: Counter[str] = Counter()

    def emit(self, outcome: FileOutcome) -> None:
        if self.on_file is not None:
            self.on_file(outcome)

    def fail(self, outcome: FileOutcome, shard: str | None, exc: WriteError) -> None:
        outcome.status, outcome.reason, outcome.detail = "failed", exc.reason, exc.detail
        self.stats.files_failed += 1
        self.errors[exc.reason] += 1
        if not self.stats.dry_run:
            with transaction(self.conn):
                record_errors(self.conn, [ErrorRecord(outcome.path, repo.WRITE_BACK_STAGE, exc.reason, exc.detail,
                                                      shard)])
        self.emit(outcome)

    def restored(self, outcome: FileOutcome, status: str) -> None:
        outcome.status = status
        self.stats.entries_restored += 1
        self.emit(outcome)

    def close(self, started: float) -> WriteBackStats:
        s = self.stats
        s.skipped_by_reason, s.errors_by_reason = dict(self.skipped), dict(self.errors)
        s.fields_written, s.fields_kept, s.fields_unknown = dict(self.written), dict(self.kept), dict(self.unknown)
        s.tracks_not_written_by_reason = dict(self.unknown_reasons.most_common())
        s.formats_written = dict(self.formats)
        s.seconds = round(time.perf_counter() - started, 3)
        return s


# ---------------------------------------------------------------------------------------------- write


def write_back(conn: Any, request: WriteBackRequest, on_file: OnFile | None = None) -> WriteBackStats:
    """Write the asked-for fields into the selected tracks' files (or only say what would change: dry run)."""
    started = time.perf_counter()
    options = request.options
    stats = WriteBackStats(action="write", dry_run=request.dry_run, groups=sorted(options.groups))
    run = _Run(conn, stats, on_file)
    if not request.dry_run:
        stats.pending_settled = settle_pending(conn)
    track_ids = request.track_ids if request.track_ids is not None else repo.track_ids_in_shards(conn, request.shards)
    stats.tracks_selected = len(track_ids)
    if not request.dry_run:
        with transaction(conn):
            stats.run_id = repo.start_run(conn, "write", request.origin, options.groups, {
                "key_notation": options.key_notation, "overwrite": sorted(options.overwrite),
                "tracks": len(track_ids)})
    album_ids: set[int] = set()
    done = 0
    for start in range(0, len(track_ids), TARGET_BATCH):  # a large library is read from the catalog in batches
        batch = track_ids[start:start + TARGET_BATCH]
        measured = None
        if "replaygain" in options.groups:  # the current meter's values only: older ones were 3-6 dB off
            measured, stats.replaygain_source = replaygain_for_tracks(conn, batch), REPLAYGAIN_SOURCE
        targets = repo.write_targets(conn, batch, measured)
        album_ids.update(t.album_id for t in targets)
        if set(options.groups) & set(tw.FIELD_GROUPS):
            for target in targets:
                _write_one(run, target, options, request)
                done += 1
                progress.report("write-back", done, len(track_ids))
    if tw.COVERS in options.groups:
        _write_covers(run, sorted(album_ids), request)
    run.close(started)
    if stats.run_id is not None:
        with transaction(conn):
            repo.finish_run(conn, stats.run_id, stats.as_dict())
    return stats


def album_tracks(conn: Any, track_ids: Sequence[int]) -> list[int]:
    """The tracks and every other track of their albums (whose album gain changes with theirs)."""
    return repo.track_ids_of_albums(conn, repo.album_ids_of_tracks(conn, track_ids)) if track_ids else []


def _write_one(run: _Run, target: repo.WriteTarget, options: tw.WriteOptions, request: WriteBackRequest) -> None:
    outcome = FileOutcome(target.path, "unchanged", track_id=target.track_id, album_id=target.album_id)
    kind = writable_kind(target.format)
    if kind is None:
        outcome.status, outcome.reason = "skipped", "format not writable"
        outcome.detail = f"{target.format or 'unknown'} files are not written"
        run.stats.files_skipped += 1
        run.skipped[outcome.reason] += 1
        run.emit(outcome)
        return
    wanted, missing = tw.wanted_values(target.facts, options)
    for name in missing:
        run.unknown[name] += 1
    run.unknown_reasons.update(set(missing.values()))
    if not wanted:
        run.stats.files_unchanged += 1
        outcome.kept = dict(missing)
        run.emit(outcome)
        return
    path = _open_path(target.path, target.raw_path)
    try:
        if not _inside_root(path, target.root):
            raise WriteError("outside library roots", "the file (or a link on its way) leads outside its library "
                                                      "root; it is never written")
        native, state = read_native(path, target.format)
        plan = tw.plan_file(kind, {k: v.texts for k, v in native.items()}, wanted, options.overwrite)
    except WriteError as exc:
        run.fail(outcome, target.shard, exc)
        return
    outcome.kept = {**missing, **plan.kept}
    for name in plan.kept:
        if name in wanted:
            run.kept[name] += 1
    if not plan.changes:
        run.stats.files_unchanged += 1
        run.emit(outcome)
        return
    outcome.changes = [{"field": c.field, "key": c.key, "before": list(c.before) if c.before is not None else None,
                        "after": list(c.after) if c.after is not None else None} for c in plan.changes]
    if request.dry_run:
        try:  # what the write would refuse (read-only file or mount, hard links) shows in the dry run too
            check_writable(path, break_hard_links=request.break_hard_links)
        except WriteError as exc:
            run.fail(outcome, target.shard, exc)
            return
        outcome.status = "would_write"
        _count_written(run, plan, target.format)
        run.emit(outcome)
        return
    journal = [{**change, "before_raw": native[change["key"]].raw if change["key"] in native else None}
               for change in outcome.changes]
    with transaction(run.conn):
        entry = repo.journal_pending(run.conn, run.stats.run_id, kind="tags", path=target.path, changes=journal,
                                     file_id=target.file_id, fmt=target.format)
    try:
        written = write_file(path, target.format, [KeyEdit(c.key, c.after) for c in plan.changes], state,
                             break_hard_links=request.break_hard_links)
    except WriteError as exc:
        with transaction(run.conn):
            repo.drop_entry(run.conn, entry)
        run.fail(outcome, target.shard, exc)
        return
    for change, item in zip(journal, outcome.changes, strict=True):
        now = written.written.get(change["key"])
        change["after"] = item["after"] = list(now.texts) if now is not None else None
    with transaction(run.conn):  # a run killed before this commit is settled by the next one (settle_pending)
        repo.mark_written(run.conn, entry, size=written.size, mtime_ns=written.mtime_ns, changes=journal)
        repo.record_file_facts(run.conn, target.file_id, size=written.size, fingerprint=written.fingerprint)
        clear_errors(run.conn, [target.path], [repo.WRITE_BACK_STAGE])
    outcome.status = "written"
    _count_written(run, plan, target.format)
    run.emit(outcome)


def _count_written(run: _Run, plan: tw.FilePlan, fmt: str | None) -> None:
    run.stats.files_written += 1
    run.formats[fmt or "unknown"] += 1
    for name in plan.changed_fields:
        run.written[name] += 1


# ---------------------------------------------------------------------------------------------- covers


def _write_covers(run: _Run, album_ids: list[int], request: WriteBackRequest) -> None:
    """A cover.jpg from the covers store into each album folder that has no cover file."""
    from soniquebay_assets.artwork.image_store import as_jpeg

    for album in repo.album_cover_rows(run.conn, album_ids):
        tracks = album["tracks"]
        folders: dict[str, str] = {}  # folder as the catalog spells it -> as the file system does
        for path, raw_path, root in tracks:
            shown, real = tw.cover_folders([path], root), tw.cover_folders([_open_path(path, raw_path)], root)
            if shown and real:
                folders.setdefault(shown[0], real[0])
        for shown_folder, folder in folders.items():
            target = os.path.join(folder, tw.COVER_FILE_NAME)
            outcome = FileOutcome(os.path.join(shown_folder, tw.COVER_FILE_NAME), "unchanged",
                                  album_id=album["album_id"])
            if _folder_has_cover(folder, album["title"], album["album_artist"]):
                run.stats.covers_present += 1
                outcome.reason = "the folder has a cover file"
                run.emit(outcome)
                continue
            if album["cover_path"] is None or request.covers_dir is None:
                run.stats.covers_unavailable += 1
                outcome.status, outcome.reason = "skipped", "no stored cover for this album"
                run.emit(outcome)
                continue
            if repo.album_ids_under(run.conn, shown_folder) != {album["album_id"]}:
                run.stats.covers_unavailable += 1
                outcome.status, outcome.reason = "skipped", "the folder holds other albums' tracks too"
                run.emit(outcome)
                continue
            try:
                data = as_jpeg((request.covers_dir / album["cover_path"]).read_bytes())
            except (OSError, ValueError) as exc:
                run.fail(outcome, None, WriteError("cover not readable", f"{type(exc).__name__}: {exc}; run "
                                                   "`soniquebay covers --summary` and rescan covers"))
                continue
            _place_cover(run, outcome, target, data, tracks, request.dry_run)


def _place_cover(run: _Run, outcome: FileOutcome, target: str, data: bytes, tracks: list, dry_run: bool) -> None:
    digest = hashlib.sha256(data).hexdigest()
    outcome.changes = [{"field": "cover", "key": tw.COVER_FILE_NAME, "before": None, "after": [f"{len(data)} bytes"]}]
    if dry_run:
        outcome.status = "would_write_cover"
        run.stats.covers_written += 1
        run.emit(outcome)
        return
    folder = os.path.dirname(target)
    beside = next((_open_path(p, r) for p, r, _ in tracks if os.path.dirname(_open_path(p, r)) == folder), None)
    with transaction(run.conn):
        entry = repo.journal_pending(run.conn, run.stats.run_id, kind="cover", path=outcome.path,
                                     album_id=outcome.album_id, sha256=digest)
    try:
        if not _inside_root(folder, _root_of(tracks, folder)):
            raise WriteError("outside library roots", "the album folder leads outside its library root")
        written = write_new_file(target, data, like=beside)
    except WriteError as exc:
        with transaction(run.conn):
            repo.drop_entry(run.conn, entry)
        run.fail(outcome, None, exc)
        return
    with transaction(run.conn):
        repo.mark_written(run.conn, entry, size=written.st_size, mtime_ns=written.st_mtime_ns)
        clear_errors(run.conn, [target], [repo.WRITE_BACK_STAGE])
    outcome.status = "cover_written"
    run.stats.covers_written += 1
    run.emit(outcome)


def _root_of(tracks: list, folder: str) -> str | None:
    return next((root for _, _, root in tracks if folder.startswith(os.path.normpath(root) + os.sep)), None)


def _folder_has_cover(folder: str, title: str, artist: str) -> bool:
    """Whether the folder (or a disc folder in it) already has an image players take as the album's cover."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return True  # unreadable: never guess
    names = [e.name for e in entries if e.is_file()]
    if match_album_images(names, title, artist, only_image=True):
        return True
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and is_disc_folder(entry.name):
            try:
                inner = [e.name for e in os.scandir(entry.path) if e.is_file()]
            except OSError:
                return True
            if match_album_images(inner, title, artist, only_image=True):
                return True
    return False


# ---------------------------------------------------------------------------------------------- journal upkeep


def settle_pending(conn: Any) -> int:
    """Journal entries recorded by a run that died before confirming them: confirmed when the file holds what
    was written, dropped when it never got there. Returns how many were settled."""
    settled = 0
    for entry in repo.pending_entries(conn):
        with transaction(conn):
            if entry.kind == "cover":
                if os.path.isfile(entry.path) and _sha256(entry.path) == entry.sha256:
                    st = os.stat(entry.path)
                    repo.mark_written(conn, entry.entry_id, size=st.st_size, mtime_ns=st.st_mtime_ns)
                else:
                    repo.drop_entry(conn, entry.entry_id)
                settled += 1
                continue
            path = _open_path(entry.path, entry.raw_path)
            try:
                native, state = read_native(path, entry.format)
            except WriteError:
                repo.drop_entry(conn, entry.entry_id)
                settled += 1
                continue
            if _holds(native, entry.changes, "after"):
                repo.mark_written(conn, entry.entry_id, size=state.size, mtime_ns=state.mtime_ns)
                if entry.file_id is not None:
                    repo.record_file_facts(conn, entry.file_id, size=state.size,
                                           fingerprint=content_fingerprint(path, state.size))
            else:
                repo.drop_entry(conn, entry.entry_id)
            settled += 1
    return settled


def _sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def _holds(native: dict, changes: list[dict[str, Any]], side: str) -> bool:
    """Whether the file's keys read as the journal's `side` ("before" or "after") of every change."""
    for change in changes:
        want = change[side]
        got = native.get(change["key"])
        if want is None:
            if got is not None:
                return False
        elif got is None or not (list(got.texts) == list(want)
                                 or tw.same_value(change["field"], got.texts, want)):
            return False
    return True


# ---------------------------------------------------------------------------------------------- undo


def undo_write_back(conn: Any, *, run_id: int | None = None, file_ids: Sequence[int] | None = None,
                    album_ids: Sequence[int] | None = None, dry_run: bool = False, origin: str = "cli",
                    break_hard_links: bool = False, on_file: OnFile | None = None) -> WriteBackStats:
    """Put back what write-back replaced: the entries of one run (default: the latest run still in the files),
    or every entry of some files and album covers, newest first. A file changed since is left alone (an error
    record says so)."""
    started = time.perf_counter()
    stats = WriteBackStats(action="undo", dry_run=dry_run)
    run = _Run(conn, stats, on_file)
    if not dry_run:
        stats.pending_settled = settle_pending(conn)
    if run_id is None and file_ids is None and album_ids is None:
        run_id = repo.latest_undoable_run(conn)
        if run_id is None:
            return run.close(started)
    entries = repo.undoable_entries(conn, run_id=run_id, file_ids=file_ids, album_ids=album_ids)
    stats.tracks_selected = len({e.file_id for e in entries if e.file_id is not None})
    if not dry_run:
        with transaction(conn):
            stats.run_id = repo.start_run(conn, "undo", origin, [], {"of_run": run_id, "entries": len(entries)})
    for done, entry in enumerate(entries, 1):
        if entry.kind == "cover":
            _undo_cover(run, entry, dry_run)
        else:
            _undo_tags(run, entry, dry_run, break_hard_links)
        progress.report("undo", done, len(entries))
    run.close(started)
    if stats.run_id is not None:
        with transaction(conn):
            repo.finish_run(conn, stats.run_id, stats.as_dict())
    return stats


def _undo_tags(run: _Run, entry: repo.JournalEntry, dry_run: bool, break_hard_links: bool) -> None:
    outcome = FileOutcome(entry.path, "restored", track_id=None)
    outcome.changes = [{"field": c["field"], "key": c["key"], "before": c["after"], "after": c["before"]}
                       for c in reversed(entry.changes)]
    path = _open_path(entry.path, entry.raw_path)
    try:
        if entry.file_id is None or not _inside_root(path, entry.root):
            raise WriteError("outside library roots", "the file is no longer in the catalog's library roots")
        native, state = read_native(path, entry.format)
        if not _holds(native, entry.changes, "after"):
            raise WriteError("changed since written", "the file's tags changed after SoniqueBay wrote them; "
                                                      "they are left as they are")
    except WriteError as exc:
        run.fail(outcome, entry.shard, exc)
        return
    if dry_run:
        run.restored(outcome, "would_restore")
        return
    edits = [KeyEdit(c["key"], tuple(c["before"]) if c["before"] is not None else None, c.get("before_raw"))
             for c in reversed(entry.changes)]
    try:
        written = write_file(path, entry.format, edits, state, break_hard_links=break_hard_links)
    except WriteError as exc:
        run.fail(outcome, entry.shard, exc)
        return
    with transaction(run.conn):
        repo.mark_undone(run.conn, entry.entry_id, run.stats.run_id)
        repo.record_file_facts(run.conn, entry.file_id, size=written.size, fingerprint=written.fingerprint)
        clear_errors(run.conn, [entry.path], [repo.WRITE_BACK_STAGE])
    run.stats.files_written += 1
    run.restored(outcome, "restored")


def _undo_cover(run: _Run, entry: repo.JournalEntry, dry_run: bool) -> None:
    outcome = FileOutcome(entry.path, "cover_removed", album_id=entry.album_id,
                          changes=[{"field": "cover", "key": tw.COVER_FILE_NAME, "before": ["written"],
                                    "after": None}])
    present = os.path.lexists(entry.path)
    if present and _sha256(entry.path) != entry.sha256:
        run.fail(outcome, None, WriteError("changed since written", "the cover file was replaced after "
                                                                    "SoniqueBay wrote it; it is left as it is"))
        return
    if dry_run:
        run.restored(outcome, "would_remove_cover")
        return
    if present:
        try:
            os.unlink(entry.path)
        except OSError as exc:
            run.fail(outcome, None, WriteError("write error", f"{exc.strerror or exc}; remove it by hand"))
            return
    with transaction(run.conn):
        repo.mark_undone(run.conn, entry.entry_id, run.stats.run_id)
    run.restored(outcome, "cover_removed")
