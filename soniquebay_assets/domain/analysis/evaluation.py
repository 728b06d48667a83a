"""Accuracy measures for tempo (Accuracy1/Accuracy2) and key (exact rate, MIREX weighted score)."""

from __future__ import annotations

from dataclasses import dataclass

from soniquebay_assets.domain.analysis.key import pitch_class

TEMPO_TOLERANCE = 0.04
OCTAVE_FACTORS = (1.0, 2.0, 3.0, 0.5, 1.0 / 3.0)


def tempo_correct(estimate: float | None, truth: float, *, octave_errors: bool = False) -> bool:
    """Within 4 % of the truth (Accuracy1), or of truth x2, x3, x1/2, x1/3 with octave_errors (Accuracy2)."""
    if estimate is None:
        return False
    factors = OCTAVE_FACTORS if octave_errors else (1.0,)
    return any(abs(estimate - truth * f) <= TEMPO_TOLERANCE * truth * f for f in factors)


@dataclass(frozen=True)
class TempoScores:
    n: int
    accuracy1: float
    accuracy2: float


def tempo_accuracy(pairs: list[tuple[float | None, float]]) -> TempoScores:
    """(estimate, truth) pairs -> Accuracy1 and Accuracy2 as fractions (a missing estimate counts wrong)."""
    n = len(pairs)
    if n == 0:
        return TempoScores(0, 0.0, 0.0)
    a1 = sum(tempo_correct(e, t) for e, t in pairs) / n
    a2 = sum(tempo_correct(e, t, octave_errors=True) for e, t in pairs) / n
    return TempoScores(n, a1, a2)


def parse_key(text: str) -> tuple[int, str]:
    """'A minor', 'Am', 'F# major', 'Bb', 'c#m' -> (pitch class, mode); a bare note name means major."""
    s = text.strip().replace("♯", "#").replace("♭", "b")
    lowered = s.lower()
    mode = "major"
    for suffix, m in ((" minor", "minor"), (" major", "major"), (" min", "minor"), (" maj", "major"),
                      (":minor", "minor"), (":major", "major"), ("min", "minor"), ("maj", "major"), ("m", "minor")):
        if lowered.endswith(suffix):
            s, mode = s[: -len(suffix)].strip(), m
            break
    return pitch_class(s), mode


def key_relation(estimate: tuple[int, str] | None, truth: tuple[int, str]) -> str:
    """exact, fifth (same mode, estimate a fifth above or below), relative, parallel, or other."""
    if estimate is None:
        return "other"
    (et, em), (tt, tm) = estimate, truth
    if et == tt and em == tm:
        return "exact"
    if em == tm and (et - tt) % 12 in (5, 7):
        return "fifth"
    if em != tm and ((tm == "major" and (et - tt) % 12 == 9) or (tm == "minor" and (et - tt) % 12 == 3)):
        return "relative"
    if et == tt:
        return "parallel"
    return "other"


MIREX_WEIGHTS = {"exact": 1.0, "fifth": 0.5, "relative": 0.3, "parallel": 0.2, "other": 0.0}


@dataclass(frozen=True)
class KeyScores:
    n: int
    exact: float
    weighted: float
    relations: dict[str, int]


def key_accuracy(pairs: list[tuple[tuple[int, str] | None, tuple[int, str]]]) -> KeyScores:
    """(estimate, truth) pairs of (pitch class, mode) -> exact rate and MIREX weighted score."""
    relations = {name: 0 for name in MIREX_WEIGHTS}
    for estimate, truth in pairs:
        relations[key_relation(estimate, truth)] += 1
    n = len(pairs)
    if n == 0:
        return KeyScores(0, 0.0, 0.0, relations)
    weighted = sum(MIREX_WEIGHTS[r] * c for r, c in relations.items()) / n
    return KeyScores(n, relations["exact"] / n, weighted, relations)


# Ratios of estimate to truth that name a tempo confusion (metrical levels), checked within the 4 % tolerance.
TEMPO_RATIOS = {"x1": 1.0, "x2": 2.0, "x1/2": 0.5, "x3/2": 1.5, "x2/3": 2.0 / 3.0, "x3": 3.0, "x1/3": 1.0 / 3.0,
                "x4": 4.0, "x1/4": 0.25, "x4/3": 4.0 / 3.0, "x3/4": 0.75}


def tempo_confusion(estimate: float | None, truth: float) -> str:
    """The metrical relation of an estimate to the truth ('x1', 'x2', 'x3/2'...), 'other' or 'not_measured'."""
    if estimate is None:
        return "not_measured"
    for name, ratio in TEMPO_RATIOS.items():
        if abs(estimate - truth * ratio) <= TEMPO_TOLERANCE * truth * ratio:
            return name
    return "other"


def key_confusion(estimate: tuple[int, str] | None, truth: tuple[int, str]) -> str:
    """key_relation with the fifth split by direction: 'fifth_up' (dominant) or 'fifth_down' (subdominant)."""
    relation = key_relation(estimate, truth)
    if relation != "fifth" or estimate is None:
        return "not_measured" if estimate is None else relation
    return "fifth_up" if (estimate[0] - truth[0]) % 12 == 7 else "fifth_down"


def tempo_report(pairs: list[tuple[float | None, float]]) -> dict:
    """Accuracy1, Accuracy2 and the count of each confusion class."""
    scores = tempo_accuracy(pairs)
    classes: dict[str, int] = {}
    for estimate, truth in pairs:
        name = tempo_confusion(estimate, truth)
        classes[name] = classes.get(name, 0) + 1
    return {"n": scores.n, "accuracy1": round(scores.accuracy1, 4), "accuracy2": round(scores.accuracy2, 4),
            "confusions": dict(sorted(classes.items(), key=lambda kv: -kv[1]))}


def key_report(pairs: list[tuple[tuple[int, str] | None, tuple[int, str]]]) -> dict:
    """Exact rate, MIREX weighted score and the count of each confusion class (fifth split by direction)."""
    scores = key_accuracy(pairs)
    classes: dict[str, int] = {}
    for estimate, truth in pairs:
        name = key_confusion(estimate, truth)
        classes[name] = classes.get(name, 0) + 1
    return {"n": scores.n, "exact": round(scores.exact, 4), "mirex_weighted": round(scores.weighted, 4),
            "confusions": dict(sorted(classes.items(), key=lambda kv: -kv[1]))}
