"""Verdicts scored against a stream's ground truth, and the line's quality goals.

A speed figure is worth nothing if the verdicts are wrong, so every run that replays a
stream with ground truth (the synthetic line's `ground_truth.jsonl`) scores what the PLC
received: `eiad edge demo`, `eiad bench line`, `eiad bench sweep` and the soak. The goals
(`LINE_GOALS`) are what a plant manager reads:

    accuracy >= 97 %    share of parts judged right (a REJECTED frame counts as wrong)
    overkill <= 2 %     good parts rejected
    miss     <= 5 %     defective parts passed
    mask IoU >= 0.6     mean over defective parts (a part without a published mask scores 0);
                        judged only where masks are scored

A run that misses one is marked failed in its report, whatever its speed. Explanations
have goals of their own (`EXPLANATION_GOALS`: a sentence of >= 12 words; class and
location agree with the published verdict in >= 98 %; shape and appearance agree with
the mask-measured truth in >= 80 %), judged by the same `judge`. Pure functions over
plain values; thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    key: str  # the figure's key in a score dict
    label: str
    bound: float
    at_least: bool  # True: value >= bound passes; False: value <= bound passes

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.bound if self.at_least else value <= self.bound

    def text(self) -> str:
        return f"{self.label} {'>=' if self.at_least else '<='} {self.bound:g}"


LINE_GOALS = (
    Goal("accuracy", "accuracy", 0.97, True),
    Goal("overkill_rate", "overkill", 0.02, False),
    Goal("miss_rate", "miss", 0.05, False),
    Goal("mean_iou", "mean mask IoU on defective parts", 0.6, True),
)

EXPLANATION_GOALS = (
    Goal("median_words", "median words per explanation", 12, True),
    Goal("class_location_agreement", "class and location agree with the verdict", 0.98, True),
    Goal("shape_agreement", "shape agrees with the true mask", 0.8, True),
    Goal("appearance_agreement", "appearance agrees with the true mask", 0.8, True),
)


def score_image(pairs: list[tuple[dict | None, str]]) -> dict:
    """Image-level scores from (truth record, verdict the PLC received) pairs.

    accuracy = correct / scored (a REJECTED part counts as wrong: it was not inspected);
    miss rate = NG parts called OK / NG parts (escapes); overkill rate = OK parts called NG
    / OK parts (good parts thrown away). Rates are rounded to 4 places, None when their
    denominator is 0; parts without a truth label are counted as unscored."""
    confusion = {t: {v: 0 for v in ("OK", "NG", "REJECTED")} for t in ("OK", "NG")}
    for truth, verdict in pairs:
        label = (truth or {}).get("label")
        if label in confusion and verdict in confusion[label]:
            confusion[label][verdict] += 1
    scored = sum(sum(row.values()) for row in confusion.values())
    scores = from_confusion(confusion, len(pairs) - scored)
    by_part = errors_by_part(pairs)
    if by_part:
        scores["by_part"] = by_part
    return scores


def errors_by_part(pairs: list[tuple[dict | None, str]]) -> dict[str, dict[str, int]]:
    """Per part type (truth records with a "part"): good parts and how many of them were
    judged NG, defective parts and how many passed as OK (the confusion table's overkill and
    miss cells; a REJECTED part, not inspected, is neither). Where a line's false rejects or
    misses come from, e.g. one part type whose good parts vary more than the calibration set saw."""
    out: dict[str, dict[str, int]] = {}
    for truth, verdict in pairs:
        part, label = (truth or {}).get("part"), (truth or {}).get("label")
        if not part or label not in ("OK", "NG") or verdict not in ("OK", "NG", "REJECTED"):
            continue
        row = out.setdefault(part, {"good": 0, "false_rejects": 0, "defective": 0, "misses": 0})
        if label == "OK":
            row["good"] += 1
            row["false_rejects"] += verdict == "NG"
        else:
            row["defective"] += 1
            row["misses"] += verdict == "OK"
    return dict(sorted(out.items()))


def format_errors_by_part(by_part: dict[str, dict[str, int]]) -> str:
    """One line naming the part types with wrong verdicts ("none" when there are none)."""
    wrong = [
        f"{part} {row['false_rejects']} of {row['good']} good rejected, {row['misses']} of {row['defective']} "
        "defective passed"
        for part, row in by_part.items()
        if row["false_rejects"] or row["misses"]
    ]
    return "; ".join(wrong) or "none"


def from_confusion(confusion: dict[str, dict[str, int]], unscored: int = 0) -> dict:
    """The score dict of `score_image` from its confusion counts (truth -> verdict -> parts)."""
    ok, ng = confusion["OK"], confusion["NG"]
    scored = sum(ok.values()) + sum(ng.values())
    ratio = lambda a, b: round(a / b, 4) if b else None  # noqa: E731
    return {
        "scored": scored,
        "unscored": unscored,
        "confusion": confusion,
        "accuracy": ratio(ok["OK"] + ng["NG"], scored),
        "miss_rate": ratio(ng["OK"], sum(ng.values())),
        "overkill_rate": ratio(ok["NG"], sum(ok.values())),
        "rejected": ok["REJECTED"] + ng["REJECTED"],
    }


def judge(scores: dict, table: tuple[Goal, ...] = LINE_GOALS) -> dict:
    """Each goal's value, bound and verdict from a flat dict of figures (missing ones are not
    judged), plus `passed`: False when any judged goal is missed."""
    goals = {}
    for goal in table:
        value = scores.get(goal.key)
        goals[goal.key] = {"goal": goal.text(), "value": value, "met": goal.met(value)}
    return {"goals": goals, "passed": all(g["met"] is not False for g in goals.values())}


def format_goals(judged: dict) -> str:
    """One line: every judged goal with its value and OK/MISSED."""
    parts = [
        f"{g['goal']}: {g['value']:.4g} {'ok' if g['met'] else 'MISSED'}"
        for g in judged["goals"].values()
        if g["met"] is not None
    ]
    return (
        ("quality goals " + ("met" if judged["passed"] else "MISSED") + ": " + "; ".join(parts))
        if parts
        else "quality goals: no ground truth to judge"
    )
