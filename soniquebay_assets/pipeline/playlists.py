"""The playlists stage: generate a playlist of any kind from the catalog (`generate`, what the CLI, the asset and
the API call), and keep saved playlists fresh: M3U8 files in the playlists folder and copies on Subsonic servers
(`refresh_playlists`, the asset's and `soniquebay playlist push`'s work)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from soniquebay_assets.catalog import db, deferred, inventory
from soniquebay_assets.catalog import playlists as repo
from soniquebay_assets.domain import embedding_text as et
from soniquebay_assets.domain import m3u8
from soniquebay_assets.domain import playlists as pl
from soniquebay_assets.domain.playlists import Playlist, PlaylistRequest, PlaylistRequestError
from soniquebay_assets.library.atomic_files import atomic_write
from soniquebay_assets.pipeline import playlist_push
from soniquebay_assets.stages import by_name

STAGE = by_name("playlists").error_label  # scan_errors.stage of its problems
MIN_CANDIDATES = 1000


# ------------------------------------------------------------------------------------------ generation


# A process answering requests (the HTTP API, the benchmark) checks the catalog's state at most this often: the
# check reads 30-100 ms of SQL at 100k tracks, so a playlist may lag a catalog change by these few seconds.
STATE_CHECK_EVERY_S = 5.0


def library_of(source: Any) -> pl.PlaylistLibrary:
    """The library arrays of a catalog connection (kept per process while the catalog is unchanged, its state
    checked at most every STATE_CHECK_EVERY_S), or the library itself when handed one."""
    if isinstance(source, pl.PlaylistLibrary):
        return source
    return repo.load_library(source, max_age_s=STATE_CHECK_EVERY_S)


def resolve_track(library: pl.PlaylistLibrary, reference: str | int) -> int:
    """The row of a track given by id or by path (as stored, or relative to the working folder)."""
    text = str(reference).strip()
    if text.isdigit() and int(text) in library.position:
        return library.position[int(text)]
    for candidate in (text, os.path.abspath(os.path.expanduser(text))):
        row = library.row_of_path(candidate)
        if row is not None:
            return row
    raise PlaylistRequestError(f"no track with id or path {text!r} in the catalog (see `soniquebay tracks --json`)")


def _needs_vector(library: pl.PlaylistLibrary, row: int, role: str) -> np.ndarray:
    vector = library.vector(row)
    if vector is None:
        raise PlaylistRequestError(f"the {role} track {int(library.track_ids[row])} has no vector yet: run "
                                   "`soniquebay scan PATH` (stage vectors) or `soniquebay vectors update`")
    return vector


def _ranked_candidates(library: pl.PlaylistLibrary, queries: Sequence[np.ndarray],
                       count: int) -> tuple[np.ndarray, np.ndarray]:
    """(library rows, exact cosine to the first query) of the tracks nearest any of `queries`, from the search
    index (its candidates are rescored exactly; rows reached through another query are scored here)."""
    if library.ranker is None:
        raise PlaylistRequestError("no track vectors yet: run `soniquebay scan PATH` (stage vectors) first")
    vrows, scores = library.ranker.ranked(np.asarray(queries[0], dtype=np.float32), min(count, len(library.matrix)))
    if len(queries) > 1:
        more = [library.ranker.ranked(np.asarray(q, dtype=np.float32), min(count, len(library.matrix)))[0]
                for q in queries[1:]]
        vrows = np.unique(np.concatenate([vrows, *more]))
        scores = library.matrix[vrows] @ np.asarray(queries[0], dtype=np.float32)
    rows = library.vector_track_row[vrows]
    keep = rows >= 0  # a vector whose track is gone (not yet cleaned)
    return rows[keep], np.asarray(scores, dtype=np.float64)[keep]


def _scored(library: pl.PlaylistLibrary, rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row's vector to each query (rows x queries)."""
    return library.matrix[library.vector_row[rows]] @ np.asarray(queries, dtype=np.float32).T


def _ranked(library: pl.PlaylistLibrary, request: PlaylistRequest, *, name: str, queries: np.ndarray,
            mask: np.ndarray, start: list[int], start_reason: str, reason: Callable[[float], str], description: str,
            score: Callable[[np.ndarray], np.ndarray] | None = None, exclude: set[int] = frozenset()) -> Playlist:
    """Candidates near `queries` from the index (scored by cosine to the first, or by `score`), widened until
    enough of them pass the filters."""
    target = pl.target_of(request, library)
    needed = pl.pool_size(target, request.artist_window)
    count = max(MIN_CANDIDATES, 8 * needed)
    total = len(library.matrix) if library.matrix is not None else 0
    while True:
        rows, scores = _ranked_candidates(library, queries, count)
        if exclude:
            keep = ~np.isin(rows, list(exclude))
            rows, scores = rows[keep], scores[keep]
        passing = rows[mask[rows]]
        if len(np.unique(library.recording[passing])) >= needed or count >= total:
            break
        count *= 4  # the filters rejected too many: widen
    if score is not None:
        scores = score(rows)
    return pl.ranked_playlist(library, request, name=name, candidates=rows, scores=scores, mask=mask, start=start,
                              start_reason=lambda r: start_reason, reason=lambda r, s: reason(s),
                              description=description)


def _label(library: pl.PlaylistLibrary, row: int) -> str:
    return f"{library.artists[row]} - {library.titles[row]}"


_blas: Any = None


def _one_blas_thread() -> Any:
    """Numpy's BLAS on one thread while a playlist is made: its matrices are small, and a multi-threaded BLAS call
    waits for a second core that other jobs hold (measured on 2 busy cores: a 130 x 403 product 18 ms on two
    threads, 0.1 ms on one; an eigendecomposition 4 s against 0.05 s)."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")


def generate(source: Any, request: PlaylistRequest, *, text_model: Any = None) -> list[Playlist]:
    """Playlists for `request` from a catalog connection or a loaded PlaylistLibrary: one, or one per cluster.

    PlaylistRequestError (a ValueError) says what to change when the request cannot be served. `text_model`
    (library.embedder.TextModel) spares loading the model for text requests."""
    request.validate()
    library = library_of(source)
    with _one_blas_thread():
        return _generate(library, request, text_model)


def _seeds_and_mask(library: pl.PlaylistLibrary, request: PlaylistRequest) -> tuple[list[int], np.ndarray]:
    """The request's seed rows and the rows passing its filters (files an UTF-8 playlist cannot name left out);
    PlaylistRequestError when a seed is unknown or a filter cannot apply."""
    if not len(library):
        raise PlaylistRequestError("the catalog has no tracks yet: run `soniquebay scan PATH` first")
    seeds: list[int] = []
    if request.kind == "similar":
        seeds = [resolve_track(library, request.track)]
    elif request.kind == "path":
        seeds = [resolve_track(library, request.from_track), resolve_track(library, request.to_track)]
    elif request.kind == "radio":
        seeds = _radio_seeds(library, request)
    if request.kind != "filter" and not library.has_vectors:
        raise PlaylistRequestError(f"a {request.kind} playlist needs track vectors: run `soniquebay scan PATH` "
                                   "(stage vectors) or `soniquebay vectors update` first")
    return seeds, pl.filter_mask(library, request.filters, seeds) & library.utf8_path


def _generate(library: pl.PlaylistLibrary, request: PlaylistRequest, text_model: Any) -> list[Playlist]:
    seeds, mask = _seeds_and_mask(library, request)
    kind = request.kind
    if kind == "similar":
        row = seeds[0]
        vector = _needs_vector(library, row, "seed")
        name = request.name or f"Similar to {_label(library, row)}"
        return [_ranked(library, request, name=name, queries=vector[None, :], mask=mask, start=[row],
                        start_reason="the seed track", reason=lambda s: f"similar to the seed ({s:.2f})",
                        description=f"tracks that sound and read like {_label(library, row)}")]
    if kind == "radio":
        return [_radio(library, request, seeds, mask)]
    if kind == "text":
        return [_text(library, request, mask, text_model)]
    if kind == "filter":
        return [pl.filter_playlist(library, request, mask, name=request.name or "Filtered: "
                                   + pl.describe_filters(request.filters)[:80])]
    if kind == "path":
        start, end = seeds
        name = request.name or f"From {library.titles[start]} to {library.titles[end]}"
        return [pl.path_playlist(library, request, start, end, mask, name=name)]
    return pl.cluster_playlists(library, request, mask, name=request.name or "Clusters")


def _radio_seeds(library: pl.PlaylistLibrary, request: PlaylistRequest) -> list[int]:
    if request.album_id is not None:
        rows = np.flatnonzero(library.album_ids == int(request.album_id)).tolist()
        if not rows:
            raise PlaylistRequestError(f"no album with id {request.album_id} in the catalog (see `soniquebay albums "
                                       "--json`)")
        return rows
    wanted = pl.identity_text(request.artist)
    ids = {i for i, n in library.artist_names.items() if pl.identity_text(n) == wanted}
    rows = [r for r, artists in enumerate(library.artist_sets) if artists & ids]
    if not rows:
        raise PlaylistRequestError(f"no artist named {request.artist!r} in the catalog (see `soniquebay artists "
                                   "--json`)")
    return rows


def _radio(library: pl.PlaylistLibrary, request: PlaylistRequest, seeds: list[int], mask: np.ndarray) -> Playlist:
    """Tracks near several seeds: scored half by the nearest seed, half by the seeds' centre; the seeds
    themselves take at most a quarter of the entries, starting with the most typical one."""
    with_vectors = [r for r in seeds if library.vector_row[r] >= 0]
    if not with_vectors:
        raise PlaylistRequestError("none of the seed tracks has a vector yet: run the vectors stage first")
    rng = np.random.default_rng(request.seed)
    if len(with_vectors) > 50:
        with_vectors = sorted(rng.choice(with_vectors, 50, replace=False).tolist())
    seed_vectors = library.matrix[library.vector_row[with_vectors]]
    centre = seed_vectors.mean(axis=0)
    centre = centre / max(float(np.linalg.norm(centre)), 1e-12)
    first = with_vectors[int(np.argmax(seed_vectors @ centre))]

    column_of = {row: j for j, row in enumerate(with_vectors)}

    def score(rows: np.ndarray) -> np.ndarray:
        sims = _scored(library, rows, np.vstack([centre, seed_vectors]))
        near = sims[:, 1:].copy()
        for i, row in enumerate(rows.tolist()):  # a seed is not "near the seeds" by being one
            if row in column_of:
                near[i, column_of[row]] = -1.0
        return 0.5 * sims[:, 0] + 0.5 * near.max(axis=1)

    target = pl.target_of(request, library)
    allowed_seeds = max(1, target.estimate() // 4)
    spare = [r for r in seeds if r != first and library.vector_row[r] >= 0]
    spare_scores = score(np.array(spare, dtype=np.int64)) if spare else np.zeros(0)
    kept = {spare[i] for i in np.argsort(-spare_scores, kind="stable")[: allowed_seeds - 1].tolist()}
    exclude = {r for r in seeds if r not in kept}
    what = f"album {library.albums[seeds[0]]}" if request.album_id is not None else f"artist {request.artist}"
    name = request.name or (f"{library.albums[seeds[0]]} radio" if request.album_id is not None
                            else f"{request.artist} radio")
    queries = np.vstack([centre, seed_vectors[: 8]])
    playlist = _ranked(library, request, name=name, queries=queries, score=score, mask=mask, start=[first],
                       start_reason=f"seed ({what})", reason=lambda s: f"near the seeds ({s:.2f})",
                       description=f"a radio around the {what}", exclude=exclude)
    seed_set = set(seeds)
    entries = tuple(replace(e, reason=f"seed ({what})") if library.position[e.track_id] in seed_set else e
                    for e in playlist.entries)
    return replace(playlist, entries=entries)


def _text(library: pl.PlaylistLibrary, request: PlaylistRequest, mask: np.ndarray, text_model: Any) -> Playlist:
    if library.text_space is None or library.ranker is None:
        raise PlaylistRequestError("no track vectors yet: run `soniquebay scan PATH` (stage vectors) first")
    model_name, weights = library.text_space
    if text_model is None:
        from soniquebay_assets.library import embedder

        try:
            text_model = embedder.load_model(None if model_name == embedder.DEFAULT_MODEL else model_name)
        except embedder.ModelNotFoundError as exc:
            raise PlaylistRequestError(str(exc)) from None
    text = et.clean_field(request.text, et.MAX_TEXT_CHARS)
    query = et.query_vector(text_model.encode([text])[0], weights)
    if len(query) != library.matrix.shape[1]:
        raise PlaylistRequestError(f"the text model gives {len(query)} dimensions, the catalog's vectors have "
                                   f"{library.matrix.shape[1]}: use the model the vectors were built with")
    return _ranked(library, request, name=request.name or f"“{text[:60]}”", queries=query[None, :],
                   mask=mask, start=[], start_reason="",
                   reason=lambda s: f"matches “{text[:60]}” ({s:.2f})", description=f"tracks matching “{text}”")


def quality_report(library: pl.PlaylistLibrary, playlist: Playlist, *, seed: int = 0, shuffles: int = 50) -> dict:
    """The playlist's transitions beside random orders of the same tracks (mean over `shuffles` orders)."""
    rows = [library.position[e.track_id] for e in playlist.entries]
    ours = pl.transition_quality(library, rows)
    rng = np.random.default_rng(seed)
    randoms = [pl.transition_quality(library, [rows[i] for i in rng.permutation(len(rows))]) for _ in range(shuffles)]

    def mean(key: str) -> float | None:
        values = [r[key] for r in randoms if r[key] is not None]
        return round(float(np.mean(values)), 3) if values else None

    return {"ours": ours, "random_order": {"mean_bpm_step": mean("mean_bpm_step"),
                                           "camelot_compatible_share": mean("camelot_compatible_share"),
                                           "artist_repeats_in_window": mean("artist_repeats_in_window")}}


# ------------------------------------------------------------------------------------------ files


def library_roots(library: pl.PlaylistLibrary) -> list[str]:
    return sorted(set(library.roots))


def write_m3u8(playlist: Playlist, target: Path, *, roots: Sequence[str], prefix: m3u8.PathPrefix | None = None) -> bool:
    """Write the playlist as extended M3U at `target`, atomically; False when the file already held exactly this."""
    text = m3u8.render(playlist.name, playlist.entries, playlist_file=str(target), roots=roots, prefix=prefix)
    data = text.encode("utf-8")
    try:
        if target.read_bytes() == data:
            return False  # unchanged: the server's scanner sees no new mtime
    except OSError:
        pass
    atomic_write(target, data, temp_suffix=".tmp")
    return True


def m3u8_output(text: str, *, several: bool) -> tuple[Path, bool]:
    """(path, is a folder) for an --m3u8 argument: a folder when it exists as one, ends with a separator, has
    no .m3u8/.m3u suffix, or several playlists are written; else the file itself."""
    path = Path(text).expanduser().absolute()
    folder = (path.is_dir() or text.endswith(("/", os.sep)) or path.suffix.lower() not in (".m3u8", ".m3u")
              or (several and not path.exists()))
    return path, folder


# ------------------------------------------------------------------------------------------ saved playlists


def save_playlist(conn: Any, name: str, request: PlaylistRequest) -> repo.SavedPlaylist:
    """Store a definition after checking that it can generate (its seeds exist and have vectors, its filters
    apply, the catalog has the vectors its kind needs), without making it: the asset or `push` will."""
    name = m3u8.one_line(name)
    if not name:
        raise PlaylistRequestError("give the playlist a name")
    request = PlaylistRequest.from_json({**request.to_json(), "name": name}).validate()
    library = library_of(conn)
    seeds, _ = _seeds_and_mask(library, request)
    for row, role in zip(seeds, {"similar": ("seed",), "path": ("first", "last")}.get(request.kind, ()),
                         strict=False):
        _needs_vector(library, row, role)
    return repo.save_definition(conn, name, request.kind, request.to_json())


@dataclass
class PartResult:
    """One written playlist (a saved playlist's single part, or one cluster): its file, size, change and pushes."""

    title: str
    entries: int
    minutes: float
    entries_changed: int
    file: str | None
    file_written: bool
    targets: dict[str, dict] = field(default_factory=dict)


@dataclass
class PlaylistsStats:
    """What one refresh of the saved playlists did (the stage's result)."""

    playlists: int = 0
    parts: int = 0
    entries: int = 0
    minutes: float = 0.0
    entries_changed: int = 0
    files_written: int = 0
    files_removed: int = 0
    failed: int = 0
    pushes: dict[str, int] = field(default_factory=dict)      # status -> parts
    deferred: int = 0
    setup_errors: list[str] = field(default_factory=list)     # wrong credentials or URL: a person must act
    problems: list[str] = field(default_factory=list)
    catalog_state: str = ""
    per_playlist: dict[str, list[PartResult]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)             # the M3U8 files of this refresh
    seconds: float = 0.0


def _changed_positions(before: Sequence[dict], after: Sequence[pl.PlaylistEntry]) -> int:
    """Positions whose track differs from the previous version (added and removed entries count too)."""
    old = [e["track_id"] for e in before]
    new = [e.track_id for e in after]
    return sum(1 for i in range(max(len(old), len(new))) if i >= len(old) or i >= len(new) or old[i] != new[i])


def refresh_playlists(conn: Any, *, playlists_dir: Path, names: Sequence[str] | None = None, only_due: bool = False,
                      path_prefix: str | None = None, servers: Sequence[Any] = (), http: Any = None,
                      text_model: Any = None, retry_items: Sequence[Any] = (),
                      contact: str | None = None) -> PlaylistsStats:
    """Generate saved playlists (those named, else all; with `only_due` only those whose catalog state moved),
    write their M3U8 files into `playlists_dir`, push them to `servers` and record what was done.

    `retry_items` are claimed deferred items, (work id, playlist id) of playlists whose push waits for a server:
    their waiting targets are pushed again from the stored entries. Setup problems (credentials, URLs) land in
    `setup_errors`."""
    started = time.perf_counter()
    stats = PlaylistsStats()
    prefix = m3u8.PathPrefix.parse(path_prefix)
    library = repo.load_library(conn)
    stats.catalog_state = library.state
    roots = library_roots(library)
    saved = repo.list_definitions(conn)
    if names is not None:
        known = {s.name for s in saved}
        missing = [n for n in names if n not in known]
        if missing:
            raise PlaylistRequestError(f"no saved playlist named {', '.join(map(repr, missing))} (see `soniquebay "
                                       "playlist list`)")
        saved = [s for s in saved if s.name in set(names)]
    if only_due:
        saved = [s for s in saved if s.catalog_state != library.state]
    pusher = playlist_push.Pusher(conn, servers, http=http, roots=roots, contact=contact) if servers else None
    try:
        for definition in saved:
            _refresh_one(conn, definition, library, stats, playlists_dir=playlists_dir, prefix=prefix, roots=roots,
                         pusher=pusher, text_model=text_model)
        if pusher is not None and retry_items:
            pusher.retry(retry_items, stats)
        elif retry_items:  # no server is configured any more: nothing is left to push
            deferred.complete(conn, [work_id for work_id, _ in retry_items])
    finally:
        if pusher is not None:
            pusher.close()
    stats.seconds = round(time.perf_counter() - started, 3)
    return stats


def _refresh_one(conn: Any, definition: repo.SavedPlaylist, library: pl.PlaylistLibrary, stats: PlaylistsStats, *,
                 playlists_dir: Path, prefix: m3u8.PathPrefix | None, roots: Sequence[str], pusher: Any,
                 text_model: Any) -> None:
    marker = f"playlist:{definition.name}"
    try:
        request = PlaylistRequest.from_json({**definition.request, "name": definition.name})
        parts = generate(library, request, text_model=text_model)
    except PlaylistRequestError as exc:
        stats.failed += 1
        stats.problems.append(f"{definition.name}: {exc}")
        with db.transaction(conn):
            inventory.record_errors(conn, [inventory.ErrorRecord(marker, STAGE, "cannot_generate", str(exc))])
        return
    previous = {p.part: p for p in repo.stored_parts(conn, definition.playlist_id)}
    remote_ids = {(s.part, s.target): s.remote_id for s in repo.push_states(conn, definition.playlist_id)}
    stats.playlists += 1
    results: list[PartResult] = []
    written: list[tuple[int, str, str, str | None, Sequence[pl.PlaylistEntry]]] = []
    for number, part in enumerate(parts):
        target = playlists_dir / m3u8.file_name(part.name)
        if str(target) in stats.files:  # two names that differ only by characters a file name cannot hold
            target = target.with_name(f"{target.stem} ({definition.playlist_id}).m3u8")
        stats.files.append(str(target))
        wrote = write_m3u8(part, target, roots=roots, prefix=prefix)
        before = previous[number].entries if number in previous else ()
        result = PartResult(part.name, len(part.entries), part.minutes, _changed_positions(before, part.entries),
                            str(target), wrote)
        results.append(result)
        written.append((number, part.name, part.description, str(target), part.entries))
        stats.parts += 1
        stats.entries += result.entries
        stats.minutes = round(stats.minutes + part.minutes, 1)
        stats.entries_changed += result.entries_changed
        stats.files_written += int(wrote)
    # files of parts that are gone (fewer clusters) or renamed go, but only inside the playlists folder
    kept = {w[3] for w in written}
    for old in previous.values():
        if old.file and old.file not in kept and Path(old.file).parent == playlists_dir:
            try:
                Path(old.file).unlink()
                stats.files_removed += 1
            except FileNotFoundError:
                pass
    repo.record_materialization(conn, definition.playlist_id, library.state, written)
    with db.transaction(conn):
        inventory.clear_errors(conn, [marker], [STAGE])
    if pusher is not None:
        pusher.push_playlist(definition.playlist_id, parts, results, stats, remote_ids,
                             removed=[p for n, p in previous.items() if n >= len(parts)])
    stats.per_playlist[definition.name] = results


def delete_playlist(conn: Any, name: str, *, servers: Sequence[Any] = (), http: Any = None,
                    contact: str | None = None) -> dict:
    """Remove a saved playlist: its definition, the M3U8 files it wrote, and its copies on the servers (those
    that answer; the others are reported)."""
    definition = repo.get_definition(conn, name)
    if definition is None:
        raise PlaylistRequestError(f"no saved playlist named {name!r} (see `soniquebay playlist list`)")
    parts = repo.stored_parts(conn, definition.playlist_id)
    removed_files = []
    for part in parts:
        if part.file:
            try:
                Path(part.file).unlink()
                removed_files.append(part.file)
            except FileNotFoundError:
                pass
    remote: dict[str, str] = {}
    if servers:
        pusher = playlist_push.Pusher(conn, servers, http=http, roots=[], contact=contact)
        try:
            remote = pusher.delete_remote(definition.playlist_id)
        finally:
            pusher.close()
    markers = [f"playlist:{name}", *(f"subsonic://{s.target}/{p.title}" for s in repo.push_states(
        conn, definition.playlist_id) for p in parts if p.part == s.part)]
    repo.delete_definition(conn, definition.playlist_id)
    with db.transaction(conn):
        inventory.clear_errors(conn, markers, [STAGE])
    return {"name": name, "files_removed": removed_files, "servers": remote}


def check_entries(conn: Any) -> dict:
    """Every entry of every saved playlist's last materialization: still a catalog track at that path, and a file
    on disk. (checked, missing from the catalog, missing on disk, a few examples)."""
    checked, gone, absent, examples = 0, 0, 0, []
    for definition in repo.list_definitions(conn):
        for part in repo.stored_parts(conn, definition.playlist_id):
            present = repo.tracks_present(conn, [e["track_id"] for e in part.entries])
            for entry in part.entries:
                checked += 1
                if present.get(entry["track_id"]) != entry["path"]:
                    gone += 1
                    examples.append(f"{part.title} #{entry['position']}: track {entry['track_id']} is no longer in "
                                    f"the catalog at {entry['path']}")
                elif not os.path.isfile(entry["path"]):
                    absent += 1
                    examples.append(f"{part.title} #{entry['position']}: {entry['path']} is not on disk")
    return {"entries_checked": checked, "missing_from_catalog": gone, "missing_on_disk": absent,
            "examples": examples[:10]}


def saved_playlists(conn: Any, name: str | None = None) -> list[tuple[repo.SavedPlaylist, list[Playlist]]]:
    """Saved definitions (all, or the one named) with the playlists of their last materialization, as the same
    typed Playlist objects `generate` returns (empty before the first materialization)."""
    found = []
    for definition in repo.list_definitions(conn):
        if name is not None and definition.name != name:
            continue
        parts = [Playlist(part.title, definition.kind,
                          tuple(pl.PlaylistEntry(e["position"], e["track_id"], e["path"], e["artist"], e["title"],
                                                 e["duration"], e["reason"], e["album"]) for e in part.entries),
                          part.description) for part in repo.stored_parts(conn, definition.playlist_id)]
        found.append((definition, parts))
    return found


def m3u8_text(playlist: Playlist, *, prefix: str | None = None) -> str:
    """A playlist as an M3U8 download (absolute paths, rewritten by a FROM=TO `prefix`)."""
    return m3u8.render(playlist.name, playlist.entries, playlist_file=None, roots=(),
                       prefix=m3u8.PathPrefix.parse(prefix))


def claimed_pushes(conn: Any, claim: str) -> list[tuple[int, int]]:
    """(work id, playlist id) of the pushes a deferred run was started for (its claim's in-progress items)."""
    return sorted((work_id, entity_id) for (entity_type, entity_id), work_id in
                  deferred.claimed_entities(conn, claim, playlist_push.DEFERRED_KIND).items()
                  if entity_type == playlist_push.ENTITY_TYPE)
