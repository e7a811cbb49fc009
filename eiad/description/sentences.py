"""One sentence an operator can read, from measured facts: what, where, how big, what shape,
how it looks, and why the part is rejected.

Every fact is said with a fixed keyword (the class name, a location from LOCATIONS, a size
from SIZES, "elongated"/"compact", "darker"/"brighter"/"as bright as") inside one of
several seeded phrasings, so a model trained on these sentences learns to vary the words
around the facts, and the checker (check.py) can read the facts back out of any sentence.
"""

from __future__ import annotations

import random

from eiad.description.facts import DefectFacts

_LEAD = (
    "The part has a {cls}",
    "There is a {cls}",
    "This part shows a {cls}",
    "A {cls} is visible",
)
_WHERE = (
    "in the {loc} of the image",
    "located in the {loc} of the image",
    "in the image's {loc}",
)
_CENTRE = ("in the centre of the image", "near the centre of the image", "at the centre of the image")
_EDGE = (", close to the image border", ", near the edge of the image", ", at the edge of the image")
_REGIONS = (" in {n} separate regions", ", split into {n} regions", " spread over {n} regions")
_SIZE = (
    "It is {size}, {pct} of the image ({px} pixels)",
    "It is {size}: it covers {pct} of the image ({px} pixels)",
    "Its size is {size}, about {pct} of the image ({px} pixels)",
)
_SIZE_WORD = ("It is {size}", "Its size is {size}", "It is {size} in size")
_SHAPE = {
    "elongated": ("elongated", "elongated in shape", "of an elongated shape"),
    "compact": ("compact", "compact in shape", "of a compact shape"),
}
_LOOKS = {
    "darker": ("darker than the surface around it", "darker than its surroundings", "darker than the area around it"),
    "brighter": (
        "brighter than the surface around it",
        "brighter than its surroundings",
        "brighter than the area around it",
    ),
    "similar": (
        "about as bright as the surface around it",
        "about as bright as its surroundings",
        "roughly as bright as the area around it",
    ),
}
_WHY = (
    "so the part is rejected as defective.",
    "which is why the part was rejected.",
    "so the part does not pass inspection.",
)
_GOOD = (
    "No defect is visible: the surface looks normal and the part is good.",
    "The part looks normal, with no visible defect, so it passes inspection.",
    "No defect: the surface is uniform and the part is accepted as good.",
    "There is no defect on this part; it looks normal and passes.",
)


def class_words(name: str) -> str:
    """A class name as written in a sentence ("missing_material" -> "missing material")."""
    return name.replace("_", " ").strip()


def percent(share: float) -> str:
    value = 100.0 * share
    return f"{value:.2f} %" if value < 0.1 else f"{value:.1f} %"


def describe_defect(facts: DefectFacts, defect_class: str | None, rng: random.Random, figures: bool = True) -> str:
    """The description of a defective part. `defect_class` None: the class is not known and
    the sentence says "defect" without naming one. `figures` False: the size as its bucket
    only, without the share of the image and the pixel count."""
    cls = class_words(defect_class) if defect_class else "defect"
    where = rng.choice(_CENTRE) if facts.location == "centre" else rng.choice(_WHERE).format(loc=facts.location)
    first = rng.choice(_LEAD).format(cls=cls) + " " + where
    if facts.near_edge:
        first += rng.choice(_EDGE)
    if facts.regions > 1:
        first += rng.choice(_REGIONS).format(n=facts.regions)
    size = rng.choice(_SIZE if figures else _SIZE_WORD).format(
        size=facts.size, pct=percent(facts.area_share), px=facts.area_px
    )
    traits = [rng.choice(_SHAPE[facts.shape])]
    if facts.appearance is not None:
        traits.append(rng.choice(_LOOKS[facts.appearance]))
    return f"{first}. {size}, {' and '.join(traits)}, {rng.choice(_WHY)}"


def describe_good(rng: random.Random) -> str:
    """The description of a good part."""
    return rng.choice(_GOOD)
