"""Does an explanation agree with the verdict the PLC acted on?

`read_claims` finds what a sentence says (which classes, which locations, no-defect, size,
shape, appearance) by the keywords sentences.py uses; `check_explanation` compares those
claims with the published verdict, class and the facts measured on the published mask:

- verdict: an NG explanation must not say "no defect"; an OK one must not name a class or
  a location, and must say there is no defect;
- class: an NG part with a published class must be called that class and no other; with
  class "unknown"/None, naming any class disagrees (the station did not publish one);
- location: the measured location must be named and no other (when there is a mask);
- size, shape, appearance: when the sentence states one, it must be the measured one
  (saying nothing about them is not a disagreement). Size covers the bucket and the
  figures: a stated "% of the image" must read as the measured share as sentences.py
  writes it (one decimal), a stated pixel count as the measured count; a figure that is
  not a number (a small model's garbled digits) disagrees.

Torch-free, pure; used by the edge explainer on every explanation and by the reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from eiad.description.facts import LOCATIONS, SIZES, DefectFacts
from eiad.description.sentences import class_words, percent

_NO_DEFECT = re.compile(r"\bno (visible )?defects?\b|\bnot defective\b|\bdefect-free\b")
_APPEARANCE = {"darker": r"\bdarker\b", "brighter": r"\bbrighter\b", "similar": r"\bas bright as\b"}
_SHAPE = {"elongated": r"\belongated\b", "compact": r"\bcompact\b"}
# The word before "%" / "pixels", whatever it is: a garbled figure must be seen, not skipped.
_PERCENT = re.compile(r"([^\s(]*)\s*%")
_PIXELS = re.compile(r"([^\s(]*)\s+pixels?\b")


@dataclass(frozen=True)
class Claims:
    """What one sentence states."""

    no_defect: bool
    classes: frozenset[str]
    locations: frozenset[str]
    sizes: frozenset[str]
    shapes: frozenset[str]
    appearances: frozenset[str]
    percents: tuple[str, ...] = ()  # what stands before each "%"
    pixel_counts: tuple[str, ...] = ()  # what stands before each "pixels"


@dataclass(frozen=True)
class Consistency:
    consistent: bool
    disagreements: tuple[str, ...]  # of "verdict", "class", "location", "size", "shape", "appearance"
    claims: Claims = field(repr=False)


def _found(patterns: dict[str, str], text: str) -> frozenset[str]:
    return frozenset(name for name, pattern in patterns.items() if re.search(pattern, text))


def read_claims(text: str, class_names: tuple[str, ...] | list[str]) -> Claims:
    t = " ".join(text.lower().replace("_", " ").split())
    locations = {loc: rf"\b{loc}\b" for loc in LOCATIONS if loc != "centre"}
    locations["centre"] = r"\bcent(re|er)\b"
    return Claims(
        no_defect=bool(_NO_DEFECT.search(t)),
        classes=_found({c: rf"\b{re.escape(class_words(c).lower())}\b" for c in class_names}, t),
        locations=_found(locations, t),
        sizes=_found({s: rf"\b{s}\b" for s in SIZES}, t),
        shapes=_found(_SHAPE, t),
        appearances=_found(_APPEARANCE, t),
        percents=tuple(_PERCENT.findall(t)),
        pixel_counts=tuple(_PIXELS.findall(t)),
    )


def _figures_agree(claims: Claims, facts: DefectFacts) -> bool:
    measured_pct = percent(facts.area_share).removesuffix(" %")
    return all(p == measured_pct for p in claims.percents) and all(
        n.replace(",", "") == str(facts.area_px) for n in claims.pixel_counts
    )


def check_explanation(
    text: str,
    verdict: str,
    defect_class: str | None,
    facts: DefectFacts | None,
    class_names: tuple[str, ...] | list[str],
) -> Consistency:
    """Compare one explanation with the published verdict, class and mask facts."""
    claims = read_claims(text, class_names)
    wrong: list[str] = []
    if verdict == "NG":
        if claims.no_defect:
            wrong.append("verdict")
        known = defect_class if defect_class and defect_class != "unknown" else None
        if (known is not None and claims.classes != {known}) or (known is None and claims.classes):
            wrong.append("class")
        if facts is not None:
            if claims.locations != {facts.location}:
                wrong.append("location")
            for name, said, measured in (
                ("size", claims.sizes, facts.size),
                ("shape", claims.shapes, facts.shape),
                ("appearance", claims.appearances, facts.appearance),
            ):
                if (said and measured is not None and said != {measured}) or (
                    name == "size" and not _figures_agree(claims, facts)
                ):
                    wrong.append(name)
    elif not claims.no_defect or claims.classes or claims.locations:
        wrong.append("verdict")
    return Consistency(not wrong, tuple(wrong), claims)
