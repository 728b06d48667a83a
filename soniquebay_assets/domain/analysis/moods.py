"""Moods, energy and danceability in [0, 1] from the learned tags of the MusiCNN taggers (music_tags.py): each
score is the evidence of a few tags that say it, combined as a noisy-or, 1 - prod(1 - p), so that one confident
tag or several moderate ones raise it. A "for" and an "against" set make a balanced score,
0.5 + 0.5 * (for - against). msd:/mtt: name the model (Million Song Dataset / MagnaTagATune tags).

    happy            = or(msd:happy, msd:catchy, msd:party, mtt:dance)
    sad              = or(msd:sad, 0.5 msd:Mellow, 0.5 mtt:slow)
    aggressive       = or(msd:metal, msd:heavy metal, msd:hard rock, msd:punk, mtt:metal, 0.5 mtt:loud)
    relaxed          = or(msd:chillout, msd:chill, msd:Mellow, msd:easy listening, msd:ambient, mtt:soft,
                          mtt:quiet, mtt:ambient, mtt:new age)
    party            = or(msd:party, msd:dance, msd:House, mtt:dance)
    energy           = 0.5 + 0.5 * (or(mtt:loud, mtt:fast, msd:metal, msd:hard rock, msd:punk, msd:heavy metal,
                                       msd:dance, msd:House, mtt:techno)
                                    - or(mtt:quiet, mtt:soft, mtt:slow, mtt:ambient, mtt:new age, msd:ambient,
                                         msd:chillout, msd:Mellow, msd:easy listening))
    danceability     = or(msd:dance, msd:House, msd:party, msd:electro, msd:funk, msd:Hip-Hop, msd:rnb, mtt:dance,
                          mtt:beat, mtt:beats, mtt:techno)
    acousticness     = or(msd:acoustic, msd:folk, msd:country, mtt:classical, mtt:strings, mtt:piano, mtt:violin,
                          mtt:cello, mtt:harp, mtt:harpsichord, mtt:flute, mtt:choral)
                       * (1 - or(msd:electronic, msd:electronica, msd:electro, msd:House, mtt:electronic,
                                 mtt:synth, mtt:techno))
    instrumentalness = 0.5 + 0.5 * (or(msd:instrumental, mtt:no vocals, mtt:no vocal, mtt:no voice)
                                    - or(mtt:vocal, mtt:vocals, mtt:voice, mtt:singing, mtt:male vocal,
                                         mtt:female vocal, mtt:male voice, mtt:female voice, msd:female vocalists,
                                         msd:male vocalists))
A weight w scales a tag's probability (w p) before it enters the noisy-or.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Tags = Mapping[str, Mapping[str, float]]  # {"msd": {tag: p}, "mtt": {tag: p}}

_HAPPY = ("msd:happy", "msd:catchy", "msd:party", "mtt:dance")
_SAD = ("msd:sad", ("msd:Mellow", 0.5), ("mtt:slow", 0.5))
_AGGRESSIVE = ("msd:metal", "msd:heavy metal", "msd:hard rock", "msd:punk", "mtt:metal", ("mtt:loud", 0.5))
_RELAXED = ("msd:chillout", "msd:chill", "msd:Mellow", "msd:easy listening", "msd:ambient", "mtt:soft", "mtt:quiet",
            "mtt:ambient", "mtt:new age")
_PARTY = ("msd:party", "msd:dance", "msd:House", "mtt:dance")
_ENERGETIC = ("mtt:loud", "mtt:fast", "msd:metal", "msd:hard rock", "msd:punk", "msd:heavy metal", "msd:dance",
              "msd:House", "mtt:techno")
_CALM = ("mtt:quiet", "mtt:soft", "mtt:slow", "mtt:ambient", "mtt:new age", "msd:ambient", "msd:chillout",
         "msd:Mellow", "msd:easy listening")
_DANCEABLE = ("msd:dance", "msd:House", "msd:party", "msd:electro", "msd:funk", "msd:Hip-Hop", "msd:rnb", "mtt:dance",
              "mtt:beat", "mtt:beats", "mtt:techno")
_ACOUSTIC = ("msd:acoustic", "msd:folk", "msd:country", "mtt:classical", "mtt:strings", "mtt:piano", "mtt:violin",
             "mtt:cello", "mtt:harp", "mtt:harpsichord", "mtt:flute", "mtt:choral")
_ELECTRONIC = ("msd:electronic", "msd:electronica", "msd:electro", "msd:House", "mtt:electronic", "mtt:synth",
               "mtt:techno")
_NO_VOICE = ("msd:instrumental", "mtt:no vocals", "mtt:no vocal", "mtt:no voice")
_VOICE = ("mtt:vocal", "mtt:vocals", "mtt:voice", "mtt:singing", "mtt:male vocal", "mtt:female vocal",
          "mtt:male voice", "mtt:female voice", "msd:female vocalists", "msd:male vocalists")


def _clip(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


@dataclass(frozen=True)
class MoodScores:
    energy: float
    danceability: float
    acousticness: float
    instrumentalness: float
    happy: float
    sad: float
    aggressive: float
    relaxed: float
    party: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.__dict__.items()}


def evidence(tags: Tags, names: Iterable[str | tuple[str, float]]) -> float:
    """Noisy-or of the named tags' probabilities ('model:tag', or ('model:tag', weight)); a missing tag is 0."""
    miss = 1.0
    for item in names:
        name, weight = (item, 1.0) if isinstance(item, str) else item
        model, tag = name.split(":", 1)
        miss *= 1.0 - weight * _clip(tags.get(model, {}).get(tag, 0.0))
    return 1.0 - miss


def mood_scores(tags: Tags) -> MoodScores:
    """The mapping of the module docstring."""
    return MoodScores(
        energy=_clip(0.5 + 0.5 * (evidence(tags, _ENERGETIC) - evidence(tags, _CALM))),
        danceability=_clip(evidence(tags, _DANCEABLE)),
        acousticness=_clip(evidence(tags, _ACOUSTIC) * (1.0 - evidence(tags, _ELECTRONIC))),
        instrumentalness=_clip(0.5 + 0.5 * (evidence(tags, _NO_VOICE) - evidence(tags, _VOICE))),
        happy=_clip(evidence(tags, _HAPPY)),
        sad=_clip(evidence(tags, _SAD)),
        aggressive=_clip(evidence(tags, _AGGRESSIVE)),
        relaxed=_clip(evidence(tags, _RELAXED)),
        party=_clip(evidence(tags, _PARTY)),
    )
