"""The demo's explanations judged: are they sentences, do they agree with what the PLC got,
and do they describe the defect as it truly is?

Per explanation the PLC received for an NG verdict:
- words: its length;
- consistent: the station's own flag (eiad/description/check.py against the published
  verdict, class and mask);
- class and location agree: the flag did not name "verdict", "class" or "location";
- shape / appearance agree with the truth: what the text states equals the facts measured
  on the line's ground-truth mask and the frame (parts that are truly defective).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from edge.demo.camera import read_frames
from eiad.description.check import read_claims
from eiad.description.facts import measure_defect
from eiad.line_goals import EXPLANATION_GOALS, judge

_VERDICT_FACTS = {"verdict", "class", "location"}


def _share(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def score_explanations(items: list[dict], class_names, video: Path) -> dict:
    """`items`: one per NG explanation received, {"text", "consistent", "disagreements",
    "truth" (the part's truth record or None), "truth_mask" (bool or None)}."""
    frames = read_frames(
        video, {i["truth"]["frame_index"] for i in items if i["truth"] and i["truth_mask"] is not None}
    )
    words, agree, shape, look = [], [], [], []
    for item in items:
        words.append(len(item["text"].split()))
        agree.append(item["consistent"] is not None and not _VERDICT_FACTS & set(item["disagreements"]))
        truth = item["truth"]
        if truth is None or item["truth_mask"] is None:
            continue
        facts = measure_defect(item["truth_mask"], frames.get(truth["frame_index"]))
        if facts is None:
            continue
        claims = read_claims(item["text"], class_names)
        shape.append(claims.shapes == {facts.shape})
        if facts.appearance is not None:
            look.append(claims.appearances == {facts.appearance})
    quality = {
        "explanations": len(items),
        "median_words": statistics.median(words) if words else None,
        "consistent": _share([i["consistent"] is True for i in items]),
        "class_location_agreement": _share(agree),
        "shape_agreement": _share(shape),
        "appearance_agreement": _share(look),
        "truly_defective": len(shape),
    }
    quality["judged"] = judge(quality, EXPLANATION_GOALS)
    return quality
