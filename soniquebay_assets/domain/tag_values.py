"""Value normalizers for tag text: multi-value splitting, numbers, dates, ReplayGain, booleans, MBIDs.

Every function takes raw strings as the tag formats give them and never raises on junk input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Genres split on every usual separator: ";" "/" "," "|" NUL (" / " is covered by "/" plus stripping).
_GENRE_SPLIT = re.compile(r"\s*[;/,|\x00]\s*")
# A single artist string "A; B" (or NUL-joined text) is several artists; "," and "&" are not separators
# because they occur inside real names ("Earth, Wind & Fire").
_PERSON_SPLIT = re.compile(r"\s*[;\x00]\s*")
_SLASH_SPLIT = re.compile(r"\s*/\s*")
_FEAT_SPLIT = re.compile(r"\s*[\(\[]?\s*\b(?:feat\.?|ft\.|featuring)\s+", re.IGNORECASE)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_MBID_SPLIT = re.compile(r"[\s;/,\x00]+")
_DATE = re.compile(r"^\s*(\d{4})(?:[-./](\d{1,2})(?:[-./](\d{1,2}))?)?(?:[T\s].*)?\s*$")
_COMPACT_DATE = re.compile(r"^\s*(\d{4})(\d{2})(\d{2})\s*$")
_ANY_YEAR = re.compile(r"(?<!\d)(\d{4})(?!\d)")
_PAIR = re.compile(r"^\s*(\d+)\s*(?:/|\bof\b)\s*(\d*)", re.IGNORECASE)
_LEADING_INT = re.compile(r"^\s*(\d+)")
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")
_TRUE = {"1", "true", "yes", "y", "on", "t"}

# Bump when a rule change here or in tag_mappings should reach files already read: catalogs recorded with an
# older version re-read every file's tags once (catalog/build_settings.py). 2: placeholders are missing values.
TAG_RULES_VERSION = 2

# Whole values (after trimming, case-folding and unwrapping one pair of <> [] () brackets) that rippers and
# taggers write when they know nothing: they mean "missing" in every text field. Only whole values match, so
# "None of Your Business" or "Unknown Pleasures" stay real names. Documented in docs/tags.md.
PLACEHOLDERS = frozenset({
    "unknown", "unknown artist", "unknown album", "unknown album artist", "unknown title", "unknown track",
    "unknown genre", "unknown composer", "none", "non", "n/a", "n.a.", "-", "--", "---", "?", "??", "???",
    "no artist", "no album", "no title", "no genre", "undefined", "untitled album",
})
_BRACKETS = {"<": ">", "[": "]", "(": ")"}
# Field-specific defaults: Windows Media Player's "Unknown album (12/2/2008 3:45:10 PM)" as an album. "Track 01"
# titles are NOT placeholders: real releases use them (soundtracks, untitled tracks), and the file name a
# fallback would read carries the same words anyway.
_PLACEHOLDER_PATTERNS = {
    "album": re.compile(r"^unknown album\s*\(.*\)$"),
}
_FALSE = {"0", "false", "no", "n", "off", "f"}


def is_placeholder(value: object, field: str | None = None) -> bool:
    """True when a text value only says "unknown" (see PLACEHOLDERS); `field` adds that field's patterns."""
    if not isinstance(value, str):
        return False
    text = " ".join(value.strip().strip("\x00").split()).casefold()
    if len(text) > 2 and _BRACKETS.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    if not text or text in PLACEHOLDERS:
        return True
    pattern = _PLACEHOLDER_PATTERNS.get(field or "")
    return bool(pattern and pattern.match(text))


def drop_placeholders(values: Iterable[object], field: str | None = None) -> list[object]:
    """The values that are not placeholders (non-text values such as MP4 number pairs are kept)."""
    return [v for v in values if not is_placeholder(v, field)]


def clean_values(values: Iterable[object]) -> list[str]:
    """Strip each value, drop empties and exact duplicates, keep order."""
    out: list[str] = []
    for value in values:
        text = str(value).strip().strip("\x00").strip()
        if text and text not in out:
            out.append(text)
    return out


def first_value(values: Iterable[object]) -> str | None:
    """The first non-empty stripped value, or None."""
    cleaned = clean_values(values)
    return cleaned[0] if cleaned else None


def split_genres(values: Iterable[object]) -> list[str]:
    """Every value split on ; / , | and NUL; placeholders and duplicates (case-insensitive) dropped."""
    out: list[str] = []
    seen: set[str] = set()
    for value in clean_values(values):
        if is_placeholder(value):  # before splitting: "n/a" is one placeholder, not genres "n" and "a"
            continue
        for part in _GENRE_SPLIT.split(value):
            part = part.strip()
            if part and not is_placeholder(part) and part.casefold() not in seen:
                seen.add(part.casefold())
                out.append(part)
    return out


def split_people(values: Iterable[object], slash_joined: bool = False, expected_count: int | None = None) -> list[str]:
    """Artists/composers: real multi-values stay as given; a single value is split on ";".

    `slash_joined` marks the ID3v2.3/v2.2 convention where several artists are one "A/B" string. Then a single
    value is also split on "/", unless that would look wrong: a part shorter than 3 characters ("AC/DC") or
    exactly one MusicBrainz artist id tagged (`expected_count == 1`). A matching id count always wins.
    """
    cleaned = [v for v in clean_values(values) if not is_placeholder(v)]
    if len(cleaned) > 1:
        return cleaned
    if not cleaned:
        return []
    parts = [p for p in clean_values(_PERSON_SPLIT.split(cleaned[0])) if not is_placeholder(p)]
    if slash_joined and len(parts) == 1 and "/" in parts[0]:
        slash_parts = [p for p in clean_values(_SLASH_SPLIT.split(parts[0])) if not is_placeholder(p)]
        if expected_count == len(slash_parts):
            return slash_parts
        if expected_count != 1 and all(len(p) >= 3 for p in slash_parts):
            return slash_parts
    return parts


def split_featured(artist: str) -> tuple[list[str], list[str]]:
    """Split "A feat. B", "A (ft. B & C)", "A featuring B" into (main artists, featured artists)."""
    if not artist or not artist.strip():
        return [], []
    pieces = _FEAT_SPLIT.split(artist.strip(), maxsplit=1)
    main = [p for p in (s.strip() for s in _PERSON_SPLIT.split(pieces[0])) if p]
    if len(pieces) == 1 or not main:  # no "feat." or nothing before it: not a featuring credit
        return [p for p in (s.strip() for s in _PERSON_SPLIT.split(artist)) if p], []
    rest = pieces[1].strip().rstrip(")]").strip()
    featured = [p.strip() for p in re.split(r"\s*(?:,|&|;|\band\b)\s*", rest) if p.strip()]
    return main, featured


def parse_number_pair(value: object) -> tuple[int | None, int | None]:
    """"3/12" -> (3, 12), "03" -> (3, None), "3 of 12" -> (3, 12), (3, 12) -> (3, 12); 0 means absent."""
    if isinstance(value, tuple):
        number = value[0] if len(value) > 0 else None
        total = value[1] if len(value) > 1 else None
        return _positive(number), _positive(total)
    text = str(value).strip() if value is not None else ""
    match = _PAIR.match(text)
    if not match:
        return parse_int(text), None
    return parse_int(match.group(1)), parse_int(match.group(2))


def parse_int(value: object) -> int | None:
    """Leading integer of a value ("07" -> 7, "3a" -> 3); None for junk, zero or negatives."""
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _positive(value)
    match = _LEADING_INT.match(str(value))
    return _positive(int(match.group(1))) if match else None


def _positive(value: object) -> int | None:
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def parse_float(value: object) -> float | None:
    """First decimal number in a value ("120", "120.5", "120,5"); None when there is none."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _NUMBER.search(str(value).replace("\u2212", "-"))
    if not match:
        return None
    try:
        return float(match.group(0).replace(",", "."))
    except ValueError:
        return None


def parse_bpm(value: object) -> float | None:
    """Beats per minute; zero or absurd values (> 1000) are treated as absent."""
    bpm = parse_float(value)
    return bpm if bpm is not None and 0 < bpm <= 1000 else None


def parse_replaygain_gain(value: object) -> float | None:
    """"-6.50 dB", "+1.48 dB", "-6.5dB", "\u22126.5 dB" -> dB as float."""
    return parse_float(value)


def parse_replaygain_peak(value: object) -> float | None:
    """Linear peak "0.999969" -> float; negative peaks are junk."""
    peak = parse_float(value)
    return peak if peak is not None and peak >= 0 else None


def parse_bool(value: object) -> bool | None:
    """"1"/"true"/"yes" -> True, "0"/"false"/"no" -> False, anything else -> None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    text = str(value).strip().lower() if value is not None else ""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    number = parse_int(text)
    return True if number else None


def normalize_date(value: object) -> tuple[str | None, str | None]:
    """Return (YYYY | YYYY-MM | YYYY-MM-DD, warning). Junk keeps a warning; a lone 4-digit year is kept."""
    text = str(value).strip() if value is not None else ""
    if not text:
        return None, None
    match = _DATE.match(text) or _COMPACT_DATE.match(text)
    if match:
        year, month, day = match.group(1), match.group(2), match.group(3)
        if not _plausible_year(year):
            return None, f"date {text!r} has an implausible year"
        if month and 1 <= int(month) <= 12:
            if day and 1 <= int(day) <= 31:
                return f"{year}-{int(month):02d}-{int(day):02d}", None
            return f"{year}-{int(month):02d}", None
        return year, None
    years = [y for y in _ANY_YEAR.findall(text) if _plausible_year(y)]
    if years:
        return years[0], f"date {text!r} is not a standard date; kept year {years[0]}"
    return None, f"date {text!r} is not a date; ignored"


def _plausible_year(year: str) -> bool:
    return 1000 <= int(year) <= 2999


def normalize_mbid(value: object) -> str | None:
    """A lower-case MusicBrainz UUID, or None when the value is not one."""
    text = str(value).strip().lower() if value is not None else ""
    return text if _UUID.match(text) else None


def normalize_mbid_list(values: Iterable[object]) -> tuple[list[str], list[str]]:
    """Split id lists on / ; , whitespace and NUL (UUIDs contain none); return (valid ids, rejected values)."""
    valid: list[str] = []
    rejected: list[str] = []
    for value in clean_values(values):
        for part in _MBID_SPLIT.split(value):
            if not part:
                continue
            mbid = normalize_mbid(part)
            if mbid is None:
                rejected.append(part)
            elif mbid not in valid:
                valid.append(mbid)
    return valid, rejected
