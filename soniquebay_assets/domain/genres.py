"""Genre normalization (split multi-valued strings, canonical names and casing, curated synonyms) and mood
tags derived from analysis scores. The curated table lives in data/genre_synonyms.json."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from importlib import resources

from soniquebay_assets.domain.tag_values import is_placeholder

# ; / , | and the ID3v2.4 NUL separator split a genre string; " & " and " and " do not (Drum & Bass, R&B)
_SEPARATORS = re.compile(r"\s*(?:;|/|\||,|\x00|\\\\)\s*")
_ID3V1_REF = re.compile(r"^\((\d{1,3})\)\s*(.*)$")
_MINOR_WORDS = {"and", "of", "the", "in", "n", "de", "la", "le", "del", "y", "a"}


@lru_cache(maxsize=1)
def _table() -> dict:
    text = resources.files("soniquebay_assets.domain").joinpath("data/genre_synonyms.json").read_text("utf-8")
    return json.loads(text)


def match_key(name: str) -> str:
    """Spelling-insensitive key: casefolded, '&'/'and'/'n' unified, spaces, hyphens and punctuation removed,
    so 'Hip-Hop', 'hip hop' and 'HipHop' all give 'hiphop'."""
    s = name.casefold().strip()
    s = re.sub(r"\s*(?:&|\band\b|'n'|\bn\b)\s*", "and", s)
    return re.sub(r"[\s\-_.'’`]+", "", s)


@lru_cache(maxsize=1)
def _synonyms() -> dict[str, str]:
    table = _table()
    found: dict[str, str] = {}
    for canonical, synonyms in table["canonical"].items():
        found[match_key(canonical)] = canonical
        for synonym in synonyms:
            found.setdefault(match_key(synonym), canonical)
    return found


@lru_cache(maxsize=1)
def _split_exempt() -> set[str]:
    return {match_key(n) for n in _table()["split_exempt"]} | {match_key(n) for n in _table()["canonical"]}


@lru_cache(maxsize=1)
def _keep_case() -> dict[str, str]:
    return {w.casefold(): w for w in _table()["keep_case"]}


def _id3v1_name(index: int) -> str | None:
    try:
        from mutagen._constants import GENRES
    except ImportError:  # pragma: no cover - mutagen is a hard dependency
        return None
    return GENRES[index] if 0 <= index < len(GENRES) else None


def split_genres(raw: str | Iterable[str] | None) -> list[str]:
    """Split one or more raw genre values on ; / , | NUL, resolving ID3v1 references like '(17)' or '17'."""
    if raw is None:
        return []
    values = [raw] if isinstance(raw, str) else list(raw)
    parts: list[str] = []
    for value in values:
        value = str(value).strip()
        if not value:
            continue
        if match_key(value) in _split_exempt():
            parts.append(value)
            continue
        for piece in _SEPARATORS.split(value):
            piece = piece.strip().strip("\"'")
            ref = _ID3V1_REF.match(piece)
            if ref:  # "(17)" or "(17)Rock": the refinement text wins when present
                piece = ref.group(2).strip() or (_id3v1_name(int(ref.group(1))) or "")
            elif piece.isdigit():
                piece = _id3v1_name(int(piece)) or ""
            if piece:
                parts.append(piece)
    return parts


def canonical_casing(name: str) -> str:
    """Title case with exceptions: acronyms from keep_case (EDM, R&B, UK), minor words lower-case inside."""
    words = re.split(r"(\s+|-)", " ".join(name.split()))
    out = []
    for i, word in enumerate(words):
        if not word or word.isspace() or word == "-":
            out.append(word)
            continue
        kept = _keep_case().get(word.casefold())
        if kept:
            out.append(kept)
        elif i > 0 and word.casefold() in _MINOR_WORDS:
            out.append(word.casefold())
        else:
            out.append(word[:1].upper() + word[1:].lower())
    return "".join(out)


def normalize_genre(name: str) -> str | None:
    """Canonical display name for one genre value, or None for an empty/placeholder value."""
    cleaned = " ".join(name.split()).strip(" .")
    if is_placeholder(cleaned) or match_key(cleaned) in {"", "unknown", "other", "none", "genre", "misc", "null"}:
        return None
    return _synonyms().get(match_key(cleaned), canonical_casing(cleaned))


def normalize_genres(raw: str | Iterable[str] | None) -> list[str]:
    """Split, normalize and de-duplicate (first occurrence wins, order kept)."""
    seen: set[str] = set()
    out: list[str] = []
    for part in split_genres(raw):
        canonical = normalize_genre(part)
        if canonical and canonical not in seen:
            seen.add(canonical)
            out.append(canonical)
    return out


def mood_tags(scores: Mapping[str, float | None]) -> list[str]:
    """Tags such as 'energetic', 'danceable', 'happy' from the analysis scores (thresholds in the data file);
    an unmeasured score (None) gives no tag."""
    tags: list[str] = []
    for field, rules in _table()["mood_thresholds"].items():
        value = scores.get(field)
        if value is None:
            continue
        for tag, op, threshold in rules:
            if (op == ">=" and value >= threshold) or (op == "<=" and value <= threshold):
                tags.append(tag)
    return tags


# -- online tags (Last.fm) merged through a whitelist and a tree, like beets' lastgenre --------------------------

MAX_ADDED_GENRES = 3


@lru_cache(maxsize=1)
def _parents() -> dict[str, str]:
    text = resources.files("soniquebay_assets.domain").joinpath("data/genre_tree.json").read_text("utf-8")
    return json.loads(text)["parent"]


def ancestors(genre: str) -> list[str]:
    """Broader genres of a canonical genre, nearest first (cycles cut)."""
    out: list[str] = []
    current = _parents().get(genre)
    while current and current not in out and current != genre:
        out.append(current)
        current = _parents().get(current)
    return out


def whitelisted_genres(tags: Iterable[str]) -> list[str]:
    """Canonical genres among free-form tags (most popular first): only names or synonyms of the curated table,
    so 'seen live', 'british' or 'female vocalists' never become genres."""
    seen: list[str] = []
    for tag in tags:
        canonical = _synonyms().get(match_key(" ".join(str(tag).split())))
        if canonical and canonical not in seen:
            seen.append(canonical)
    return seen


def merge_genres(own: Sequence[str], online: Iterable[str], *, max_added: int = MAX_ADDED_GENRES) -> list[str]:
    """The files' own genres, untouched and first, then up to `max_added` whitelisted online genres that are neither
    already there nor a broader genre of one already there."""
    merged = list(own)
    covered = set(merged)
    for genre in merged:
        covered.update(ancestors(genre))
    added = 0
    for genre in whitelisted_genres(online):
        if added >= max_added:
            break
        if genre in covered:
            continue
        merged.append(genre)
        covered.add(genre)
        covered.update(ancestors(genre))
        added += 1
    return merged
