"""Saved playlists onto Subsonic servers: each entry mapped to the server's song id (by its path relative to the
music folder first, then by title, artist, album and duration), the playlist of the same name created once and
then updated in place (order kept, removed entries removed, duplicates of that name removed), every outcome
recorded per part and server. A server that does not answer leaves the push in the deferred queue."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from soniquebay_assets.catalog import db, deferred, inventory
from soniquebay_assets.catalog import playlists as repo
from soniquebay_assets.clients.http import HttpClient
from soniquebay_assets.clients.subsonic import (
    SubsonicBadAnswer,
    SubsonicClient,
    SubsonicError,
    SubsonicSetupError,
    SubsonicSong,
    SubsonicUnavailable,
)
from soniquebay_assets.domain import playlists as pl
from soniquebay_assets.stages import by_name

DEFERRED_KIND = "playlists"
ENTITY_TYPE = "playlist"
DEFERRED_SHARD = "00"  # playlists are not sharded; the queue's rows need one
DURATION_TOLERANCE_S = 3.0
STAGE = by_name("playlists").error_label  # scan_errors.stage of its problems


@dataclass
class TargetResult:
    """One part on one server: ok, partial (some entries unmatched), unchanged, deferred, auth_error or error."""

    status: str
    remote_id: str | None = None
    pushed: int = 0
    unmatched: list[dict] = field(default_factory=list)
    message: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def relative_path(path: str, roots: Sequence[str]) -> str:
    """A track's path below its library root (the longest root holding it); the path itself when none does."""
    best = ""
    for root in roots:
        head = root.rstrip("/") + "/"
        if path.startswith(head) and len(head) > len(best):
            best = head
    return path[len(best):] if best else path.lstrip("/")


def same_file(ours: str, theirs: str | None) -> bool:
    """Paths relative to two music folders name one file when equal or when one ends with the other (the
    server's folder may sit a level above or below our library root)."""
    if not theirs:
        return False
    theirs = theirs.replace("\\", "/").lstrip("/")
    return ours == theirs or ours.endswith("/" + theirs) or theirs.endswith("/" + ours)


def tag_match(entry: dict, songs: Sequence[SubsonicSong]) -> SubsonicSong | None:
    """The song with this entry's title and artist (album when both know it), nearest in duration."""
    title, artist = pl.identity_text(entry["title"]), pl.identity_text(entry["artist"])
    album = pl.identity_text(entry.get("album") or "")
    best, best_key = None, None
    for song in songs:
        if pl.identity_text(song.title) != title or pl.identity_text(song.artist) != artist:
            continue
        song_album = pl.identity_text(song.album)
        if album and song_album and song_album != album:
            continue
        gap = abs((song.duration or 0.0) - (entry.get("duration") or 0.0)) \
            if song.duration is not None and entry.get("duration") is not None else 0.0
        if gap > DURATION_TOLERANCE_S:
            continue
        key = (song_album != album, gap, song.id)
        if best_key is None or key < best_key:
            best, best_key = song, key
    return best


class Pusher:
    """One push session over the configured servers, sharing one HTTP client."""

    def __init__(self, conn: Any, servers: Sequence[Any], *, http: HttpClient | None = None,
                 roots: Sequence[str], contact: str | None = None):
        self.conn = conn
        self.roots = list(roots)
        self.http = http or HttpClient(contact=contact)
        self._own_http = http is None
        self.clients = [SubsonicClient(self.http, label=s.label, url=s.url, user=s.user, password=s.password,
                                       setting=s.setting) for s in servers]
        self.broken: dict[str, str] = {}     # setup problems: nothing more is sent there this session
        self.down: dict[str, str] = {}       # no answer: later pushes there wait in the deferred queue at once
        self._searches: dict[tuple[str, str], list[SubsonicSong]] = {}

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    # -- mapping ----------------------------------------------------------------------------------------------

    def _search(self, client: SubsonicClient, query: str) -> list[SubsonicSong]:
        key = (client.label, query)
        if key not in self._searches:
            self._searches[key] = client.search_songs(query, count=100) if query.strip() else []
        return self._searches[key]

    def map_entries(self, client: SubsonicClient, entries: Sequence[dict]) -> tuple[list[str], list[dict]]:
        """(song ids in entry order, unmatched entries with their reason)."""
        cached = repo.cached_song_ids(self.conn, client.label, [e["track_id"] for e in entries])
        ids: list[str] = []
        unmatched: list[dict] = []
        found: list[tuple[int, str, str]] = []
        used: dict[str, int] = {}
        for entry in entries:
            song_id, how = cached.get(entry["track_id"]), "cache"
            if song_id is None:
                song_id, how = self._find(client, entry)
                if song_id is not None:
                    found.append((entry["track_id"], song_id, how))
            if song_id is None:
                unmatched.append({"track_id": entry["track_id"], "path": entry["path"], "reason": how})
            elif song_id in used:
                unmatched.append({"track_id": entry["track_id"], "path": entry["path"],
                                  "reason": f"the server has one song for this and entry {used[song_id]}"})
            else:
                used[song_id] = entry["position"]
                ids.append(song_id)
        repo.save_song_ids(self.conn, client.label, found)
        return ids, unmatched

    def _find(self, client: SubsonicClient, entry: dict) -> tuple[str | None, str]:
        relative = relative_path(entry["path"], self.roots)
        songs = self._search(client, entry["title"])
        for song in songs:
            if same_file(relative, song.path):
                return song.id, "path"
        stem = os.path.splitext(os.path.basename(entry["path"]))[0]
        if stem and stem != entry["title"]:  # servers title untagged files after their file name
            for song in self._search(client, stem):
                if same_file(relative, song.path):
                    return song.id, "path"
        song = tag_match(entry, songs)
        if song is not None:
            return song.id, "tags"
        return None, (f"not on the server: no song at {relative!r} nor titled {entry['title']!r} by "
                      f"{entry['artist']!r} with this album and duration")

    # -- pushing ----------------------------------------------------------------------------------------------

    def push_part(self, client: SubsonicClient, title: str, comment: str, entries: Sequence[dict],
                  remote_id: str | None) -> TargetResult:
        """Create or update the server's playlist `title` to hold `entries`, in order; verified by reading it back."""
        ids, unmatched = self.map_entries(client, entries)
        mine = [p for p in client.playlists() if p.name == title]
        chosen = next((p for p in mine if p.id == remote_id), None) or (min(mine, key=lambda p: p.id) if mine else None)
        changed = False
        for extra in [p for p in mine if chosen is not None and p.id != chosen.id]:
            client.delete_playlist(extra.id)  # a copy left by an interrupted create: one playlist per name
            changed = True
        if chosen is None:
            new_id = client.create_playlist(title, ids)
            if new_id is None:
                created = [p for p in client.playlists() if p.name == title]
                if not created:
                    return TargetResult("error", None, 0, unmatched, "the server created no playlist")
                new_id = max(created, key=lambda p: p.id).id
            remote_id, changed = new_id, True
            current_comment = ""
        else:
            remote_id, current_comment = chosen.id, chosen.comment
            if [s.id for s in client.playlist_songs(remote_id)] != ids:
                client.replace_songs(remote_id, ids)
                changed = True
        if comment and comment != current_comment:
            client.set_comment(remote_id, comment)
        on_server = [s.id for s in client.playlist_songs(remote_id)]
        if on_server != ids:
            # cached ids the server no longer knows (it re-scanned): map those entries afresh once
            stale = [e["track_id"] for e, sid in zip(entries, ids, strict=False) if sid not in set(on_server)]
            repo.forget_song_ids(self.conn, client.label, stale or [e["track_id"] for e in entries])
            ids, unmatched = self.map_entries(client, entries)
            client.replace_songs(remote_id, ids)
            changed = True
            on_server = [s.id for s in client.playlist_songs(remote_id)]
            if on_server != ids:
                return TargetResult("error", remote_id, len(on_server), unmatched,
                                    f"the server holds {len(on_server)} songs after the update, {len(ids)} were sent")
        status = "partial" if unmatched else ("ok" if changed else "unchanged")
        message = f"{len(unmatched)} entries not found on the server" if unmatched else ""
        return TargetResult(status, remote_id, len(ids), unmatched, message)

    def _push_safely(self, client: SubsonicClient, playlist_id: int, part: int, title: str, comment: str,
                     entries: Sequence[dict], remote_id: str | None) -> TargetResult:
        marker = f"subsonic://{client.label}/{title}"
        if client.label in self.broken:
            result = TargetResult("auth_error", remote_id, message=self.broken[client.label])
        elif client.label in self.down:
            result = TargetResult("deferred", remote_id, message=self.down[client.label])
        else:
            try:
                result = self.push_part(client, title, comment, entries, remote_id)
            except SubsonicSetupError as exc:
                self.broken[client.label] = str(exc)
                result = TargetResult("auth_error", remote_id, message=str(exc))
            except SubsonicUnavailable as exc:
                self.down[client.label] = str(exc)
                result = TargetResult("deferred", remote_id, message=str(exc))
            except SubsonicError as exc:
                reason = "subsonic_bad_answer" if isinstance(exc, SubsonicBadAnswer) else f"subsonic_{exc.reason}"
                result = TargetResult("error", remote_id, message=str(exc))
                with db.transaction(self.conn):
                    inventory.record_errors(self.conn, [inventory.ErrorRecord(marker, STAGE, reason, str(exc))])
        if result.status in ("ok", "partial", "unchanged"):
            with db.transaction(self.conn):
                inventory.clear_errors(self.conn, [marker], [STAGE])
        repo.save_push(self.conn, playlist_id, part, client.label, remote_id=result.remote_id, status=result.status,
                       pushed=result.pushed, unmatched=result.unmatched, message=result.message)
        return result

    def push_playlist(self, playlist_id: int, parts: Sequence[pl.Playlist], results: Sequence[Any], stats: Any,
                      remote: dict[tuple[int, str], str | None], removed: Sequence[repo.StoredPart] = ()) -> None:
        """Push every part of a freshly materialized playlist to every server; the server copies of parts that are
        gone (`removed`, with the ids `remote` held before this materialization) are deleted."""
        waiting = False
        for client in self.clients:
            for number, (part, result) in enumerate(zip(parts, results, strict=True)):
                entries = [e.to_json() for e in part.entries]
                outcome = self._push_safely(client, playlist_id, number, part.name, part.description, entries,
                                            remote.get((number, client.label)))
                result.targets[client.label] = outcome.to_json()
                _count(stats, outcome)
                waiting |= outcome.status == "deferred"
            for old in removed:
                remote_id = remote.get((old.part, client.label))
                if remote_id and client.label not in self.broken and client.label not in self.down:
                    try:
                        client.delete_playlist(remote_id)
                    except SubsonicError as exc:
                        stats.problems.append(f"{client.label}: could not delete {old.title}: {exc}")
        if waiting:
            self._defer(playlist_id)

    def _defer(self, playlist_id: int) -> None:
        deferred.enqueue(self.conn, DEFERRED_KIND, ENTITY_TYPE, [(playlist_id, DEFERRED_SHARD)],
                         delay_s=deferred.backoff_s(1))

    def retry(self, items: Sequence[tuple[int, int]], stats: Any) -> list[int]:
        """Push again the parts whose last push waited for a server, from the stored entries, for claimed items
        (work id, playlist id): done, or failed (backoff, dead letter) when a server still does not answer.
        Returns the work ids done."""
        done: list[int] = []
        failed: list[tuple[int, str]] = []
        for work_id, playlist_id in items:
            if repo.get_definition_by_id(self.conn, playlist_id) is None:
                done.append(work_id)  # deleted meanwhile: nothing left to push
                continue
            states = {(s.part, s.target): s for s in repo.push_states(self.conn, playlist_id)}
            still_down = []
            for client in self.clients:
                for part in repo.stored_parts(self.conn, playlist_id):
                    state = states.get((part.part, client.label))
                    if state is None or state.status != "deferred":
                        continue
                    outcome = self._push_safely(client, playlist_id, part.part, part.title, part.description,
                                                part.entries, state.remote_id)
                    _count(stats, outcome)
                    if outcome.status == "deferred":
                        still_down.append(f"{client.label}: {outcome.message}")
            if still_down:
                failed.append((work_id, "; ".join(still_down)))
            else:
                done.append(work_id)
        if done:
            deferred.complete(self.conn, done)
        for work_id, error in failed:
            deferred.fail(self.conn, [work_id], error)
        return done

    def delete_remote(self, playlist_id: int) -> dict[str, str]:
        """Delete the server copies of a playlist's parts; server label -> what happened."""
        out: dict[str, str] = {}
        for state in repo.push_states(self.conn, playlist_id):
            client = next((c for c in self.clients if c.label == state.target), None)
            if client is None or not state.remote_id:
                continue
            try:
                client.delete_playlist(state.remote_id)
                out[state.target] = "deleted"
            except SubsonicError as exc:
                out[state.target] = f"not deleted: {exc}"
        return out


def _count(stats: Any, outcome: TargetResult) -> None:
    stats.pushes[outcome.status] = stats.pushes.get(outcome.status, 0) + 1
    if outcome.status == "deferred":
        stats.deferred += 1
    elif outcome.status == "auth_error" and outcome.message not in stats.setup_errors:
        stats.setup_errors.append(outcome.message)
    elif outcome.status == "error":
        stats.problems.append(outcome.message)
